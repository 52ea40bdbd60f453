"""The HTTP service and the SDK, measured against a real service in its own process.

``run_http(quick)`` returns rows for the suite's table (:class:`harness.Row`); run this file on
its own (``python bench/http_bench.py [--quick]``) to print them.

The service: the app ``sealtrail serve`` runs (``create_app`` on uvicorn, one worker, its h11
protocol, loopback, plain HTTP), started by this file in a **child process** so that its GIL and
CPU time are its own and not the clients'. It differs from ``sealtrail serve`` in one setting:
the per-key rate limit (200 requests/s, bursts of 400 by default; ``serve --rate/--burst``) is
raised out of the way, or the single-event rows would measure the limiter. The log is the
default configuration (encrypted, redaction ``mask``), its keyring under the bench passphrase,
passed to the child as ``SEALTRAIL_PASSPHRASE``.

What is measured (the events are :mod:`workload`'s, encoded to JSON before the clock starts):

1. Batched ingest: ``POST /v1/logs/default/events`` with 1000 events per request, from several
   concurrent clients (threads of this process, one ``httpx.Client`` each), against
   ``AuditLog.append_many`` of the same batches in this process (a fresh log per repeat, the
   same configuration). Target: HTTP >= 0.5x embedded. The two, with rows 2 and 3, run
   round-robin (:func:`harness.interleaved`).
2. Single-event requests at 1 and 16 concurrent clients: requests/s and per-request latency.
   ``POST []`` (an empty batch: everything a request does but the append) and ``GET /healthz``
   (no key, no body, no disk: the HTTP stack's own floor) split a request's cost.
3. ``sealtrail.Client.record()`` as the application thread sees it: ``spool`` mode (the default:
   the event is committed to the SQLite spool, fsync, before ``record`` returns), ``spool`` mode
   with ``durability="group"`` (queued for a writer thread that commits every 5 ms) and
   ``drop`` mode (an in-memory queue), with the service up and stopped. Target: median < 20 µs
   (issue 15: in the group mode).
4. Worker processes: the same batched ingest (1000 events per request, 4 clients) against the
   real command, ``sealtrail serve --workers 2`` and ``--workers 1`` (each over a default log of
   its own, both up at once and measured round-robin; ``--rate``/``--burst`` out of the way and
   ``--no-monitor``, so the rows compare the serving processes, not the rules' child). Target:
   ``--workers 2`` >= 1.6x ``--workers 1``. ``python bench/http_bench.py --workers-only`` runs
   this row alone. Server CPU is the whole process tree's (parent, workers).

Where time goes: the server child's CPU time (user + system, all its threads) and this process's
CPU time are read around each measurement; the service's own ``sealtrail_ingest_seconds``
histogram (time inside ``append_many`` per request, from ``/metrics``) splits a request's
latency into the durable append and everything else (HTTP, auth, parsing, validation, receipts).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import psutil

from harness import (
    REPEATS,
    Once,
    Rate,
    Row,
    interleaved,
    percentile,
    temp_dir,
    text_table,
    verdict,
)
from sealtrail import Client
from sealtrail.log.apikeys import ApiKeys
from sealtrail.log.auditlog import AuditLog
from spool_bench import prepare_latencies
from workload import make_events

PASSPHRASE = "sealtrail-bench-passphrase"  # a throwaway key for throwaway logs
LOG = "default"
BATCH = 1000
UNLIMITED = 1e9  # requests/s and burst for the service's per-key rate limit
SERVICE = "sealtrail service"
EMBEDDED = "sealtrail (default)"
SDK = "sealtrail.Client"
Events = list[dict[str, Any]]


@dataclass(frozen=True)
class HttpSizes:
    """How much work each measurement does."""

    batched_events: int   # events per batched repeat (HTTP and embedded), in batches of 1000
    batch_clients: int    # concurrent clients posting batches
    single_requests: int  # single-event requests per repeat, 1 client
    many_clients: int     # concurrent clients for the second single-event row
    per_client: int       # single-event requests per client per repeat, many clients
    floor_requests: int   # GET /healthz, and POST [], per repeat
    records: int          # record() calls per SDK mode per repeat
    repeats: int
    workers_events: int   # events per repeat of each serve --workers row, batches of 1000


QUICK = HttpSizes(batched_events=12_000, batch_clients=4, single_requests=300, many_clients=16,
                  per_client=30, floor_requests=300, records=600, repeats=REPEATS,
                  workers_events=16_000)
FULL = HttpSizes(batched_events=80_000, batch_clients=4, single_requests=1500, many_clients=16,
                 per_client=150, floor_requests=1500, records=3000, repeats=REPEATS,
                 workers_events=48_000)
WORKER_COUNTS = (1, 2)  # serve --workers, the rows of measurement 4
WORKERS_TARGET = 1.6


def say(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def _json(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


# -- the service in a child process ---------------------------------------------------------


def serve(data_dir: Path, port: int) -> None:
    """The child: what ``sealtrail serve`` runs, with the rate limit out of the way."""
    import uvicorn  # noqa: PLC0415 - only the child needs the server

    from sealtrail.server.app import ServiceConfig, create_app  # noqa: PLC0415
    from sealtrail.server.tls import CertAwareH11Protocol  # noqa: PLC0415

    config = ServiceConfig(data_dir, rate=UNLIMITED, burst=UNLIMITED)
    uvicorn.run(create_app(config), host="127.0.0.1", port=port, log_level="warning",
                http=CertAwareH11Protocol)


@dataclass(frozen=True)
class Tokens:
    ingest: str
    auditor: str  # for /metrics


def prepare_data(data_dir: Path) -> Tokens:
    """The default log (encrypted, redaction mask) and the keys the bench uses."""
    with AuditLog.open(data_dir, LOG, passphrase=PASSPHRASE):
        pass
    keys = ApiKeys(data_dir)
    try:
        now = datetime.now(UTC)
        return Tokens(ingest=keys.create("ingest", log=None, name="bench", now=now),
                      auditor=keys.create("auditor", log=None, name="bench-metrics", now=now))
    finally:
        keys.close()


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def metric_samples(base_url: str, token: str) -> dict[str, float]:
    """The service's ``/metrics`` samples by name and labels (Prometheus text, one sample a
    line: split on newlines only)."""
    resp = httpx.get(f"{base_url}/metrics", timeout=30,
                     headers={"Authorization": f"Bearer {token}"})
    resp.raise_for_status()
    out: dict[str, float] = {}
    for line in resp.text.split("\n"):
        name, _, value = line.rpartition(" ")
        if name and not line.startswith("#"):
            out[name] = float(value)
    return out


@dataclass
class Server:
    """A running service child."""

    proc: subprocess.Popen[bytes]
    base_url: str
    tokens: Tokens
    _ps: Any = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._ps = psutil.Process(self.proc.pid)

    def cpu_seconds(self) -> float:
        """User + system CPU time of the service process so far (every thread)."""
        t = self._ps.cpu_times()
        return float(t.user) + float(t.system)

    def metrics(self) -> dict[str, float]:
        """The service's ingest histogram sum and count, the events its API stored (new,
        not duplicates) and its tree size (which also counts sealtrail's own events)."""
        samples = metric_samples(self.base_url, self.tokens.auditor)
        want = {f'sealtrail_ingest_seconds_sum{{log="{LOG}"}}': "append_s",
                f'sealtrail_ingest_seconds_count{{log="{LOG}"}}': "requests",
                f'sealtrail_ingest_events_total{{log="{LOG}"}}': "ingested",
                f'sealtrail_tree_size{{log="{LOG}"}}': "size"}
        out = {"append_s": 0.0, "requests": 0.0, "ingested": 0.0, "size": 0.0}
        for name, key in want.items():
            if name in samples:
                out[key] = samples[name]
        return out

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


@contextlib.contextmanager
def running_service(data_dir: Path, tokens: Tokens) -> Iterator[Server]:
    """Start the service child on a free loopback port; stop it afterwards."""
    env = dict(os.environ, SEALTRAIL_PASSPHRASE=PASSPHRASE)
    env.pop("SEALTRAIL_KEK", None)
    log_path = data_dir.parent / f"{data_dir.name}-server.log"
    for _attempt in range(3):
        port = _free_port()
        with log_path.open("wb") as out:
            proc = subprocess.Popen(
                [sys.executable, str(Path(__file__).resolve()), "--serve", str(data_dir),
                 str(port)], env=env, stdout=out, stderr=subprocess.STDOUT)
        server = Server(proc, f"http://127.0.0.1:{port}", tokens)
        try:
            if _wait_ready(server):
                break
        except BaseException:
            server.stop()
            raise
        server.stop()
    else:
        raise RuntimeError(f"the service did not start: {log_path.read_text()[-2000:]}")
    try:
        yield server
    finally:
        server.stop()
        log_path.unlink(missing_ok=True)


def _wait_ready(server: Server, timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            return False  # e.g. the port was taken in between: try another
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{server.base_url}/readyz", timeout=2).status_code == 200:
                return True
        time.sleep(0.05)
    raise RuntimeError("the service did not become ready within 30 s")


@dataclass
class CliServer:
    """A running ``sealtrail serve --workers N`` (the real command) and its data directory."""

    proc: subprocess.Popen[bytes]
    base_url: str
    tokens: Tokens
    data_dir: Path
    workers: int

    def cpu_seconds(self) -> float:
        """User + system CPU time so far of the parent and every worker (all threads)."""
        total = 0.0
        parent = psutil.Process(self.proc.pid)
        for proc in [parent, *parent.children(recursive=True)]:
            with contextlib.suppress(psutil.Error):
                t = proc.cpu_times()
                total += float(t.user) + float(t.system)
        return total


@contextlib.contextmanager
def running_cli_service(data_dir: Path, tokens: Tokens, workers: int) -> Iterator[CliServer]:
    """``sealtrail serve --workers N`` on a free loopback port (the rate limit out of the way,
    no monitor); returns once every worker answers /healthz; SIGTERM afterwards."""
    env = dict(os.environ, SEALTRAIL_PASSPHRASE=PASSPHRASE)
    env.pop("SEALTRAIL_KEK", None)
    log_path = data_dir.parent / f"{data_dir.name}-serve.log"
    port = _free_port()
    with log_path.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "sealtrail.cli", "--data", str(data_dir), "serve",
             "--port", str(port), "--workers", str(workers), "--rate", str(UNLIMITED),
             "--burst", str(UNLIMITED), "--no-monitor"],
            env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
    server = CliServer(proc, f"http://127.0.0.1:{port}", tokens, data_dir, workers)
    try:
        pids: set[int] = set()
        deadline = time.monotonic() + 60
        while len(pids) < workers:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"serve --workers {workers} did not start: "
                                   f"{log_path.read_text()[-2000:]}")
            with contextlib.suppress(httpx.HTTPError):  # a new connection: any worker
                pids.add(int(httpx.get(f"{server.base_url}/healthz", timeout=2).json()["pid"]))
            time.sleep(0.02)
        _warm(server)
        yield server
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)


