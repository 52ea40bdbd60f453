"""Crash safety: a writer killed with SIGKILL at random points loses nothing it acknowledged.

A child process (``crash_child.py``) appends single events and small batches with client-chosen
UUIDv7 ids, printing ``try`` before each request and ``ack`` with the receipts right after it
returns. The parent kills it at a random moment, reopens the same data directory and checks:
the log opens and verifies, every acknowledged id is stored exactly once at its receipt's index,
an in-flight request is stored entirely or not at all, and retrying ids is exactly-once.
A crash while a log is being created must not leave it unopenable either.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from sealtrail.core.errors import ConfigError, StorageError
from sealtrail.log import keys
from sealtrail.log.auditlog import AuditLog
from sealtrail.store.protocol import State
from sealtrail.store.sqlite import SQLiteStore

CHILD = Path(__file__).with_name("crash_child.py")
KILLS = 24


@dataclass(slots=True)
class Run:
    """What one child printed before it died."""

    acked: dict[str, int] = field(default_factory=dict)  # id -> index from its receipt
    in_flight: list[str] = field(default_factory=list)  # ids of the request cut short
    requests: int = 0


def run_and_kill(data_dir: Path, seed: int, delay: float) -> Run:
    """Start a child writer, let it append for ``delay`` seconds, SIGKILL it; parse its output."""
    proc = subprocess.Popen([sys.executable, str(CHILD), str(data_dir), str(seed)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    lines: list[str] = []
    ready = threading.Event()

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            if line == "ready\n":
                ready.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        assert ready.wait(30), "the child did not open the log"
        time.sleep(delay)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        reader.join(10)
        assert proc.stderr is not None
        err = proc.stderr.read()
        proc.stderr.close()
        proc.stdout.close()
    assert proc.returncode == -signal.SIGKILL, err
    run = Run()
    for line in lines:
        if not line.endswith("\n"):  # cut off by the kill: the request was not acknowledged
            break
        verb, _, rest = line.rstrip("\n").partition(" ")
        if verb == "try":
            run.in_flight = rest.split()
            run.requests += 1
        elif verb == "ack":
            for item in rest.split():
                index, ident = item.split(":", 1)
                run.acked[ident] = int(index)
            run.in_flight = []
    return run


@pytest.mark.slow
def test_sigkill_loses_no_acknowledged_entry(tmp_path: Path) -> None:
    """Over 24 random SIGKILLs every acknowledged id survives exactly once and the log verifies."""
    rng = random.Random(20240506)
    acked: dict[str, int] = {}
    last_size = 0
    total_requests = 0
    for round_no in range(KILLS):
        run = run_and_kill(tmp_path, seed=rng.randrange(2**31), delay=rng.uniform(0.02, 0.3))
        total_requests += run.requests
        acked.update(run.acked)
        with AuditLog.open(tmp_path, create=False) as log:
            report = log.verify()
            assert report.size == log.size >= last_size
            entries = list(log.entries(0))
            ids = [str(e.event()["id"]) for e in entries]
            counts = Counter(ids)
            assert not [i for i, c in counts.items() if c > 1], "an id is stored twice"
            where = {ident: k for k, ident in enumerate(ids)}
            lost = [i for i in acked if i not in where]
            assert not lost, f"round {round_no}: acknowledged ids lost: {lost[:3]}"
            assert all(where[i] == idx for i, idx in acked.items())
            # A request cut short is atomic: all of it or none of it.
            stored = [i in where for i in run.in_flight]
            assert all(stored) or not any(stored), stored
            # Retrying is exactly-once: acknowledged ids get their original receipt back.
            size = log.size
            retry = rng.sample(sorted(run.acked), min(5, len(run.acked))) + run.in_flight
            receipts = log.append_many([
                {"id": i, "actor": {"id": "retry"}, "action": "crash.retry",
                 "outcome": "success"} for i in retry])
            for receipt in receipts:
                if receipt.id in where:
                    assert receipt.duplicate
                    assert receipt.index == where[receipt.id]
                else:
                    assert receipt.id in run.in_flight
                    assert not receipt.duplicate
                    acked[receipt.id] = receipt.index
            assert log.size == size + sum(not r.duplicate for r in receipts)
            log.verify()
            last_size = log.size
    assert total_requests > KILLS * 5  # the children were really appending when killed
    assert len(acked) > KILLS * 5


# -- a crash while the log is being created ---------------------------------------------------


def crash_before_db(log_dir: Path) -> None:
    """The process died after creating the directory and writing the key."""
    keys.create_signer(log_dir, "sealtrail/default")


def crash_in_db_setup(log_dir: Path) -> None:
    """The process died after the store created its file, before the log's settings were set."""
    keys.create_signer(log_dir, "sealtrail/default")
    SQLiteStore(log_dir / "log.db").close()


def crash_in_key_write(log_dir: Path) -> None:
    """The process died while writing the key: a stray temporary file, no key, no database."""
    fd = os.open(log_dir / ".signing.key.1234.tmp", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.write(fd, b"PRIVATE+KEY+sealtr")
    os.close(fd)


@pytest.mark.parametrize("crash", [crash_before_db, crash_in_db_setup, crash_in_key_write])
def test_creation_cut_short_is_finished_on_the_next_open(
        tmp_path: Path, crash: Callable[[Path], None]) -> None:
    """A log whose creation was cut short by a crash opens (finishing it) and works."""
    log_dir = tmp_path / "default"
    log_dir.mkdir(mode=0o700)
    crash(log_dir)
    if (log_dir / "log.db").exists():
        with pytest.raises(ConfigError):
            AuditLog.open(tmp_path, create=False)
    with AuditLog.open(tmp_path) as log:
        receipt = log.append({"actor": {"id": "u"}, "action": "a.b", "outcome": "success"})
        assert receipt.index == 0
        assert log.verify().size == 1
    with AuditLog.open(tmp_path, create=False) as log:
        assert log.verify().size == 1


def test_a_database_that_is_not_a_log_is_still_refused(tmp_path: Path) -> None:
    """A database without an origin that holds data is refused, never silently re-created."""
    log_dir = tmp_path / "default"
    log_dir.mkdir(mode=0o700)
    keys.create_signer(log_dir, "sealtrail/default")
    with closing(SQLiteStore(log_dir / "log.db")) as store, store.transaction():
        store.put_state(State(5, None, 0))
    with pytest.raises(StorageError, match="no origin"):
        AuditLog.open(tmp_path)
