"""Settings edited in the database by an attacker with the files but no keys.

Each test sets up a real encrypted log, closes it, edits ``log.db`` with :mod:`sqlite3` as the
attacker would (issue 11, finding 1), and shows the edit is refused or named by ``verify``.
"""

from __future__ import annotations

import sqlite3
from contextlib import closing
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from sealtrail.core.errors import ConfigError, TamperError
from sealtrail.log.auditlog import AuditLog
from sealtrail.log.retention import RetentionPolicy, apply_purge, load_policy, set_policy

PASS = "correct horse battery staple"
OPS = {"id": "ops", "type": "user"}
SECRET_IP = "198.51.100.77"


def _db(data: Path) -> sqlite3.Connection:
    return sqlite3.connect(data / "default" / "log.db")


def _sql(data: Path, sql: str, *args: object) -> None:
    with closing(_db(data)) as db, db:
        db.execute(sql, args)


@pytest.fixture
def data(tmp_path: Path) -> Path:
    with AuditLog.open(tmp_path, passphrase=PASS) as log:
        log.append_many([{"actor": {"id": f"u{i}", "ip": SECRET_IP}, "action": "doc.read",
                          "outcome": "success", "category": "data_access"}
                         for i in range(5)])
    return tmp_path


def _reopen(data: Path) -> AuditLog:
    return AuditLog.open(data, passphrase=PASS, create=False)


def test_encryption_turned_off_in_meta_keeps_sealing_and_fails_verify(data: Path) -> None:
    """``update meta set value='off' where key in ('encryption','redaction')`` used to make the
    next process store personal data and secrets in clear."""
    _sql(data, "UPDATE meta SET value = 'off' WHERE key IN ('encryption', 'redaction')")
    with _reopen(data) as log:
        assert log.encrypted  # what the key signed, not the table
        assert log.redaction == "mask"
        log.append({"actor": {"id": "x", "ip": SECRET_IP}, "action": "doc.read",
                    "outcome": "success", "metadata": {"password": "hunter2hunter2"}})
        with pytest.raises(TamperError, match="encryption") as info:
            log.verify()
        assert info.value.kind == "settings"
    raw = b"".join(p.read_bytes() for p in (data / "default").glob("log.db*"))
    assert SECRET_IP.encode() not in raw
    assert b"hunter2hunter2" not in raw


def test_sealed_paths_narrowed_in_meta_fails_verify(data: Path) -> None:
    """Dropping actor.ip from the sealed field policy would store IPs in clear."""
    _sql(data, "UPDATE meta SET value = 'metadata' WHERE key = 'policy'")
    with _reopen(data) as log:
        assert "actor.ip" in log.sealed_paths
        with pytest.raises(TamperError, match="policy"):
            log.verify()


def test_deleted_settings_statement_refuses_appends(data: Path) -> None:
    """Without the signed statement nothing says what the log was created with."""
    _sql(data, "DELETE FROM meta WHERE key = 'settings'")
    with _reopen(data) as log:
        with pytest.raises(TamperError, match="settings statement is missing"):
            log.append({"actor": {"id": "x"}, "action": "doc.read", "outcome": "success"})
        with pytest.raises(TamperError):
            log.verify()
        assert log.size == 5  # reads still work


def test_forged_settings_statement_is_not_trusted(data: Path) -> None:
    """A statement not signed by the log's key (here: re-labelled text) is refused."""
    with closing(_db(data)) as db:
        note = db.execute("SELECT value FROM meta WHERE key = 'settings'").fetchone()[0]
    forged = note.replace('"encryption":"on"', '"encryption":"off"')
    _sql(data, "UPDATE meta SET value = ? WHERE key = 'settings'", forged)
    with _reopen(data) as log:
        assert log.settings_problem
        with pytest.raises(TamperError, match="not one its key signed"):
            log.verify()


def test_inserted_retention_policy_row_is_never_used(data: Path) -> None:
    """A retention_policy row slipped into meta would purge evidence under a real receipt."""
    _sql(data, "INSERT INTO meta VALUES ('retention_policy', ?)",
         '{"default":{"max":"1h"},"name":"evil"}')
    later = datetime.now(UTC) + timedelta(days=30)
    with AuditLog.open(data, passphrase=PASS, create=False, clock=lambda: later) as log:
        with pytest.raises(TamperError, match="not set by an entry"):
            load_policy(log)
        with pytest.raises(TamperError, match="retention policy"):
            log.verify()
        assert all(not e.retired for e in log.entries(0))


def test_edited_retention_policy_row_is_caught(data: Path) -> None:
    """Editing a genuinely set policy (shorter maximum) is caught by load and verify."""
    with _reopen(data) as log:
        set_policy(log, RetentionPolicy.parse({"default": {"max": "10y"}}), actor=OPS)
        log.verify()
    _sql(data, "UPDATE meta SET value = ? WHERE key = 'retention_policy'",
         '{"default":{"max":"1h"},"name":"custom"}')
    with _reopen(data) as log:
        with pytest.raises(TamperError):
            load_policy(log)
        with pytest.raises(TamperError, match="differs from the one entry"):
            log.verify()