def _warm(server: CliServer) -> None:
    """One small ingest through each worker before the clock ever starts: a worker opens the
    log (and stretches the passphrase) on its first request, once per process."""
    warmed: set[int] = set()
    headers = {"authorization": f"Bearer {server.tokens.ingest}"}
    deadline = time.monotonic() + 60
    while len(warmed) < server.workers and time.monotonic() < deadline:
        with httpx.Client(base_url=server.base_url, headers=headers, timeout=60) as client:
            pid = int(client.get("/healthz").json()["pid"])  # this connection's worker
            if pid not in warmed:
                _check_created(client.post(f"/v1/logs/{LOG}/events",
                                           content=_json(make_events(1))))
                warmed.add(pid)


def cli_accounted(server: CliServer, cpu: list[float], once: Once) -> Once:
    """``once``, with the server tree's CPU seconds it caused added to ``cpu[0]``."""
    def run() -> tuple[int, float, list[float]]:
        s0 = server.cpu_seconds()
        out = once()
        cpu[0] += server.cpu_seconds() - s0
        return out
    return run


def run_workers(sz: HttpSizes) -> list[Row]:
    """Measurement 4: batched ingest through ``serve --workers 2`` against ``--workers 1``."""
    say(f"workers: generating {sz.workers_events:,} events")
    events = make_events(sz.workers_events)
    bodies = [_json(events[i:i + BATCH]) for i in range(0, len(events), BATCH)]
    clients = 4
    with temp_dir("http-workers") as root, ExitStack() as stack:
        servers: dict[int, CliServer] = {}
        for n in WORKER_COUNTS:
            data = root / f"data-{n}"
            data.mkdir()
            say(f"workers: starting sealtrail serve --workers {n}")
            servers[n] = stack.enter_context(running_cli_service(data, prepare_data(data), n))
        cpu = {n: [0.0] for n in WORKER_COUNTS}
        spread: list[list[int]] = []
        runs: dict[str, Once] = {
            str(n): cli_accounted(s, cpu[n], concurrent_posts(
                s.base_url, s.tokens.ingest, _split(bodies, clients), BATCH,
                spread=spread if n == 2 else None))
            for n, s in servers.items()}
        say(f"workers: {len(runs)} measurements, round-robin, {sz.repeats} rounds")
        res = interleaved(runs, sz.repeats, say)
        # The kernel hands each connection to one worker; an uneven split caps the gain.
        say("workers: connections per worker of --workers 2, per repeat: " + "; ".join(
            "-".join(str(k) for k in sorted(Counter(p).values(), reverse=True))
            for p in spread))
        stack.close()  # every service stopped: its log is whole on disk
        for n in WORKER_COUNTS:  # every event sent is in the log once (no ids: new each time)
            with AuditLog.open(root / f"data-{n}", LOG, create=False,
                               passphrase=PASSPHRASE) as alog:
                if alog.size < len(events) * sz.repeats:
                    raise RuntimeError(f"--workers {n}: the log holds {alog.size} entries, "
                                       f"{len(events) * sz.repeats} events were sent")
    one, two = res[str(WORKER_COUNTS[0])], res[str(WORKER_COUNTS[1])]
    ratio = two.median / one.median
    say(f"workers: --workers 2 {two.median:,.0f} events/s vs --workers 1 {one.median:,.0f} "
        f"events/s: {ratio:.2f}x (target >= {WORKERS_TARGET}x: "
        f"{'met' if ratio >= WORKERS_TARGET else 'NOT met'}); per repeat: --workers 2 "
        f"{', '.join(f'{x:,.0f}' for x in two.rates)}, --workers 1 "
        f"{', '.join(f'{x:,.0f}' for x in one.rates)}")
    rows = []
    for n, rate in ((1, one), (2, two)):
        server_cpu = _us(cpu[n][0] / (len(events) * sz.repeats))
        rows.append(Row(
            SERVICE, f"sealtrail serve --workers {n} (the command, --no-monitor): POST {BATCH} "
            f"events per request, {clients} concurrent clients, default log, durable",
            rate.median, rate.p50_us, rate.p99_us,
            value=f"server CPU {server_cpu}/event (all its processes)",
            ratio=ratio if n == 2 else None,
            ratio_of="this ÷ --workers 1" if n == 2 else "",
            target=verdict(ratio >= WORKERS_TARGET, f"≥ {WORKERS_TARGET}x") if n == 2 else ""))
    return rows


