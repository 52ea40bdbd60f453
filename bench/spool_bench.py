"""The SDK's durable spool under concurrent callers: do threads share fsyncs?

``Spool.put`` returns once its event is committed (fsync). Sixteen application threads that
record at once should not pay sixteen fsyncs each round: puts that arrive while a commit runs
share the next one. This measures puts per second with 1 thread and with 16 (same total),
median of 3 runs, each on a fresh spool file in the directory given (default: the current
one; a tmpfs would hide the fsync), and prints the ratio (issue 15's target: ≥ 8x).

    .venv/bin/python bench/spool_bench.py [PUTS] [DIR]     # default 2000 .
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path


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


def main() -> None:
    puts = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    where = Path(sys.argv[2]) if len(sys.argv) > 2 else Path.cwd()
    rows = []
    for threads in (1, 16):
        runs = [rate(threads, puts, where) for _ in range(3)]
        rows.append((threads, statistics.median(r for r, _ in runs),
                     statistics.median(c for _, c in runs)))
    base = rows[0][1]
    print(f"{puts:,} durable spool puts, median of 3 runs, in {where}")
    print(f"{'threads':>8} {'puts/s':>10} {'commits':>8} {'vs 1 thread':>12}")
    for threads, r, commits in rows:
        print(f"{threads:>8} {r:>10,.0f} {commits:>8,.0f} {r / base:>11.2f}x")


if __name__ == "__main__":
    main()
