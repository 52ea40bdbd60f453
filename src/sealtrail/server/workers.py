"""``sealtrail serve --workers N``: N processes serve one data directory; the parent supervises.

Why several processes: one process serves every request under one interpreter lock, so ingest
(validation, JSON, hashing, signing) is bound to one core however many the machine has. The
engine already lets several processes append to one data directory (a commit takes SQLite's
write lock; a process notices another's appends and re-checks the signed head before it signs
on top), so N processes that share the listening sockets use N cores, and the log stays one.

How:

1. The parent binds the sockets (:func:`sealtrail.server.serving.listen`, before it announces
   anything), then starts N workers in the ``spawn`` context: fresh interpreters that inherit
   none of the parent's threads, locks or open databases. Each gets the bound sockets and the
   pickled :class:`~sealtrail.server.config.ServiceConfig` (with the passphrase: through the
   pipe multiprocessing starts it with, never its command line), builds
   ``create_app(config)`` and serves the sockets with the guarded server
   (:func:`sealtrail.server.serving.build_server`: same timeouts, same TLS options). The
   kernel hands each new connection to one of the workers waiting in ``accept``.
2. The background jobs (verification, retention, the monitor) run in one worker only, the
   leader (:mod:`sealtrail.server.leader`); if it dies another takes over.
3. The parent serves nothing: it restarts a worker that exits while it runs (after
   :data:`FIRST_BACKOFF` seconds, doubling up to :data:`MAX_BACKOFF` while it keeps dying),
   and on SIGTERM or SIGINT sends each worker SIGTERM (uvicorn's graceful shutdown: requests
   in flight finish, the lifespan stops the jobs and closes the logs), waits for them and
   returns 0. A worker that dies before any worker ever served is a failed start: the others
   are stopped and its exit status (or 3) returned.
4. Workers run in a process group of their own, so Ctrl-C at a terminal signals the parent
   only (which stops them in order), and each exits on its own when the parent disappears
   (SIGKILL): no orphan keeps the port or the leader lock.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import socket
import sys
import threading
import time
from dataclasses import dataclass
from multiprocessing.connection import wait
from multiprocessing.context import SpawnProcess
from multiprocessing.synchronize import Event
from types import FrameType
from typing import Any, Final

import uvicorn

from sealtrail.core.errors import SealtrailError
from sealtrail.server.config import ServiceConfig
from sealtrail.server.serving import STARTUP_FAILURE, build_server

FIRST_BACKOFF: Final = 0.5
"""Seconds before a worker that died is started again (doubling while it keeps dying)."""
MAX_BACKOFF: Final = 10.0
"""The longest wait before a restart."""
STABLE_AFTER: Final = 30.0
"""A worker that ran this many seconds before dying is restarted after FIRST_BACKOFF again."""
STOP_TIMEOUT: Final = 30.0
"""Seconds the workers get to shut down gracefully before they are killed."""
PARENT_CHECK: Final = 1.0
"""Seconds between a worker's checks that its parent is still there."""

_SPAWN: Final = multiprocessing.get_context("spawn")


@dataclass
class _Slot:
    """One of the N places a worker runs in; its process changes on every restart."""

    number: int
    process: SpawnProcess | None = None
    ready: Event | None = None
    started: float = 0.0
    backoff: float = FIRST_BACKOFF
    restart_at: float | None = None
    restarts: int = 0
    served: bool = False  # its server started (a later exit is not a failed start)