# -- measurements ----------------------------------------------------------------------------


@dataclass
class Costs:
    """Per measurement, summed over repeats: CPU seconds of the server and of this process,
    requests made, and the service's own ingest histogram (time in append_many)."""

    requests: int = 0
    server_cpu: float = 0.0
    client_cpu: float = 0.0
    append_s: float = 0.0
    append_requests: float = 0.0
    own_events: int = 0  # sealtrail's own entries (alerts, audited reads) meanwhile


def accounted(server: Server, costs: Costs, requests: int, once: Once) -> Once:
    """``once``, with the CPU time and ingest metrics it caused added to ``costs``."""
    def run() -> tuple[int, float, list[float]]:
        before = server.metrics()
        s0, c0 = server.cpu_seconds(), time.process_time()
        n, secs, lat = once()
        s1, c1 = server.cpu_seconds(), time.process_time()
        after = server.metrics()
        costs.requests += requests
        costs.server_cpu += s1 - s0
        costs.client_cpu += c1 - c0
        costs.append_s += after["append_s"] - before["append_s"]
        costs.append_requests += after["requests"] - before["requests"]
        # Every event sent must be stored once. The log also grows by sealtrail's own events
        # meanwhile (the monitor's alerts, audited reads), so count what the API stored, not
        # the tree's growth; the growth must still hold at least the events sent.
        stored = int(after["ingested"] - before["ingested"])
        grew = int(after["size"] - before["size"])
        if n and stored != n:
            raise RuntimeError(f"the service stored {stored} new events, {n} were sent")
        if grew < stored:
            raise RuntimeError(f"the log grew by {grew} entries, {stored} events were stored")
        costs.own_events += grew - stored
        return n, secs, lat
    return run


