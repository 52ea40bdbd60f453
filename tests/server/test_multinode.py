"""Three ``serve --store postgresql://...`` nodes on one database, under faults.

Real console commands in subprocesses, real HTTP on loopback, one PostgreSQL database per test
(``pg_store``). Each node has its own data directory with copies of the log's key files and a
fixed port; SDK clients (two per node, each with its own spool) record events in threads while
a watcher collects every checkpoint the nodes serve. The faults: the leader killed with
SIGKILL ten times (each time another node must lead within 5 s; the killed node is then
restarted, as systemd's Restart=always would, so its clients' spools drain); every database
session of the leader terminated by ``pg_terminate_backend``; the leader paused (SIGSTOP)
past its lease and resumed; PostgreSQL itself restarted. After each: every client's spool
drains, each acknowledged event is in the log exactly once at the index its receipt names,
every checkpoint seen is consistent with the final one (proofs fetched from the nodes), and
``sealtrail verify`` exits 0 (tests/server/multinode.py: :func:`check_everything`).

``SEALTRAIL_FAILOVER_OUT``: a path where the kill test writes its failover times as JSON.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import psycopg
import pytest

from sealtrail.store.postgres import IDLE_IN_TRANSACTION_TIMEOUT
from sealtrail.store.postgres import conninfo as store_conninfo
from tests.server.multinode import (
    Cluster,
    Node,
    Recorder,
    Watcher,
    check_everything,
    percentile,
)

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

FAILOVER_BOUND = 5.0  # seconds for another node to lead (the brief's bound, never tighter)
KILLS = 10
CLIENTS_PER_NODE = 2


@contextmanager
def running(tmp_path: Path, store: str) -> Iterator[tuple[Cluster, list[Recorder], Watcher]]:
    """Three nodes, two recording clients per node and a checkpoint watcher, all started;
    everything stopped afterwards."""
    cluster = Cluster.create(tmp_path, store)
    recorders: list[Recorder] = []
    watcher = Watcher(cluster, cluster.token)
    try:
        cluster.start()
        for node in cluster.nodes:
            for c in range(CLIENTS_PER_NODE):
                recorders.append(Recorder(f"{node.index}.{c}", node, cluster,
                                          tmp_path / f"spool-{node.index}-{c}.db"))
        watcher.start()
        for rec in recorders:
            rec.start()
        yield cluster, recorders, watcher
    finally:
        for rec in recorders:
            rec.stop()
        watcher.stop()
        for rec in recorders:
            rec.client.close(0.1)
        cluster.close()


def ingest_for(recorders: list[Recorder], seconds: float, *, at_least: int = 1,
               through: Node | None = None) -> None:
    """Let the clients record for ``seconds``, and then until ``at_least`` more receipts
    arrived (those of the clients of ``through`` alone, when given; at most 60 s more):
    ingest goes on."""
    mine = [rec for rec in recorders if through is None or rec.node is through]
    before = sum(rec.acknowledged for rec in mine)
    time.sleep(seconds)
    deadline = time.monotonic() + 60
    while sum(rec.acknowledged for rec in mine) < before + at_least:
        assert time.monotonic() < deadline, (
            f"ingest stalled{'' if through is None else f' through {through}'}: {before} "
            f"receipts 60 s ago, now {sum(rec.acknowledged for rec in mine)}")
        time.sleep(0.05)


def report(what: str, summary: dict[str, int], times: list[float] | None = None) -> None:
    """Print a test's outcome (seen with ``-s``)."""
    line = f"\n[multinode] {what}: " + ", ".join(f"{k}={v}" for k, v in summary.items())
    if times:
        line += (f"; failover p50={percentile(times, 50):.3f}s "
                 f"p99={percentile(times, 99):.3f}s max={max(times):.3f}s "
                 f"all={[round(t, 3) for t in times]}")
    print(line)


def test_leader_killed_ten_times_during_ingest(tmp_path: Path, pg_store: str) -> None:
    """kill -9 of the leader, 10 times while six clients ingest through three nodes: another
    node leads within 5 s each time; once the killed node is back, its clients' spools drain;
    every acknowledged event is stored once, every checkpoint seen is consistent."""
    times: list[float] = []
    with running(tmp_path, pg_store) as (cluster, recorders, watcher):
        ingest_for(recorders, 1.0, at_least=20)
        for k in range(KILLS):
            leader = cluster.the_leader()
            leader.kill()
            new, took = cluster.wait_leader(exclude=[leader], timeout=30)
            times.append(took)
            assert new is not leader
            leader.start()  # Restart=always
            ingest_for(recorders, 0.3, at_least=10, through=leader)  # its spools drain
            assert cluster.the_leader() is new, \
                f"kill {k + 1}: the leadership moved again ({cluster.losses()})"
            orphans = leader.orphans()
            assert not orphans, f"kill {k + 1}: the killed leader's children live on: {orphans}"
        summary = check_everything(cluster, recorders, watcher)
    report("kill -9 x10", summary, times)
    assert summary["retries"] > 0, "no delivery ever failed: the kills missed the clients"
    out = os.environ.get("SEALTRAIL_FAILOVER_OUT")
    if out:
        Path(out).write_text(json.dumps({
            "kills": len(times), "failover_seconds": times,
            "p50": percentile(times, 50), "p99": percentile(times, 99), "max": max(times),
            "bound": FAILOVER_BOUND}, indent=2) + "\n")
    slow = [round(t, 3) for t in times if t > FAILOVER_BOUND]
    assert not slow, f"failover took longer than {FAILOVER_BOUND} s: {slow} of {times}"


