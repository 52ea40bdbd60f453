"""Threads that put at the same time share one commit, and each put still returns only when
its own event is on disk, with its own seq."""

from __future__ import annotations

import sqlite3
import threading
import time
from contextlib import closing
from pathlib import Path

import pytest

from sealtrail.client.errors import ClientError
from sealtrail.client.spool import Spool


def _rows(path: Path) -> dict[str, int]:
    with closing(sqlite3.connect(path)) as db:
        return {ident: seq for seq, ident in db.execute("SELECT seq, id FROM events")}


def test_concurrent_puts_each_get_their_own_seq(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool.db")
    got: dict[str, int] = {}
    lock = threading.Lock()

    def worker(w: int) -> None:
        for k in range(40):
            ident = f"e-{w}-{k}"
            seq = spool.put("default", ident, f'{{"n": {k}}}'.encode(), 1.0)
            with lock:
                got[ident] = seq

    threads = [threading.Thread(target=worker, args=(w,)) for w in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    spool.close()
    assert got == _rows(tmp_path / "spool.db")  # every put is on disk, at the seq it returned
    assert len(set(got.values())) == 640
    for w in range(16):  # one thread's puts keep their order
        seqs = [got[f"e-{w}-{k}"] for k in range(40)]
        assert seqs == sorted(seqs)


def test_puts_queued_behind_a_commit_share_the_next_one(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool.db")
    spool._lock.acquire()  # hold the database: the first put's commit waits, the rest queue
    threads = [threading.Thread(target=spool.put, args=("default", f"e{i}", b"{}", 1.0))
               for i in range(8)]
    try:
        threads[0].start()
        deadline = time.monotonic() + 10
        while not spool._writing and time.monotonic() < deadline:
            time.sleep(0.001)
        for t in threads[1:]:
            t.start()
        while len(spool._waiting) < 7 and time.monotonic() < deadline:
            time.sleep(0.001)
        assert len(spool._waiting) == 7
    finally:
        spool._lock.release()
    for t in threads:
        t.join()
    assert spool.commits == 2  # the first put alone, then the seven that queued behind it
    assert len(_rows(tmp_path / "spool.db")) == 8
    spool.close()


def test_a_failed_commit_fails_its_puts_and_keeps_nothing(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool.db")
    with pytest.raises(ClientError, match="cannot write to the spool"):
        spool.put("default", "bad", b"{}", object())  # type: ignore[arg-type]
    assert spool.put("default", "good", b"{}", 1.0) >= 1
    spool.close()
    assert list(_rows(tmp_path / "spool.db")) == ["good"]


def test_an_interrupted_waiter_does_not_stop_later_puts(tmp_path: Path) -> None:
    """A thread interrupted while it waits (Ctrl-C in the application) leaves the queue; the
    puts after it are written, whether it was still queued or already handed the writing."""
    spool = Spool(tmp_path / "spool.db")
    spool._lock.acquire()
    first = threading.Thread(target=spool.put, args=("default", "first", b"{}", 1.0))
    first.start()
    deadline = time.monotonic() + 10
    while not spool._writing and time.monotonic() < deadline:
        time.sleep(0.001)

    class WaitInterruptedError(Exception):
        pass

    def interrupted_put() -> None:
        original = threading.Event.wait

        def wait(self: threading.Event, timeout: float | None = None) -> bool:
            raise WaitInterruptedError

        threading.Event.wait = wait  # type: ignore[method-assign]
        try:
            with pytest.raises(WaitInterruptedError):
                spool.put("default", "interrupted", b"{}", 1.0)
        finally:
            threading.Event.wait = original  # type: ignore[method-assign]

    interrupted_put()
    spool._lock.release()
    first.join(10)
    done = threading.Thread(target=spool.put, args=("default", "after", b"{}", 1.0))
    done.start()
    done.join(10)
    assert not done.is_alive()
    assert set(_rows(tmp_path / "spool.db")) == {"first", "after"}
    spool.close()
