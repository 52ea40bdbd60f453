"""Child process for ``test_crash``: append forever, announcing each request and each receipt.

Usage: ``python crash_child.py DATA_DIR SEED``. Prints ``ready`` once the log is open, then for
each request ``try <ids>`` before ``append_many`` and ``ack <index>:<id> ...`` right after it
returns (flushed), until the parent kills it with SIGKILL.
"""

from __future__ import annotations

import os
import random
import sys
import time

from sealtrail.core.uuid7 import make_uuid7
from sealtrail.log.auditlog import AuditLog


def main() -> None:
    """Open the log and append mixed single events and small batches until killed."""
    data_dir, seed = sys.argv[1], int(sys.argv[2])
    rng = random.Random(seed)
    with AuditLog.open(data_dir) as log:
        print("ready", flush=True)
        n = 0
        while True:
            count = 1 if rng.random() < 0.6 else rng.randint(2, 12)
            ids: list[str] = []
            events: list[dict[str, object]] = []
            for _ in range(count):
                ident = str(make_uuid7(time.time_ns() // 1_000_000, os.urandom(10)))
                ids.append(ident)
                events.append({"id": ident, "actor": {"id": f"child-{seed}"},
                               "action": "crash.test", "outcome": "success",
                               "metadata": {"seed": seed, "n": n,
                                            "pad": "x" * rng.randint(0, 300)}})
                n += 1
            print("try " + " ".join(ids), flush=True)
            receipts = log.append_many(events)
            print("ack " + " ".join(f"{r.index}:{r.id}" for r in receipts), flush=True)


if __name__ == "__main__":
    main()
