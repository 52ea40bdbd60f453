"""Where one ``append_many`` batch spends its time: cProfile of one batch, or thin timers.

Usage: ``python bench/profile_append.py [--config default|encrypted|plain|plain+mask]
[--batch 1000] [--warm 5] [--top 10] [--timers [--batches 10]]``.

The log is fresh, in a temporary directory; ``--warm`` batches are appended first (not
measured), so the measured ones are typical (connection warm, some subject keys stored).
``default`` appends the encrypted workload (~30 % of events naming a subject) to an encrypted
log with redaction mask, ``encrypted`` the plain rows' events to the same kind of log.

Without ``--timers``: cProfile of one batch, top ``--top`` functions by tottime. cProfile's own
overhead inflates functions with many small calls: compare shares, not absolute times.
With ``--timers``: wall time per event of the main steps over ``--batches`` batches, measured by
wrapping them in-process (one ``perf_counter`` pair per call, ~0.2 µs): validation,
redaction, sealing (blind tokens, subject keys, AES-GCM; ``Protector.seal`` now
also encodes the leaf of an event it seals), leaf encoding outside it, writing the blind-index
and key rows, the SQLite ``COMMIT``, and the rest.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import io
import pstats
import sqlite3
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from typing import Any, cast

import st_bench as st
from harness import temp_dir
from sealtrail.core import canonical
from sealtrail.core.redact import Redactor
from sealtrail.log import auditlog
from sealtrail.log.protect import Protector
from sealtrail.store.sqlite import SQLiteStore
from workload import make_events

CONFIGS = {"default": (st.DEFAULT, True), "encrypted": (st.DEFAULT, False),
           "plain": (st.PLAIN, False), "plain+mask": (st.PLAIN_MASK, False)}

Totals = dict[str, float]


def _timed(fn: Callable[..., Any], name: str, totals: Totals) -> Callable[..., Any]:
    clock = time.perf_counter

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        t0 = clock()
        try:
            return fn(*args, **kwargs)
        finally:
            totals[name] += clock() - t0
    return wrapper


class _CommitTimer:
    """Stands in for the store's connection: times ``COMMIT``, forwards everything else."""

    def __init__(self, db: sqlite3.Connection, totals: Totals) -> None:
        self._db = db
        self._totals = totals

    def execute(self, sql: str, *args: Any) -> sqlite3.Cursor:
        if sql != "COMMIT":
            return self._db.execute(sql, *args)
        t0 = time.perf_counter()
        try:
            return self._db.execute(sql, *args)
        finally:
            self._totals["sqlite COMMIT (fsync)"] += time.perf_counter() - t0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._db, name)


@contextlib.contextmanager
def timers(log: auditlog.AuditLog, totals: Totals) -> Iterator[None]:
    """Wrap the append path's steps in timers for the duration of the block."""
    patches: list[tuple[Any, str, Any]] = [
        (auditlog, "validate_event", "validate (msgspec convert)"),
        (canonical, "encode_leaf", "encode leaf (outside seal)"),
        (Redactor, "redact", "redact (mask)"),
        (Protector, "seal", "seal (tokens, keys, AES-GCM, the leaf)"),
        (Protector, "write", "write blind-index + key rows"),
    ]
    saved = [(owner, attr, getattr(owner, attr)) for owner, attr, _ in patches]
    store = cast(SQLiteStore, log.store)
    db = store._db
    try:
        for owner, attr, name in patches:
            setattr(owner, attr, _timed(getattr(owner, attr), name, totals))
        store._db = _CommitTimer(db, totals)  # type: ignore[assignment]
        yield
    finally:
        store._db = db
        for owner, attr, fn in saved:
            setattr(owner, attr, fn)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--config", choices=sorted(CONFIGS), default="default")
    p.add_argument("--batch", type=int, default=1000)
    p.add_argument("--warm", type=int, default=5)
    p.add_argument("--top", type=int, default=10)
    p.add_argument("--timers", action="store_true")
    p.add_argument("--batches", type=int, default=10, help="measured batches with --timers")
    args = p.parse_args(argv)
    config, subjects = CONFIGS[args.config]
    measured = args.batches if args.timers else 1
    events = make_events(args.batch * (args.warm + measured), subjects=subjects)
    clock = time.perf_counter
    with temp_dir("profile") as d, config.open(d) as log:
        for k in range(args.warm):
            log.append_many(events[k * args.batch:(k + 1) * args.batch])
        rest = events[args.warm * args.batch:]
        if args.timers:
            totals: Totals = defaultdict(float)
            with timers(log, totals):
                t0 = clock()
                for k in range(0, len(rest), args.batch):
                    log.append_many(rest[k:k + args.batch])
                wall = clock() - t0
            n = len(rest)
            print(f"{args.config}: {n:,} events in batches of {args.batch} after {args.warm} "
                  f"warm-up batches: {wall / n * 1e6:,.1f} µs/event in all")
            for name, secs in sorted(totals.items(), key=lambda kv: -kv[1]):
                print(f"  {name:<40} {secs / n * 1e6:7.1f} µs/event")
            print(f"  {'the rest':<40} {(wall - sum(totals.values())) / n * 1e6:7.1f} µs/event")
            return 0
        prof = cProfile.Profile()
        t0 = clock()
        prof.enable()
        log.append_many(rest)
        prof.disable()
        wall = clock() - t0
    out = io.StringIO()
    stats = pstats.Stats(prof, stream=out)
    stats.sort_stats("tottime").print_stats(args.top)
    print(f"{args.config}: one batch of {len(rest)} after {args.warm} warm-up batches, "
          f"{wall * 1e3:,.0f} ms under cProfile ({wall / len(rest) * 1e6:,.0f} µs/event)")
    print(out.getvalue())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