def embedded_batched(batches: list[Events], costs: Costs) -> Once:
    """``append_many`` of the same batches, in this process, into a fresh default log."""
    def once() -> tuple[int, float, list[float]]:
        with temp_dir("http-embedded") as d, AuditLog.open(d, LOG, passphrase=PASSPHRASE) as log:
            clock = time.perf_counter
            lat: list[float] = []
            c0 = time.process_time()
            t0 = clock()
            for batch in batches:
                t1 = clock()
                log.append_many(batch)
                lat.append(clock() - t1)
            secs = clock() - t0
            costs.client_cpu += time.process_time() - c0
            costs.requests += len(batches)
            n = sum(len(b) for b in batches)
            if log.size != n:
                raise RuntimeError(f"the embedded log has {log.size} entries, not {n}")
            return n, secs, lat
    return once


def http_clients(base_url: str, token: str | None, n: int) -> list[httpx.Client]:
    headers = {"content-type": "application/json"}
    if token is not None:
        headers["authorization"] = f"Bearer {token}"
    return [httpx.Client(base_url=base_url, headers=headers, timeout=60) for _ in range(n)]


def concurrent_posts(base_url: str, token: str, work: list[list[bytes]], events_each: int,
                     path: str = f"/v1/logs/{LOG}/events",
                     spread: list[list[int]] | None = None) -> Once:
    """One thread (and keep-alive connection) per list of bodies, all started together; each
    POSTs its bodies one after another. Returns events sent (``events_each`` per body).
    ``spread`` gets, per repeat, the pid that answers each connection (serve --workers)."""
    def once() -> tuple[int, float, list[float]]:
        clients = http_clients(base_url, token, len(work))
        try:
            pids = []
            for c in clients:  # connect before the clock starts
                answer = c.get("/healthz")
                answer.raise_for_status()
                pids.append(int(answer.json().get("pid", 0)))
            if spread is not None:
                spread.append(pids)
            start = threading.Barrier(len(work) + 1)
            lats: list[list[float]] = [[] for _ in work]
            errors: list[BaseException] = []

            def post(t: int) -> None:
                client, mine, out = clients[t], work[t], lats[t]
                clock = time.perf_counter
                try:
                    start.wait()
                    for body in mine:
                        t1 = clock()
                        resp = client.post(path, content=body)
                        out.append(clock() - t1)
                        _check_created(resp)
                except BaseException as exc:  # reported after the join
                    errors.append(exc)
                    with contextlib.suppress(threading.BrokenBarrierError):
                        start.abort()

            threads = [threading.Thread(target=post, args=(t,)) for t in range(len(work))]
            for th in threads:
                th.start()
            start.wait()
            t0 = time.perf_counter()
            for th in threads:
                th.join()
            secs = time.perf_counter() - t0
            if errors:
                raise errors[0]
            return sum(len(w) for w in work) * events_each, secs, [x for o in lats for x in o]
        finally:
            for c in clients:
                c.close()
    return once