def test_leader_sessions_terminated_by_postgres(tmp_path: Path, pg_store: str) -> None:
    """``pg_terminate_backend`` of every session of the leader node (found by the client
    ports of its process's sockets), three times: a node (another, or the same once it
    reconnected) holds the lock in a new session and says it leads within 5 s; the node
    whose sessions went answers /readyz 200 again; ingest goes on; nothing is lost."""
    times: list[float] = []
    with running(tmp_path, pg_store) as (cluster, recorders, watcher):
        ingest_for(recorders, 1.0, at_least=20)
        for _ in range(3):
            leader = cluster.the_leader()
            holder = cluster.lock_holder()
            assert holder is not None
            assert cluster.node_of_backend(holder) is leader
            gone = cluster.terminate_backends(leader)
            start = time.monotonic()
            assert holder in gone, f"the lock session {holder} was not among {gone}"
            new = wait_new_holder(cluster, set(gone), start)
            times.append(time.monotonic() - start)
            wait_ready(leader, 30)
            ingest_for(recorders, 0.5, at_least=10, through=leader)
            assert cluster.the_leader() is new, f"the leadership moved ({cluster.losses()})"
        summary = check_everything(cluster, recorders, watcher)
    report("pg_terminate_backend x3", summary, times)
    slow = [round(t, 3) for t in times if t > FAILOVER_BOUND]
    assert not slow, f"no new leader within {FAILOVER_BOUND} s: {slow} of {times}"


def wait_new_holder(cluster: Cluster, gone: set[int], start: float, timeout: float = 30.0,
                    *, exclude: Node | None = None, healthz: bool = True) -> Node:
    """Wait until a session not in ``gone`` (and not of ``exclude``) holds the leader lock
    and (``healthz``) its node says it leads and no other node does: that node."""
    while True:
        holder = cluster.lock_holder()
        if holder is not None and holder not in gone:
            node = cluster.node_of_backend(holder)
            if node is not None and node is not exclude and (
                    not healthz or cluster.leaders([n for n in cluster.nodes if n.up]) == [node]):
                return node
        assert time.monotonic() - start < timeout, \
            f"no leader in a new session within {timeout} s (lock held by {holder})"
        time.sleep(0.02)


def wait_ready(node: Node, timeout: float) -> float:
    """Wait until ``node`` answers /readyz 200; the seconds waited."""
    start = time.monotonic()
    while True:
        resp = node.get("/readyz", timeout=2.0)
        if resp is not None and resp.status_code == 200:
            return time.monotonic() - start
        assert time.monotonic() - start < timeout, (
            f"{node} not ready within {timeout} s: "
            f"{None if resp is None else (resp.status_code, resp.text)}\n{node.tail()}")
        time.sleep(0.1)


