"""Subprocess: append N generated events to a log with ``append_many``; report peak RSS.

Usage: ``python bench/child_append.py DATA_DIR N BATCH`` -> one JSON object on stdout.
Events are generated batch by batch, so the process holds one batch of input at a time and its
peak RSS is the log's own footprint plus that batch.
"""

from __future__ import annotations

import json
import resource
import sys
import time

from sealtrail.log.auditlog import AuditLog
from workload import iter_batches, json_bytes


def main(argv: list[str]) -> int:
    data_dir, n, batch_size = argv[0], int(argv[1]), int(argv[2])
    raw_bytes = 0
    appending = 0.0
    clock = time.perf_counter
    rss_after_first = 0.0
    with AuditLog.open(data_dir) as log:
        for batch in iter_batches(n, batch_size):
            raw_bytes += sum(len(json_bytes(ev)) for ev in batch)
            t0 = clock()
            log.append_many(batch)
            appending += clock() - t0
            if not rss_after_first:
                rss_after_first = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        size = log.size
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB
    json.dump({"events": size, "raw_json_bytes": raw_bytes, "append_seconds": appending,
               "rate": size / appending, "peak_rss_mb": peak_mb,
               "rss_after_first_batch_mb": rss_after_first}, sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