def _check_created(resp: httpx.Response) -> None:
    if resp.status_code != 201:
        raise RuntimeError(f"HTTP {resp.status_code}: {resp.text[:300]}")


def health_floor(base_url: str, n: int) -> Once:
    """``GET /healthz`` ``n`` times on one connection: uvicorn + h11 + httpx, nothing else."""
    def once() -> tuple[int, float, list[float]]:
        with httpx.Client(base_url=base_url, timeout=30) as client:
            client.get("/healthz").raise_for_status()
            clock = time.perf_counter
            lat: list[float] = []
            t0 = clock()
            for _ in range(n):
                t1 = clock()
                if client.get("/healthz").status_code != 200:
                    raise RuntimeError("/healthz failed")
                lat.append(clock() - t1)
            return 0, clock() - t0, lat
    return once


@dataclass
class SdkResult:
    """``record()`` latencies (seconds) pooled over repeats, and time spent in the calls."""

    lat: list[float] = field(default_factory=list)
    secs: float = 0.0
    delivered: int = 0
    left: int = 0  # still queued when the client was closed (service stopped)

    @property
    def p50_us(self) -> float:
        return percentile(self.lat, 0.5) * 1e6

    @property
    def p99_us(self) -> float:
        return percentile(self.lat, 0.99) * 1e6

    @property
    def rate(self) -> float:
        return len(self.lat) / self.secs


