"""sealtrail's own measurements."""

from __future__ import annotations

import json
import os
import random
import sqlite3
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness import REPEATS, Once, Rate, percentile, repeat_rate, temp_dir, timed_calls
from sealtrail.log.auditlog import AuditLog

BENCH_DIR = Path(__file__).resolve().parent
Events = list[dict[str, Any]]


def batched(events: Events, batch: int = 1000) -> Once:
    """``append_many`` in batches of ``batch`` into a fresh log; one rate per repeat."""
    def once() -> tuple[int, float, list[float]]:
        with temp_dir("batched") as d, AuditLog.open(d) as log:
            lat: list[float] = []
            clock = time.perf_counter
            t0 = clock()
            for i in range(0, len(events), batch):
                t1 = clock()
                log.append_many(events[i:i + batch])
                lat.append(clock() - t1)
            return len(events), clock() - t0, lat
    return once


def single(events: Events, n: int) -> Once:
    """``n`` single-event ``append`` calls, one after another; per-call latency."""
    def once() -> tuple[int, float, list[float]]:
        with temp_dir("single") as d, AuditLog.open(d) as log:
            log.append(events[0])  # create the tables and warm the connection
            clock = time.perf_counter
            t0 = clock()
            lat = timed_calls(lambda i: log.append(events[i]), list(range(1, n + 1)))
            return n, clock() - t0, lat
    return once


def raw_fsync(n: int, size: int = 500) -> Once:
    """The disk's durable-write rate: write ``size`` bytes and ``os.fsync``, ``n`` times."""
    payload = os.urandom(size // 2).hex().encode()

    def once() -> tuple[int, float, list[float]]:
        with temp_dir("fsync") as d:
            fd = os.open(d / "raw.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            try:
                def write(_: int) -> None:
                    os.write(fd, payload)
                    os.fsync(fd)
                clock = time.perf_counter
                t0 = clock()
                lat = timed_calls(write, list(range(n)))
                return n, clock() - t0, lat
            finally:
                os.close(fd)
    return once


def sqlite_commit(n: int, size: int = 500) -> Once:
    """The floor under any SQLite-backed durable append: WAL, ``synchronous=FULL``, one
    ``size``-byte row inserted per ``BEGIN IMMEDIATE``/``COMMIT``, ``n`` times."""
    payload = os.urandom(size)

    def once() -> tuple[int, float, list[float]]:
        with temp_dir("sqlite") as d:
            db = sqlite3.connect(d / "floor.db", isolation_level=None)
            try:
                db.execute("PRAGMA journal_mode=WAL")
                db.execute("PRAGMA synchronous=FULL")
                db.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, data BLOB NOT NULL)")

                def commit(_: int) -> None:
                    db.execute("BEGIN IMMEDIATE")
                    db.execute("INSERT INTO t(data) VALUES (?)", (payload,))
                    db.execute("COMMIT")
                clock = time.perf_counter
                t0 = clock()
                lat = timed_calls(commit, list(range(n)))
                return n, clock() - t0, lat
            finally:
                db.close()
    return once


def threaded(events: Events, threads: int, per_thread: int) -> Once:
    """``threads`` threads each doing ``per_thread`` single appends at once (group commit)."""
    def once() -> tuple[int, float, list[float]]:
        with temp_dir("threads") as d, AuditLog.open(d) as log:
            log.append(events[0])
            start = threading.Barrier(threads + 1)
            lats: list[list[float]] = [[] for _ in range(threads)]
            errors: list[BaseException] = []

            def work(t: int) -> None:
                try:
                    mine = [events[(t * per_thread + k) % len(events)]
                            for k in range(per_thread)]
                    start.wait()
                    lats[t] = timed_calls(lambda k: log.append(mine[k]),
                                          list(range(per_thread)))
                except BaseException as exc:  # reported after the join
                    errors.append(exc)

            pool = [threading.Thread(target=work, args=(t,)) for t in range(threads)]
            for th in pool:
                th.start()
            start.wait()
            t0 = time.perf_counter()
            for th in pool:
                th.join()
            secs = time.perf_counter() - t0
            if errors:
                raise errors[0]
            total = threads * per_thread
            if log.size != total + 1:
                raise RuntimeError(f"expected {total + 1} entries, the log has {log.size}")
            return total, secs, [x for lat in lats for x in lat]
    return once


@dataclass
class BuildResult:
    """What a child process that filled a log reported."""

    events: int
    raw_json_bytes: int
    rate: float
    peak_rss_mb: float
    rss_after_first_batch_mb: float
    wall_seconds: float


def build_in_child(data_dir: Path, n: int, batch: int = 1000) -> BuildResult:
    """Fill a log with ``n`` events in a subprocess (see child_append.py)."""
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, str(BENCH_DIR / "child_append.py"), str(data_dir), str(n), str(batch)],
        check=True, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    out = json.loads(proc.stdout)
    return BuildResult(out["events"], out["raw_json_bytes"], out["rate"], out["peak_rss_mb"],
                       out["rss_after_first_batch_mb"], wall)


def verify(data_dir: Path) -> Rate:
    """Full verification of an existing log; events/s = size / seconds."""
    def once() -> tuple[int, float, list[float]]:
        with AuditLog.open(data_dir, create=False) as log:
            size = log.size
            t0 = time.perf_counter()
            report = log.verify(workers=os.cpu_count() or 1)
            secs = time.perf_counter() - t0
            if report.size != size:
                raise RuntimeError(f"verify covered {report.size} of {size} entries")
            return size, secs, []
    return repeat_rate(once)


@dataclass
class ProofTimes:
    """Per-proof generation times in seconds, one list per round."""

    rounds: list[list[float]]

    @property
    def median_us(self) -> float:
        meds = sorted(percentile(r, 0.5) for r in self.rounds)
        return meds[len(meds) // 2] * 1e6

    @property
    def p99_us(self) -> float:
        return percentile([x for r in self.rounds for x in r], 0.99) * 1e6


def proof_times(data_dir: Path, samples: int, seed: int = 7) -> tuple[ProofTimes, ProofTimes]:
    """Inclusion (random index, latest size) and consistency (random old size -> latest)."""
    rnd = random.Random(seed)
    incl: list[list[float]] = []
    cons: list[list[float]] = []
    with AuditLog.open(data_dir, create=False) as log:
        size = log.size
        log.prove_inclusion(0)  # warm the connection and the page cache equally for all
        for _ in range(REPEATS):
            idx = [rnd.randrange(size) for _ in range(samples)]
            firsts = [rnd.randrange(1, size) for _ in range(samples)]
            incl.append(timed_calls(log.prove_inclusion, idx))
            cons.append(timed_calls(log.prove_consistency, firsts))
    return ProofTimes(incl), ProofTimes(cons)


def disk_bytes(data_dir: Path) -> int:
    """Bytes of every file in the data dir, after folding the WAL into the database."""
    for db in data_dir.rglob("log.db"):
        con = sqlite3.connect(db)
        try:
            con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            con.close()
    return sum(p.stat().st_size for p in data_dir.rglob("*") if p.is_file())
