"""sealtrail on PostgreSQL against sealtrail on SQLite: one run, one table, ratios.

Rows (the events are :mod:`workload`'s; "default" is the library's default log: encrypted,
redaction ``mask``, about 30% of the events naming a data subject):

1. Batched ingest in-process: ``append_many`` in batches of 1,000 into a default log on
   PostgreSQL (a fresh database per repeat) and on SQLite (a fresh directory), measured
   round-robin (:func:`harness.interleaved`); events/s medians, ratio PostgreSQL ÷ SQLite
   (target >= 0.5x). CPU per event of this process and of the database's PostgreSQL
   backends. Then the same events naming no subject (informative): a subject's key is read
   from the store the first time the process meets the subject, one query each, which a
   round trip to PostgreSQL makes costlier than a read of SQLite in the process.
2. HTTP ingest over PostgreSQL, 3 nodes against 1: three ``sealtrail --store URL serve
   --workers 1`` processes over one database (the same signing key files on each; rate limit
   out of the way, ``--no-monitor``); the same client load (4 threads, one ``httpx.Client``
   per node each, posting pre-encoded batches of 100 events back to back) for a fixed time,
   spread round-robin over the three nodes, or all sent to one of them (the other two stay up,
   idle: followers). Informative on a 2-core machine: the nodes, PostgreSQL and the clients
   share the cores.
3. Failover: find the leader (each node's ``GET /healthz`` -> ``"leader": true``), SIGKILL it,
   and time until another node's /healthz says it leads (polled every 10 ms); restart the
   killed node before the next kill. p50/p99 over the kills. With env
   ``SEALTRAIL_FAILOVER_OUT`` naming a JSON list of seconds written by the test suite, a second
   row shows those.
4. At ``--entries`` (10,000,000 by default): a log built with ``append_many`` in batches of
   10,000 (the default configuration, or plain with ``--plain-build``: ``encryption=False,
   redaction="off"``), on PostgreSQL and on SQLite (``--sqlite-entries`` for a smaller SQLite
   log; the row says so). Then ``prove_inclusion(i)`` for 1,000 random ``i`` (p50/p99; target
   < 5 ms at p99), ``prove_consistency(m, size)`` for 1,000 random ``m``, one full
   ``verify()`` (workers=1), ``checkpoint()`` alone (one read of the store's state row,
   which every proof makes first) and, after each inclusion proof, a ``SELECT 1`` on a
   connection of its own (PostgreSQL's round trip on this machine over the same time: a
   proof makes two, ``state`` then one ``node_blocks`` query).
5. Bytes per entry at that size: PostgreSQL's ``pg_total_relation_size`` summed over the log's
   schema (heap + TOAST + indexes, split in the row), SQLite's ``log.db`` + ``-wal`` once the
   log is closed (checkpointed), and the open size.

Progress goes to standard error, the table to standard output; ``--out FILE`` appends it as a
Markdown section.

    .venv/bin/python bench/pg_bench.py --quick
    .venv/bin/python bench/pg_bench.py                  # 10M entries; see --help
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import os
import random
import resource
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import psycopg

from harness import (
    REPEATS,
    Once,
    Rate,
    Row,
    interleaved,
    markdown_table,
    percentile,
    temp_dir,
    text_table,
    timed_calls,
    verdict,
)
from pg_nodes import (
    LOG,
    Cluster,
    SchemaSize,
    backend_cpu,
    database_of,
    running_cluster,
    schema_size,
    scratch_database,
)
from sealtrail.log.auditlog import AuditLog
from workload import iter_batches, make_events

Events = list[dict[str, Any]]
PG = "sealtrail on PostgreSQL"
LITE = "sealtrail on SQLite"
NODES = "sealtrail serve --store (PostgreSQL)"
BATCH = 1000            # row 1
HTTP_BATCH = 100        # row 2: events per request
BUILD_BATCH = 10_000    # row 4
PROOFS = 1000
PROOF_TARGET_MS = 5.0
FAILOVER_TARGET_S = 5.0  # server/pg_leader.py: "failover within 5 s"
DB_FILES = ("log.db", "log.db-wal")


@dataclass(frozen=True)
class Sizes:
    ingest_events: int  # row 1, per repeat (plus one warm-up batch)
    http_seconds: float  # row 2, per repeat and configuration
    http_clients: int
    kills: int           # row 3
    entries: int         # rows 4-5
    repeats: int = REPEATS


QUICK = Sizes(ingest_events=20_000, http_seconds=4.0, http_clients=4, kills=3,
              entries=100_000)
FULL = Sizes(ingest_events=100_000, http_seconds=20.0, http_clients=4, kills=10,
             entries=10_000_000)

_T0 = time.monotonic()


def say(msg: str) -> None:
    """Progress, on standard error (the table goes to standard output)."""
    print(f"[{time.strftime('%H:%M:%S')} +{time.monotonic() - _T0:,.0f}s] {msg}",
          file=sys.stderr, flush=True)


def _ms(seconds: float) -> str:
    return f"{seconds * 1e3:,.2f} ms"


def _pct(samples: list[float]) -> tuple[float, float]:
    """p50 and p99 of ``samples`` (seconds), in µs."""
    return percentile(samples, 0.5) * 1e6, percentile(samples, 0.99) * 1e6


# -- 1. batched ingest in-process ---------------------------------------------------------


@dataclass
class Cpu:
    """CPU seconds spent during the timed part of every repeat, and the events it stored."""

    here: float = 0.0     # this process (every thread)
    backends: float = 0.0  # the PostgreSQL backends of the bench's database
    nodes: float = 0.0    # the service nodes (row 2)
    events: int = 0

    def per_event(self) -> str:
        parts = [f"this process {self.here / self.events * 1e6:,.0f} µs"]
        if self.nodes:
            parts.append(f"nodes {self.nodes / self.events * 1e6:,.0f} µs")
        if self.backends:
            parts.append(f"PostgreSQL backends {self.backends / self.events * 1e6:,.0f} µs")
        return "CPU/event: " + ", ".join(parts)


def batched_once(events: Events, on_postgres: bool, cpu: Cpu) -> Once:
    """``append_many`` in batches of :data:`BATCH` into a fresh default log (PostgreSQL: a
    fresh database); the first batch warms the log and is not timed."""
    def once() -> tuple[int, float, list[float]]:
        with temp_dir("pg-ingest") as d, contextlib.ExitStack() as stack:
            url = stack.enter_context(scratch_database()) if on_postgres else None
            db = database_of(url) if url else ""
            with AuditLog.open(d, LOG, store=url) as log:
                log.append_many(events[:BATCH])
                lat: list[float] = []
                clock = time.perf_counter
                b0, c0 = backend_cpu(db) if db else 0.0, time.process_time()
                t0 = clock()
                for i in range(BATCH, len(events), BATCH):
                    t1 = clock()
                    log.append_many(events[i:i + BATCH])
                    lat.append(clock() - t1)
                secs = clock() - t0
                cpu.here += time.process_time() - c0
                cpu.backends += (backend_cpu(db) - b0) if db else 0.0
                cpu.events += len(events) - BATCH
                return len(events) - BATCH, secs, lat
    return once


def run_ingest(sz: Sizes) -> list[Row]:
    """Row 1: the default workload (about 30% of events name one of 10,000 subjects: each
    subject's key is looked up in the store the first time the process sees it), and the
    same events naming no subject (informative: no per-subject key lookups)."""
    say(f"1. batched ingest: {sz.ingest_events:,} default events per repeat (with and without "
        f"subjects), PostgreSQL and SQLite round-robin, {sz.repeats} rounds")
    plain_events = make_events(sz.ingest_events + BATCH)
    events = make_events(sz.ingest_events + BATCH, subjects=True)
    keys = ("pg", "lite", "pg-ns", "lite-ns")
    cpu = {k: Cpu() for k in keys}
    res = interleaved({k: batched_once(plain_events if k.endswith("-ns") else events,
                                       k.startswith("pg"), cpu[k]) for k in keys},
                      sz.repeats, say)
    rows: list[Row] = []
    for suffix, what in (("", "about 30% of events name a subject (10,000 subjects)"),
                         ("-ns", "no event names a subject (informative)")):
        pg, lite = res[f"pg{suffix}"], res[f"lite{suffix}"]
        ratio = pg.median / lite.median
        label = (f"append_many, batches of {BATCH:,}, default log (encrypted, mask), "
                 f"in-process, {what}; latency per batch")
        per = ", ".join(f"{x:,.0f}" for x in pg.rates)
        per_lite = ", ".join(f"{x:,.0f}" for x in lite.rates)
        rows.append(Row(PG, label, pg.median, pg.p50_us, pg.p99_us,
                        value=f"{cpu[f'pg{suffix}'].per_event()}; repeats: {per}",
                        ratio=ratio, ratio_of="PostgreSQL ÷ SQLite",
                        target=verdict(ratio >= 0.5, "≥ 0.5x") if not suffix else ""))
        rows.append(Row(LITE, label, lite.median, lite.p50_us, lite.p99_us,
                        value=f"{cpu[f'lite{suffix}'].per_event()}; repeats: {per_lite}"))
    return rows


# -- 2. HTTP ingest, 3 nodes against 1 -----------------------------------------------------


@dataclass
class HttpTally:
    """Non-201 answers per configuration, over every repeat."""

    errors: int = 0
    requests: int = 0
    first_error: str = ""


def http_load(cluster: Cluster, targets: list[int], bodies: list[bytes], clients: int,
              seconds: float, tally: HttpTally, cpu: Cpu) -> Once:
    """``clients`` threads posting ``bodies`` (each :data:`HTTP_BATCH` events) back to back for
    ``seconds``; thread t sends its k-th request to ``targets[(t + k) % len(targets)]``. The
    rate counts the events answered 201 over the time from the start to the last answer."""
    headers = {"Authorization": f"Bearer {cluster.token}",
               "Content-Type": "application/json"}

    def once() -> tuple[int, float, list[float]]:
        done = [0] * clients
        sent = [0] * clients
        lats: list[list[float]] = [[] for _ in range(clients)]
        bad: list[list[str]] = [[] for _ in range(clients)]
        failed: list[BaseException] = []
        clock = time.perf_counter
        t0 = [0.0]

        def go() -> None:  # run by one thread as the barrier releases them all
            t0[0] = clock()

        start = threading.Barrier(clients + 1, action=go)

        def client(t: int) -> None:
            conns = {i: httpx.Client(base_url=cluster.nodes[i].base_url, headers=headers,
                                     timeout=120) for i in set(targets)}
            try:
                path = f"/v1/logs/{LOG}/events"
                for conn in conns.values():  # connect before the clock starts
                    conn.get("/healthz")
                start.wait()
                deadline = t0[0] + seconds
                k = 0
                while clock() < deadline:
                    node = targets[(t + k) % len(targets)]
                    body = bodies[(t * 7919 + k) % len(bodies)]
                    t1 = clock()
                    resp = conns[node].post(path, content=body)
                    lats[t].append(clock() - t1)
                    sent[t] += 1
                    if resp.status_code == 201:
                        done[t] += HTTP_BATCH
                    else:
                        bad[t].append(f"node {node}: HTTP {resp.status_code} "
                                      f"{resp.text[:200]}")
                    k += 1
            except BaseException as exc:  # re-raised below: a rate must be whole
                failed.append(exc)
                start.abort()
            finally:
                for conn in conns.values():
                    conn.close()

        db = database_of(cluster.url)
        threads = [threading.Thread(target=client, args=(t,)) for t in range(clients)]
        for th in threads:
            th.start()
        n0, b0, c0 = cluster.cpu_seconds(), backend_cpu(db), time.process_time()
        with contextlib.suppress(threading.BrokenBarrierError):
            start.wait()
        for th in threads:
            th.join()
        elapsed = clock() - t0[0]
        cpu.nodes += cluster.cpu_seconds() - n0
        cpu.backends += backend_cpu(db) - b0
        cpu.here += time.process_time() - c0
        cpu.events += sum(done)
        if failed:
            raise failed[0]
        errors = [e for b in bad for e in b]
        tally.requests += sum(sent)
        tally.errors += len(errors)
        tally.first_error = tally.first_error or (errors[0] if errors else "")
        return sum(done), elapsed, [x for lat in lats for x in lat]
    return once


def run_http(sz: Sizes, cluster: Cluster) -> list[Row]:
    n = len(cluster.nodes)
    pool = make_events(HTTP_BATCH * 200, seed=7)
    bodies = [json.dumps(pool[i:i + HTTP_BATCH], separators=(",", ":")).encode()
              for i in range(0, len(pool), HTTP_BATCH)]
    leader = cluster.leaders()
    one = leader[0] if leader else 0
    say(f"2. HTTP ingest: warming the {n} nodes (one batch each)")
    for i in range(n):
        resp = httpx.post(f"{cluster.nodes[i].base_url}/v1/logs/{LOG}/events",
                          content=bodies[i], timeout=120,
                          headers={"Authorization": f"Bearer {cluster.token}",
                                   "Content-Type": "application/json"})
        if resp.status_code != 201:
            raise RuntimeError(f"node {i}: HTTP {resp.status_code} {resp.text[:300]}")
    tallies = {"all": HttpTally(), "one": HttpTally()}
    cpu = {"all": Cpu(), "one": Cpu()}
    say(f"2. HTTP ingest: {sz.http_clients} clients x {sz.http_seconds:.0f} s, batches of "
        f"{HTTP_BATCH}, over {n} nodes and over node {one} alone, {sz.repeats} rounds")
    res = interleaved({
        "all": http_load(cluster, list(range(n)), bodies, sz.http_clients, sz.http_seconds,
                         tallies["all"], cpu["all"]),
        "one": http_load(cluster, [one], bodies, sz.http_clients, sz.http_seconds,
                         tallies["one"], cpu["one"]),
    }, sz.repeats, say)
    many, single = res["all"], res["one"]
    ratio = many.median / single.median

    def extra(key: str, rate: Rate) -> str:
        t = tallies[key]
        per = ", ".join(f"{x:,.0f}" for x in rate.rates)
        errs = (f"; {t.errors} of {t.requests} requests not 201 ({t.first_error})"
                if t.errors else f"; {t.requests:,} requests, all 201")
        return f"{cpu[key].per_event()} (clients: this process); repeats: {per}{errs}"

    what = (f"POST {HTTP_BATCH} events per request, {sz.http_clients} client threads, "
            f"{sz.http_seconds:.0f} s, default log; latency per request")
    role = "leader" if leader and one == leader[0] else "a node"
    return [Row(NODES, f"{n} nodes, requests round-robin over them: {what}", many.median,
                many.p50_us, many.p99_us, value=extra("all", many), ratio=ratio,
                ratio_of=f"{n} nodes ÷ 1 node", target="informative (2 cores)"),
            Row(NODES, f"1 node ({role}; the other {n - 1} up, idle): {what}", single.median,
                single.p50_us, single.p99_us, value=extra("one", single))]


# -- 3. failover ---------------------------------------------------------------------------


def one_failover(cluster: Cluster, poll: httpx.Client, timeout: float = 30.0
                 ) -> tuple[float, int, int]:
    """Kill the leader; seconds until another node says it leads; (seconds, old, new)."""
    deadline = time.monotonic() + timeout
    while True:
        leaders = cluster.leaders()
        if len(leaders) == 1:
            break
        if time.monotonic() > deadline:
            raise RuntimeError(f"no single leader before the kill: {leaders}")
        time.sleep(0.05)
    old = leaders[0]
    others = [i for i in range(len(cluster.nodes)) if i != old]
    clock = time.perf_counter
    t0 = clock()
    cluster.kill(old)
    while True:
        for i in others:
            try:
                resp = poll.get(f"{cluster.nodes[i].base_url}/healthz", timeout=0.5)
            except httpx.HTTPError:
                continue
            if resp.status_code == 200 and resp.json().get("leader") is True:
                return clock() - t0, old, i
        if clock() - t0 > timeout:
            raise RuntimeError(f"no node took over within {timeout:.0f} s")
        time.sleep(0.01)


def run_failover(sz: Sizes, cluster: Cluster) -> tuple[list[float], list[str]]:
    times: list[float] = []
    moves: list[str] = []
    with httpx.Client() as poll:
        for k in range(sz.kills):
            secs, old, new = one_failover(cluster, poll)
            times.append(secs)
            moves.append(f"{old}->{new}")
            say(f"3. failover {k + 1}/{sz.kills}: node {old} killed, node {new} leads after "
                f"{secs * 1e3:,.0f} ms; restarting node {old}")
            cluster.start(old)
    return times, moves


def failover_rows(times: list[float], moves: list[str]) -> list[Row]:
    p50, p99 = _pct(times)
    rows = [Row(NODES, f"failover: SIGKILL the leader, until another node's /healthz says "
                f"leader (polled every 10 ms; {len(times)} kills, killed node restarted "
                "between)", None, p50, p99,
                value=f"p50 {p50 / 1e3:,.0f} ms, p99 {p99 / 1e3:,.0f} ms, max "
                f"{max(times) * 1e3:,.0f} ms ({', '.join(moves)})",
                target=verdict(p99 / 1e6 <= FAILOVER_TARGET_S,
                               f"≤ {FAILOVER_TARGET_S:.0f} s (pg_leader.py)"))]
    src = os.environ.get("SEALTRAIL_FAILOVER_OUT")
    if src and Path(src).is_file():
        try:
            theirs = [float(x) for x in json.loads(Path(src).read_text())]
        except (ValueError, TypeError) as exc:
            say(f"3. SEALTRAIL_FAILOVER_OUT={src} is not a JSON list of seconds: {exc}")
        else:
            if theirs:
                t50, t99 = _pct(theirs)
                rows.append(Row(NODES, f"failover, from the test suite ({src}; "
                                f"{len(theirs)} samples, not measured by this run)", None,
                                t50, t99, value=f"p50 {t50 / 1e3:,.0f} ms, p99 "
                                f"{t99 / 1e3:,.0f} ms",
                                target=verdict(t99 / 1e6 <= FAILOVER_TARGET_S,
                                               f"≤ {FAILOVER_TARGET_S:.0f} s")))
    return rows


def run_nodes(sz: Sizes) -> list[Row]:
    """Rows 2 and 3, over one 3-node cluster."""
    with temp_dir("pg-nodes") as root, scratch_database() as url:
        say("2. starting 3 nodes over one PostgreSQL database")
        with running_cluster(root, url, 3) as cluster:
            rows = run_http(sz, cluster)
            say(f"3. failover: {sz.kills} kills")
            times, moves = run_failover(sz, cluster)
            rows.extend(failover_rows(times, moves))
    return rows


# -- 4 and 5. a large log: proofs, verify, bytes --------------------------------------------


@dataclass
class Large:
    """One large log's figures."""

    entries: int
    build_s: float = 0.0
    index_s: float = 0.0
    incl: list[float] = field(default_factory=list)
    cons: list[float] = field(default_factory=list)
    head: list[float] = field(default_factory=list)  # checkpoint() alone
    floor: list[float] = field(default_factory=list)  # SELECT 1 on a connection of its own
    verify_s: float = 0.0
    bytes_total: int = 0
    bytes_open: int = 0
    pg: SchemaSize | None = None


def _files_size(d: Path) -> int:
    return sum((d / LOG / name).stat().st_size for name in DB_FILES
               if (d / LOG / name).exists())


def proofs_with_floor(log: AuditLog, url: str, picks: list[int]
                      ) -> tuple[list[float], list[float]]:
    """``prove_inclusion(i)`` for each pick, each followed by one ``SELECT 1`` on a connection
    of its own: the round trip's floor and noise over the same stretch of time."""
    incl: list[float] = []
    floor: list[float] = []
    clock = time.perf_counter
    with psycopg.connect(url, autocommit=True) as conn:
        for _ in range(10):
            conn.execute("SELECT 1", prepare=True).fetchall()
        for i in picks:
            t0 = clock()
            log.prove_inclusion(i)
            t1 = clock()
            conn.execute("SELECT 1", prepare=True).fetchall()
            t2 = clock()
            incl.append(t1 - t0)
            floor.append(t2 - t1)
    return incl, floor


def build_and_measure(entries: int, url: str | None, plain: bool, data: Path) -> Large:
    """Build the log, then proofs, verify and sizes (see the module docstring)."""
    where = "PostgreSQL" if url else "SQLite"
    out = Large(entries)
    cfg: dict[str, Any] = ({"encryption": False, "redaction": "off"} if plain else {})
    with AuditLog.open(data, LOG, store=url, **cfg) as log:
        clock = time.perf_counter
        t0 = clock()
        step = max(entries // 20, BUILD_BATCH)
        next_say = step
        done = 0
        for batch in iter_batches(entries, BUILD_BATCH, subjects=not plain):
            log.append_many(batch)
            done += len(batch)
            if done >= next_say:
                el = clock() - t0
                say(f"4. {where}: built {done:,} of {entries:,} ({done / el:,.0f} events/s, "
                    f"about {(entries - done) / (done / el):,.0f} s to go)")
                next_say += step
        out.build_s = clock() - t0
        t1 = clock()
        log.catch_up_index()  # the blind index settled before sizes and verify
        out.index_s = clock() - t1
        size = log.size
        if size != entries:
            raise RuntimeError(f"{where}: size {size}, expected {entries}")
        rnd = random.Random(20261202)
        log.prove_inclusion(0)  # one warm-up call (not counted)
        say(f"4. {where}: {PROOFS} inclusion and {PROOFS} consistency proofs at size {size:,}")
        picks = [rnd.randrange(size) for _ in range(PROOFS)]
        if url is None:
            out.incl = timed_calls(log.prove_inclusion, picks)
        else:
            out.incl, out.floor = proofs_with_floor(log, url, picks)
        out.cons = timed_calls(lambda m: log.prove_consistency(m, size),
                               [rnd.randrange(1, size) for _ in range(PROOFS)])
        out.head = timed_calls(lambda _: log.checkpoint(), list(range(PROOFS)))
        if url is None:
            out.bytes_open = _files_size(data)
        say(f"4. {where}: verify() of {size:,} entries")
        t1 = clock()
        log.verify()
        out.verify_s = clock() - t1
        say(f"4. {where}: verify took {out.verify_s:,.1f} s")
    if url is not None:
        out.pg = schema_size(url)
        out.bytes_total = out.bytes_open = out.pg.total
    else:
        out.bytes_total = _files_size(data)
    return out


def run_large(entries: int, lite_entries: int, plain: bool) -> tuple[Large, Large]:
    say(f"4. building a {'plain' if plain else 'default'} log of {entries:,} entries on "
        f"PostgreSQL (batches of {BUILD_BATCH:,})")
    with temp_dir("pg-large") as d, scratch_database() as url:
        pg = build_and_measure(entries, url, plain, d)
    say(f"4. building the same log of {lite_entries:,} entries on SQLite")
    with temp_dir("lite-large") as d:
        lite = build_and_measure(lite_entries, None, plain, d)
    return pg, lite


def large_rows(pg: Large, lite: Large, plain: bool) -> list[Row]:
    cfg = ("plain build (encryption=False, redaction off)" if plain
           else "default build (encrypted, mask)")
    at = f"{pg.entries:,} entries"
    lite_at = (at if lite.entries == pg.entries
               else f"{lite.entries:,} entries (smaller than PostgreSQL's)")
    rows: list[Row] = []

    def build_value(x: Large) -> str:
        idx = f", blind index catch-up {x.index_s:,.1f} s" if x.index_s >= 0.05 else ""
        return (f"built in {x.build_s:,.0f} s ({x.entries / x.build_s:,.0f} events/s, with "
                f"generating the events){idx}")

    for label, attr, target in (("prove_inclusion(i), 1,000 random i", "incl", True),
                                ("prove_consistency(m, size), 1,000 random m", "cons", False),
                                ("of which checkpoint() (the state row read every proof makes "
                                 "first)", "head", False)):
        a: list[float] = getattr(pg, attr)
        b: list[float] = getattr(lite, attr)
        a50, a99 = _pct(a)
        b50, b99 = _pct(b)
        ok = f"p99 < {PROOF_TARGET_MS:.0f} ms"
        rows.append(Row(PG, f"{label}, {at}, {cfg}", None, a50, a99,
                        value=f"p50 {_ms(a50 / 1e6)}, p99 {_ms(a99 / 1e6)}",
                        ratio=a50 / b50, ratio_of="PostgreSQL ÷ SQLite, p50",
                        target=verdict(a99 / 1e3 < PROOF_TARGET_MS, ok) if target else ""))
        rows.append(Row(LITE, f"{label}, {lite_at}", None, b50, b99,
                        value=f"p50 {_ms(b50 / 1e6)}, p99 {_ms(b99 / 1e6)}",
                        target=verdict(b99 / 1e3 < PROOF_TARGET_MS, ok) if target else ""))
    if pg.floor:
        f50, f99 = _pct(pg.floor)
        rows.append(Row("PostgreSQL", "round trip alone: SELECT 1 on a connection of its own, "
                        "one after each inclusion proof (the round trip's floor and noise "
                        "meanwhile)",
                        None, f50, f99, value=f"p50 {_ms(f50 / 1e6)}, p99 {_ms(f99 / 1e6)}"))
    rows.append(Row(PG, f"verify() (workers=1), {at}, {cfg}", pg.entries / pg.verify_s,
                    value=f"{pg.verify_s:,.1f} s; {build_value(pg)}",
                    ratio=pg.verify_s / lite.verify_s * lite.entries / pg.entries,
                    ratio_of="PostgreSQL ÷ SQLite, time per entry"))
    rows.append(Row(LITE, f"verify() (workers=1), {lite_at}", lite.entries / lite.verify_s,
                    value=f"{lite.verify_s:,.1f} s; {build_value(lite)}"))
    pg_per = pg.bytes_total / pg.entries
    lite_per = lite.bytes_total / lite.entries
    split = ""
    if pg.pg is not None:
        s = pg.pg
        split = (f" (heap {s.heap / pg.entries:,.0f}, TOAST {s.toast / pg.entries:,.0f}, "
                 f"indexes {s.indexes / pg.entries:,.0f}; {s.tables} tables, "
                 f"{s.total / 2**20:,.0f} MiB)")
    rows.append(Row(PG, f"bytes per entry, {at}: pg_total_relation_size over the schema's "
                    "tables", value=f"{pg_per:,.0f} B{split}", ratio=pg_per / lite_per,
                    ratio_of="PostgreSQL ÷ SQLite"))
    rows.append(Row(LITE, f"bytes per entry, {lite_at}: log.db + -wal, closed "
                    "(checkpointed)", value=f"{lite_per:,.0f} B ({lite.bytes_total / 2**20:,.0f}"
                    f" MiB; open: {lite.bytes_open / lite.entries:,.0f} B/entry with the WAL)"))
    return rows


# -- the run ------------------------------------------------------------------------------


def ensure_kek() -> None:
    """A throwaway KEK for throwaway logs (the nodes inherit it), unless one is set."""
    if not os.environ.get("SEALTRAIL_KEK") and not os.environ.get("SEALTRAIL_PASSPHRASE"):
        os.environ["SEALTRAIL_KEK"] = base64.b64encode(os.urandom(32)).decode()


def timed(part: str, fn: Callable[[], Any], spent: dict[str, float]) -> Any:
    t0 = time.perf_counter()
    out = fn()
    spent[part] = time.perf_counter() - t0
    say(f"{part}: {spent[part]:,.0f} s")
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--quick", action="store_true",
                   help="short run: smaller ingest, 4 s HTTP rounds, 3 kills, 100,000 entries")
    p.add_argument("--entries", type=int, default=None,
                   help="entries of the large log (rows 4-5) [default 10,000,000; quick "
                   "100,000]")
    p.add_argument("--sqlite-entries", type=int, default=None,
                   help="entries of the SQLite large log [default: --entries]")
    p.add_argument("--plain-build", action="store_true",
                   help="build the large logs plain (encryption=False, redaction off): "
                   "faster; rows 4-5 say so")
    p.add_argument("--only", choices=["ingest", "nodes", "large"], action="append",
                   help="run only these parts (repeatable)")
    p.add_argument("--out", type=Path, help="append the table as a Markdown section here")
    args = p.parse_args(argv)
    sz = QUICK if args.quick else FULL
    entries = args.entries or sz.entries
    lite_entries = args.sqlite_entries or entries
    parts = set(args.only or ["ingest", "nodes", "large"])
    ensure_kek()
    load0 = os.getloadavg()
    spent: dict[str, float] = {}
    rows: list[Row] = []
    if "ingest" in parts:
        rows.extend(timed("1. ingest", lambda: run_ingest(sz), spent))
    if "nodes" in parts:
        rows.extend(timed("2-3. nodes", lambda: run_nodes(sz), spent))
    if "large" in parts:
        pg, lite = timed("4-5. large log",
                         lambda: run_large(entries, lite_entries, args.plain_build), spent)
        rows.extend(large_rows(pg, lite, args.plain_build))
    load1 = os.getloadavg()
    total = sum(spent.values())
    note = (f"{'quick' if args.quick else 'full'} run, {total:,.0f} s ("
            + ", ".join(f"{k} {v:,.0f} s" for k, v in spent.items())
            + f"); nproc {len(os.sched_getaffinity(0))}; load average (1, 5, 15 min) "
            f"{load0[0]:.2f} {load0[1]:.2f} {load0[2]:.2f} at the start, "
            f"{load1[0]:.2f} {load1[1]:.2f} {load1[2]:.2f} at the end; peak RSS "
            f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:,.0f} MiB; "
            f"row 1 {sz.ingest_events:,} "
            f"events per repeat, median of {sz.repeats} interleaved rounds")
    print(text_table(rows))
    print(f"\n{note}")
    if args.out:
        stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
        cmd = " ".join(["bench/pg_bench.py", *(argv if argv is not None else sys.argv[1:])])
        with args.out.open("a", encoding="utf-8") as f:
            f.write(f"\n## PostgreSQL vs SQLite ({stamp}; `{cmd}`)\n\n"
                    f"{markdown_table(rows)}\n\n{note}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
