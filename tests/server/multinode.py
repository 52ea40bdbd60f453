"""Several ``sealtrail serve --store postgresql://...`` nodes on one database, and spooling
SDK clients recording through them: the parts of tests/server/test_multinode.py.

A :class:`Cluster` is made by the real console commands (``init``, ``keys create``) in a seed
data directory; each :class:`Node` gets a data directory of its own holding copies of the
log's key files, a fixed loopback port (kept across restarts, so its clients find it again)
and runs ``serve --workers 1`` in a subprocess that the tests kill, pause and restart. A
:class:`Recorder` is one SDK client with its own spool recording events in a thread; a
:class:`Watcher` collects every checkpoint note the nodes serve while the test runs.
:func:`check_everything` is the end of every test: all delivered, each acknowledged event
stored exactly once where its receipt says, every checkpoint seen a prefix of the final
tree (consistency proofs fetched from the nodes), ``verify`` exits 0, every spool empty.
"""

from __future__ import annotations

import contextlib
import math
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import httpx
import psutil
import psycopg

from sealtrail.client import Client, ClientError, Receipt
from sealtrail.core.checkpoint import open_checkpoint
from sealtrail.core.merkle.hashing import leaf_hash
from sealtrail.core.note import Verifier
from sealtrail.core.proofs import ConsistencyProof
from sealtrail.log.auditlog import AuditLog
from sealtrail.server.pg_leader import lock_key
from tests.ports import free_port

SEALTRAIL: Final = [sys.executable, "-m", "sealtrail.cli"]
START_TIMEOUT: Final = 60.0  # seconds for a (re)started node to answer /healthz (busy machine)
ACTION: Final = "multinode.step"
PG_PORT: Final = 5432


