"""sealtrail's own measurements.

Every log is opened with its configuration spelled out (:class:`Config`): ``PLAIN`` is
``encryption=False, redaction="off"``, what every sealtrail row measured before logs were
encrypted by default; ``DEFAULT`` is the library's default (encrypted, redaction ``mask``),
its keyring under :data:`PASSPHRASE`.
"""

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
from sealtrail.log.search import Filter, search

BENCH_DIR = Path(__file__).resolve().parent
Events = list[dict[str, Any]]
PASSPHRASE = "sealtrail-bench-passphrase"  # a throwaway key for throwaway logs


@dataclass(frozen=True)
class Config:
    """How a log is created: encryption (keyring under :data:`PASSPHRASE`) and redaction."""

    name: str
    encryption: bool
    redaction: str

    def open(self, data_dir: Path, *, create: bool = True, unlock: bool = True) -> AuditLog:
        """Open (or create) a log in ``data_dir``; ``unlock=False`` opens without any key."""
        key = PASSPHRASE if self.encryption and unlock else None
        return AuditLog.open(data_dir, create=create, passphrase=key,
                             encryption=self.encryption, redaction=self.redaction)


PLAIN = Config("plain", encryption=False, redaction="off")
PLAIN_MASK = Config("plain+mask", encryption=False, redaction="mask")
DEFAULT = Config("default", encryption=True, redaction="mask")


def batched(events: Events, batch: int = 1000, config: Config = PLAIN) -> Once:
    """``append_many`` in batches of ``batch`` into a fresh log; one rate per repeat."""
    def once() -> tuple[int, float, list[float]]:
        with temp_dir("batched") as d, config.open(d) as log:
            lat: list[float] = []
            clock = time.perf_counter
            t0 = clock()
            for i in range(0, len(events), batch):
                t1 = clock()
                log.append_many(events[i:i + batch])
                lat.append(clock() - t1)
            return len(events), clock() - t0, lat
    return once


def single(events: Events, n: int, config: Config = PLAIN) -> Once:
    """``n`` single-event ``append`` calls, one after another; per-call latency."""
    def once() -> tuple[int, float, list[float]]:
        with temp_dir("single") as d, config.open(d) as log:
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


def threaded(events: Events, threads: int, per_thread: int, config: Config = PLAIN) -> Once:
    """``threads`` threads each doing ``per_thread`` single appends at once (group commit)."""
    def once() -> tuple[int, float, list[float]]:
        with temp_dir("threads") as d, config.open(d) as log:
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


def build_in_child(data_dir: Path, n: int, batch: int = 1000,
                   config: Config = PLAIN) -> BuildResult:
    """Fill a log with ``n`` events in a subprocess (see child_append.py): ``PLAIN`` with the
    plain workload, ``DEFAULT`` with the encrypted one (subjects), the passphrase in its
    environment."""
    if config not in (PLAIN, DEFAULT):
        raise ValueError(f"the child builds plain or default logs, not {config.name}")
    env = dict(os.environ)
    env.pop("SEALTRAIL_PASSPHRASE", None)
    if config.encryption:
        env["SEALTRAIL_PASSPHRASE"] = PASSPHRASE
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, str(BENCH_DIR / "child_append.py"), str(data_dir), str(n), str(batch),
         config.name],
        check=True, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t0
    out = json.loads(proc.stdout)
    return BuildResult(out["events"], out["raw_json_bytes"], out["rate"], out["peak_rss_mb"],
                       out["rss_after_first_batch_mb"], wall)


def verify(data_dir: Path, config: Config = PLAIN) -> Rate:
    """Full verification of an existing log, ``REPEATS`` times; see :func:`verify_once`."""
    return repeat_rate(verify_once(data_dir, config))


def verify_once(data_dir: Path, config: Config = PLAIN) -> Once:
    """One full verification of an existing log; events/s = size / seconds. An encrypted log is
    opened without its key (verification needs none)."""
    def once() -> tuple[int, float, list[float]]:
        with config.open(data_dir, create=False, unlock=False) as log:
            size = log.size
            t0 = time.perf_counter()
            report = log.verify(workers=os.cpu_count() or 1)
            secs = time.perf_counter() - t0
            if report.size != size:
                raise RuntimeError(f"verify covered {report.size} of {size} entries")
            return size, secs, []
    return once


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
    with PLAIN.open(data_dir, create=False) as log:
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


# -- personal data: blind-index search, its scanning alternative, erasure -----------------------


