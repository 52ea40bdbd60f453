"""The SDK's spool: do concurrent callers share fsyncs, and what does one ``record()`` cost?

1. ``Spool.put`` (per-call durability, the default) returns once its event is committed
   (fsync). Sixteen application threads that record at once should not pay sixteen fsyncs
   each round: puts that arrive while a commit runs share the next one. This measures puts per
   second with 1 thread and with 16 (same total) and prints the ratio (issue 15's target: ≥ 8x).
2. ``Client.record()`` as the application thread sees it, one thread, each call timed, for
   ``durability="call"`` (fsync per call), ``durability="group"`` (queued for the spool writer,
   committed every ``group_window_ms``, default 5) and ``failure_mode="drop"`` (memory), with
   the service unreachable (a closed loopback port: nothing is delivered, so only recording is
   measured), on :mod:`workload`'s events (about 500 bytes of JSON each); and
   ``prepare_event`` alone (validate, UUIDv7, time, canonical JSON). Target for the group
   mode: median < 20 µs.

Each figure is the median of 3 runs, each on a fresh spool file in the directory given
(default: the current one; a tmpfs would hide the fsync).

    .venv/bin/python bench/spool_bench.py [PUTS] [DIR] [RECORDS]   # default 2000 . 3000
"""

from __future__ import annotations

import logging
import os
import socket
import statistics
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from harness import percentile
from workload import make_events


def rate(threads: int, puts: int, where: Path) -> tuple[float, int]:
    """Puts per second over ``threads`` threads, and how many commits carried them."""
    from sealtrail.client.spool import Spool  # noqa: PLC0415

    with tempfile.TemporaryDirectory(dir=where) as d:
        spool = Spool(Path(d) / "spool.db")
        each = puts // threads

        def work(w: int) -> None:
            for k in range(each):
                spool.put("default", f"{w}-{k}", b'{"action":"doc.read"}', 1.0)

        workers = [threading.Thread(target=work, args=(w,)) for w in range(threads)]
        t0 = time.perf_counter()
        for t in workers:
            t.start()
        for t in workers:
            t.join()
        elapsed = time.perf_counter() - t0
        commits = getattr(spool, "commits", -1)  # -1: a spool that does not count them
        spool.close()
    return each * threads / elapsed, commits


def closed_port() -> int:
    """A loopback port nothing listens on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


MODES: dict[str, dict[str, Any]] = {
    "spool, durability=call (default)": {},
    "spool, durability=group (5 ms)": {"durability": "group"},
    "drop": {"failure_mode": "drop"},
}


def record_latencies(kwargs: dict[str, Any], events: list[dict[str, Any]], where: Path
                     ) -> list[float]:
    """Seconds per ``record()`` call (the first, which opens the spool, left out)."""
    from sealtrail import Client  # noqa: PLC0415

    url = f"http://127.0.0.1:{closed_port()}"
    with tempfile.TemporaryDirectory(dir=where) as d:
        audit = Client(url, "st_bench", spool_path=Path(d) / "spool.db", max_backoff=1.0,
                       timeout=1.0, max_queue=len(events) + 1, **kwargs)
        audit.record(events[0])  # open the spool, start the threads
        record = audit.record
        clock = time.perf_counter
        lat: list[float] = []
        for ev in events[1:]:
            t1 = clock()
            record(ev)
            lat.append(clock() - t1)
        audit.close(timeout=0.1)
    return lat


def prepare_latencies(events: list[dict[str, Any]]) -> list[float]:
    """Seconds per ``prepare_event`` (validate, UUIDv7 id, time, canonical JSON: the part of
    ``record()`` that is not the queue), with the clock and random bytes record() reads."""
    from sealtrail.client.prepare import prepare_event  # noqa: PLC0415

    clock = time.perf_counter
    lat: list[float] = []
    for ev in events:
        t1 = clock()
        prepare_event(ev, now=datetime.now(UTC), rand=os.urandom(10))
        lat.append(clock() - t1)
    return lat


def main() -> None:
    puts = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    where = Path(sys.argv[2]) if len(sys.argv) > 2 else Path.cwd()
    records = int(sys.argv[3]) if len(sys.argv) > 3 else 3000
    rows = []
    for threads in (1, 16):
        runs = [rate(threads, puts, where) for _ in range(3)]
        rows.append((threads, statistics.median(r for r, _ in runs),
                     statistics.median(c for _, c in runs)))
    base = rows[0][1]
    print(f"1. {puts:,} durable spool puts (per-call durability), median of 3 runs, in {where}")
    print(f"{'threads':>8} {'puts/s':>10} {'commits':>8} {'vs 1 thread':>12}")
    for threads, r, commits in rows:
        print(f"{threads:>8} {r:>10,.0f} {commits:>8,.0f} {r / base:>11.2f}x")

    logging.getLogger("sealtrail.client").setLevel(logging.CRITICAL)  # retries: expected
    events = make_events(records + 1)
    runs_of: dict[str, list[tuple[float, float]]] = {name: [] for name in MODES}
    for _ in range(3):  # round-robin, so that a busy moment of the machine hits every mode
        for name, kwargs in MODES.items():
            lat = record_latencies(kwargs, events, where)
            runs_of[name].append((percentile(lat, 0.5), percentile(lat, 0.99)))
    prep = [prepare_latencies(events[1:]) for _ in range(3)]
    print(f"\n2. Client.record() in the application thread, {records:,} calls per run, one "
          f"thread, service unreachable; median of 3 runs (µs)")
    print(f"{'mode':<36} {'median':>8} {'p99':>8} {'vs durability=call':>19}")
    call = statistics.median(p50 for p50, _ in runs_of["spool, durability=call (default)"])
    for name, mode_runs in runs_of.items():
        p50 = statistics.median(r[0] for r in mode_runs)
        p99 = statistics.median(r[1] for r in mode_runs)
        print(f"{name:<36} {p50 * 1e6:>8.1f} {p99 * 1e6:>8.1f} {p50 / call:>18.3f}x")
    p50 = statistics.median(percentile(lat, 0.5) for lat in prep)
    p99 = statistics.median(percentile(lat, 0.99) for lat in prep)
    print(f"{'of which prepare_event':<36} {p50 * 1e6:>8.1f} {p99 * 1e6:>8.1f}")
    group = statistics.median(r[0] for r in runs_of["spool, durability=group (5 ms)"])
    threads16 = rows[1][1] / base
    print(f"\ngroup mode record() median {group * 1e6:.1f} µs: target < 20 µs "
          f"{'met' if group < 20e-6 else 'NOT met'}; 16 threads vs 1 (per-call): "
          f"{threads16:.2f}x (target ≥ 8x: {'met' if threads16 >= 8 else 'NOT met'})")


if __name__ == "__main__":
    main()