def sealtrail(data: Path, store: str, *args: str,
              timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
    """Run ``sealtrail --data DATA --store STORE ARGS`` to completion."""
    return subprocess.run([*SEALTRAIL, "--data", str(data), "--store", store, *args],
                          capture_output=True, text=True, timeout=timeout, check=False,
                          stdin=subprocess.DEVNULL, env={**os.environ, "COLUMNS": "200"})


def percentile(values: Iterable[float], pct: float) -> float:
    """The nearest-rank percentile (of 10 values, p99 is the largest)."""
    ordered = sorted(values)
    if not ordered:
        return math.nan
    return ordered[max(0, math.ceil(pct / 100 * len(ordered)) - 1)]


@dataclass(eq=False)
class Node:
    """One ``serve --workers 1`` node: its data directory, port and (while running) process."""

    index: int
    data: Path
    store: str
    port: int
    out: Path
    args: tuple[str, ...] = ()
    proc: subprocess.Popen[bytes] | None = None
    paused: bool = False
    starts: int = 0
    left: list[psutil.Process] = field(default_factory=list)  # children of killed processes

    def __str__(self) -> str:
        return f"node {self.index} (port {self.port}, pid {self.pid})"

    @property
    def url(self) -> str:
        """Where the node answers."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        """The serving process (None while stopped)."""
        return None if self.proc is None else self.proc.pid

    @property
    def up(self) -> bool:
        """Running and not paused: it should answer."""
        return self.proc is not None and not self.paused

    def spawn(self) -> None:
        """Start the process (do not wait for it)."""
        assert self.proc is None, f"{self} already runs"
        self.starts += 1
        with self.out.open("ab") as out:
            out.write(f"--- start {self.starts}\n".encode())
            out.flush()
            self.proc = subprocess.Popen(
                [*SEALTRAIL, "--data", str(self.data), "--store", self.store, "serve",
                 "--host", "127.0.0.1", "--port", str(self.port), "--workers", "1", *self.args],
                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
        self.paused = False

    def wait_up(self, timeout: float = START_TIMEOUT) -> None:
        """Wait until /healthz answers 200 (fail with the node's output if it does not)."""
        deadline = time.monotonic() + timeout
        with httpx.Client(base_url=self.url, timeout=2) as http:
            while True:
                if self.proc is None or self.proc.poll() is not None:
                    code = None if self.proc is None else self.proc.returncode
                    raise AssertionError(f"{self} exited ({code}):\n{self.tail()}")
                with contextlib.suppress(httpx.TransportError):
                    if http.get("/healthz").status_code == 200:
                        return
                if time.monotonic() > deadline:
                    raise AssertionError(f"{self} did not answer in {timeout} s:\n{self.tail()}")
                time.sleep(0.05)

    def start(self) -> None:
        """Start the process and wait until it answers."""
        self.spawn()
        self.wait_up()

    def kill(self) -> None:
        """SIGKILL (as a crash, or kill -9): nothing of it runs after this returns."""
        proc, self.proc = self.proc, None
        if proc is not None:
            with contextlib.suppress(psutil.Error):
                self.left.extend(psutil.Process(proc.pid).children(recursive=True))
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(10)
        self.paused = False

    def orphans(self, timeout: float = 15.0) -> list[str]:
        """The children of killed processes (the monitor) still running ``timeout`` seconds
        after their parent died (then killed, so nothing outlives the test)."""
        deadline = time.monotonic() + timeout
        alive = [p for p in self.left if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
        while alive and time.monotonic() < deadline:
            time.sleep(0.1)
            alive = [p for p in alive if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
        found = []
        for p in alive:
            with contextlib.suppress(psutil.Error):
                found.append(" ".join(p.cmdline()))
                p.kill()
        self.left.clear()
        return found

    def pause(self) -> None:
        """SIGSTOP the process."""
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGSTOP)
        self.paused = True

    def resume(self) -> None:
        """SIGCONT the process."""
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGCONT)
        self.paused = False

    def stop(self) -> None:
        """SIGTERM (a graceful stop), SIGKILL when it hangs for 20 s."""
        if self.proc is None:
            return
        if self.paused:
            self.resume()
        proc, self.proc = self.proc, None
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def get(self, path: str, timeout: float = 1.0) -> httpx.Response | None:
        """GET ``path`` on a new connection; None when the node does not answer."""
        if not self.up:
            return None
        try:
            return httpx.get(self.url + path, timeout=timeout)
        except httpx.HTTPError:
            return None

    def healthz(self, timeout: float = 1.0) -> dict[str, Any] | None:
        """/healthz's answer, None when the node does not answer."""
        resp = self.get("/healthz", timeout)
        if resp is None or resp.status_code != 200:
            return None
        answer: dict[str, Any] = resp.json()
        return answer

    def is_leader(self, timeout: float = 1.0) -> bool | None:
        """What /healthz says of leading (None: no answer)."""
        answer = self.healthz(timeout)
        return None if answer is None else bool(answer["leader"])

    def db_ports(self) -> set[int]:
        """The local ports of this node's connections to PostgreSQL (the ``client_port`` of
        its backends in ``pg_stat_activity``)."""
        if self.proc is None:
            return set()
        try:
            conns = psutil.Process(self.proc.pid).net_connections(kind="tcp")
        except psutil.Error:
            return set()
        return {c.laddr.port for c in conns if c.raddr and c.raddr.port == PG_PORT}

    def tail(self, chars: int = 6000) -> str:
        """The end of the node's output."""
        try:
            return self.out.read_text(errors="replace")[-chars:]
        except OSError:
            return ""


@dataclass(eq=False)
class Cluster:
    """Nodes on one PostgreSQL store, sharing the log's key files; an ingest token."""

    store: str
    root: Path
    seed: Path
    token: str
    vkey: str
    nodes: list[Node] = field(default_factory=list)

    @classmethod
    def create(cls, root: Path, store: str, count: int = 3,
               args: tuple[str, ...] = ()) -> Cluster:
        """``init`` the log ``default`` in ``store``, create an ingest key, and give each of
        ``count`` nodes a data directory with copies of the key files (none started)."""
        seed = root / "seed"
        res = sealtrail(seed, store, "init")
        assert res.returncode == 0, res.stderr
        res = sealtrail(seed, store, "keys", "create", "--role", "ingest", "--name", "multinode")
        assert res.returncode == 0, res.stderr
        token = res.stdout.strip().splitlines()[-1]
        keys = seed / "default"
        cluster = cls(store, root, seed, token, (keys / "verifier.vkey").read_text().strip())
        for i in range(count):
            data = root / f"node{i}"
            (data / "default").mkdir(parents=True, mode=0o700)
            for name in ("signing.key", "verifier.vkey"):
                shutil.copy2(keys / name, data / "default" / name)  # keeps 0600
            cluster.nodes.append(Node(i, data, store, free_port(), root / f"node{i}.out",
                                      args))
        return cluster

    @property
    def verifier(self) -> Verifier:
        """The log's verifier key."""
        return Verifier.parse(self.vkey)

    def start(self) -> None:
        """Start every node (at once) and wait until each answers."""
        for node in self.nodes:
            node.spawn()
        for node in self.nodes:
            node.wait_up()

    def close(self) -> None:
        """Stop every node still running."""
        for node in self.nodes:
            if node.paused:
                node.resume()
        for node in self.nodes:
            if node.proc is not None:
                node.proc.terminate()
        for node in self.nodes:
            node.stop()

    def leaders(self, among: Iterable[Node] | None = None) -> list[Node]:
        """The running nodes whose /healthz says they lead."""
        return [n for n in (self.nodes if among is None else among) if n.is_leader()]

    def wait_leader(self, exclude: Iterable[Node] = (), timeout: float = 10.0,
                    ) -> tuple[Node, float]:
        """Poll the running nodes not in ``exclude`` until one says it leads: that node and
        the seconds waited."""
        skip = set(exclude)
        start = time.monotonic()
        with contextlib.ExitStack() as stack:
            https = {n: stack.enter_context(httpx.Client(base_url=n.url, timeout=0.5))
                     for n in self.nodes if n not in skip}
            while True:
                for node, http in https.items():
                    if not node.up:
                        continue
                    try:
                        resp = http.get("/healthz")
                    except httpx.HTTPError:
                        continue
                    if resp.status_code == 200 and resp.json()["leader"] is True:
                        return node, time.monotonic() - start
                if time.monotonic() - start > timeout:
                    raise AssertionError(
                        f"no node of {sorted(n.index for n in https)} led within {timeout} s; "
                        + "; ".join(f"{n}: {n.healthz()}" for n in self.nodes))
                time.sleep(0.02)

    def the_leader(self, timeout: float = 10.0) -> Node:
        """The one leader of a settled cluster (fails when none, or two, say so for
        ``timeout`` seconds)."""
        node, _ = self.wait_leader(timeout=timeout)
        deadline = time.monotonic() + timeout
        while True:
            leaders = self.leaders([n for n in self.nodes if n.up])
            if leaders == [node]:
                return node
            assert time.monotonic() < deadline, \
                f"{node} led, then the leaders were {[str(n) for n in leaders]}"
            time.sleep(0.1)

    def losses(self) -> str:
        """Each node's lines saying why it stopped leading (for failure messages)."""
        return "; ".join(f"node {n.index}: " + " | ".join(
            line.strip() for line in n.tail(100_000).splitlines() if "no longer leads" in line)
            for n in self.nodes)

    def verify(self) -> subprocess.CompletedProcess[str]:
        """``sealtrail --store URL --data SEED verify``."""
        return sealtrail(self.seed, self.store, "verify")

    def lock_holder(self) -> int | None:
        """The backend pid holding the jobs' advisory lock (None: nobody leads)."""
        key = lock_key("jobs")
        classid, objid = (key >> 32) & 0xFFFFFFFF, key & 0xFFFFFFFF
        with psycopg.connect(self.store, autocommit=True, connect_timeout=3) as db:
            row = db.execute(
                "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted "
                "AND objsubid = 1 AND classid::bigint = %s AND objid::bigint = %s "
                "AND database = (SELECT oid FROM pg_database WHERE datname = "
                "current_database())", (classid, objid)).fetchone()
        return None if row is None else int(row[0])

    def node_of_backend(self, backend: int) -> Node | None:
        """The node whose connection a backend serves (by its client port)."""
        with psycopg.connect(self.store, autocommit=True, connect_timeout=3) as db:
            row = db.execute("SELECT client_port FROM pg_stat_activity WHERE pid = %s",
                             (backend,)).fetchone()
        if row is None or row[0] is None:
            return None
        for node in self.nodes:
            if int(row[0]) in node.db_ports():
                return node
        return None

    def idle_in_transaction(self, node: Node) -> bool:
        """Whether a session of ``node`` holds the write lock (an open write transaction on
        the state row) while it waits for the node (paused: idle in transaction)."""
        ports = sorted(node.db_ports())
        with psycopg.connect(self.store, autocommit=True, connect_timeout=3) as db:
            row = db.execute(
                "SELECT count(*) FROM pg_stat_activity a JOIN pg_locks l ON l.pid = a.pid "
                "WHERE a.client_port = ANY(%s) AND a.state = 'idle in transaction' "
                "AND l.relation = 'sealtrail_default.state'::regclass "
                "AND l.mode = 'RowExclusiveLock'", (ports,)).fetchone()
        return row is not None and int(row[0]) > 0

    def holds_state_lock(self, backend: int) -> bool:
        """Whether session ``backend`` holds a write on the log's state row."""
        with psycopg.connect(self.store, autocommit=True, connect_timeout=3) as db:
            row = db.execute(
                "SELECT count(*) FROM pg_locks WHERE pid = %s AND "
                "relation = 'sealtrail_default.state'::regclass AND mode = 'RowExclusiveLock'",
                (backend,)).fetchone()
        return row is not None and int(row[0]) > 0

    def stalled_backend(self, backend: int) -> bool:
        """Whether session ``backend`` is ``active`` waiting for its client (ClientRead)."""
        with psycopg.connect(self.store, autocommit=True, connect_timeout=3) as db:
            row = db.execute("SELECT state, wait_event FROM pg_stat_activity WHERE pid = %s",
                             (backend,)).fetchone()
        return row == ("active", "ClientRead")

    def stalled_mid_statement(self, node: Node) -> bool:
        """Whether a session of ``node`` holds the write lock while PostgreSQL waits for the
        rest of a statement stream (``active``, ``ClientRead``: a pipelined executemany cut
        by a pause), where no idle timeout applies."""
        ports = sorted(node.db_ports())
        with psycopg.connect(self.store, autocommit=True, connect_timeout=3) as db:
            row = db.execute(
                "SELECT count(*) FROM pg_stat_activity a JOIN pg_locks l ON l.pid = a.pid "
                "WHERE a.client_port = ANY(%s) AND a.state = 'active' "
                "AND a.wait_event = 'ClientRead' "
                "AND l.relation = 'sealtrail_default.state'::regclass "
                "AND l.mode = 'RowExclusiveLock'", (ports,)).fetchone()
        return row is not None and int(row[0]) > 0

    def wait_lock_waiter(self, node: Node, timeout: float) -> None:
        """Wait until a session of ``node`` waits for a lock (its commit is queued)."""
        deadline = time.monotonic() + timeout
        with psycopg.connect(self.store, autocommit=True, connect_timeout=3) as db:
            while True:
                ports = sorted(node.db_ports())
                row = db.execute("SELECT count(*) FROM pg_stat_activity WHERE client_port = "
                                 "ANY(%s) AND wait_event_type = 'Lock'", (ports,)).fetchone()
                if row is not None and int(row[0]) > 0:
                    return
                assert time.monotonic() < deadline, f"{node} never waited for the lock"
                time.sleep(0.05)

    def terminate_backends(self, node: Node) -> list[int]:
        """``pg_terminate_backend`` every backend serving ``node`` (by the client ports of
        its process's sockets): the pids terminated."""
        ports = sorted(node.db_ports())
        with psycopg.connect(self.store, autocommit=True, connect_timeout=3) as db:
            rows = db.execute(
                "SELECT pid, pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE client_port = ANY(%s) AND pid <> pg_backend_pid()", (ports,)).fetchall()
        return [int(pid) for pid, done in rows if done]


class Recorder:
    """One SDK client (its own spool) recording events through ``node`` in a thread, at
    ``pace`` seconds between records; it asks the node to prove a receipt now and then
    (``verify_receipt``: the client's witness refuses a fork or a rollback)."""

    def __init__(self, name: str, node: Node, cluster: Cluster, spool: Path,
                 pace: float = 0.03) -> None:
        self.name, self.node, self.pace = name, node, pace
        self.spool = spool
        self.recorded: list[str] = []
        self.receipts: list[Receipt] = []
        self.errors: list[BaseException] = []
        self.verified = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self.client = Client(node.url, cluster.token, spool_path=spool, verifier=cluster.vkey,
                             batch_size=20, flush_interval=0.05, timeout=3.0, max_backoff=0.5,
                             on_receipt=self._receipt)
        self._thread = threading.Thread(target=self._run, name=f"recorder-{name}", daemon=True)

    def _receipt(self, receipt: Receipt) -> None:
        with self._lock:
            self.receipts.append(receipt)

    @property
    def acknowledged(self) -> int:
        """Receipts received so far."""
        with self._lock:
            return len(self.receipts)

    def start(self) -> None:
        """Start recording."""
        self._thread.start()

    def stop(self) -> None:
        """Stop recording (what was recorded stays to be delivered)."""
        self._stop.set()
        self._thread.join(30)
        assert not self._thread.is_alive(), f"recorder {self.name} hangs"

    def _run(self) -> None:
        n = 0
        try:
            while not self._stop.is_set():
                self.recorded.append(self.client.record(
                    actor={"id": f"recorder-{self.name}"}, action=ACTION, outcome="success",
                    metadata={"recorder": self.name, "n": n}))
                n += 1
                if n % 50 == 0:
                    self._prove()
                self._stop.wait(self.pace)
        except BaseException as exc:  # reported by check_everything
            self.errors.append(exc)

    def _prove(self) -> None:
        with self._lock:
            last = self.receipts[-1] if self.receipts else None
        if last is None:
            return
        try:
            self.client.verify_receipt(last)
        except ClientError:
            return  # the node is down or restarting: proven another time
        self.verified += 1


class Watcher:
    """Fetches ``/v1/logs/default/checkpoint`` from the running nodes in turn, every
    ``every`` seconds, keeping every distinct note seen."""

    def __init__(self, cluster: Cluster, token: str, every: float = 0.1) -> None:
        self.cluster, self.token, self.every = cluster, token, every
        self.notes: set[str] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="checkpoint-watcher",
                                        daemon=True)

    def start(self) -> None:
        """Start watching."""
        self._thread.start()

    def stop(self) -> None:
        """Stop watching."""
        self._stop.set()
        self._thread.join(10)

    def _run(self) -> None:
        headers = {"authorization": f"Bearer {self.token}"}
        turn = 0
        while not self._stop.wait(self.every):
            node = self.cluster.nodes[turn % len(self.cluster.nodes)]
            turn += 1
            if not node.up:
                continue
            try:
                resp = httpx.get(f"{node.url}/v1/logs/default/checkpoint", headers=headers,
                                 timeout=1.0)
            except httpx.HTTPError:
                continue
            if resp.status_code == 200:
                self.notes.add(resp.text)


def _consistency(node: Node, token: str, first: int, second: int) -> ConsistencyProof:
    resp = httpx.get(f"{node.url}/v1/logs/default/proof/consistency",
                     params={"first": first, "second": second},
                     headers={"authorization": f"Bearer {token}"}, timeout=10)
    assert resp.status_code == 200, f"{node}: consistency {first}->{second}: {resp.text}"
    return ConsistencyProof.parse(resp.content)


def check_everything(cluster: Cluster, recorders: list[Recorder], watcher: Watcher,
                     *, flush_timeout: float = 90.0) -> dict[str, int]:
    """Stop recording, deliver everything, and check the run (see the module's text); a
    summary of what was checked."""
    for rec in recorders:
        rec.stop()
    for rec in recorders:
        assert not rec.errors, f"recorder {rec.name} raised: {rec.errors!r}"
        assert rec.client.flush(flush_timeout), (
            f"recorder {rec.name}: not delivered in {flush_timeout} s: {rec.client.pending} "
            f"pending, last error {rec.client.last_error}")
        assert rec.client.pending == 0
        assert (rec.client.rejected, rec.client.dropped) == (0, 0), rec.name
    watcher.stop()
    seen = {rec.client.checkpoint for rec in recorders} - {None}  # each client's newest
    retries = sum(rec.client.retries for rec in recorders)
    for rec in recorders:
        rec.client.close()
        with contextlib.closing(sqlite3.connect(rec.spool)) as spool:
            left = spool.execute("SELECT count(*) FROM events").fetchone()[0]
        assert left == 0, f"recorder {rec.name}: {left} event(s) left in the spool"

    recorded = [ident for rec in recorders for ident in rec.recorded]
    assert len(set(recorded)) == len(recorded), "an id was recorded twice"
    with AuditLog.open(cluster.seed, "default", store=cluster.store, create=False) as alog:
        events = [(entry.index, entry.leaf, entry.event()) for entry in alog.entries(0)]
        final = alog.checkpoint()
        kept = [k.note for k in alog.kept_checkpoints()]
    ours = [(index, leaf, ev) for index, leaf, ev in events if ev.get("action") == ACTION]
    counts = Counter(str(ev["id"]) for _, _, ev in ours)
    twice = sorted(i for i, n in counts.items() if n > 1)
    missing = sorted(set(recorded) - set(counts))
    extra = sorted(set(counts) - set(recorded))
    assert not twice, f"{len(twice)} event(s) stored more than once: {twice[:5]}"
    assert not missing, f"{len(missing)} recorded event(s) missing: {missing[:5]}"
    assert not extra, f"{len(extra)} event(s) nobody recorded: {extra[:5]}"

    # Each receipt (also a duplicate's: the original's) names where its event is.
    by_index = {index: (leaf, ev) for index, leaf, ev in events}
    receipts = 0
    for rec in recorders:
        for receipt in rec.receipts:
            leaf, ev = by_index[receipt.index]
            assert ev["id"] == receipt.id, f"receipt {receipt} names another entry"
            assert leaf_hash(leaf) == receipt.leaf_hash, f"receipt {receipt}: leaf hash"
            assert receipt.checkpoint_size <= final.checkpoint.size
            receipts += 1
        assert {r.id for r in rec.receipts} == set(rec.recorded), \
            f"recorder {rec.name}: not every recorded event was acknowledged"
        where = {str(ev["id"]): index for index, _, ev in ours}
        positions = [where[ident] for ident in rec.recorded]
        assert positions == sorted(positions), f"recorder {rec.name}'s events out of order"

    # Every checkpoint seen (and kept) is a prefix of the final tree: any two are consistent.
    verifier = cluster.verifier
    roots: dict[int, set[bytes]] = {}
    notes = {note: open_checkpoint(note, verifier)
             for note in {*watcher.notes, *kept, *(n for n in seen if n), final.note}}
    for cp in notes.values():
        roots.setdefault(cp.size, set()).add(cp.root)
    forks = {size: len(r) for size, r in roots.items() if len(r) > 1}
    assert not forks, f"two roots signed for one size (a fork): {forks}"
    up = [n for n in cluster.nodes if n.up]
    proved = 0
    for k, (note, cp) in enumerate(sorted(notes.items(), key=lambda item: item[1].size)):
        if cp.size == 0 or cp.size == final.checkpoint.size:
            assert cp.size == 0 or cp.root == final.checkpoint.root
            continue
        proof = _consistency(up[k % len(up)], cluster.token, cp.size, final.checkpoint.size)
        proof.verify_signed(verifier, note, final.note)
        proved += 1

    res = cluster.verify()
    assert res.returncode == 0, f"verify exited {res.returncode}: {res.stdout}{res.stderr}"
    return {"events": len(recorded), "receipts": receipts, "checkpoints": len(notes),
            "proved": proved, "size": final.checkpoint.size,
            "client_verified": sum(rec.verified for rec in recorders), "retries": retries,
            "duplicates": sum(r.duplicate for rec in recorders for r in rec.receipts)}

