"""The monitor as a child process of the service, supervised.

Rules evaluated in the service's own process would compete with ingest for its interpreter
lock; in a child (``sealtrail monitor``) they run on the other core. The service starts the
child with its lifespan, restarts it when it dies (with backoff, after raising a
``builtin.monitor_down`` alert: a stopped review mechanism is a failure of a critical control,
PCI DSS 10.7.2), and stops it on shutdown. The child shares the data directory: it reads the
committed log, appends its alert events, and delivers through the outbox.
"""

from __future__ import annotations

import contextlib
import logging
import subprocess
import threading

from sealtrail.core.errors import SealtrailError
from sealtrail.monitor.runner import Monitor

log = logging.getLogger("sealtrail.server")


class MonitorProcess:
    """Start, watch and stop the monitor child process."""

    def __init__(self, command: list[str], monitor: Monitor, *,
                 env: dict[str, str] | None = None) -> None:
        self._command = command
        self._monitor = monitor
        self._env = env
        self._proc: subprocess.Popen[bytes] | None = None
        self._stop = threading.Event()
        self._spawning = threading.Lock()
        self._thread: threading.Thread | None = None
        self.restarts = 0

    def start(self) -> None:
        """Start the child and the thread that restarts it (again after :meth:`stop`: a node
        that lost the lead and took it back runs the monitor again)."""
        with self._spawning:
            stop = self._stop = threading.Event()
        self._spawn()
        self._thread = threading.Thread(target=self._watch, args=(stop,),
                                        name="sealtrail-monitor-child", daemon=True)
        self._thread.start()

    def _spawn(self) -> None:
        # The child reads its stdin until EOF and then stops: when this process dies, even by
        # SIGKILL, the pipe closes and no orphaned monitor keeps running (its loop lock would
        # keep the next service's monitor out). It runs in a session of its own, so Ctrl-C at
        # the terminal reaches only the service, which then stops the child in order (stop()).
        with self._spawning:
            if self._stop.is_set():
                return
            self._proc = subprocess.Popen(  # noqa: S603 - our own CLI
                [*self._command, "--exit-on-eof"], env=self._env, stdin=subprocess.PIPE,
                start_new_session=True)

    def _watch(self, stop: threading.Event) -> None:
        backoff = 1.0
        while not stop.is_set():
            proc = self._proc
            if proc is None:
                return
            code = proc.wait()
            if stop.is_set():
                return
            self.restarts += 1
            log.error("sealtrail: the monitor process exited (%s); restarting in %.0f s",
                      code, backoff)
            with contextlib.suppress(SealtrailError):
                self._monitor.trail_failure(
                    "builtin.monitor_down", "Rule engine stopped", "monitor",
                    f"the monitor process exited with status {code}; restarted "
                    f"(restart {self.restarts})", severity="critical")
            if stop.wait(backoff):
                return
            backoff = min(backoff * 2, 30.0)
            self._spawn()

    def stop(self) -> None:
        """Stop the child: close its stdin (it stops at EOF), SIGTERM after 10 s, SIGKILL
        after 5 more.

        EOF first, not SIGTERM: the child's thread that waits for EOF is blocked reading
        stdin, and a child that exits while that read holds stdin's lock dies at interpreter
        shutdown with "Fatal Python error: _enter_buffered_busy" on the service's stderr.
        """
        with self._spawning:
            self._stop.set()
        proc = self._proc
        if proc is None:
            return
        if proc.stdin is not None:
            with contextlib.suppress(OSError):
                proc.stdin.close()
        for signal_it, wait in ((None, 10.0), (proc.terminate, 5.0), (proc.kill, None)):
            if signal_it is not None:
                signal_it()
            try:
                proc.wait(wait)
                break
            except subprocess.TimeoutExpired:
                continue
        if self._thread is not None:
            self._thread.join(5)
