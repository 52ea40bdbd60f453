"""Which node of a PostgreSQL store runs the singleton jobs: a leader elected by the database.

Several ``serve --store postgresql://...`` nodes on several machines share one log; the
singleton jobs (retention, scheduled verification, the monitor) must run on one of them. A
file lock (:mod:`sealtrail.server.leader`) cannot span machines, so the database elects:
each node opens a **dedicated** connection (shared with nothing else) and tries
``pg_try_advisory_lock(key)``, a session-level advisory lock on a 64-bit key derived from
the leadership's name (:func:`lock_key`). The node whose session holds it is the leader and
starts the jobs; the others retry every ``interval`` seconds on their own connection.

A session lock lives exactly as long as its session, so everything rests on PostgreSQL
ending the session of a leader that can no longer lead:

- the leader **heartbeats** (``SELECT pg_backend_pid()``) on that connection every
  ``interval``; the session is opened with ``idle_session_timeout = lease``, so a leader
  that stops heartbeating (paused by SIGSTOP, a frozen VM, a wedged process; the kernel
  would keep a stopped process's TCP connection open forever) has its session ended by
  PostgreSQL ``lease`` seconds after its last heartbeat, which releases the lock;
- TCP keepalives and ``tcp_user_timeout`` on both sides of the connection (the values of
  :mod:`sealtrail.store.postgres`, repeated in :data:`SESSION`: the faces may not import a
  store adapter) notice a network cut within a few seconds;
- when a heartbeat fails (``pg_terminate_backend``, PostgreSQL restarted, the session
  ended after a pause, a network cut), the node is no longer leader: ``leader`` turns
  False, ``on_lose()`` runs (stop the singleton jobs), the connection is closed and the
  node follows again, trying on a new connection every ``interval``;
- a node also **fences itself**: a leader whose last successful heartbeat was sent more
  than ``lease - interval`` seconds ago (a heartbeat hanging on a cut network, or a process
  just resumed from a pause) gives up leadership at once, before PostgreSQL can have
  released the lock (that happens ``lease`` after the heartbeat was answered, not sooner).

Failover within 5 s (defaults :data:`POLL_INTERVAL` = 0.5 s, :data:`LEASE` = 3 s, keepalives
idle 2 s + 2 probes 1 s apart, ``tcp_user_timeout`` 4 s):

- leader killed (kill -9, crash, host reboot with a clean TCP reset): PostgreSQL sees the
  socket close at once; a follower leads within ``interval`` (0.5 s) plus a connect;
- leader paused or wedged: its session ends ``lease`` after its last heartbeat; a follower
  leads within ``lease + interval`` (3.5 s);
- network cut between the leader and the database: the server ends the idle session after
  ``lease`` too (no packet from the leader is needed for that), so a follower that still
  reaches the database leads within ``lease + interval`` (3.5 s); the cut-off leader fences
  itself after ``lease - interval`` (2.5 s), before that;
- PostgreSQL restarted: every session is gone; the first node to reconnect leads.

What it does not promise: a leader resumed after a pause runs until its thread notices
(immediately on resume, by the fence) and its jobs may already have done a step in that
instant; the jobs must tolerate a short overlap (the store's write lock and the head
compare-and-swap keep the log itself consistent). The heartbeat thread must get the CPU
at least every ``lease - interval`` seconds, or the node gives leadership up needlessly.

Who leads is visible in PostgreSQL: the session's ``application_name`` is
``sealtrail-leader``, and ``pg_locks`` shows its advisory lock (``locktype = 'advisory'``,
``objsubid = 1``, ``classid``/``objid`` the key's high and low 32 bits).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import queue
import threading
import time
from collections.abc import Callable
from typing import Any, Final

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from sealtrail.server.leader import POLL_INTERVAL

log = logging.getLogger("sealtrail.server")

LEASE: Final = 3.0
"""Seconds a leader session may stay silent before PostgreSQL ends it (``idle_session_timeout``)
and its lock passes on; the bound on a paused leader's failover, less ``interval``."""
APPLICATION_NAME: Final = "sealtrail-leader"
"""``application_name`` of the lock sessions (``pg_stat_activity``)."""
SESSION: Final[dict[str, int]] = {
    "connect_timeout": 5, "keepalives": 1, "keepalives_idle": 2, "keepalives_interval": 1,
    "keepalives_count": 2, "tcp_user_timeout": 4000}
