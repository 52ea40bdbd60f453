"""Service soak (issue 15): 4 clients for 10 minutes; the last minute's rate against the first
(target >= 0.8x) and the server's RSS growth (target < 50 MB).

    .venv/bin/python bench/soak_bench.py [--minutes 10] [--workers 1]

The service is the real command, ``sealtrail serve --workers N`` on a fresh data directory,
started as :mod:`http_bench` starts it for its throughput rows (``running_cli_service``): the
default log (encrypted, redaction ``mask``), its keyring under the bench passphrase given as
``SEALTRAIL_PASSPHRASE``, the per-key rate limit raised out of the way and ``--no-monitor``
(the rules' child process is not running). One small ingest per worker warms it up before the
clock starts.

Four clients (threads of this process, one ``httpx.Client`` and keep-alive connection each)
POST 1000 events per request to ``/v1/logs/default/events`` until the time is up. The events
are :mod:`workload`'s, each with an explicit UUIDv7 ``id`` whose time is a random millisecond
of the previous month (ids dated before their commit: the lookup that used to grow with the
log, see ``late_ids.py``). Bodies are built from pre-encoded events (only the ids are new per
request), and this process's CPU time is printed, so that one can see whether the clients
(one GIL) could be the bottleneck.

Every 5 s the RSS of the server's process tree (the serve process and its children) is
sampled; every 201 answer's receipts are counted, by the time the answer arrived. Any other
answer, or a transport error, is an error, counted and reported. Rates are over answers that
arrived before the clients' deadline; those in flight at the deadline are awaited and counted
in the total. Runs shorter than 2 minutes compare the first and last sixth of the run instead
of the first and last minute.

At the end the service is stopped and ``sealtrail --data D verify --json --no-derived`` checks
the log; its size must equal the events acknowledged plus the entries the log held before the
clock started (the warm-up events, read from ``/metrics``). ``--derived`` also rebuilds the
blind indexes and subject keys (about 50 µs per entry: long after a 10-minute run).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import random
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import psutil

from harness import Row, percentile, temp_dir, text_table, verdict
from http_bench import (
    BATCH,
    LOG,
    PASSPHRASE,
    SERVICE,
    CliServer,
    http_clients,
    metric_samples,
    prepare_data,
    running_cli_service,
    say,
)
from sealtrail.core.uuid7 import uuid7_text
from workload import json_bytes, make_events

CLIENTS = 4
SAMPLE_EVERY = 5.0            # seconds between RSS samples
MONTH_MS = 30 * 86_400_000    # ids dated up to a month before now
POOL_BATCHES = 8              # distinct event bodies (before ids) the clients cycle through
RATIO_TARGET = 0.8
GROWTH_TARGET_MB = 50.0
MB = 1024 * 1024


# -- the clients ------------------------------------------------------------------------------


def event_tails(n: int) -> list[str]:
    """:mod:`workload`'s events as compact JSON without the opening brace, so that an id can
    be put in front: ``'{"id":"<id>",' + tail``."""
    return [json_bytes(ev).decode()[1:] for ev in make_events(n)]


def batch_body(tails: list[str], now_ms: int, rng: random.Random) -> bytes:
    """A JSON array of the events ``tails``, each with a fresh UUIDv7 id dated a random
    millisecond of the month before ``now_ms``."""
    rand = os.urandom(10 * len(tails))
    parts = [f'{{"id":"{uuid7_text(now_ms - rng.randrange(MONTH_MS), rand[10 * k:10 * k + 10])}",'
             f"{tail}" for k, tail in enumerate(tails)]
    return ("[" + ",".join(parts) + "]").encode()


@dataclass
class Answer:
    """One 201 answer: when it arrived (seconds since the start), its receipts, and latency."""

    at: float
    events: int
    duplicates: int
    latency: float


@dataclass
class ClientLog:
    answers: list[Answer] = field(default_factory=list)
    errors: int = 0
    messages: list[str] = field(default_factory=list)

    def error(self, text: str) -> None:
        self.errors += 1
        if len(self.messages) < 3:
            self.messages.append(text[:300])


def post_until(client: httpx.Client, batches: list[list[str]], first: int, t0: float,
               deadline: float, out: ClientLog) -> None:
    """POST batches (from ``batches[first]`` on, cycling) until ``deadline`` (perf_counter)."""
    rng = random.Random(int.from_bytes(os.urandom(8), "big"))
    path = f"/v1/logs/{LOG}/events"
    clock = time.perf_counter
    k = first
    while clock() < deadline:
        now_ms = int(datetime.now(UTC).timestamp() * 1000)
        body = batch_body(batches[k % len(batches)], now_ms, rng)
        k += 1
        t1 = clock()
        try:
            resp = client.post(path, content=body)
        except httpx.HTTPError as exc:
            out.error(f"{type(exc).__name__}: {exc}")
            time.sleep(0.5)  # a service that went away: do not spin
            continue
        t2 = clock()
        if resp.status_code != 201:
            out.error(f"HTTP {resp.status_code}: {resp.text}")
            continue
        receipts = resp.json()["receipts"]
        dups = sum(1 for r in receipts if r.get("duplicate"))
        out.answers.append(Answer(t2 - t0, len(receipts), dups, t2 - t1))


# -- the server's memory ----------------------------------------------------------------------


def tree_rss(server: CliServer) -> tuple[int, int]:
    """RSS (bytes) summed over the serve process and all its children, and how many."""
    parent = psutil.Process(server.proc.pid)
    total, count = 0, 0
    for proc in [parent, *parent.children(recursive=True)]:
        with contextlib.suppress(psutil.Error):
            total += int(proc.memory_info().rss)
            count += 1
    return total, count


@dataclass
class Sample:
    at: float  # seconds since the start
    rss: int
    processes: int


def sample_rss(server: CliServer, t0: float, times: list[float], out: list[Sample],
               stop: threading.Event) -> None:
    """Sample the tree's RSS at each of ``times`` (seconds after ``t0``) until ``stop``."""
    for at in times:
        if stop.wait(max(0.0, t0 + at - time.perf_counter())):
            return
        rss, n = tree_rss(server)
        out.append(Sample(time.perf_counter() - t0, rss, n))