@dataclass
class Lookups:
    """Seconds per call and what each call found."""

    seconds: list[float]
    hits: list[int]

    @property
    def median_ms(self) -> float:
        return percentile(self.seconds, 0.5) * 1e3

    @property
    def p50_us(self) -> float:
        return percentile(self.seconds, 0.5) * 1e6

    @property
    def p99_us(self) -> float:
        return percentile(self.seconds, 0.99) * 1e6

    @property
    def mean_hits(self) -> float:
        return sum(self.hits) / len(self.hits)


@dataclass
class Sample:
    """Values found in a log, to search for or erase."""

    actor_ids: list[str]
    actor_ips: list[str]
    subjects: list[str]


def sample_values(data_dir: Path, k: int, subjects: int, seed: int = 11) -> Sample:
    """``k`` distinct actor ids and IPs and ``subjects`` distinct subjects, read (opened) from
    entries at random indexes of the encrypted log in ``data_dir``."""
    rnd = random.Random(seed)
    ids: dict[str, None] = {}
    ips: dict[str, None] = {}
    subs: dict[str, None] = {}
    with DEFAULT.open(data_dir, create=False) as log:
        size = log.size
        for _ in range(100 * (k + subjects)):
            if len(ids) >= k and len(ips) >= k and len(subs) >= subjects:
                break
            ev = log.read(log.entry(rnd.randrange(size)))
            actor = ev["actor"]
            if len(ids) < k:
                ids[actor["id"]] = None
            if len(ips) < k and "ip" in actor:
                ips[actor["ip"]] = None
            if len(subs) < subjects and ev.get("subjects"):
                subs[ev["subjects"][0]] = None
    if len(ids) < k or len(ips) < k or len(subs) < subjects:
        raise RuntimeError("the log has too few distinct actors, addresses or subjects")
    return Sample(list(ids), list(ips), list(subs))


def _field(ev: dict[str, Any], path: str) -> Any:
    part, _, name = path.partition(".")
    return (ev.get(part) or {}).get(name)


def blind_search(data_dir: Path, field: str, values: list[str], limit: int = 100) -> Lookups:
    """Per value: ``find(field, value, limit)`` on the encrypted log, then read and open every
    hit and confirm it (tokens are 64-bit: a match is checked on the opened event)."""
    secs: list[float] = []
    hits: list[int] = []
    clock = time.perf_counter
    with DEFAULT.open(data_dir, create=False) as log:
        log.find(field, "bench-warm-up", limit=limit)  # the connection, the blind key
        for value in values:
            t0 = clock()
            idxs = log.find(field, value, limit=limit)
            events = [log.read(log.entry(i)) for i in idxs]
            found = sum(1 for ev in events if _field(ev, field) == value)
            secs.append(clock() - t0)
            if not found:
                raise RuntimeError(f"find({field!r}) found no event for a value from the log")
            hits.append(found)
    return Lookups(secs, hits)


def scan_search(data_dir: Path, actors: list[str], limit: int = 100) -> Lookups:
    """The alternative without an index: ``sealtrail.log.search.search`` with
    ``Filter(actor=...)`` on a plain log reads entries newest first until ``limit`` matches
    (with fewer matches than ``limit``, the whole log)."""
    secs: list[float] = []
    hits: list[int] = []
    clock = time.perf_counter
    with PLAIN.open(data_dir, create=False) as log:
        for actor in actors:
            t0 = clock()
            found = sum(1 for _ in search(log, Filter(actor=actor), limit=limit))
            secs.append(clock() - t0)
            hits.append(found)
    return Lookups(secs, hits)


def open_random(data_dir: Path, n: int, config: Config, seed: int = 13) -> list[float]:
    """Seconds per ``log.read(log.entry(i))`` at ``n`` random indexes (reading one hit)."""
    rnd = random.Random(seed)
    with config.open(data_dir, create=False) as log:
        idx = [rnd.randrange(log.size) for _ in range(n)]
        log.read(log.entry(idx[-1]))
        return timed_calls(lambda i: log.read(log.entry(i)), idx)


def erase(data_dir: Path, subjects: list[str]) -> Lookups:
    """``erase_subject`` per subject (hits: the events naming it); checks one event of each
    reads as erased afterwards."""
    secs: list[float] = []
    hits: list[int] = []
    clock = time.perf_counter
    with DEFAULT.open(data_dir, create=False) as log:
        for subject in subjects:
            idxs = log.find("subject", subject)
            t0 = clock()
            receipt = log.erase_subject(subject, reason="bench", actor={"id": "bench"})
            secs.append(clock() - t0)
            hits.append(len(idxs))
            after = log.read(log.entry(idxs[0]))
            if "subjects" not in after.get("erased", ()) or receipt.index != log.size - 1:
                raise RuntimeError(f"erasing {subject!r} left its events readable")
    return Lookups(secs, hits)
