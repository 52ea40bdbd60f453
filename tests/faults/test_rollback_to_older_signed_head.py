"""Rollback without the signing key (issue 11, finding 2), done as the attacker would.

Old signed heads are on disk (the checkpoint history, the WAL, backups). The attacker deletes
the tail chunks, trims the node blocks to the older size and puts that older genuine note back
in ``state``: the database alone is consistent again. The head memory (the newest head this
machine saw signed, kept outside the database) must catch it in ``verify`` (library and CLI,
with ``--vkey`` too), in the next append, and across restarts, until an operator accepts.
"""

from __future__ import annotations

import shutil
import sqlite3
from contextlib import closing
from pathlib import Path

import pytest
from tests.clirun import sealtrail

from sealtrail.core.errors import TamperError
from sealtrail.log.auditlog import AuditLog
from sealtrail.log.headmemory import FILE
from sealtrail.log.idindex import rows_of
from sealtrail.log.tree import BLOCK


def _event(n: int) -> dict[str, object]:
    return {"actor": {"id": f"u{n}"}, "action": "doc.read", "outcome": "success"}


def _roll_back(db_path: Path, size: int, note: str) -> None:
    """Cut the log back to ``size`` entries and restore an older genuine head: no key needed."""
    with closing(sqlite3.connect(db_path)) as db, db:
        db.execute("DELETE FROM chunks WHERE start >= ?", (size,))
        db.execute("DELETE FROM id_buckets WHERE start >= ?", (size,))
        db.execute("DELETE FROM checkpoints WHERE size > ?", (size,))
        for key, data in db.execute("SELECT key, data FROM nodes").fetchall():
            level, block = key >> 40, key & ((1 << 40) - 1)
            count = size >> level
            keep = max(0, min(BLOCK, count - block * BLOCK)) * 32
            if keep == 0:
                db.execute("DELETE FROM nodes WHERE key = ?", (key,))
            elif keep < len(data):
                db.execute("UPDATE nodes SET data = ? WHERE key = ?", (data[:keep], key))
        # The id index's high-water mark, as the remaining ids make it (verify checks it).
        hwm = max([rows_of(int(a), bytes(b))[2]
                   for a, b in db.execute("SELECT start, ids FROM chunks")] + [0])
        db.execute("UPDATE state SET size = ?, checkpoint = ?, id_hwm = ?", (size, note, hwm))


@pytest.fixture
def rolled(tmp_path: Path) -> tuple[Path, int, int]:
    """A log of 30 entries rolled back to the genuine head it signed at 10."""
    with AuditLog.open(tmp_path) as log:
        log.append_many([_event(i) for i in range(10)])
        old = log.checkpoint().note
        for i in range(10, 30):
            log.append(_event(i))
    _roll_back(tmp_path / "default" / "log.db", 10, old)
    return tmp_path, 10, 30


def test_verify_names_the_rollback(rolled: tuple[Path, int, int]) -> None:
    data, small, big = rolled
    with AuditLog.open(data, create=False) as log, pytest.raises(TamperError) as info:
        log.verify()
    assert info.value.kind == "rolled back"
    assert info.value.index == small
    assert str(big) in str(info.value)


def test_append_after_rollback_is_refused_and_signs_nothing(rolled: tuple[Path, int, int]
                                                           ) -> None:
    data, small, _ = rolled
    with AuditLog.open(data, create=False) as log:
        with pytest.raises(TamperError, match="rolled back"):
            log.append(_event(99))
        assert log.size == small
    # A restart does not forget: the memory is a file.
    with AuditLog.open(data, create=False) as log, pytest.raises(TamperError):
        log.append(_event(100))


def test_cli_verify_exits_1_with_and_without_vkey(rolled: tuple[Path, int, int]) -> None:
    data, small, _ = rolled
    vkey = (data / "default" / "verifier.vkey").read_text().strip()
    for extra in ([], ["--vkey", vkey]):
        res = sealtrail("--data", data, "verify", *extra, text=True)
        assert res.returncode == 1, res.stdout + res.stderr
        assert f"rolled back at index {small}" in res.stdout


def test_operator_accepts_the_head_and_it_is_recorded(rolled: tuple[Path, int, int]) -> None:
    data, small, big = rolled
    res = sealtrail("--data", data, "head", "accept", "--reason",
                    "restored from the 02:00 backup", text=True)
    assert res.returncode == 0, res.stderr
    with AuditLog.open(data, create=False) as log:
        log.verify()
        accepted = log.read(log.entry(small))
        assert accepted["action"] == "sealtrail.head.accept"
        assert accepted["target"]["id"] == f"{big}->{small}"
        log.append(_event(7))


def test_deleting_the_memory_too_is_first_use_but_a_kept_checkpoint_still_catches_it(
        rolled: tuple[Path, int, int]) -> None:
    """What the memory does not stop: an attacker who also deletes it (docs/operations.md)."""
    data, small, _ = rolled
    with AuditLog.open(data, create=False) as log:
        (data / "default" / FILE).unlink()
        assert log.verify().size == small


def test_memory_on_another_volume(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """SEALTRAIL_STATE_DIR puts the memory outside the data directory; a copy of the data
    directory carried elsewhere with an older head is still caught here."""
    state = tmp_path / "state"
    monkeypatch.setenv("SEALTRAIL_STATE_DIR", str(state))
    data = tmp_path / "data"
    with AuditLog.open(data) as log:
        log.append(_event(1))
        old = log.checkpoint().note
        log.append_many([_event(i) for i in range(2, 9)])
    assert not (data / "default" / FILE).exists()
    assert list(state.iterdir())
    backup = tmp_path / "backup"
    shutil.copytree(data, backup)
    _roll_back(data / "default" / "log.db", 1, old)
    with AuditLog.open(data, create=False) as log, pytest.raises(TamperError,
                                                                  match="rolled back"):
        log.verify()


def test_edited_memory_is_refused(rolled: tuple[Path, int, int]) -> None:
    """A memory that is not a head the log signed is tampering, not first use."""
    data, _, _ = rolled
    (data / "default" / FILE).write_text('{"format": "sealtrail-head-memory/1", "note": "x"}')
    with AuditLog.open(data, create=False) as log, pytest.raises(TamperError,
                                                                  match="head memory"):
        log.verify()


def test_memory_edited_under_a_running_log_is_kept_as_evidence(tmp_path: Path) -> None:
    """A running log never overwrites a head memory that is not a head the log signed: its
    appends are still answered (they are committed), and verify reports the memory."""
    memory = tmp_path / "default" / FILE
    with AuditLog.open(tmp_path) as log:
        log.append(_event(1))
        log.verify()
        memory.write_text('{"format": "sealtrail-head-memory/1", "note": "forged"}')
        receipt = log.append(_event(2))
        assert not receipt.duplicate
        with pytest.raises(TamperError, match="head memory"):
            log.verify()
    assert "forged" in memory.read_text()
