"""Incremental verification: only what was appended since the last check, against the signed
head; and the service's watch running it between full verifications."""

from __future__ import annotations

import sqlite3
import struct
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from sealtrail import AuditLog
from sealtrail.core.errors import TamperError
from sealtrail.monitor.watch import Result, Verifier
from sealtrail.server.logs import Logs


def _events(n: int, start: int = 0) -> list[dict[str, object]]:
    return [{"action": "doc.read", "actor": {"id": f"u{i}"}, "outcome": "success"}
            for i in range(start, start + n)]


def _flip_leaf_byte(db: Path, index: int) -> None:
    con = sqlite3.connect(db)
    start, count, data = con.execute("SELECT start, count, data FROM chunks WHERE start <= ? "
                                     "ORDER BY start DESC LIMIT 1", (index,)).fetchone()
    lens = struct.unpack_from(f"<{count}I", data)
    pos = 4 * count + sum(lens[:index - start])
    raw = bytearray(data)
    raw[pos + 10] ^= 0x01
    con.execute("UPDATE chunks SET data = ? WHERE start = ?", (bytes(raw), start))
    con.commit()
    con.close()


def test_increments_follow_the_head(tmp_path: Path) -> None:
    with AuditLog.open(tmp_path) as log:
        log.append_many(_events(300))
        inc = log.increment_at(log.verify().size)
        assert log.verify_increment(inc) == inc  # nothing new
        for k in range(5):
            log.append_many(_events(17 + k, start=1000 * k))
            inc = log.verify_increment(inc)
            assert inc.size == log.size


def test_a_changed_new_entry_is_caught(tmp_path: Path) -> None:
    db = tmp_path / "default" / "log.db"
    with AuditLog.open(tmp_path) as log:
        log.append_many(_events(300))
        inc = log.increment_at(log.verify().size)
        log.append_many(_events(40, start=300))
    _flip_leaf_byte(db, 320)
    with AuditLog.open(tmp_path) as log, pytest.raises(TamperError) as err:
        log.verify_increment(inc)
    assert err.value.index == 300


def test_truncation_below_the_verified_size_is_caught(tmp_path: Path) -> None:
    with AuditLog.open(tmp_path) as log:
        log.append_many(_events(10))
        inc = log.increment_at(log.verify().size)
        log.append_many(_events(5, start=10))
        later = log.verify_increment(inc)
    with AuditLog.open(tmp_path) as log, pytest.raises(TamperError, match="shrank"):
        log.verify_increment(type(later)(later.size + 3, later.last))


def test_the_watch_checks_new_entries_between_full_runs(tmp_path: Path) -> None:
    with AuditLog.open(tmp_path) as log:
        log.append_many(_events(50))
    logs = Logs(tmp_path, None, lambda: datetime.now(UTC))
    seen: list[tuple[str, Result]] = []
    # Full runs an hour apart: only the incremental check can find the change below.
    watch = Verifier(logs, lambda: datetime.now(UTC), delay=0, interval=3600,
                     min_interval=3600, increment_interval=2.0,
                     on_result=lambda n, r: seen.append((n, r)))
    watch.start()
    try:
        deadline = time.monotonic() + 10
        while not seen and time.monotonic() < deadline:
            time.sleep(0.05)
        assert seen[-1][1].ok
        # Appended and changed before the first incremental check (2 s after the full run).
        logs.get("default").append_many(_events(30, start=50))
        _flip_leaf_byte(tmp_path / "default" / "log.db", 65)
        while all(r.ok for _, r in seen) and time.monotonic() < deadline + 10:
            time.sleep(0.05)
        failed = [r for _, r in seen if not r.ok]
        assert failed
        assert "new entries" in failed[0].problem
    finally:
        watch.stop()
        logs.close()


def test_an_inserted_overlapping_row_is_caught(tmp_path: Path) -> None:
    db = tmp_path / "default" / "log.db"
    with AuditLog.open(tmp_path) as log:
        log.append_many(_events(300))
        inc = log.increment_at(log.verify().size)
        log.append_many(_events(10, start=300))
        leaf = log.entry(305).leaf
    con = sqlite3.connect(db)
    batch_end = con.execute("SELECT batch_end FROM chunks WHERE start = 300").fetchone()[0]
    con.execute("INSERT INTO chunks VALUES (305, 1, ?, ?, ?)",
                (batch_end, b"\x00" * 16, struct.pack("<I", len(leaf)) + leaf))
    con.commit()
    con.close()
    with AuditLog.open(tmp_path) as log, pytest.raises(TamperError) as err:
        log.verify_increment(inc)
    assert err.value.kind == "extra"
