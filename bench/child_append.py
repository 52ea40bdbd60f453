"""Subprocess: append N generated events to a log with ``append_many``; report peak RSS.

Usage: ``python bench/child_append.py DATA_DIR N BATCH [plain|default]`` -> one JSON object on
stdout. ``plain`` (the default mode, as in runs before encryption existed) creates the log with
``encryption=False, redaction="off"``; ``default`` creates it encrypted with redaction ``mask``
(the library's defaults), its keyring under the passphrase in ``SEALTRAIL_PASSPHRASE``, and
appends the encrypted workload (the same events, ~30 % naming a data subject).

Events are generated batch by batch, so the process holds one batch of input at a time and its
peak RSS is the log's own footprint plus that batch.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time

from sealtrail.log.auditlog import AuditLog
from workload import iter_batches, json_bytes

MODES = ("plain", "default")


def open_log(data_dir: str, mode: str) -> AuditLog:
    """A new log in ``mode``: every setting explicit, so neither depends on library defaults."""
    if mode == "plain":
        return AuditLog.open(data_dir, encryption=False, redaction="off")
    passphrase = os.environ.get("SEALTRAIL_PASSPHRASE")
    if not passphrase:
        raise SystemExit("child_append.py default: set SEALTRAIL_PASSPHRASE")
    return AuditLog.open(data_dir, passphrase=passphrase, encryption=True, redaction="mask")


def main(argv: list[str]) -> int:
    data_dir, n, batch_size = argv[0], int(argv[1]), int(argv[2])
    mode = argv[3] if len(argv) > 3 else "plain"
    if mode not in MODES:
        raise SystemExit(f"mode {mode!r}: use one of {', '.join(MODES)}")
    raw_bytes = 0
    appending = 0.0
    clock = time.perf_counter
    rss_after_first = 0.0
    with open_log(data_dir, mode) as log:
        for batch in iter_batches(n, batch_size, subjects=mode == "default"):
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
               "rss_after_first_batch_mb": rss_after_first, "mode": mode}, sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