class Supervisor:
    """Start ``count`` workers serving ``sockets`` with ``config``, keep them running, stop them.

    ``options`` are :func:`~sealtrail.server.serving.build_server`'s keyword arguments (host,
    port, log level, TLS files); they, ``config`` and the sockets must pickle.
    """

    def __init__(self, config: ServiceConfig, sockets: list[socket.socket], count: int,
                 options: dict[str, Any]) -> None:
        if count < 1:
            raise ValueError("count must be at least 1")
        self._config = config
        self._sockets = sockets
        self._options = options
        self._slots = [_Slot(i) for i in range(count)]
        self._stopping = False
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_w, False)
        self._ever_served = False

    def run(self) -> int:
        """Supervise until SIGTERM or SIGINT (0) or a failed start (its status)."""
        previous = {sig: signal.signal(sig, self._on_signal)
                    for sig in (signal.SIGTERM, signal.SIGINT)}
        try:
            for slot in self._slots:
                self._spawn(slot)
            code = self._supervise()
        finally:
            self._stop_all()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            os.close(self._wake_r)
            os.close(self._wake_w)
        return code

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        del signum, frame
        self._stopping = True
        with contextlib.suppress(OSError):
            os.write(self._wake_w, b"x")

    def _spawn(self, slot: _Slot) -> None:
        ready = _SPAWN.Event()
        process = _SPAWN.Process(
            target=_work, name=f"sealtrail-worker-{slot.number}",
            args=(self._config, self._sockets, self._options, ready, os.getpid()))
        process.start()
        slot.process, slot.ready = process, ready
        slot.started, slot.restart_at, slot.served = time.monotonic(), None, False

    def _supervise(self) -> int:
        """Wait for a worker to exit or a signal; restart or stop (the loop of step 3)."""
        while not self._stopping:
            now = time.monotonic()
            for slot in self._slots:
                if slot.restart_at is not None and slot.restart_at <= now:
                    self._spawn(slot)
            live = {slot.process.sentinel: slot for slot in self._slots
                    if slot.process is not None and slot.restart_at is None}
            timeout = min([s.restart_at - now for s in self._slots
                           if s.restart_at is not None] + [1.0])
            woke = wait([self._wake_r, *live], max(timeout, 0.0))
            if self._wake_r in woke:
                with contextlib.suppress(OSError):
                    os.read(self._wake_r, 64)
            for slot in self._slots:
                if slot.ready is not None and slot.ready.is_set():
                    slot.served = self._ever_served = True
            if self._stopping:
                break
            for sentinel in woke:
                if isinstance(sentinel, int) and sentinel in live:
                    code = self._exited(live[sentinel])
                    if code is not None:
                        return code
        return 0

    def _exited(self, slot: _Slot) -> int | None:
        """A worker exited while it should run: plan its restart, or (a failed start) the
        status to return."""
        process = slot.process
        if process is None:  # pragma: no cover - only live slots are waited on
            return None
        process.join()
        code = process.exitcode
        if not slot.served and not self._ever_served:
            _err(f"sealtrail: worker {slot.number} (pid {process.pid}) could not start "
                 f"(status {code}); stopping")
            return code if code is not None and code > 0 else STARTUP_FAILURE
        now = time.monotonic()
        if now - slot.started >= STABLE_AFTER:
            slot.backoff = FIRST_BACKOFF
        slot.restarts += 1
        _err(f"sealtrail: worker {slot.number} (pid {process.pid}) exited (status {code}); "
             f"restarting it in {slot.backoff:.1f} s (restart {slot.restarts})")
        slot.restart_at = now + slot.backoff
        slot.backoff = min(slot.backoff * 2, MAX_BACKOFF)
        return None

    def _stop_all(self) -> None:
        """SIGTERM every worker, wait up to STOP_TIMEOUT seconds, then SIGKILL what is left."""
        running = [s.process for s in self._slots
                   if s.process is not None and s.process.exitcode is None]
        for process in running:
            if process.pid is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT
        for process in running:
            process.join(max(deadline - time.monotonic(), 0.0))
        for process in running:
            if process.exitcode is None:
                _err(f"sealtrail: worker pid {process.pid} did not stop in "
                     f"{STOP_TIMEOUT:.0f} s; killed")
                process.kill()
                process.join()


def _err(message: str) -> None:
    sys.stderr.write(message + "\n")
    sys.stderr.flush()


def _work(config: ServiceConfig, sockets: list[socket.socket], options: dict[str, Any],
          ready: Event, parent: int) -> None:  # pragma: no cover - runs in a worker process
    """A worker's life: build the app, serve the shared sockets until SIGTERM."""
    os.setpgid(0, 0)  # step 4: Ctrl-C at the terminal reaches the parent only
    threading.Thread(target=_follow_parent, args=(parent,), name="sealtrail-parent-watch",
                     daemon=True).start()
    from sealtrail.server.app import create_app  # noqa: PLC0415 - only workers build apps

    try:
        app = create_app(config)
    except SealtrailError as exc:
        _err(f"error: {exc.diagnostics()}")
        sys.exit(exc.exit_code)
    server = build_server(app, **options)
    threading.Thread(target=_announce, args=(server, ready), name="sealtrail-ready",
                     daemon=True).start()
    try:
        with contextlib.suppress(KeyboardInterrupt):
            server.run(sockets=sockets)
    finally:
        for sock in sockets:
            sock.close()
    if not server.started:
        sys.exit(STARTUP_FAILURE)


def _announce(server: uvicorn.Server, ready: Event) -> None:  # pragma: no cover - a worker's
    """Tell the parent once the server has started (a later exit is not a failed start)."""
    while not server.started:
        if server.should_exit:
            return
        time.sleep(0.05)
    ready.set()


def _follow_parent(parent: int) -> None:  # pragma: no cover - runs in a worker process
    """SIGTERM this worker (a graceful stop) once its parent is gone."""
    while os.getppid() == parent:
        time.sleep(PARENT_CHECK)
    os.kill(os.getpid(), signal.SIGTERM)


def run_workers(config: ServiceConfig, sockets: list[socket.socket], count: int,
                options: dict[str, Any]) -> int:
    """Serve ``sockets`` with ``count`` supervised workers until SIGTERM or SIGINT; the exit
    status (0 after a stop by signal). The sockets are closed here once the workers stopped."""
    try:
        return Supervisor(config, sockets, count, options).run()
    finally:
        for sock in sockets:
            sock.close()


__all__ = ["FIRST_BACKOFF", "MAX_BACKOFF", "STOP_TIMEOUT", "Supervisor", "run_workers"]
