"""The serial step of an append, alone: sequence and integrate prepared leaves.

Issue 15 splits an append into prepare (validate, redact, seal, encode: parallel), sequence and
integrate (serial), and asks that the serial step stay cheap, measured alone, at ≥ 3x stdlib
logging writing JSON lines. This times exactly that step on the engine's own parts, for
batches of 1000 leaves encoded beforehand (fresh UUIDv7 ids, a plain log):

- the exactly-once lookup (``log/dedupe.py``),
- placing each prepared leaf (``sequencer.BatchPlan.add``; prepare hashed it already),
- extending the tree and cutting bundle-aligned chunks with their id rows
  (``sequencer.plan_commit``), signing the checkpoint,
- the durable write: one transaction, the head by compare-and-swap, fsync
  (``sequencer.write``).

Not timed: validation, redaction, sealing, encoding and hashing (prepare). The log written is
opened and verified afterwards, so the figure is for a real, valid log.

    .venv/bin/python bench/sequence_bench.py [N]        # default 100000 events

It also prints where the step's time goes, per stage, in µs per event (one more run).
"""

from __future__ import annotations

import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec

import alternatives as alt
from harness import REPEATS, Once, Row, interleaved, temp_dir, text_table, verdict
from sealtrail.core import canonical
from sealtrail.core.checkpoint import Checkpoint
from sealtrail.core.event import validate_event
from sealtrail.core.merkle.hashing import leaf_hashes
from sealtrail.core.policy import FieldPolicy
from sealtrail.core.timefmt import format_time
from sealtrail.core.uuid7 import uuid7_texts
from sealtrail.log.auditlog import AuditLog
from sealtrail.log.datadir import OpenSettings, create_log
from sealtrail.log.dedupe import IdLookup
from sealtrail.log.idindex import late_window
from sealtrail.log.sequencer import BatchPlan, plan_commit
from sealtrail.log.sequencer import write as write_commit
from sealtrail.log.tree import TreeEdge
from workload import make_events

BATCH = 1000


def _prepared(events: list[dict[str, Any]]
              ) -> list[tuple[list[bytes], list[str], list[bytes], list[bytes]]]:
    """Batches as prepare hands them over: ids, id texts, leaves and leaf hashes."""
    now = datetime.now(UTC)
    received = format_time(now)
    now_ms = int(now.timestamp() * 1000)
    out = []
    for i in range(0, len(events), BATCH):
        part = events[i:i + BATCH]
        fresh = uuid7_texts(now_ms, os.urandom(10 * len(part)))
        leaves: list[bytes] = []
        for raw, (text, _) in zip(part, fresh, strict=True):
            ev = validate_event({**raw, "id": text})
            seq = msgspec.structs.replace(ev, received_at=received, time=ev.time or received)
            leaves.append(canonical.encode_leaf(seq))
        out.append(([raw_id for _, raw_id in fresh], [t for t, _ in fresh], leaves,
                    leaf_hashes(leaves)))
    return out


STAGES = ("dedupe", "place", "tree+chunks", "sign", "write", "commit (fsync)")


def sequence_only(events: list[dict[str, Any]], stages: dict[str, float] | None = None
                  ) -> Once:
    """Sequence and integrate prepared batches into a fresh plain log (see the module doc);
    with ``stages``, add each stage's seconds to it."""
    batches = _prepared(events)
    spent = stages if stages is not None else {}

    def once() -> tuple[int, float, list[float]]:
        with temp_dir("sequence") as d:
            settings = OpenSettings(None, None, False, FieldPolicy.default(), "off")
            parts = create_log(d / "default", "default", "sealtrail/default",
                               clock=lambda: datetime.now(UTC), settings=settings)
            store, signer, origin = parts.store, parts.signer, parts.origin
            late_ms = late_window(store.meta())
            state = store.state()
            edge = TreeEdge.load(store, state.size)
            ids = IdLookup(store, state.size, state.id_hwm)
            hwm = state.id_hwm
            lat: list[float] = []
            clock = time.perf_counter
            t0 = clock()
            for raw_ids, texts, leaves, hashes in batches:
                t1 = clock()
                marks = [clock()]
                with store.transaction():
                    current = store.state()
                    found = ids.existing([(raw_ids, frozenset())], edge.size)
                    marks.append(clock())
                    plan = BatchPlan(edge.size)
                    plan.add(raw_ids, texts, leaves, hashes, found=found)
                    marks.append(clock())
                    commit = plan_commit(plan, edge, hwm, late_ms)
                    marks.append(clock())
                    note = signer.sign(Checkpoint(origin, commit.edge.size,
                                                  commit.edge.root()).format())
                    marks.append(clock())
                    write_commit(store, commit, note, current)
                    marks.append(clock())
                marks.append(clock())
                for stage, a, b in zip(STAGES, marks[:-1], marks[1:], strict=True):
                    spent[stage] = spent.get(stage, 0.0) + b - a
                ids.committed(plan.start, plan.ids, commit.exact, commit.edge.size)
                edge, hwm = commit.edge, commit.id_hwm
                lat.append(clock() - t1)
            secs = clock() - t0
            store.close()
            _check(d, len(events))
            return len(events), secs, lat
    return once


def _check(data: Path, size: int) -> None:
    """The log written is whole and verifies (not timed)."""
    with AuditLog.open(data, create=False, encryption=False) as log:
        report = log.verify(workers=1)
        if report.size != size:
            raise SystemExit(f"the benchmark's log has {report.size} entries, not {size}")


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    events = make_events(n)
    res = interleaved({"sequence": sequence_only(events), "logging": alt.logging_json(events)},
                      REPEATS, lambda m: print(m, file=sys.stderr))
    seq, log = res["sequence"], res["logging"]
    ratio = seq.median / log.median
    rows = [
        Row("sealtrail (plain)", f"sequence + integrate alone, prepared leaves, batches of "
            f"{BATCH}, durable (dedupe, place, tree, chunks, sign, write, fsync)", seq.median,
            seq.p50_us, seq.p99_us, value="latency per batch", ratio=ratio,
            ratio_of="this ÷ stdlib logging", target=verdict(ratio >= 3, "≥ 3x")),
        Row("stdlib logging", "FileHandler, json.dumps per line (naive baseline)", log.median),
    ]
    print(text_table(rows))
    print(f"\n{n} events, median of {REPEATS} interleaved runs; the sequenced log verified.")
    stages: dict[str, float] = {}
    sequence_only(events, stages)()
    total = sum(stages.values())
    print("\nwhere the step's time goes (µs per event, one more run): " + ", ".join(
        f"{name} {stages[name] / n * 1e6:.1f}" for name in STAGES)
        + f"; total {total / n * 1e6:.1f}")


if __name__ == "__main__":
    main()