"""libpq settings of the lock session (a parameter the URL names wins): a vanished peer is
noticed within about 4 s; the same keepalives and timeout are set on the server's side."""


def _conninfo(url: str, lease: float) -> str:
    """``url`` with :data:`SESSION`, the application name and the server settings it does
    not set itself (``idle_session_timeout`` = the lease)."""
    given = conninfo_to_dict(url)
    chosen: dict[str, Any] = {**SESSION, "application_name": APPLICATION_NAME, **given}
    extra = {k: v for k, v in chosen.items() if k not in given}
    server = {"tcp_keepalives_idle": chosen["keepalives_idle"],
              "tcp_keepalives_interval": chosen["keepalives_interval"],
              "tcp_keepalives_count": chosen["keepalives_count"],
              "tcp_user_timeout": chosen["tcp_user_timeout"],
              "idle_session_timeout": max(1, round(lease * 1000))}
    options = str(given.get("options") or "")
    added = " ".join(f"-c {k}={v}" for k, v in server.items() if f"{k}=" not in options)
    if added:
        extra["options"] = f"{options} {added}".strip()
    return make_conninfo(url, **extra)


def lock_key(name: str) -> int:
    """The advisory lock key of a leadership: the first 8 bytes of
    sha256("sealtrail-leader:" + name), as a signed 64-bit number."""
    digest = hashlib.sha256(f"sealtrail-leader:{name}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


class PgLeadership:
    """Take the leadership ``name`` of the database at ``url`` when it is free, call
    ``on_acquire`` once per term and ``on_lose`` when a term ends without :meth:`release`.

    Two daemon threads: the *lock* thread alone uses the dedicated connection (heartbeats
    while leading, tries every ``interval`` while following), so a slow ``on_acquire`` or
    ``on_lose`` never delays a heartbeat; the *callback* thread runs the callbacks, one
    after the other in the order of the events (``on_lose`` never overlaps ``on_acquire``),
    and fences (see the module docstring). :meth:`start` tries at once: a node that finds
    the lock free is leader, its ``on_acquire`` run in the caller's thread, before ``start``
    returns; an ``on_acquire`` failing there fails the start, the lock given back.
    :meth:`stop` ends the attempts (a held lock stays held and heartbeated, and its loss
    still calls ``on_lose``); :meth:`release`, once the jobs stopped, gives the lock up
    (``on_lose`` is not called for that).
    """

    def __init__(self, url: str, name: str, on_acquire: Callable[[], None],
                 on_lose: Callable[[], None], *, interval: float = POLL_INTERVAL,
                 lease: float = LEASE) -> None:
        if not 0 < interval < lease:
            raise ValueError(f"the interval ({interval} s) must be shorter than the lease "
                             f"({lease} s)")
        self.name = name
        self.key = lock_key(name)
        self._conninfo = _conninfo(url, lease)
        self._on_acquire = on_acquire
        self._on_lose = on_lose
        self._interval = interval
        self._lease = lease
        self._conn = threading.Lock()  # the connection: the lock thread, start, release
        self._db: psycopg.Connection[tuple[Any, ...]] | None = None
        self._holds = False  # whether _db's session took the lock
        self._state = threading.Lock()  # the flag, the fence and the events
        self._leading = False
        self._valid_until = 0.0  # monotonic: the fence of the current term
        self._events: queue.Queue[str] = queue.Queue()  # "acquired" / "lost", in order
        self._stopping = threading.Event()  # no more attempts to take the lock
        self._ending = threading.Event()  # the threads end (release)
        self._threads: list[threading.Thread] = []

    @property
    def leader(self) -> bool:
        """Whether this node holds the lock (and so started, or is starting, the jobs)."""
        return self._leading

    def start(self) -> None:
        """Try to lead now; then keep heartbeating or trying, in daemon threads."""
        with self._conn:
            took = self._take()
        if took:
            self._events.get_nowait()  # "acquired": run here, not by the callback thread
        self._threads = [
            threading.Thread(target=self._lock_loop, name="sealtrail-pg-leader", daemon=True),
            threading.Thread(target=self._callback_loop, name="sealtrail-pg-leader-jobs",
                             daemon=True)]
        self._threads[0].start()
        if took:
            try:
                self._on_acquire()
            except BaseException:
                self._lose("its jobs failed to start", notify=False)
                with contextlib.suppress(Exception):
                    self._on_lose()
                self.release()
                raise
        self._threads[1].start()

    def stop(self) -> None:
        """Stop trying to take the lock; a held lock stays held (and heartbeated) until
        :meth:`release` or its loss."""
        self._stopping.set()

    def release(self) -> None:
        """Stop, and give the lock up: another node may lead from its next try. Call it after
        this node's jobs have stopped."""
        self._stopping.set()
        self._ending.set()
        with self._state:
            self._leading = False
        for thread in self._threads:
            if thread.ident is not None and thread is not threading.current_thread():
                thread.join(self._lease + 5.0)
        with self._conn:
            self._close()

    # -- the lock thread: the only user of the connection ---------------------------------------

    def _lock_loop(self) -> None:
        while not self._ending.wait(self._interval):
            with self._conn:
                if self._ending.is_set():
                    return
                if self._holds and not self._leading:
                    self._close()  # fenced: the lock goes back now
                if self._holds:
                    self._heartbeat()
                elif not self._stopping.is_set():
                    self._take()
                elif self._db is not None:
                    self._close()  # a follower's connection, once stopped

    def _heartbeat(self) -> None:
        sent = time.monotonic()
        try:
            assert self._db is not None
            self._db.execute("SELECT pg_backend_pid()").fetchone()
        except psycopg.Error as exc:
            self._lose(f"its lock session is gone ({str(exc).strip()})")
            self._close()
            return
        with self._state:
            if self._leading:
                # PostgreSQL cannot end the session before ``lease`` after this answer.
                self._valid_until = sent + self._lease - self._interval

    def _take(self) -> bool:
        """Take the lock if free (the caller holds ``_conn``). Whether this node leads."""
        if self._stopping.is_set():
            return False
        sent = time.monotonic()
        try:
            if self._db is None or self._db.closed:
                self._close()
                self._db = psycopg.connect(self._conninfo, autocommit=True)
            row = self._db.execute("SELECT pg_try_advisory_lock(%s)", (self.key,)).fetchone()
        except psycopg.Error as exc:
            log.debug("sealtrail: leadership %r: cannot reach the database: %s", self.name, exc)
            self._close()
            return False
        if row != (True,):
            return False
        self._holds = True
        with self._state:
            self._valid_until = sent + self._lease - self._interval
            self._leading = True
            self._events.put("acquired")
        log.info("sealtrail: process %d leads %r (runs the background jobs)", os.getpid(),
                 self.name)
        return True

    def _close(self) -> None:
        """Close the connection (the caller holds ``_conn``): a held lock goes with it."""
        db, self._db = self._db, None
        self._holds = False
        if db is not None:
            with contextlib.suppress(psycopg.Error):
                db.close()

    # -- the callback thread ----------------------------------------------------------------------

    def _callback_loop(self) -> None:
        step = min(self._interval, 0.1)
        while not self._ending.is_set():
            if self._leading and time.monotonic() > self._valid_until:
                self._lose(f"no heartbeat got through for {self._lease - self._interval:g} s")
            try:
                event = self._events.get(timeout=step)
            except queue.Empty:
                continue
            if self._ending.is_set():
                return
            if event == "acquired":
                try:
                    self._on_acquire()
                except Exception:  # logged, not raised: nothing would see it end the thread
                    log.exception("sealtrail: this node took the leadership %r but could "
                                  "not start every background job; it gives it up",
                                  self.name)
                    self._lose("its jobs failed to start")
            else:
                try:
                    self._on_lose()
                except Exception:
                    log.exception("sealtrail: stopping the background jobs after losing the "
                                  "leadership %r failed", self.name)

    def _lose(self, why: str, *, notify: bool = True) -> None:
        """End the current term (once): ``leader`` False, and ``on_lose`` queued."""
        with self._state:
            if not self._leading:
                return
            self._leading = False
            if notify:
                self._events.put("lost")
        log.warning("sealtrail: process %d no longer leads %r: %s", os.getpid(), self.name,
                    why)


__all__ = ["APPLICATION_NAME", "LEASE", "POLL_INTERVAL", "SESSION", "PgLeadership", "lock_key"]
