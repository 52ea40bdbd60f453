"""Racing submissions to one witness (several log nodes, ``witnesses round`` beside ``serve``,
retries): c2sp.org/tlog-witness warns that a slow request must not roll the stored size back.
Many threads post checkpoints of one log at many sizes, each from the size it last read; the
witness's stored size, sampled throughout, never decreases, each 200 is a valid cosignature
(independent checker) of a checkpoint at least as large as any stored before it, and the
log's own rounds, racing too, end caught up with no refusal."""

from __future__ import annotations

import itertools
import random
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

from sealtrail.log import witnesses
from sealtrail.log.auditlog import AuditLog
from tests.witnessing.support import (
    ThreadWitness,
    check_cosigned,
    note_size,
    request_body,
    witness_db_size,
)

ACTOR = {"id": "test-operator", "type": "os_user"}
ORIGIN = "example.org/raced-log"


def test_racing_submissions_never_roll_the_witness_back(tmp_path: Path) -> None:
    w = ThreadWitness(tmp_path / "witness", "example.org/raced-witness")
    with AuditLog.open(tmp_path / "log", origin=ORIGIN) as alog:
        w.state.add_log(alog.vkey())
        witnesses.add(alog, w.url, w.vkey, actor=ACTOR)
        notes: list[str] = []
        for i in range(25):
            alog.append_many([{"actor": {"id": f"u{i}"}, "action": "doc.write",
                               "outcome": "success"}] * (1 + i % 4))
            notes.append(alog.checkpoint().note)
        proofs = {}
        for note in notes:
            size = note_size(note)
            for old_note in notes:
                old = note_size(old_note)
                if 0 < old < size:
                    proofs[old, size] = list(alog.prove_consistency(old, size).consistency)
        w.start()
        stop = threading.Event()
        seen: list[int] = []
        accepted: list[tuple[int, int]] = []   # (size stored just before, size cosigned)
        bad: list[str] = []

        def sample() -> None:
            while not stop.is_set():
                size = witness_db_size(w.state.dir.parent, ORIGIN)
                if not seen or seen[-1] != size:
                    seen.append(size)

        def submit(seed: int) -> None:
            rng = random.Random(seed)
            with httpx.Client(timeout=10) as client:
                for _ in range(30):
                    note = rng.choice(notes)
                    size = note_size(note)
                    old = max(0, w.size(ORIGIN))
                    if old > size:
                        continue
                    body = request_body(old, proofs.get((old, size), []), note)
                    answer = client.post(f"{w.url}/add-checkpoint", content=body)
                    if answer.status_code == 200:
                        try:
                            assert w.name in check_cosigned(note + answer.text, [w.vkey])
                        except AssertionError as exc:   # judged below, not in this thread
                            bad.append(f"bad cosignature: {exc}")
                        accepted.append((old, size))
                    elif answer.status_code not in (409,):
                        bad.append(f"{answer.status_code} {answer.text!r} old={old} {size}")

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        threads = [threading.Thread(target=submit, args=(i,)) for i in range(8)]
        for t in threads:
            t.start()
        # The log's own rounds race with them.
        now = datetime.now(UTC)
        with httpx.Client(timeout=10) as client:
            post = witnesses.httpx_post(client)
            for i in range(10):
                r = witnesses.run_round(alog, witnesses.load(alog), now + timedelta(
                    seconds=60 * i), post)
                assert r.refusals == (), r
        for t in threads:
            t.join(60)
        stop.set()
        sampler.join(10)
        with httpx.Client(timeout=10) as client:
            final = witnesses.run_round(alog, witnesses.load(alog), now + timedelta(hours=1),
                                        witnesses.httpx_post(client))
        w.stop()
    assert bad == []
    assert accepted, "no submission was accepted"
    assert all(old <= size for old, size in accepted)
    assert all(a <= b for a, b in itertools.pairwise(seen)), seen
    assert (final.met, final.refusals) == (True, ())
    assert w.size(ORIGIN) == note_size(notes[-1])
