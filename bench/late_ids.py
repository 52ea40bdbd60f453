"""Exactly-once with ids dated before their commit (imports, backfills, spools after an outage).

Appends N events in batches of 1000 whose UUIDv7 ids carry times spread over the previous
month, and the same events without ids (the log assigns fresh ones), and prints the rate of
each sixth of the run, the last sixth's ratio against the first, and peak RSS. The lookup for
such ids used to read every chunk sharing a time bucket (a cost that grew with the log); id
index version 2 gives them exact rows (log/idindex.py).

    .venv/bin/python bench/late_ids.py [N]     # default 240000
"""

from __future__ import annotations

import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime

MONTH_MS = 30 * 86_400_000


def run(n: int, with_ids: bool) -> tuple[list[int], int]:
    """Rates per sixth (events/s) and peak RSS (MB) of one run, in this process."""
    from sealtrail import AuditLog  # noqa: PLC0415 - the child imports it
    from sealtrail.core.uuid7 import uuid7_texts  # noqa: PLC0415

    now_ms = int(datetime.now(UTC).timestamp() * 1000)
    rng = random.Random(7)
    rates: list[int] = []
    with tempfile.TemporaryDirectory() as d, AuditLog.open(d, encryption=False) as log:
        sixth, done, t0 = n // 6, 0, time.perf_counter()
        while done < n:
            batch: list[dict[str, object]] = []
            for _ in range(1000):
                ev: dict[str, object] = {"actor": {"id": "importer"}, "action": "cloud.call",
                                         "outcome": "success"}
                if with_ids:
                    ev["id"] = uuid7_texts(now_ms - rng.randrange(MONTH_MS),
                                           os.urandom(10))[0][0]
                batch.append(ev)
            log.append_many(batch)
            done += 1000
            if done % sixth == 0:
                t1 = time.perf_counter()
                rates.append(round(sixth / (t1 - t0)))
                t0 = t1
    return rates, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024


def main() -> None:
    if len(sys.argv) > 2:  # child: one run, printed as a line
        rates, rss = run(int(sys.argv[1]), sys.argv[2] == "ids")
        print(" ".join(map(str, rates)), rss)
        return
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 240_000
    print(f"{'system':<34} {'rates per sixth (events/s)':<52} {'last/first':>10} {'RSS MB':>7}")
    for label, mode in (("sealtrail, ids a month old", "ids"), ("sealtrail, no ids", "none")):
        out = subprocess.run([sys.executable, __file__, str(n), mode], check=True,
                             capture_output=True, text=True).stdout.split()
        rates, rss = [int(x) for x in out[:-1]], int(out[-1])
        print(f"{label:<34} {', '.join(f'{r:,}' for r in rates):<52} "
              f"{rates[-1] / rates[0]:>9.2f}x {rss:>7}")


if __name__ == "__main__":
    main()
