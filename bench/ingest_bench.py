"""Issue 15's targets for the embedded engine, in one run: ratios against the alternatives.

Rows (each a median of interleaved repeats; the alternatives run in the same rounds):

- sequence + integrate alone (prepared leaves, batches of 1000) against stdlib ``logging``
  writing JSON lines (bench/sequence_bench.py's step);
- the default log (encrypted, redaction ``mask``, 30% of events naming a subject)
  ``append_many`` in batches of 1000, prepared in the caller's process (``workers=1``) and in
  two worker processes (``workers=2``), against ``logging``;
- 64 threads each making single ``append`` calls against one thread (group commit);
- one durable ``append`` at a time against a raw ``write`` + ``fsync`` loop;
- the index step's lag at full ingest: from an ``append_many`` returning to the blind index
  covering it (p50, p99), sampled every 5 ms;
- where the microseconds of one default event go, stage by stage (one more run).

The service (``--workers 2`` vs 1, HTTP vs logging) is bench/http_bench.py; ids from the
previous month bench/late_ids.py; the SDK's ``record()`` bench/spool_bench.py.

    .venv/bin/python bench/ingest_bench.py [--quick]
"""

from __future__ import annotations

import os
import sys
import threading
import time
from typing import Any

import msgspec

import alternatives as alt
import sequence_bench
import st_bench
from harness import REPEATS, Once, Row, interleaved, percentile, temp_dir, text_table, verdict
from sealtrail import AuditLog
from sealtrail.core.event import validate_event
from sealtrail.core.merkle.hashing import leaf_hashes
from sealtrail.core.reserved import reserved_field
from sealtrail.core.uuid7 import uuid7_texts
from workload import make_events

PASSPHRASE_KEK_ENV = "SEALTRAIL_KEK"


def with_subjects(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The default rows' events: 30% name one of 10,000 subjects (as bench/run.py's)."""
    out = []
    for i, ev in enumerate(events):
        out.append({**ev, "subjects": [f"patient-{(i * 7919) % 10_000}"]} if i % 10 < 3
                   else ev)
    return out


def default_batched(events: list[dict[str, Any]], workers: int, batch: int = 1000) -> Once:
    """The default log's ``append_many`` in batches, with ``workers`` preparing."""
    def once() -> tuple[int, float, list[float]]:
        with temp_dir("ingest") as d, AuditLog.open(d, workers=workers) as log:
            log.append_many(events[:batch])  # start the workers, warm the tables
            lat: list[float] = []
            clock = time.perf_counter
            t0 = clock()
            for i in range(batch, len(events), batch):
                t1 = clock()
                log.append_many(events[i:i + batch])
                lat.append(clock() - t1)
            return len(events) - batch, clock() - t0, lat
    return once


