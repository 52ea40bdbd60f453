"""Undoing a purge by hand: the bodies put back from a copy, the ``retired`` rows deleted.

The purge receipt stays in the log (the tree and the signed checkpoints bind it), so ``verify``
replays it and finds that the retired table no longer records what it purged. Attacks are
made with :mod:`sqlite3` on the closed log's database, the way an attacker with the files would.
"""

from __future__ import annotations

import sqlite3
from contextlib import closing
from datetime import timedelta
from pathlib import Path

import pytest
from tests.compliance.conftest import T0, Clock
from tests.conftest import TEST_PASSPHRASE

from sealtrail import AuditLog
from sealtrail.core.errors import TamperError
from sealtrail.core.policy import FieldPolicy
from sealtrail.log.retention import RetentionPolicy, apply_purge

OPS = {"id": "ops-1"}
PURGE = RetentionPolicy.parse({"name": "t", "authentication": {"max": "20d"}})




def _undo(data: Path, backup: dict[int, bytes]) -> None:
    db = next(data.rglob("log.db"))
    with closing(sqlite3.connect(db)) as con:
        con.executemany("UPDATE chunks SET data = ? WHERE start = ?",
                        [(d, s) for s, d in backup.items()])
        con.execute("DELETE FROM retired")
        con.commit()


def _chunks(data: Path) -> dict[int, bytes]:
    db = next(data.rglob("log.db"))
    with closing(sqlite3.connect(db)) as con:
        return {int(s): bytes(d) for s, d in con.execute("SELECT start, data FROM chunks")}


def test_a_purge_undone_by_hand_is_named(tmp_path: Path) -> None:
    data = tmp_path / "data"
    clock = Clock()
    with AuditLog.open(data, passphrase=TEST_PASSPHRASE, clock=clock) as log:
        for day in range(0, 40, 4):
            clock.now = T0 + timedelta(days=day)
            log.append_many([{"action": "user.login" if day < 8 else "doc.read",
                              "actor": {"id": f"u{day}-{i}", "ip": "198.51.100.7"},
                              "outcome": "success",
                              "category": "authentication" if day < 8 else "data_access"}
                             for i in range(6)])
    backup = _chunks(data)  # the attacker's copy, taken before the purge
    with AuditLog.open(data, passphrase=TEST_PASSPHRASE, clock=clock) as log:
        clock.now = T0 + timedelta(days=30)
        plan, receipt = apply_purge(log, PURGE, actor=OPS)
        assert receipt is not None
        assert plan.ranges == [(0, 12)]
        assert log.verify().retired == 12
    _undo(data, backup)
    with AuditLog.open(data, passphrase=TEST_PASSPHRASE, clock=clock) as log:
        assert log.read(log.entry(3))["actor"]["id"] == "u0-3"  # the bodies read again
        with pytest.raises(TamperError) as err:
            log.verify()
    assert err.value.index == 0
    assert f"purged by receipt {receipt.index}" in str(err.value)
    assert "undone" in str(err.value)


def test_a_purge_undone_is_named_even_when_the_receipt_reason_is_sealed(
        tmp_path: Path) -> None:
    """With ``reason`` sealed the receipt's prose is unreadable without keys: the receipt
    itself is named (its target, in clear, still says it purged entries)."""
    data = tmp_path / "data"
    clock = Clock()
    sealed = FieldPolicy.parse(["actor.ip", "reason"])
    with AuditLog.open(data, passphrase=TEST_PASSPHRASE, clock=clock, policy=sealed) as log:
        for day in (0, 4, 30):
            clock.now = T0 + timedelta(days=day)
            log.append_many([{"action": "user.login", "actor": {"id": f"u{day}-{i}"},
                              "outcome": "success", "category": "authentication"}
                             for i in range(5)])
    backup = _chunks(data)
    with AuditLog.open(data, passphrase=TEST_PASSPHRASE, clock=clock) as log:
        clock.now = T0 + timedelta(days=30)
        plan, receipt = apply_purge(log, PURGE, actor=OPS)
        assert receipt is not None
        assert plan.ranges == [(0, 10)]
        log.verify()
    _undo(data, backup)
    with AuditLog.open(data, passphrase=TEST_PASSPHRASE, clock=clock) as log, \
            pytest.raises(TamperError) as err:
        log.verify()
    assert err.value.index == receipt.index
    assert "retired table records none of them" in str(err.value)


def test_deleting_only_the_rows_of_a_purge_is_named(tmp_path: Path) -> None:
    """The bodies stay empty, the rows go: the emptied entries are named."""
    data = tmp_path / "data"
    clock = Clock()
    with AuditLog.open(data, passphrase=TEST_PASSPHRASE, clock=clock) as log:
        for day in (0, 30):
            clock.now = T0 + timedelta(days=day)
            log.append_many([{"action": "user.login", "actor": {"id": f"u{day}-{i}"},
                              "outcome": "success", "category": "authentication"}
                             for i in range(4)])
        apply_purge(log, PURGE, actor=OPS)
    db = next(data.rglob("log.db"))
    with closing(sqlite3.connect(db)) as con:
        con.execute("DELETE FROM retired")
        con.commit()
    with AuditLog.open(data, passphrase=TEST_PASSPHRASE, clock=clock) as log, \
            pytest.raises(TamperError) as err:
        log.verify()
    assert err.value.index == 0
