"""Child process for ``test_crash_workers``: append large batches prepared by worker processes.

Usage: ``python crash_child_workers.py DATA_DIR SEED MODE [BATCHES]``. Opens the log with
``workers=2`` and appends batches of 1000-1500 events (client-chosen UUIDv7 ids; about 30% name
a subject ``patient-<k>`` from a small pool that moves on a little every batch, so subjects new
to the log are met in several parts of one batch and again in the next batches). Prints
``ready`` once the log is open, then for each batch ``try <ids>`` before ``append_many``,
``ack <index>:<id> ...`` right after it returns and ``workers <pids>`` (the pool's processes
now; none while it is being started again), all flushed.

Modes:

- ``forever``: until the parent kills it with SIGKILL;
- ``count``: ``BATCHES`` batches, then ``fallbacks <n>`` (calls the pool gave back to this
  process because a worker died), close, ``done``, exit 0;
- ``behind``: the background index step is held back (its linger is made an hour), so every
  batch's entries stay behind the index cursor; after ``BATCHES`` batches it prints
  ``status <indexed> <size>`` and SIGKILLs itself before closing (close would index them).

The guard at the bottom matters: the pool's workers are spawned, and a spawned process imports
the parent's main module (as ``__mp_main__``): it must not start appending.
"""

from __future__ import annotations

import faulthandler
import logging
import os
import random
import signal
import sys
import time

from sealtrail.core.uuid7 import make_uuid7
from sealtrail.log import indexing
from sealtrail.log.auditlog import AuditLog


class _Fallbacks(logging.Handler):
    """Counts the pool's "preparing in this process" warnings."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        self.count += 1


def batch(rng: random.Random, seed: int, n: int) -> tuple[list[str], list[dict[str, object]]]:
    """Batch ``n``: 1000-1500 events, about 30% naming a subject of this batch's pool."""
    ids: list[str] = []
    events: list[dict[str, object]] = []
    # 10 subjects seen by the previous batch (and earlier rounds: the base depends on the seed
    # only coarsely), 10 new ones, plus 5 every round shares.
    base = (seed % 7) * 1000 + 10 * n
    pool = [f"patient-{k}" for k in range(base, base + 20)] + [f"patient-{k}" for k in range(5)]
    for k in range(rng.randint(1000, 1500)):
        ident = str(make_uuid7(time.time_ns() // 1_000_000, os.urandom(10)))
        ids.append(ident)
        event: dict[str, object] = {"id": ident, "actor": {"id": f"child-{seed}"},
                                    "action": "crash.workers", "outcome": "success",
                                    "metadata": {"seed": seed, "batch": n, "k": k}}
        if rng.random() < 0.3:
            event["subjects"] = [rng.choice(pool)]
        events.append(event)
    return ids, events


def main() -> None:
    """Open the log with two workers and append batches (see the module docstring)."""
    data_dir, seed, mode = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    batches = int(sys.argv[4]) if len(sys.argv) > 4 else -1
    rng = random.Random(seed)
    fallbacks = _Fallbacks()
    logging.getLogger("sealtrail.workers").addHandler(fallbacks)
    if mode == "behind":
        # The background step waits an hour before it writes rows (a test-only override).
        indexing.LINGER = 3600.0  # type: ignore[misc]
    log = AuditLog.open(data_dir, workers=2)
    assert log.workers is not None
    print("ready", flush=True)
    n = 0
    while batches < 0 or n < batches:
        ids, events = batch(rng, seed, n)
        print("try " + " ".join(ids), flush=True)
        receipts = log.append_many(events)
        print("ack " + " ".join(f"{r.index}:{r.id}" for r in receipts), flush=True)
        print("workers " + " ".join(map(str, log.workers.pids())), flush=True)
        n += 1
    if mode == "behind":
        status = log.index_status()
        print(f"status {status['indexed']} {status['size']}", flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
    print(f"fallbacks {fallbacks.count}", flush=True)
    log.close()
    print("done", flush=True)


if __name__ == "__main__":
    # A hang is diagnosed, not only timed out: the test sends SIGUSR1 before it kills.
    faulthandler.register(signal.SIGUSR1, all_threads=True)
    main()