def index_lag(events: list[dict[str, Any]], batch: int = 1000) -> list[float]:
    """Seconds from each ``append_many`` returning to the blind index covering it."""
    lags: list[float] = []
    with temp_dir("lag") as d, AuditLog.open(d) as log:
        done: list[tuple[int, float]] = []
        stop = threading.Event()

        failed: list[BaseException] = []

        def watch() -> None:
            try:
                while not stop.is_set() or done:
                    indexed = log.index_status()["indexed"]
                    now = time.perf_counter()
                    while done and done[0][0] <= indexed:
                        lags.append(now - done.pop(0)[1])
                    time.sleep(0.005)
            except BaseException as exc:  # re-raised below: a lag figure must be whole
                failed.append(exc)
        watcher = threading.Thread(target=watch)
        watcher.start()
        for i in range(0, len(events), batch):
            receipts = log.append_many(events[i:i + batch])
            done.append((receipts[-1].index + 1, time.perf_counter()))
        stop.set()
        watcher.join(60)
        if failed:
            raise failed[0]
        if len(lags) != -(-len(events) // batch):
            raise RuntimeError(f"{len(lags)} lags for {-(-len(events) // batch)} batches")
    return lags


def stages(events: list[dict[str, Any]]) -> dict[str, float]:
    """µs per default event in each part of prepare (in this process, caches warm as in a
    running log) and of the serial step (sequence_bench's stages, plain leaves)."""
    out: dict[str, float] = {}
    n = len(events)
    clock = time.perf_counter
    with temp_dir("stages") as d, AuditLog.open(d) as log:
        log.append_many(events[: min(1000, n)])
        protector, redactor = log._protector, log._redactor
        assert protector is not None
        assert redactor is not None
        t = clock()
        validated = [validate_event(e) for e in events]
        out["validate"] = clock() - t
        t = clock()
        for e in validated:
            reserved_field(e.action, e.source.service if e.source else None, e.actor.id)
        out["reserved names"] = clock() - t
        t = clock()
        redacted = [redactor.redact(e)[0] for e in validated]
        out["redact"] = clock() - t
        t = clock()
        ids = uuid7_texts(1_700_000_000_000, os.urandom(10 * n))
        stamp = "2026-12-02T00:00:00.000000Z"
        seq = [msgspec.structs.replace(e, id=i, received_at=stamp, time=e.time or stamp)
               for e, (i, _) in zip(redacted, ids, strict=True)]
        out["ids + times"] = clock() - t
        sealing = protector.sealing()
        t = clock()
        leaves = [protector.seal(e, k, sealing) for k, e in enumerate(seq)]
        out["seal (tokens, keys, AES-GCM, leaf)"] = clock() - t
        t = clock()
        leaf_hashes(leaves)
        out["hash"] = clock() - t
        # The index step after the commit: the queued tokens written, the cursor removed.
        indexer = log._indexer
        assert indexer is not None
        indexer.close()  # no background runs: time the step alone
        log.append_many(events)
        t = clock()
        log.catch_up_index()
        out["index step (after the commit)"] = clock() - t
    spent: dict[str, float] = {}
    sequence_bench.sequence_only(events, spent)()
    for name, secs in spent.items():
        out[f"serial: {name}"] = secs
    return {k: v / n * 1e6 for k, v in out.items()}


def say(message: str) -> None:
    """Progress, on standard error (the table goes to standard output)."""
    print(message, file=sys.stderr)


def main() -> None:
    quick = "--quick" in sys.argv
    if not os.environ.get(PASSPHRASE_KEK_ENV) and not os.environ.get("SEALTRAIL_PASSPHRASE"):
        os.environ[PASSPHRASE_KEK_ENV] = "YmVuY2ggb25seTogbm90IGEgc2VjcmV0LCAzMiBCISE="
    n = 20_000 if quick else 50_000
    events = make_events(n, seed=20240601)
    defaults = with_subjects(events)
    single_n, per_thread = (400, 20) if quick else (1500, 60)
    res = interleaved({
        "sequence": sequence_bench.sequence_only(events),
        "default w1": default_batched(defaults, 1),
        "default w2": default_batched(defaults, 2),
        "logging": alt.logging_json(events),
        "single": st_bench.single(events, single_n),
        "threads64": st_bench.threaded(events, 64, per_thread),
        "fsync": st_bench.raw_fsync(single_n),
    }, REPEATS, say)
    log_rate = res["logging"].median
    seq, w1, w2 = res["sequence"], res["default w1"], res["default w2"]
    one, many, fsync = res["single"], res["threads64"], res["fsync"]
    say("index lag run")
    lags = index_lag(defaults)
    lag50, lag99 = percentile(lags, 0.5) * 1e3, percentile(lags, 0.99) * 1e3
    rows = [
        Row("sealtrail (plain)", "sequence + integrate alone, prepared leaves, batches of 1000",
            seq.median, seq.p50_us, seq.p99_us, ratio=seq.median / log_rate,
            ratio_of="this ÷ logging", target=verdict(seq.median / log_rate >= 3, "≥ 3x")),
        Row("sealtrail (default)", "append_many, batches of 1000, workers=1 (prepare in the "
            "caller's process)", w1.median, w1.p50_us, w1.p99_us, ratio=w1.median / log_rate,
            ratio_of="this ÷ logging", target=verdict(w1.median / log_rate >= 1, "≥ 1.0x")),
        Row("sealtrail (default)", "append_many, batches of 1000, workers=2 (prepare in two "
            "worker processes)", w2.median, w2.p50_us, w2.p99_us,
            value=f"{w2.median / w1.median:.2f}x workers=1",
            ratio=w2.median / log_rate, ratio_of="this ÷ logging",
            target=verdict(w2.median / log_rate >= 1, "≥ 1.0x")),
        Row("stdlib logging", "FileHandler, json.dumps per line (naive baseline)", log_rate),
        Row("sealtrail (plain)", "append, one event per call, durable", one.median, one.p50_us,
            one.p99_us, ratio=one.median / fsync.median, ratio_of="this ÷ raw fsync loop",
            target=verdict(one.median / fsync.median >= 0.5, "≥ 0.5x")),
        Row("disk", "raw write 500 B + os.fsync loop", fsync.median, fsync.p50_us,
            fsync.p99_us),
        Row("sealtrail (plain)", "64 threads, single appends (group commit)", many.median,
            many.p50_us, many.p99_us, ratio=many.median / one.median,
            ratio_of="this ÷ one thread", target=verdict(many.median / one.median >= 20,
                                                         "≥ 20x")),
        Row("sealtrail (default)", "index lag at full ingest (append_many returned -> blind "
            "index covers it), sampled every 5 ms", None, lag50 * 1e3, lag99 * 1e3,
            value=f"p50 {lag50:.0f} ms, p99 {lag99:.0f} ms",
            target=verdict(lag99 < 1000, "p99 < 1 s")),
    ]
    print(text_table(rows))
    print(f"\n{n} events per throughput repeat, median of {REPEATS} interleaved rounds; "
          f"{single_n} single appends; 64 x {per_thread} threaded appends; nproc "
          f"{os.cpu_count()}.")
    parts = stages(defaults[: min(n, 20_000)])
    total = sum(parts.values())
    print("\nwhere one default event's time goes (µs, one more run): "
          + ", ".join(f"{k} {v:.1f}" for k, v in parts.items()) + f"; total {total:.1f}")


if __name__ == "__main__":
    main()
