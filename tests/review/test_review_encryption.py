"""Regressions for the reviewer's findings on personal-data protection (issue 3).

Each test reproduces one finding and pins the fix.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from sealtrail import AuditLog, ConfigError, StorageError, ValidationError
from sealtrail.log.search import Filter, search
from tests.capture import capture
from tests.conftest import TEST_PASSPHRASE

DPO = {"id": "dpo"}


@pytest.fixture
def log(tmp_path: Path) -> Iterator[AuditLog]:
    """An encrypted log."""
    with AuditLog.open(tmp_path) as opened:
        yield opened


def key_rows(tmp_path: Path) -> int:
    """Subject keys stored in the log database."""
    con = sqlite3.connect(tmp_path / "default" / "log.db")
    try:
        return int(con.execute("SELECT count(*) FROM subject_keys").fetchone()[0])
    finally:
        con.close()


def test_an_erasure_whose_event_fails_keeps_the_key(log: AuditLog, tmp_path: Path) -> None:
    """A refused erasure destroys nothing: key, index and data stay, nothing is recorded."""
    log.append({"actor": {"id": "u1"}, "action": "rec.read", "outcome": "success",
                "subjects": ["patient-1"], "metadata": {"a": 1}})
    size = log.size
    with pytest.raises(ValidationError, match="reason"):
        log.erase_subject("patient-1", reason="req \udcff", actor=DPO)
    assert log.size == size
    assert key_rows(tmp_path) == 1
    assert log.read(log.entry(0))["metadata"] == {"a": 1}
    assert log.find("subject", "patient-1") == [0]


def test_a_rejected_request_leaves_no_subject_key(log: AuditLog) -> None:
    """A request refused stores no key for the subject it named: refused while prepared (an
    event that does not encode), or inside a shared commit after its events were sealed under
    a new subject key (its hook refuses)."""
    with pytest.raises(ValidationError) as err:
        log.append_many([
            {"actor": {"id": "u1"}, "action": "a", "outcome": "success", "subjects": ["p-3"]},
            {"actor": {"id": "u1"}, "action": "a", "outcome": "success", "reason": "x\udcff"}])
    assert err.value.field == "events[1].reason"
    good = capture(log, lambda: log.append({"actor": {"id": "u1"}, "action": "a",
                                            "outcome": "success"}))
    bad = capture(log, lambda: log.append({"actor": {"id": "u1"}, "action": "a",
                                           "outcome": "success", "subjects": ["p-4"]}))
    assert bad.sealing is not None
    assert bad.sealing.new_keys  # sealed under a key it proposed

    def refuse(_at: int) -> None:
        raise ConfigError("refused inside the commit")
    bad.hook = refuse
    log._commit([good, bad])
    assert good.error is None
    assert isinstance(bad.error, ConfigError)
    assert log._protector is not None
    assert log._protector.subject_kids(["p-3", "p-4"]) == {"p-3": None, "p-4": None}
    assert log.size == 1


def test_erase_then_append_in_one_commit_uses_a_fresh_key(log: AuditLog) -> None:
    """An event committed after an erasure in the same batch is sealed under a new key."""
    log.append({"actor": {"id": "u1"}, "action": "rec.read", "outcome": "success",
                "subjects": ["patient-1"], "metadata": {"n": 1}})
    erase = capture(log, lambda: log.erase_subject("patient-1", reason="GDPR", actor=DPO))
    after = capture(log, lambda: log.append({
        "actor": {"id": "u2"}, "action": "rec.write", "outcome": "success",
        "subjects": ["patient-1"], "metadata": {"n": 2}}))
    log._commit([erase, after])
    assert erase.error is None
    assert after.error is None
    index = after.receipts[0].index
    assert log.read(log.entry(index))["metadata"] == {"n": 2}
    assert log.read(log.entry(0))["erased"] == ["metadata", "subjects"]
    assert log.find("subject", "patient-1") == [index]


def test_a_subject_key_swapped_to_another_subject_does_not_open(tmp_path: Path) -> None:
    """Wrapped subject keys are bound to their subject: a DBA cannot redirect an erasure."""
    with AuditLog.open(tmp_path) as log:
        for subject, dx in (("alice", "hiv+"), ("bob", "flu")):
            log.append({"actor": {"id": "dr"}, "action": "rec.read", "outcome": "success",
                        "subjects": [subject], "metadata": {"dx": dx}})
    con = sqlite3.connect(tmp_path / "default" / "log.db")
    (k1, r1), (k2, r2) = con.execute("SELECT kid, ref FROM subject_keys").fetchall()
    with con:
        con.execute("UPDATE subject_keys SET ref = x'00' WHERE kid = ?", (k1,))
        con.execute("UPDATE subject_keys SET ref = ? WHERE kid = ?", (r1, k2))
        con.execute("UPDATE subject_keys SET ref = ? WHERE kid = ?", (r2, k1))
    con.close()
    with AuditLog.open(tmp_path) as log, pytest.raises(StorageError, match="altered"):
        log.read(log.entry(0))


def test_a_reader_sees_an_erasure_made_elsewhere(tmp_path: Path) -> None:
    """A long-lived reader's cached subject keys do not outlive an erasure by another."""
    with AuditLog.open(tmp_path) as reader, AuditLog.open(tmp_path) as writer:
        writer.append({"actor": {"id": "u1"}, "action": "rec.read", "outcome": "success",
                       "subjects": ["patient-1"], "metadata": {"diagnosis": "flu"}})
        assert reader.read(reader.entry(0))["metadata"] == {"diagnosis": "flu"}
        writer.erase_subject("patient-1", reason="GDPR", actor=DPO)
        ev = reader.read(reader.entry(0))
        assert "metadata" not in ev
        assert ev["erased"] == ["metadata", "subjects"]


def test_hold_reasons_are_not_stored_in_clear(tmp_path: Path) -> None:
    """A hold's reason is sealed in the holds table, and reads back for its readers."""
    with AuditLog.open(tmp_path, policy=None) as log:
        log.append({"actor": {"id": "u1"}, "action": "a", "outcome": "success",
                    "subjects": ["s-1"]})
        log.hold_subject("s-1", reason="matter JOHN-DOE-MARKER", actor=DPO)
        assert log.holds()[0]["reason"] == "matter JOHN-DOE-MARKER"
    con = sqlite3.connect(tmp_path / "default" / "log.db")
    try:
        (stored,) = con.execute("SELECT reason FROM holds").fetchone()
    finally:
        con.close()
    assert "JOHN-DOE-MARKER" not in stored


@pytest.mark.usefixtures("passphrase_env")
def test_events_appended_while_locked_are_found_once_unlocked(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Nobody hides from ``query --actor`` by appending while the keyring is locked."""
    AuditLog.open(tmp_path).close()
    monkeypatch.delenv("SEALTRAIL_PASSPHRASE")
    with AuditLog.open(tmp_path) as locked:
        assert locked.locked_reason
        locked.append({"actor": {"id": "mallory"}, "action": "db.drop", "outcome": "success",
                       "target": {"id": "t1"}})
    with AuditLog.open(tmp_path, passphrase=TEST_PASSPHRASE) as log:
        assert log.find("actor.id", "mallory") == [0]
        assert [e.index for e, _ in search(log, Filter(target="t1"), limit=10)] == [0]


def test_erasing_an_unknown_subject_is_a_clear_error(log: AuditLog) -> None:
    """A subject never named has no key to destroy: the error says so."""
    with pytest.raises(ConfigError, match="no key"):
        log.erase_subject("nobody", reason="request", actor=DPO)