SDK_MODES: dict[str, dict[str, str]] = {  # the SDK rows' client settings, by row key prefix
    "spool": {"failure_mode": "spool"},
    "group": {"failure_mode": "spool", "durability": "group"},
    "drop": {"failure_mode": "drop"},
}


def sdk_records(base_url: str, token: str, mode: str, events: Events, spool: Path,
                result: SdkResult, *, up: bool) -> None:
    """``record(event)`` for each event in the application thread, each call timed; then
    (service up) wait until the service acknowledged every one, outside the clock. ``mode``
    is a key of :data:`SDK_MODES`."""
    with Client(base_url, token, LOG, spool_path=spool, timeout=5.0,
                **SDK_MODES[mode]) as audit:  # type: ignore[arg-type]
        audit.record(events[0])  # open the spool, start the sender
        clock = time.perf_counter
        lat: list[float] = []
        record = audit.record
        t0 = clock()
        for ev in events[1:]:
            t1 = clock()
            record(ev)
            lat.append(clock() - t1)
        result.secs += clock() - t0
        result.lat.extend(lat)
        if up:
            if not audit.flush(60):
                raise RuntimeError(f"{mode}: the client did not deliver within 60 s "
                                   f"({audit.last_error})")
            if audit.delivered != len(events):
                raise RuntimeError(f"{mode}: delivered {audit.delivered} of {len(events)}")
            result.delivered += audit.delivered
        else:
            result.left += audit.pending + audit.dropped
            with contextlib.suppress(Exception):
                audit.close(timeout=0.1)


# -- the rows --------------------------------------------------------------------------------


def _us(seconds: float) -> str:
    return f"{seconds * 1e6:,.0f} µs"


def _split(work: list[bytes], parts: int) -> list[list[bytes]]:
    return [work[t::parts] for t in range(parts)]