def test_retention_policy_pointer_moved_to_an_older_policy_fails_verify(data: Path) -> None:
    """Pointing the stored policy back at an older genuine policy entry (a settings rollback)
    passes the quick check at load but not verify, which replays every policy entry."""
    with _reopen(data) as log:
        old = set_policy(log, RetentionPolicy.parse({"default": {"max": "1d"}}), actor=OPS)
        set_policy(log, RetentionPolicy.parse({"default": {"max": "10y"}}), actor=OPS)
        old_text = '{"default":{"max":"1d"},"name":"custom"}'
    _sql(data, "UPDATE meta SET value = ? WHERE key = 'retention_policy'", old_text)
    _sql(data, "UPDATE meta SET value = ? WHERE key = 'retention_policy_at'", str(old.index))
    with _reopen(data) as log, pytest.raises(TamperError, match="latest that set one"):
        log.verify()


def test_genuine_policy_purges_and_verifies(data: Path) -> None:
    """The control: a policy set through the API is used, and the log verifies after it."""
    later = datetime.now(UTC) + timedelta(days=30)
    with AuditLog.open(data, passphrase=PASS, create=False, clock=lambda: later) as log:
        policy = RetentionPolicy.parse({"default": {"max": "1d"}})
        set_policy(log, policy, actor=OPS)
        loaded = load_policy(log)
        assert loaded is not None
        assert loaded.to_json() == policy.to_json()
        plan, receipt = apply_purge(log, policy, actor=OPS)
        assert receipt is not None
        assert plan.count == 5
        log.verify()


def test_deleted_hold_row_fails_verify_and_still_blocks_erasure(data: Path) -> None:
    """Deleting a legal hold row would let a held subject be erased."""
    with _reopen(data) as log:
        log.append({"actor": {"id": "nurse"}, "action": "record.read", "outcome": "success",
                    "subjects": ["patient-1"]})
        log.hold_subject("patient-1", reason="litigation 7", actor=OPS)
        log.verify()
    _sql(data, "DELETE FROM holds")
    with _reopen(data) as log:
        with pytest.raises(TamperError, match="legal holds"):
            log.verify()
        with pytest.raises((TamperError, Exception), match="hold"):
            log.erase_subject("patient-1", reason="request", actor=OPS)


def test_released_hold_marked_in_sql_fails_verify(data: Path) -> None:
    """Marking a hold released by hand is caught: no release entry says so."""
    with _reopen(data) as log:
        log.append({"actor": {"id": "nurse"}, "action": "record.read", "outcome": "success",
                    "subjects": ["patient-2"]})
        log.hold_subject("patient-2", reason="litigation 8", actor=OPS)
    _sql(data, "UPDATE holds SET released = '2030-01-01T00:00:00Z'")
    with _reopen(data) as log, pytest.raises(TamperError, match="legal holds"):
        log.verify()


def test_active_key_row_edited_fails_verify(data: Path, monkeypatch: pytest.MonkeyPatch
                                            ) -> None:
    """The recorded active key must be the one the last keys.rotate entry made active."""
    with _reopen(data) as log:
        kid = log.rotate_keys(actor=OPS)
        assert kid == "d2"
        log.verify()
    _sql(data, "UPDATE meta SET value = 'd1' WHERE key = 'active_key'")
    with closing(_db(data)) as db:
        assert db.execute("SELECT value FROM meta WHERE key='active_key'").fetchone() == ("d1",)
    monkeypatch.delenv("SEALTRAIL_PASSPHRASE", raising=False)
    with AuditLog.open(data, create=False) as log, pytest.raises(TamperError, match="d2"):
        log.verify()  # no keyring needed to see it


def test_a_log_made_before_signed_settings_is_adopted_on_the_record(data: Path) -> None:
    """A log without a statement (an older version's) opens for reading; its operator checks
    the settings and adopts them, which is recorded; then it appends and verifies."""
    _sql(data, "DELETE FROM meta WHERE key = 'settings'")
    with _reopen(data) as log:
        assert log.settings()["signed"] == "no"
        receipt = log.adopt_settings(reason="checked against the deployment", actor=OPS)
        assert log.read(log.entry(receipt.index))["action"] == "sealtrail.settings.adopt"
        assert log.settings()["signed"] == "yes"
        log.append({"actor": {"id": "x"}, "action": "doc.read", "outcome": "success"})
        log.verify()


def test_adopt_is_refused_over_a_forged_statement(data: Path) -> None:
    with closing(_db(data)) as db:
        note = db.execute("SELECT value FROM meta WHERE key = 'settings'").fetchone()[0]
    _sql(data, "UPDATE meta SET value = ? WHERE key = 'settings'", note + "x")
    with _reopen(data) as log, pytest.raises(ConfigError, match="tampering"):
        log.adopt_settings(reason="make it go away", actor=OPS)
