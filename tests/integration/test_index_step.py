"""The index step: blind-index rows written after the commit, from a cursor in the store.

The append path writes no index rows; the commit stores a cursor (``unindexed_from``) and the
index step writes every row from it and removes it, in one transaction. A search catches the
index up first, so none misses a committed entry; a crash between commit and step leaves a
cursor the next run starts from; ``verify_derived`` holds the rows to the entries on both
sides of the cursor.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from contextlib import closing
from pathlib import Path

import pytest

from sealtrail import AuditLog
from sealtrail.core.errors import TamperError
from sealtrail.log.derived import verify_derived
from sealtrail.log.indexing import Indexer
from sealtrail.log.protect import UNINDEXED_KEY


def _events(n: int, start: int = 0) -> list[dict[str, object]]:
    return [{"actor": {"id": f"user-{i % 13}", "ip": f"192.0.2.{i % 50}"}, "action": "doc.read",
             "outcome": "success", "target": {"type": "doc", "id": f"doc-{i}"},
             "subjects": [f"patient-{i % 7}"]} for i in range(start, start + n)]


def _cursor(data: Path) -> str | None:
    db = next(data.rglob("log.db"))
    with closing(sqlite3.connect(db)) as con:
        row = con.execute("SELECT value FROM meta WHERE key = ?", (UNINDEXED_KEY,)).fetchone()
    return None if row is None else str(row[0])


def _blind_rows(data: Path) -> int:
    db = next(data.rglob("log.db"))
    with closing(sqlite3.connect(db)) as con:
        pending = sum(len(bytes(d)) // 16 for (d,) in
                      con.execute("SELECT data FROM blind_pending").fetchall())
        return int(con.execute("SELECT count(*) FROM blind").fetchone()[0]) + pending


def _stop_background(log: AuditLog) -> Indexer:
    """The log's index step with its background thread stopped (the step still runs when
    called: searches, close)."""
    indexer = log._indexer
    assert indexer is not None
    indexer.close()
    return indexer


def test_the_append_writes_no_rows_and_a_search_catches_up(tmp_path: Path) -> None:
    with AuditLog.open(tmp_path) as log:
        _stop_background(log)
        receipts = log.append_many(_events(40))
        assert _cursor(tmp_path) == "0"
        assert _blind_rows(tmp_path) == 0
        assert log.index_status() == {"indexed": 0, "size": 40}
        verify_derived(log)  # no rows past the cursor: consistent
        # The search indexes first: the newest entry is found.
        assert log.find("target.id", "doc-39") == [receipts[-1].index]
        assert _cursor(tmp_path) is None
        assert log.index_status() == {"indexed": 40, "size": 40}
        assert _blind_rows(tmp_path) == 40 * 4
        assert verify_derived(log).entries == 40


def test_the_background_step_catches_up_by_itself(tmp_path: Path) -> None:
    with AuditLog.open(tmp_path) as log:
        log.append_many(_events(25))
        deadline = time.monotonic() + 10
        while log.index_status()["indexed"] < 25 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert log.index_status() == {"indexed": 25, "size": 25}
        assert _cursor(tmp_path) is None


def test_a_crash_before_the_step_leaves_a_cursor_the_next_open_follows(tmp_path: Path) -> None:
    """The process died after the commit, before any index step: the rows are rebuilt from
    the entries (the queue of tokens died with it)."""
    log = AuditLog.open(tmp_path)
    _stop_background(log)
    log.append_many(_events(30))
    log.append_many(_events(30, 30))
    # Simulate the crash: the store is dropped without closing the log (no step at close).
    log._store.close()
    assert _cursor(tmp_path) == "0"
    with AuditLog.open(tmp_path) as again:
        verify_derived(again)
        assert again.index_status() == {"indexed": 0, "size": 60}
        assert again.find("subject", "patient-3") == sorted(
            (i for i in range(60) if i % 7 == 3), reverse=True)
        assert verify_derived(again).entries == 60


def test_the_step_rebuilds_what_another_process_appended(tmp_path: Path) -> None:
    """Entries of another handle (another process) have no queued tokens here: rebuilt."""
    with AuditLog.open(tmp_path) as first, AuditLog.open(tmp_path) as second:
        _stop_background(first)
        _stop_background(second)
        first.append_many(_events(10))
        second.append_many(_events(10, 10))
        first.append_many(_events(10, 20))
        assert first.find("target.id", "doc-15") == [15]
        assert verify_derived(first).entries == 30
        assert second.find("target.id", "doc-25") == [25]


def test_rows_past_the_cursor_are_extra(tmp_path: Path) -> None:
    """A cursor moved back over written rows (an edited meta table) is reported."""
    with AuditLog.open(tmp_path) as log:
        log.append_many(_events(20))
        log.catch_up_index()
    db = next(tmp_path.rglob("log.db"))
    with closing(sqlite3.connect(db)) as con:
        con.execute("INSERT INTO meta VALUES (?, '5')", (UNINDEXED_KEY,))
        con.commit()
    with AuditLog.open(tmp_path) as log:
        _stop_background(log)
        with pytest.raises(TamperError) as err:
            verify_derived(log)
        assert err.value.kind == "extra"


def test_a_cursor_moved_forward_leaves_rows_missing(tmp_path: Path) -> None:
    """Rows deleted and the cursor removed (to hide entries from searches) are missing."""
    with AuditLog.open(tmp_path) as log:
        _stop_background(log)
        log.append_many(_events(20))
        log.catch_up_index()
        log.append_many(_events(5, 20))
    db = next(tmp_path.rglob("log.db"))
    with closing(sqlite3.connect(db)) as con:
        # close() indexed the last five; take their rows and the cursor away.
        con.execute("DELETE FROM blind_pending")
        con.execute("DELETE FROM meta WHERE key = ?", (UNINDEXED_KEY,))
        con.commit()
    with AuditLog.open(tmp_path) as log:
        with pytest.raises(TamperError) as err:
            verify_derived(log)
        assert err.value.kind == "missing"


def test_searches_during_ingest_see_every_committed_entry(tmp_path: Path) -> None:
    """A reader thread searching while a writer appends never misses what was committed
    before its search began."""
    stop = threading.Event()
    misses: list[int] = []
    with AuditLog.open(tmp_path) as log:
        def reader() -> None:
            while not stop.is_set():
                size = log.size
                if size:
                    hits = log.find("target.id", f"doc-{size - 1}")
                    if size - 1 not in hits:
                        misses.append(size - 1)
        thread = threading.Thread(target=reader)
        thread.start()
        try:
            for k in range(30):
                log.append_many(_events(10, 10 * k))
        finally:
            stop.set()
            thread.join(30)
        assert not misses
        assert verify_derived(log).entries == 300


def test_erasure_sees_entries_the_step_had_not_reached(tmp_path: Path) -> None:
    """An erasure runs the step inside its commit first: the subject's newest entries lose
    their subject rows like the older ones."""
    with AuditLog.open(tmp_path) as log:
        _stop_background(log)
        log.append_many(_events(14))
        assert log.index_status()["indexed"] == 0
        log.erase_subject("patient-2", reason="GDPR request", actor={"id": "dpo"})
        assert log.find("subject", "patient-2") == []
        assert verify_derived(log).erased_keys == 1


def test_wait_integrated_returns_once_the_checkpoint_covers_the_size(tmp_path: Path) -> None:
    with AuditLog.open(tmp_path) as log:
        receipt = log.append(_events(1)[0])
        assert log.wait_integrated(receipt.index + 1, timeout=1)
        assert log.checkpoint().checkpoint.size >= receipt.index + 1
        assert not log.wait_integrated(receipt.index + 5, timeout=0.1)
        done: list[bool] = []
        waiter = threading.Thread(target=lambda: done.append(log.wait_integrated(3, 10)))
        waiter.start()
        log.append_many(_events(2, 1))
        waiter.join(10)
        assert done == [True]


def test_each_process_indexes_its_own_entries_and_the_orphaned_after_a_wait(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The background step leaves entries it has no tokens for to the process that appended
    them (cheaper than opening them), and takes them over once they waited PATIENCE."""
    monkeypatch.setattr("sealtrail.log.indexing.PATIENCE", 0.2)
    with AuditLog.open(tmp_path) as first, AuditLog.open(tmp_path) as second:
        a, b = _stop_background(first), _stop_background(second)
        first.append_many(_events(10))
        second.append_many(_events(10, 10))
        assert b.run(patient=True) == 0          # entries 0-9 are the first handle's
        assert _cursor(tmp_path) == "0"
        assert a.run(patient=True) == 10         # its own, from its tokens
        assert _cursor(tmp_path) == "10"
        assert b.run(patient=True) == 10
        assert _cursor(tmp_path) is None
        # A third writer appends and dies before indexing: its entries are orphaned.
        third = AuditLog.open(tmp_path)
        _stop_background(third)
        third.append_many(_events(5, 20))
        third._store.close()
        first.append_many(_events(5, 25))
        assert a.run(patient=True) == 0          # waits for the third one first
        time.sleep(0.25)
        assert a.run(patient=True) == 10         # then rebuilds its entries, and its own
        assert _cursor(tmp_path) is None
        assert verify_derived(first).entries == 30
        assert first.find("target.id", "doc-22") == [22]