# -- the run ----------------------------------------------------------------------------------


@dataclass
class Soak:
    seconds: float          # the clients' deadline after the start
    elapsed: float          # until the last answer
    window: float           # the "first/last minute" window (seconds)
    windowed_as: str        # "minute" or "sixth of the run"
    answers: list[Answer]
    errors: int
    messages: list[str]
    samples: list[Sample]
    start_rss: int
    end: Sample
    before: float           # tree size before the clock started
    client_cpu: float
    server_cpu: float
    verify: dict[str, Any]
    verify_seconds: float


def soak(minutes: float, workers: int, derived: bool) -> Soak:
    seconds = minutes * 60
    window, windowed_as = (60.0, "minute") if minutes >= 2 else (seconds / 6, "sixth of the run")
    say(f"soak: encoding {BATCH * POOL_BATCHES:,} events")
    tails = event_tails(BATCH * POOL_BATCHES)
    batches = [tails[i:i + BATCH] for i in range(0, len(tails), BATCH)]
    with temp_dir("soak") as root:
        data = root / "data"
        data.mkdir()
        tokens = prepare_data(data)
        say(f"soak: starting sealtrail serve --workers {workers} --no-monitor")
        with running_cli_service(data, tokens, workers) as server:
            before = _tree_size(server)
            start_rss, nproc = tree_rss(server)
            say(f"soak: {nproc} server process(es), RSS {start_rss / MB:,.1f} MB, log size "
                f"{before:,.0f}; {CLIENTS} clients for {seconds:,.0f} s")
            clients = http_clients(server.base_url, tokens.ingest, CLIENTS)
            try:
                for c in clients:  # connect before the clock starts
                    c.get("/healthz").raise_for_status()
                logs = [ClientLog() for _ in clients]
                samples: list[Sample] = []
                stop = threading.Event()
                times = sorted({*(SAMPLE_EVERY * k for k in
                                  range(1, math.ceil(seconds / SAMPLE_EVERY) + 1)), window})
                s0, c0 = server.cpu_seconds(), time.process_time()
                t0 = time.perf_counter()
                deadline = t0 + seconds
                threads = [threading.Thread(target=post_until, args=(
                    c, batches, i * POOL_BATCHES // CLIENTS, t0, deadline, log))
                    for i, (c, log) in enumerate(zip(clients, logs, strict=True))]
                sampler = threading.Thread(target=sample_rss,
                                           args=(server, t0, times, samples, stop))
                sampler.start()
                for th in threads:
                    th.start()
                _progress(logs, t0, deadline, window)
                for th in threads:
                    th.join()
                elapsed = time.perf_counter() - t0
                stop.set()
                sampler.join()
                client_cpu = time.process_time() - c0
                server_cpu = server.cpu_seconds() - s0
                rss, nproc = tree_rss(server)
                end = Sample(elapsed, rss, nproc)
            finally:
                for c in clients:
                    c.close()
        say("soak: the service is stopped; sealtrail verify")
        v0 = time.perf_counter()
        verify = _verify(data, derived)
        verify_seconds = time.perf_counter() - v0
    return Soak(seconds, elapsed, window, windowed_as,
                [a for log in logs for a in log.answers], sum(log.errors for log in logs),
                [m for log in logs for m in log.messages], samples, start_rss, end, before,
                client_cpu, server_cpu, verify, verify_seconds)


def _progress(logs: list[ClientLog], t0: float, deadline: float, window: float) -> None:
    """A line on stderr every ``window`` seconds (at most every minute) until the deadline."""
    every = min(window, 60.0)
    done = 0
    while True:
        left = deadline - time.perf_counter()
        if left <= 0:
            return
        time.sleep(min(every, left))
        acked = sum(a.events for log in logs for a in log.answers)
        errors = sum(log.errors for log in logs)
        elapsed = time.perf_counter() - t0
        say(f"soak: {elapsed:,.0f} s, {acked:,} events acknowledged "
            f"({(acked - done) / every:,.0f}/s lately), {errors} errors")
        done = acked


def _tree_size(server: CliServer) -> float:
    """The log's size from the service's ``/metrics``."""
    samples = metric_samples(server.base_url, server.tokens.auditor)
    name = f'sealtrail_tree_size{{log="{LOG}"}}'
    if name not in samples:
        raise RuntimeError("/metrics has no sealtrail_tree_size for the log")
    return samples[name]


def _verify(data: Path, derived: bool) -> dict[str, Any]:
    env = dict(os.environ, SEALTRAIL_PASSPHRASE=PASSPHRASE)
    env.pop("SEALTRAIL_KEK", None)
    cmd = [sys.executable, "-m", "sealtrail.cli", "--data", str(data), "verify", "--json",
           "--derived" if derived else "--no-derived"]
    done = subprocess.run(cmd, env=env, stdin=subprocess.DEVNULL, capture_output=True,
                          text=True, check=False)
    try:
        result: dict[str, Any] = json.loads(done.stdout)
    except json.JSONDecodeError:
        result = {"ok": False, "message": (done.stdout + done.stderr)[-500:]}
    result["exit"] = done.returncode
    return result


# -- the report -------------------------------------------------------------------------------


def span(lo: float, hi: float) -> str:
    return f"{lo:,.0f}-{hi:,.0f} s"


def _in(answers: list[Answer], lo: float, hi: float) -> list[Answer]:
    return [a for a in answers if lo <= a.at < hi]


def _rate(answers: list[Answer], lo: float, hi: float) -> float:
    return sum(a.events for a in _in(answers, lo, hi)) / (hi - lo)


def _lat_us(answers: list[Answer], q: float) -> float | None:
    return percentile([a.latency for a in answers], q) * 1e6 if answers else None


def _rss_at(samples: list[Sample], at: float) -> Sample:
    """The first sample taken at or after ``at`` seconds (the last one if none)."""
    later = [s for s in samples if s.at >= at - 0.01]
    return later[0] if later else samples[-1]


def report(s: Soak, workers: int) -> tuple[list[Row], list[str], bool]:
    """The table's rows, the lines printed under it, and whether the run was clean."""
    w, name = s.window, s.windowed_as
    first_span, last_span = (0.0, w), (s.seconds - w, s.seconds)
    first, last = _rate(s.answers, *first_span), _rate(s.answers, *last_span)
    fa, la = _in(s.answers, *first_span), _in(s.answers, *last_span)
    ratio = last / first if first else 0.0
    at_first = _rss_at(s.samples, w) if s.samples else s.end
    growth = (s.end.rss - at_first.rss) / MB
    acked = sum(a.events for a in s.answers)
    dups = sum(a.duplicates for a in s.answers)
    stored = acked - dups
    size = s.verify.get("size")
    expected = stored + int(s.before)
    verified = bool(s.verify.get("ok")) and s.verify["exit"] == 0
    size_ok = verified and size == expected

    what = (f"sealtrail serve --workers {workers} --no-monitor, {CLIENTS} clients, "
            f"POST {BATCH} events per request, ids dated over the previous month")
    rows = [
        Row(SERVICE, f"soak, first {name} ({span(*first_span)}): {what}", first,
            _lat_us(fa, 0.5), _lat_us(fa, 0.99), value=f"{len(fa):,} requests"),
        Row(SERVICE, f"soak, last {name} ({span(*last_span)})", last, _lat_us(la, 0.5),
            _lat_us(la, 0.99), value=f"{len(la):,} requests", ratio=ratio,
            ratio_of=f"last {name} ÷ first", target=verdict(ratio >= RATIO_TARGET,
                                                             f"≥ {RATIO_TARGET}x")),
        Row(SERVICE, f"server RSS at the end of the first {name} "
            f"(sample at {at_first.at:,.1f} s; {at_first.processes} process(es))",
            value=f"{at_first.rss / MB:,.1f} MB"),
        Row(SERVICE, f"server RSS at the end ({s.end.at:,.1f} s, after the last answer; "
            f"{s.end.processes} process(es))", value=f"{s.end.rss / MB:,.1f} MB"),
        Row(SERVICE, f"server RSS growth, end - end of the first {name}",
            value=f"{growth:+,.1f} MB", target=verdict(growth < GROWTH_TARGET_MB,
                                                      f"< {GROWTH_TARGET_MB:.0f} MB")),
        Row(SERVICE, f"total acknowledged (201 receipts), whole run {s.elapsed:,.1f} s",
            acked / s.elapsed, _lat_us(s.answers, 0.5), _lat_us(s.answers, 0.99),
            value=f"{acked:,} events in {len(s.answers):,} requests, {dups:,} duplicates"),
        Row(SERVICE, "errors (non-201 answers and transport errors)", value=f"{s.errors:,}",
            target=verdict(s.errors == 0, "0")),
        Row(SERVICE, f"sealtrail verify after the stop ({s.verify_seconds:,.1f} s)",
            value=(f"size {size:,}" if isinstance(size, int) else "no size"),
            target=verdict(size_ok, f"= {stored:,} stored + {int(s.before):,} before")),
    ]

    n = math.ceil(s.seconds / w - 1e-9)
    per = []
    for k in range(n):
        lo, hi = k * w, min((k + 1) * w, s.seconds)
        per.append(f"{_rate(s.answers, lo, hi):,.0f}" + ("" if hi - lo >= w - 1e-6
                                                         else f" ({hi - lo:,.0f} s)"))
    late = sum(a.events for a in s.answers if a.at >= s.seconds)
    lines = [
        f"per {name} ({w:,.1f} s each), events/s: {', '.join(per)}",
        f"RSS samples (every {SAMPLE_EVERY:.0f} s), MB: "
        + ", ".join(f"{x.rss / MB:,.0f}" for x in s.samples)
        + f"; {s.start_rss / MB:,.1f} MB before the clock started",
        f"clients: {CLIENTS} threads of this process (one httpx.Client each); this process "
        f"used {s.client_cpu / s.elapsed:.2f} CPU-s per second (one GIL: near 1.0 would make "
        f"the clients the bottleneck); the server tree {s.server_cpu / s.elapsed:.2f} CPU-s/s",
        "service: sealtrail serve as http_bench's throughput rows run it: --no-monitor (no "
        "rules' child), --rate/--burst out of the way, SEALTRAIL_PASSPHRASE (default "
        "encrypted log)",
        f"rates count answers that arrived before the deadline ({s.seconds:,.0f} s); "
        f"{late:,} events answered after it (in flight) are in the total",
    ]
    if minutes_short(s):
        lines.append(f"a run shorter than 2 minutes: 'first'/'last' are the first and last "
                     f"sixth of the run ({w:,.1f} s), not minutes")
    if not verified:
        lines.append(f"verify FAILED (exit {s.verify['exit']}): {s.verify}")
    for m in s.messages:
        lines.append(f"error: {m}")
    clean = s.errors == 0 and size_ok and dups == 0
    return rows, lines, clean


def minutes_short(s: Soak) -> bool:
    return s.windowed_as != "minute"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--minutes", type=float, default=10.0,
                   help="how long the clients post (fractional allowed; default 10)")
    p.add_argument("--workers", type=int, default=1, help="sealtrail serve --workers (default 1)")
    p.add_argument("--derived", action="store_true",
                   help="verify the blind indexes and subject keys too (slow)")
    args = p.parse_args(argv)
    if args.minutes <= 0 or args.workers < 1:
        p.error("--minutes must be > 0 and --workers >= 1")
    load0 = os.getloadavg()
    s = soak(args.minutes, args.workers, args.derived)
    load1 = os.getloadavg()
    rows, lines, clean = report(s, args.workers)
    print(text_table(rows))
    print()
    for line in lines:
        print(line)
    print(f"{args.minutes:g} min soak; nproc {len(os.sched_getaffinity(0))}; load average "
          f"(1, 5, 15 min) {load0[0]:.2f} {load0[1]:.2f} {load0[2]:.2f} at the start, "
          f"{load1[0]:.2f} {load1[1]:.2f} {load1[2]:.2f} at the end")
    return 0 if clean else 1


if __name__ == "__main__":
    raise SystemExit(main())