def test_leader_paused_past_its_lease_then_resumed(tmp_path: Path, pg_store: str) -> None:
    """SIGSTOP of the leader, twice (the first time, if it can be caught so in a few tries,
    while it holds the write lock in the middle of a commit): a session of another node holds
    the leader lock within 5 s (lease + a poll) and that node's /healthz says it leads; the
    paused node stays stopped a while longer while the others commit; after SIGCONT it says
    ``leader: false`` within 5 s and the other stays the one leader; nothing it had started
    to sign is published: every checkpoint seen or kept is consistent, verify passes.

    The bound is asserted on the lock (``pg_locks``), as /healthz of a healthy node may not
    answer while its commits wait for the paused node's write lock (see
    :func:`test_healthz_answers_while_a_checkpoint_read_waits_for_the_write_lock`); the time
    /healthz took to say so is printed."""
    by_lock: list[float] = []
    by_healthz: list[float] = []
    demoted: list[float] = []
    mid_commit: list[bool] = []
    with running(tmp_path, pg_store) as (cluster, recorders, watcher):
        ingest_for(recorders, 1.0, at_least=20)
        for round_ in range(2):
            leader = cluster.the_leader()
            holder = cluster.lock_holder()
            # A pause that catches the node inside a pipelined statement stream would hold
            # the write lock for as long as it lasts (test_a_writer_stalled_inside_a_
            # statement_stream_...): resumed at once and tried again, as is a first-round
            # pause that does not catch it idle inside its write transaction.
            for _ in range(30):
                leader.pause()
                start = time.monotonic()
                caught = cluster.idle_in_transaction(leader)
                if (caught or round_ > 0) and not cluster.stalled_mid_statement(leader):
                    break
                leader.resume()
                time.sleep(0.15)
                assert cluster.lock_holder() == holder
            else:
                pytest.fail("no pause caught the leader as this round wants in 30 tries")
            mid_commit.append(caught)
            new = wait_new_holder(cluster, {holder} if holder is not None else set(), start,
                                  exclude=leader, healthz=False)
            by_lock.append(time.monotonic() - start)
            assert new is not leader
            node, _ = cluster.wait_leader(exclude=[leader], timeout=30)
            by_healthz.append(time.monotonic() - start)
            assert node is new
            ingest_for(recorders, 2.0, at_least=10)  # the others commit meanwhile
            leader.resume()
            start = time.monotonic()
            while leader.is_leader(timeout=10.0) is not False:
                assert time.monotonic() - start < 30, f"{leader} still leads after SIGCONT"
                time.sleep(0.05)
            demoted.append(time.monotonic() - start)
            assert cluster.the_leader() is new, f"the leadership moved ({cluster.losses()})"
            ingest_for(recorders, 0.5, at_least=20)
        summary = check_everything(cluster, recorders, watcher)
    report("SIGSTOP x2", summary, by_lock)
    print(f"[multinode] SIGSTOP: paused mid-commit {mid_commit}; /healthz said another leads "
          f"after {[round(t, 3) for t in by_healthz]} s; the resumed leader said "
          f"leader=false after {[round(t, 3) for t in demoted]} s")
    slow = [round(t, 3) for t in by_lock if t > FAILOVER_BOUND]
    assert not slow, f"no failover within {FAILOVER_BOUND} s of SIGSTOP: {slow} of {by_lock}"
    late = [round(t, 3) for t in demoted if t > FAILOVER_BOUND]
    assert not late, f"a resumed leader kept saying it leads: {late} s"


def test_healthz_answers_while_a_checkpoint_read_waits_for_the_write_lock(
        tmp_path: Path, pg_store: str) -> None:
    """Another session holds the log's write lock (the state row, as a node paused in the
    middle of a commit does) while a node has a commit waiting for it and is asked for its
    checkpoint: the node's /healthz still answers within 1 s."""
    cluster = Cluster.create(tmp_path, pg_store, count=1)
    node = cluster.nodes[0]
    headers = {"authorization": f"Bearer {cluster.token}"}
    event = [{"actor": {"id": "probe"}, "action": "probe.step", "outcome": "success"}]
    answers: dict[str, int] = {}
    worst: dict[str, float] = {}

    def call(name: str, method: str, path: str, body: object = None) -> None:
        resp = httpx.request(method, node.url + path, headers=headers, json=body, timeout=60)
        answers[name] = resp.status_code

    try:
        cluster.start()
        call("warm", "POST", "/v1/logs/default/events", event)
        for path in ("/v1/logs/default/checkpoint", "/tlog/default/checkpoint"):
            with psycopg.connect(pg_store) as hold:  # a transaction, open until rollback
                hold.execute("UPDATE sealtrail_default.state SET commits = commits + 1 "
                             "WHERE id = 0")
                ingest = threading.Thread(target=call,
                                          args=("ingest", "POST", "/v1/logs/default/events",
                                                event))
                ingest.start()
                cluster.wait_lock_waiter(node, timeout=20)
                read = threading.Thread(target=call, args=(path, "GET", path))
                read.start()
                worst[path] = 0.0
                until = time.monotonic() + 2.0
                while time.monotonic() < until:
                    began = time.monotonic()
                    with contextlib.suppress(httpx.HTTPError):
                        httpx.get(node.url + "/healthz", timeout=3.0)
                    worst[path] = max(worst[path], time.monotonic() - began)
                    time.sleep(0.05)
                hold.rollback()
            ingest.join(60)
            read.join(60)
            assert (answers["ingest"], answers[path]) == (201, 200), answers
    finally:
        cluster.close()
    print(f"\n[multinode] slowest /healthz while a checkpoint read waited: "
          f"{ {k: round(v, 3) for k, v in worst.items()} } s")
    assert max(worst.values()) < 1.0, f"/healthz blocked: {worst}"


