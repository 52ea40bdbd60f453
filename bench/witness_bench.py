"""Witnessing, measured: what rounds cost ingest, how long a round takes, a witness's answer.

Run: ``.venv/bin/python bench/witness_bench.py [--segments N] [--seconds S] [--samples K]``

Rows, each against its alternative:

- **appends while witnessing**: events/s of ``append_many`` (batches of 100 of the benchmark
  workload) on an unencrypted log while a thread runs a witnessing round every second
  against two real sealtrail witnesses over loopback HTTP (what ``serve``'s leader does, in
  the same process: the rounds compete for the interpreter lock), against the same appends
  with no rounds. The ratio is the cost of witnessing to ingest.
- **one round, two witnesses**: the time of ``run_round`` (checkpoint, two consistency proofs,
  two POSTs answered, cosignatures verified, state saved), against one bare
  ``add-checkpoint`` request to one witness (the floor a round is made of).
- **witness add-checkpoint**: the witness's request end to end over HTTP (parse, signature,
  consistency proof, SQLite BEGIN IMMEDIATE with a synchronous commit, Ed25519 cosignature),
  against the same decision and signature with no HTTP and no storage
  (``witness_protocol.decide`` + ``Cosigner.line``).

Medians of K samples; p99 where it matters.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from harness import percentile
from sealtrail import AuditLog
from sealtrail.core.witness_protocol import Stored, decide, format_request, parse_request
from sealtrail.log import witnesses
from sealtrail.log.witness import WitnessState
from sealtrail.server.witness_app import create_witness_app
from workload import iter_batches

ACTOR = {"id": "bench", "type": "user"}


def say(msg: str) -> None:
    print(f"[witness-bench] {msg}", file=sys.stderr, flush=True)


@contextlib.contextmanager
def serving(app: Any) -> Iterator[str]:
    """An ASGI app on loopback in a thread."""
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning",
                                           lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(10)


def now() -> datetime:
    """The wall clock (the witnesses' and the rounds')."""
    return datetime.now(UTC)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--segments", type=int, default=3, help="timed segments each way")
    parser.add_argument("--seconds", type=float, default=4.0, help="length of a segment")
    parser.add_argument("--samples", type=int, default=50)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
        root = Path(tmp)
        states = []
        urls = []
        for n in range(2):
            state = WitnessState(root / f"w{n}")
            key = state.init(f"bench.witness/{n}")
            states.append((state, key))
            urls.append(stack.enter_context(serving(create_witness_app(state, clock=now))))
        alog = stack.enter_context(AuditLog.open(root / "log", "default", encryption=False))
        for (state, key), url in zip(states, urls, strict=True):
            state.add_log(alog.vkey())
            witnesses.add(alog, url, key.format(), actor=ACTOR)
        policy = witnesses.load(alog)
        client = stack.enter_context(httpx.Client(timeout=witnesses.TIMEOUT_S))
        post = witnesses.httpx_post(client)
        stream = iter_batches(10_000_000, 100)
        batches = [next(stream)]

        # 1. appends with and without rounds: alternating timed segments (the disk's moods
        #    and the log's growth fall on both sides alike).
        stop = threading.Event()
        rounds: list[float] = []
        running = threading.Event()

        def rounder() -> None:
            while not stop.wait(1.0):
                if running.is_set():
                    started = time.perf_counter()
                    # As the service's job does: the configuration loaded (and checked
                    # against the log's latest configuration entry) every round.
                    witnesses.run_round(alog, witnesses.load(alog), now(), post)
                    rounds.append(time.perf_counter() - started)

        thread = threading.Thread(target=rounder, daemon=True)
        thread.start()
        plain: list[float] = []
        witnessed: list[float] = []
        for segment in range(2 * args.segments):
            with_rounds = segment % 2 == 1
            say(f"segment {segment + 1}: appends {'with' if with_rounds else 'without'} "
                "a round every second")
            if with_rounds:
                running.set()
            count, started = 0, time.perf_counter()
            while time.perf_counter() - started < args.seconds:
                batch = next(stream)
                alog.append_many(batch)
                count += len(batch)
            (witnessed if with_rounds else plain).append(count / (time.perf_counter() - started))
            running.clear()
        stop.set()
        thread.join(10)

        # 2. one round (after one new batch each time) vs one bare request.
        say("rounds")
        one_round = []
        for _ in range(args.samples):
            alog.append_many(batches[0][:10])
            started = time.perf_counter()
            result = witnesses.run_round(alog, policy, now(), post)
            one_round.append(time.perf_counter() - started)
            assert result.met, result.problems
        bare = []
        state0, _ = states[0]
        for _ in range(args.samples):
            alog.append_many(batches[0][:10])
            held = state0.latest(alog.origin)
            old = held.size if held else 0
            body = format_request(old, alog.prove_consistency(old).consistency if old else (),
                                  alog.checkpoint().note)
            started = time.perf_counter()
            answer = client.post(f"{urls[0]}/add-checkpoint", content=body)
            bare.append(time.perf_counter() - started)
            assert answer.status_code == 200, answer.text

        # 3. the decision and signature alone.
        cosigner = state0.cosigner()
        trusted = state0.logs()
        alone = []
        for _ in range(args.samples):
            alog.append_many(batches[0][:10])
            held = state0.latest(alog.origin)
            assert held is not None
            body = format_request(held.size, alog.prove_consistency(held.size).consistency,
                                  alog.checkpoint().note)
            started = time.perf_counter()
            decision = decide(parse_request(body), trusted,
                              Stored(held.size, held.root, held.note))
            cosigner.line(decision.text, int(time.time()))
            alone.append(time.perf_counter() - started)
            assert decision.status == 200

    def ms(xs: list[float]) -> str:
        return f"{statistics.median(xs) * 1000:.2f} ms (p99 {percentile(xs, 0.99) * 1000:.2f})"

    rows = [
        ("appends while witnessing (events/s)", f"{statistics.median(witnessed):,.0f}",
         "no rounds", f"{statistics.median(plain):,.0f}",
         f"{statistics.median(witnessed) / statistics.median(plain):.2f}x"),
        ("one round, two witnesses", ms(one_round), "one bare add-checkpoint", ms(bare),
         f"{statistics.median(one_round) / statistics.median(bare):.2f}x"),
        ("witness add-checkpoint over HTTP", ms(bare), "decision + cosignature alone",
         ms(alone), f"{statistics.median(bare) / statistics.median(alone):.2f}x"),
    ]
    print("| measure | sealtrail | alternative | alternative's | ratio |")
    print("|---|---|---|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")
    print(f"\nrounds run during the appends: {len(rounds)}, median "
          f"{statistics.median(rounds) * 1000 if rounds else 0:.1f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
