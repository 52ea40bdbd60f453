"""Importing another system's log: ``sealtrail import``'s path against the alternatives.

Builds a CloudTrail log file of N records (the fixture records of tests/sources, each copied
with its own eventID and time, spread over the previous month, as an export of a month is)
and measures, each on the same records, the median of 3 runs:

- **plain copy**: ``json.loads`` the file and write each record as a JSON line to a file with
  stdlib ``logging`` (what a collector that only forwards does; nothing mapped, nothing proven);
- **sealtrail convert**: read and map every record into a checked event, nothing stored;
- **sealtrail import**: convert, then append to an unencrypted log in batches of 1000
  (durable, exactly-once by the records' ids);
- **sealtrail re-import**: the same file again (every record found as already stored, and
  compared with the stored event, as ``import`` does).

    .venv/bin/python bench/import_bench.py [N]     # default 100000
"""

from __future__ import annotations

import copy
import json
import logging
import os
import random
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

FIXTURE = Path(__file__).resolve().parent.parent / "tests/sources/fixtures/cloudtrail/trail.json"
MONTH = timedelta(days=30)


def trail(n: int) -> str:
    """A CloudTrail log file of ``n`` records, each with its own id and time."""
    base = json.loads(FIXTURE.read_text(encoding="utf-8"))["Records"]
    now = datetime.now(UTC)
    rng = random.Random(7)
    out = []
    for i in range(n):
        rec = copy.deepcopy(base[i % len(base)])
        rec["eventID"] = str(uuid.UUID(bytes=rng.randbytes(16), version=4))
        at = now - MONTH + MONTH * ((i * 7919) % n) / n
        rec["eventTime"] = at.strftime("%Y-%m-%dT%H:%M:%SZ")
        out.append(rec)
    return json.dumps({"Records": out})


def median_rate(n: int, run: Callable[[], None], repeats: int = 3) -> float:
    rates = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        run()
        rates.append(n / (time.perf_counter() - t0))
    return statistics.median(rates)


def main() -> None:
    from sealtrail import AuditLog  # noqa: PLC0415 - after the path is set up
    from sealtrail.core.sources import get_source  # noqa: PLC0415
    from sealtrail.core.sources.base import convert  # noqa: PLC0415
    from sealtrail.log.imports import conflicts  # noqa: PLC0415

    n = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    text = trail(n)
    src = get_source("cloudtrail")
    with tempfile.TemporaryDirectory() as d:
        def plain() -> None:
            path = os.path.join(d, "plain.log")
            handler = logging.FileHandler(path, mode="w")
            log = logging.getLogger("bench.import.plain")
            log.handlers = [handler]
            log.propagate = False
            for rec in json.loads(text)["Records"]:
                log.info(json.dumps(rec))
            handler.close()

        def converted() -> None:
            convert(src, text)

        runs = [0]

        def imported() -> None:
            runs[0] += 1
            with AuditLog.open(Path(d) / f"log{runs[0]}", encryption=False) as alog:
                events = convert(src, text).events
                for k in range(0, len(events), 1000):
                    part = events[k:k + 1000]
                    conflicts(alog, part, alog.append_validated(part))  # as import does

        def reimported() -> None:
            with AuditLog.open(Path(d) / "log1", encryption=False, create=False) as alog:
                events = convert(src, text).events
                for k in range(0, len(events), 1000):
                    part = events[k:k + 1000]
                    batch = alog.append_validated(part)
                    assert all(r.duplicate for r in batch)
                    assert not conflicts(alog, part, batch)  # each duplicate compared

        base = median_rate(n, plain)
        rows = [("plain copy (json + logging)", base),
                ("sealtrail convert (map + check)", median_rate(n, converted)),
                ("sealtrail import (durable)", median_rate(n, imported)),
                ("sealtrail re-import (all stored)", median_rate(n, reimported))]
    print(f"{n:,} CloudTrail records, median of 3 runs")
    print(f"{'system':<36} {'records/s':>12} {'vs plain copy':>14}")
    for label, rate in rows:
        print(f"{label:<36} {rate:>12,.0f} {rate / base:>13.2f}x")


if __name__ == "__main__":
    main()