def test_a_writer_stalled_inside_a_statement_stream_does_not_hold_the_write_lock(
        tmp_path: Path, pg_store: str) -> None:
    """A session with a node's own settings takes the write lock and stops in the middle of
    a pipelined statement stream (what a node paused between the messages of a pipeline
    would leave; the store itself no longer pipelines its writes): a node waiting for the
    write lock ends that session once it has been stalled longer than the idle timeout, so
    its ingest is answered within that timeout plus 5 s."""
    cluster = Cluster.create(tmp_path, pg_store, count=1, args=("--no-monitor",))
    node = cluster.nodes[0]
    headers = {"authorization": f"Bearer {cluster.token}"}
    event = [{"actor": {"id": "probe"}, "action": "probe.step", "outcome": "success"}]
    bound = IDLE_IN_TRANSACTION_TIMEOUT + 5.0
    answer: list[tuple[int | str, float]] = []

    def ingest() -> None:
        began = time.monotonic()
        try:
            resp = httpx.post(node.url + "/v1/logs/default/events", headers=headers,
                              json=event, timeout=bound)
            answer.append((resp.status_code, time.monotonic() - began))
        except httpx.HTTPError as exc:
            answer.append((type(exc).__name__, time.monotonic() - began))

    try:
        cluster.start()
        stalled = psycopg.connect(store_conninfo(pg_store), autocommit=True)
        try:
            stalled.execute("BEGIN")
            # Entered and never left (kept referenced: a collected context manager would
            # leave it), so no Sync follows the statement.
            pipeline = stalled.pipeline()
            pipeline.__enter__()
            stalled.execute("UPDATE sealtrail_default.state SET commits = commits + 1 "
                            "WHERE id = 0")
            stalled.pgconn.flush()
            deadline = time.monotonic() + 10
            while not cluster.holds_state_lock(stalled.info.backend_pid):
                assert time.monotonic() < deadline, "the stalled session never took the lock"
                time.sleep(0.05)
            assert cluster.stalled_backend(stalled.info.backend_pid), \
                "the session is not stalled mid-statement (a Sync went out?)"
            sender = threading.Thread(target=ingest)
            sender.start()
            sender.join(bound + 10)
            # The node's writer fenced it: PostgreSQL ended the stalled session.
            assert not cluster.stalled_backend(stalled.info.backend_pid)
            del pipeline
        finally:
            with contextlib.suppress(Exception):
                stalled.pgconn.finish()
    finally:
        cluster.close()
    print(f"\n[multinode] ingest while a writer stalled mid-statement: {answer}")
    assert answer, "the ingest request never ended"
    assert answer[0][0] == 201, f"not stored within {bound} s: {answer}"


def _postgres_restartable(store: str) -> str | None:
    """Why this test cannot restart the PostgreSQL it uses (None: it can)."""
    if os.geteuid() != 0:
        return "restarting PostgreSQL needs root"
    if shutil.which("pg_ctlcluster") is None or shutil.which("pg_isready") is None:
        return "pg_ctlcluster/pg_isready are missing"
    if urlsplit(store).hostname not in {"127.0.0.1", "localhost"}:
        return "the test database is not on this machine's cluster"
    return None


def pg_ready() -> bool:
    """Whether the loopback PostgreSQL accepts connections."""
    return subprocess.run(["pg_isready", "-q", "-h", "127.0.0.1"], check=False,
                          timeout=30).returncode == 0


def test_postgres_restarted_during_ingest(tmp_path: Path, pg_store: str) -> None:
    """``pg_ctlcluster 15 main restart -m fast`` while six clients ingest: every node answers
    /readyz 200 again within 30 s, a node leads again, ingest resumes, nothing acknowledged
    is lost, verify passes. PostgreSQL is started again whatever happens."""
    reason = _postgres_restartable(pg_store)
    if reason is not None:
        pytest.skip(reason)
    try:
        with running(tmp_path, pg_store) as (cluster, recorders, watcher):
            ingest_for(recorders, 1.5, at_least=20)
            res = subprocess.run(["pg_ctlcluster", "15", "main", "restart", "-m", "fast"],
                                 capture_output=True, text=True, timeout=120, check=False)
            assert res.returncode == 0, f"restart failed: {res.stdout}{res.stderr}"
            start = time.monotonic()
            ready = []
            for node in cluster.nodes:
                wait_ready(node, 30)
                ready.append(time.monotonic() - start)
            _, led = cluster.wait_leader(timeout=30)
            ingest_for(recorders, 0.5, at_least=50)
            resumed = time.monotonic() - start
            cluster.the_leader()
            summary = check_everything(cluster, recorders, watcher)
        report("PostgreSQL restart", summary)
        print(f"[multinode] after the restart: ready in {[round(t, 3) for t in ready]} s, "
              f"a leader after {led:.3f} s, 50 more receipts after {resumed:.3f} s")
    finally:
        if not pg_ready():
            subprocess.run(["pg_ctlcluster", "15", "main", "start"], check=False, timeout=120)
            deadline = time.monotonic() + 60
            while not pg_ready() and time.monotonic() < deadline:
                time.sleep(0.5)

