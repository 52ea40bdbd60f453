"""Scratch PostgreSQL databases and ``sealtrail serve --store`` nodes, for bench/pg_bench.py.

- :func:`scratch_database`: ``CREATE DATABASE st_bench_<hex>`` on the loopback server (env
  ``SEALTRAIL_BENCH_POSTGRES_ADMIN`` names another admin URL), its URL; ``DROP DATABASE ...
  WITH (FORCE)`` afterwards, whatever is still connected.
- :class:`Cluster`: ``sealtrail init`` once (the default log, encrypted, in the database),
  an ingest key, and N node data directories each holding a copy of the same
  ``default/signing.key`` + ``default/verifier.vkey``; :meth:`Cluster.start` runs
  ``sealtrail --data D_i --store URL serve --workers 1`` for node i (the per-key rate limit
  out of the way, no monitor), :meth:`Cluster.kill` sends SIGKILL to it, :meth:`Cluster.leaders`
  asks every node's ``GET /healthz`` who leads. Nodes are stopped (SIGTERM, then SIGKILL) by
  their own process ids when the cluster is closed; nothing else is touched.

The nodes inherit this process's environment: ``SEALTRAIL_KEK`` (or ``SEALTRAIL_PASSPHRASE``)
must be set before :meth:`Cluster.create`, and is the same for every node.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import httpx
import psutil
import psycopg
from psycopg import sql

ADMIN_URL: Final = os.environ.get("SEALTRAIL_BENCH_POSTGRES_ADMIN",
                                  "postgresql://postgres@127.0.0.1:5432/postgres")
LOG: Final = "default"
SCHEMA: Final = "sealtrail_default"
UNLIMITED: Final = "1000000000"  # serve --rate/--burst: the limiter out of the way
SEALTRAIL: Final = [sys.executable, "-m", "sealtrail.cli"]


def url_of(name: str) -> str:
    """The URL of database ``name`` on the admin URL's server."""
    base, _, _ = ADMIN_URL.rpartition("/")
    return f"{base}/{name}"


@contextlib.contextmanager
def scratch_database(tag: str = "bench") -> Iterator[str]:
    """A new, empty database ``st_<tag>_<hex>``; its URL; dropped (WITH (FORCE)) afterwards."""
    name = f"st_{tag}_{secrets.token_hex(5)}"
    with psycopg.connect(ADMIN_URL, autocommit=True, connect_timeout=5) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield url_of(name)
    finally:
        with psycopg.connect(ADMIN_URL, autocommit=True, connect_timeout=5) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                sql.Identifier(name)))


@dataclass(frozen=True)
class SchemaSize:
    """Bytes of one schema's tables: heap, TOAST (with its index) and indexes."""

    total: int
    heap: int
    toast: int
    indexes: int
    tables: int


def schema_size(url: str, schema: str = SCHEMA) -> SchemaSize:
    """``pg_total_relation_size`` summed over the schema's tables (relkind r, m): each table's
    heap, its TOAST table and TOAST index, and its indexes (a TOAST table lives in pg_toast and
    an index has relkind i, so nothing is counted twice), split into those parts."""
    query = """
        SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0),
               coalesce(sum(pg_relation_size(c.oid, 'main') + pg_relation_size(c.oid, 'fsm')
                            + pg_relation_size(c.oid, 'vm')), 0),
               coalesce(sum(CASE WHEN c.reltoastrelid <> 0
                                 THEN pg_total_relation_size(c.reltoastrelid) ELSE 0 END), 0),
               coalesce(sum(pg_indexes_size(c.oid)), 0),
               count(*)
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = %s AND c.relkind IN ('r', 'm')"""
    with psycopg.connect(url, autocommit=True, connect_timeout=5) as conn:
        row = conn.execute(query, (schema,)).fetchone()
    if row is None:
        raise RuntimeError(f"no size for schema {schema}")
    return SchemaSize(*(int(x) for x in row))


def database_of(url: str) -> str:
    """The database name at the end of a URL made by :func:`url_of`."""
    return url.rpartition("/")[2].partition("?")[0]


def backend_cpu(database: str) -> float:
    """User + system CPU seconds so far of the PostgreSQL backends connected to
    ``database`` (found by their process title, which names the database). Backends that
    ended are not counted, nor shared work (WAL writer, checkpointer, autovacuum): call it
    before and after a measurement while its connections are open."""
    total = 0.0
    for proc in psutil.process_iter(["name", "cmdline"]):
        with contextlib.suppress(psutil.Error):
            title = " ".join(proc.info["cmdline"] or [])
            if title.startswith("postgres:") and f" {database} " in f"{title} ":
                t = proc.cpu_times()
                total += float(t.user) + float(t.system)
    return total


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _run(args: list[str]) -> str:
    """Run a sealtrail command; its standard output (raises with its stderr on failure)."""
    done = subprocess.run([*SEALTRAIL, *args], capture_output=True, text=True, check=False,
                          stdin=subprocess.DEVNULL, timeout=120)
    if done.returncode != 0:
        raise RuntimeError(f"sealtrail {' '.join(args[:4])}... exit {done.returncode}: "
                           f"{done.stderr[-2000:]}")
    return done.stdout