def run_http(quick: bool) -> list[Row]:
    """The HTTP service and SDK rows (see the module docstring)."""
    sz = QUICK if quick else FULL
    say(f"http: generating {sz.batched_events:,} events")
    events = make_events(sz.batched_events)
    batches = [events[i:i + BATCH] for i in range(0, len(events), BATCH)]
    batch_bodies = [_json(b) for b in batches]
    n_single = sz.single_requests + sz.many_clients * sz.per_client
    single_bodies = [_json([ev]) for ev in events[:n_single]]
    ones, many = single_bodies[:sz.single_requests], single_bodies[sz.single_requests:]
    sdk_events = events[:sz.records + 1]

    rows: list[Row] = []
    with temp_dir("http") as root:
        data = root / "data"
        data.mkdir()
        tokens = prepare_data(data)
        say("http: starting the service in a child process")
        with running_service(data, tokens) as server:
            url, tok = server.base_url, tokens.ingest
            costs = {k: Costs() for k in ("embedded", "http", "one", "many", "empty", "floor")}
            runs: dict[str, Once] = {
                "embedded": embedded_batched(batches, costs["embedded"]),
                "http": accounted(server, costs["http"], len(batch_bodies), concurrent_posts(
                    url, tok, _split(batch_bodies, sz.batch_clients), BATCH)),
                "one": accounted(server, costs["one"], len(ones),
                                 concurrent_posts(url, tok, [ones], 1)),
                "many": accounted(server, costs["many"], len(many), concurrent_posts(
                    url, tok, _split(many, sz.many_clients), 1)),
                "empty": accounted(server, costs["empty"], sz.floor_requests, concurrent_posts(
                    url, tok, [[b"[]"] * sz.floor_requests], 0)),
                "floor": accounted(server, costs["floor"], sz.floor_requests,
                                   health_floor(url, sz.floor_requests)),
            }
            say(f"http: {len(runs)} measurements, round-robin, {sz.repeats} rounds")
            res = interleaved(runs, sz.repeats, say)

            sdk: dict[str, SdkResult] = {f"{mode} {state}": SdkResult() for state in
                                         ("up", "down") for mode in SDK_MODES}
            say(f"sdk: record() x{sz.records}, spool (per-call and group durability) and drop "
                "modes, service up")
            for r in range(sz.repeats):
                for mode in SDK_MODES:
                    sdk_records(url, tok, mode, sdk_events, root / f"spool-up-{mode}-{r}.db",
                                sdk[f"{mode} up"], up=True)
        say("sdk: the service is stopped; record() again")
        client_log = logging.getLogger("sealtrail.client")
        level = client_log.level
        client_log.setLevel(logging.ERROR)  # its retry warnings are expected here
        try:
            for r in range(sz.repeats):
                for mode in SDK_MODES:
                    sdk_records(url, tok, mode, sdk_events, root / f"spool-down-{mode}-{r}.db",
                                sdk[f"{mode} down"], up=False)
        finally:
            client_log.setLevel(level)
        prep = prepare_latencies(sdk_events * sz.repeats)

    emb, http = res["embedded"], res["http"]
    ratio = http.median / emb.median
    say(f"http: batched over HTTP {http.median:,.0f} events/s vs embedded {emb.median:,.0f} "
        f"events/s: {ratio:.2f}x (target >= 0.5x: {'met' if ratio >= 0.5 else 'NOT met'}); "
        f"per repeat: HTTP {', '.join(f'{x:,.0f}' for x in http.rates)}, "
        f"embedded {', '.join(f'{x:,.0f}' for x in emb.rates)}")

    own = sum(c.own_events for c in costs.values())
    say(f"http: every event sent was stored once; the log also grew by {own:,} entries of "
        "sealtrail's own (the monitor's alerts, audited reads), not counted as sent")

    ec = costs["embedded"]
    cpu = _us(ec.client_cpu / (len(events) * sz.repeats))
    rows.append(Row(EMBEDDED, f"append_many, batches of {BATCH}, in-process (encrypted, "
                    "redaction mask; the HTTP rows' events)", emb.median, emb.p50_us,
                    emb.p99_us, value=f"latency per batch; CPU {cpu}/event"))
    rows.extend(_http_rows(sz, res, costs, ratio))
    rows.extend(_sdk_rows(sz, sdk, prep))
    rows.extend(run_workers(sz))
    return rows


def _where(c: Costs, unit: int = 1) -> str:
    """Where a request's time goes: CPU of the server and of the clients (per ``unit``
    events, or per request), and the service's own time in append_many per request."""
    per = "event" if unit > 1 else "request"
    parts = [f"server CPU {_us(c.server_cpu / c.requests / unit)}/{per}",
             f"client CPU {_us(c.client_cpu / c.requests / unit)}/{per}"]
    if c.append_requests:
        parts.append(f"in append_many (with waits) {_us(c.append_s / c.append_requests)}"
                     "/request")
    return ", ".join(parts)


def _http_rows(sz: HttpSizes, res: dict[str, Rate], costs: dict[str, Costs],
               ratio: float) -> list[Row]:
    http, one, many, floor = res["http"], res["one"], res["many"], res["floor"]
    rows = [Row(SERVICE, f"POST {BATCH} events per request, {sz.batch_clients} concurrent "
                "clients, durable (service in its own process; latency per request)",
                http.median, http.p50_us, http.p99_us, value=_where(costs["http"], BATCH),
                ratio=ratio, ratio_of="this ÷ embedded append_many",
                target=verdict(ratio >= 0.5, "≥ 0.5x"))]
    rows.append(Row(SERVICE, "POST one event per request, 1 client, durable", one.median,
                    one.p50_us, one.p99_us, value=_where(costs["one"])))
    rows.append(Row(SERVICE, f"POST one event per request, {sz.many_clients} concurrent "
                    "clients, durable", many.median, many.p50_us, many.p99_us,
                    value=_where(costs["many"]), ratio=many.median / one.median,
                    ratio_of="this ÷ 1 client"))
    empty = res["empty"]
    rows.append(Row(SERVICE, "POST [] (an empty batch), 1 client: key, routing, body, "
                    "receipts, no append", None, empty.p50_us, empty.p99_us,
                    value=_where(costs["empty"])))
    rows.append(Row("uvicorn + httpx", "GET /healthz, 1 client (no key, no body, no disk): "
                    "the HTTP floor", None, floor.p50_us, floor.p99_us,
                    value=_where(costs["floor"])))
    return rows


def _sdk_rows(sz: HttpSizes, sdk: dict[str, SdkResult], prep: list[float]) -> list[Row]:
    rows: list[Row] = []
    text = {
        "spool up": "record(), spool mode (default; fsync per call), service up",
        "spool down": "record(), spool mode, service stopped (spool only)",
        "group up": "record(), spool mode, durability=\"group\" (a writer thread fsyncs "
                    "every 5 ms), service up",
        "group down": "record(), spool mode, durability=\"group\", service stopped",
        "drop up": "record(), drop mode (memory queue, no fsync), service up",
        "drop down": "record(), drop mode, service stopped",
    }
    call = sdk["spool up"].p50_us
    for key, label in text.items():
        r = sdk[key]
        extra = (f", {r.delivered:,} delivered" if key.endswith("up")
                 else f", {r.left:,} left in the spool" if not key.startswith("drop")
                 else f", {r.left:,} undelivered, dropped at close")
        group = key.startswith("group")
        rows.append(Row(SDK, f"{label}; app-thread time per call ({sz.records:,} x "
                        f"{sz.repeats})", r.rate, r.p50_us, r.p99_us,
                        value=f"median {r.p50_us:,.1f} µs{extra}",
                        ratio=r.p50_us / call if group else None,
                        ratio_of="median ÷ per-call spool median, service up" if group else "",
                        target=verdict(r.p50_us < 20, "median < 20 µs")))
    p50 = percentile(prep, 0.5) * 1e6
    rows.append(Row(SDK, "of which prepare_event (validate, UUIDv7, time, canonical JSON)",
                    None, p50, percentile(prep, 0.99) * 1e6, value=f"median {p50:,.1f} µs"))
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--quick", action="store_true",
                   help="smaller sizes (about 30 s; the full run about 2 min)")
    p.add_argument("--workers-only", action="store_true",
                   help="only measurement 4: serve --workers 2 against --workers 1")
    p.add_argument("--serve", nargs=2, metavar=("DATA", "PORT"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.serve:
        serve(Path(args.serve[0]), int(args.serve[1]))
        return 0
    load0 = os.getloadavg()
    t0 = time.perf_counter()
    rows = (run_workers(QUICK if args.quick else FULL) if args.workers_only
            else run_http(args.quick))
    elapsed = time.perf_counter() - t0
    load1 = os.getloadavg()
    print(text_table(rows))
    print(f"\n{'quick' if args.quick else 'full'} run, {elapsed:.0f} s; "
          f"nproc {len(os.sched_getaffinity(0))}; load average (1, 5, 15 min) "
          f"{load0[0]:.2f} {load0[1]:.2f} {load0[2]:.2f} at the start, "
          f"{load1[0]:.2f} {load1[1]:.2f} {load1[2]:.2f} at the end")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