@dataclass
class Node:
    """One ``serve`` process (None while down) and its address."""

    index: int
    data_dir: Path
    port: int
    proc: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@dataclass
class Cluster:
    """N service nodes over one PostgreSQL store (see the module docstring)."""

    root: Path
    url: str
    token: str
    nodes: list[Node] = field(default_factory=list)

    @classmethod
    def create(cls, root: Path, url: str, count: int) -> Cluster:
        """``init`` the default log in ``url``, make an ingest key, and ``count`` node
        directories with the same signing key files (no node started yet)."""
        first = root / "node-0"
        _run(["--data", str(first), "--store", url, "init"])
        lines = _run(["--data", str(first), "--store", url, "keys", "create", "--role",
                      "ingest", "--name", "pg-bench"]).strip().splitlines()
        cluster = cls(root, url, lines[-1].strip())
        for i in range(count):
            data = root / f"node-{i}"
            if i:
                (data / LOG).mkdir(parents=True)
                for name in ("signing.key", "verifier.vkey"):
                    shutil.copy2(first / LOG / name, data / LOG / name)
            cluster.nodes.append(Node(i, data, free_port()))
        return cluster

    def start(self, i: int, timeout: float = 60.0) -> None:
        """Start node ``i`` and wait until its /healthz answers (and its log opens: one
        /readyz that answers at all)."""
        node = self.nodes[i]
        if node.proc is not None and node.proc.poll() is None:
            raise RuntimeError(f"node {i} is already running")
        out = (self.root / f"node-{i}.log").open("ab")
        try:
            node.proc = subprocess.Popen(
                [*SEALTRAIL, "--data", str(node.data_dir), "--store", self.url, "serve",
                 "--host", "127.0.0.1", "--port", str(node.port), "--workers", "1",
                 "--rate", UNLIMITED, "--burst", UNLIMITED, "--no-monitor"],
                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
        finally:
            out.close()
        deadline = time.monotonic() + timeout
        while True:
            if node.proc.poll() is not None:
                raise RuntimeError(f"node {i} exited ({node.proc.returncode}): "
                                   f"{self.log_tail(i)}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{node.base_url}/healthz", timeout=1).status_code == 200:
                    httpx.get(f"{node.base_url}/readyz", timeout=30)
                    return
            if time.monotonic() > deadline:
                raise RuntimeError(f"node {i} did not answer /healthz in {timeout:.0f} s: "
                                   f"{self.log_tail(i)}")
            time.sleep(0.05)

    def cpu_seconds(self) -> float:
        """User + system CPU seconds so far of every running node (all threads)."""
        total = 0.0
        for node in self.nodes:
            if node.proc is not None and node.proc.poll() is None:
                with contextlib.suppress(psutil.Error):
                    t = psutil.Process(node.proc.pid).cpu_times()
                    total += float(t.user) + float(t.system)
        return total

    def log_tail(self, i: int) -> str:
        path = self.root / f"node-{i}.log"
        return path.read_text(errors="replace")[-2000:] if path.exists() else ""

    def kill(self, i: int) -> None:
        """SIGKILL node ``i`` (its own process, by id) and reap it."""
        proc = self.nodes[i].proc
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait(30)

    def stop(self, i: int) -> None:
        """SIGTERM node ``i``; SIGKILL if it has not exited within 20 s."""
        proc = self.nodes[i].proc
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)

    def close(self) -> None:
        for i in range(len(self.nodes)):
            self.stop(i)

    def leaders(self, among: list[int] | None = None, timeout: float = 0.5) -> list[int]:
        """The nodes (of ``among``, default every running one) whose /healthz says
        ``"leader": true`` right now; a node that does not answer is not counted."""
        found: list[int] = []
        for i in among if among is not None else range(len(self.nodes)):
            node = self.nodes[i]
            if node.proc is None or node.proc.poll() is not None:
                continue
            with contextlib.suppress(httpx.HTTPError, ValueError):
                resp = httpx.get(f"{node.base_url}/healthz", timeout=timeout)
                if resp.status_code == 200 and resp.json().get("leader") is True:
                    found.append(i)
        return found


@contextlib.contextmanager
def running_cluster(root: Path, url: str, count: int) -> Iterator[Cluster]:
    """:meth:`Cluster.create` and every node started; every node stopped afterwards."""
    cluster = Cluster.create(root, url, count)
    try:
        for i in range(count):
            cluster.start(i)
        yield cluster
    finally:
        cluster.close()
