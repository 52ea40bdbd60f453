"""A job that runs in a daemon thread on a schedule and survives its own failures.

The service's background work (the integrity watch, retention) is the same loop: wait
``delay``, run, wait the next interval, run again, until stopped; an exception is logged and
retried at the next run, never allowed to end the schedule (a background check that dies
silently would fail open).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

log = logging.getLogger("sealtrail")


class Schedule:
    """Run ``job`` after ``delay`` seconds and then after each ``next_wait(duration)``."""

    def __init__(self, name: str, job: Callable[[], None], *, delay: float,
                 next_wait: Callable[[float], float], enabled: bool = True) -> None:
        self.name = name
        self._job = job
        self._delay = delay
        self._next_wait = next_wait
        self._enabled = enabled
        self.stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self.last_duration = 0.0

    def start(self) -> None:
        """Start the thread (no-op when disabled or running). A stopped schedule starts
        again (a node that lost the lead and took it back runs its jobs again)."""
        if not self._enabled:
            return
        if self._thread is not None and not self.stopping.is_set():
            return
        # A fresh event: a thread of the earlier run still finishing its job keeps the old
        # (set) one and ends; the new thread waits on this one.
        self.stopping = stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(stopping,), name=self.name,
                                        daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop after the current run (waits at most a second for it)."""
        self.stopping.set()
        if self._thread is not None:
            self._thread.join(1.0)

    def _run(self, stopping: threading.Event) -> None:
        if stopping.wait(self._delay):
            return
        while True:
            started = time.monotonic()
            try:
                self._job()
            except Exception:  # the schedule must survive; the next run retries
                log.exception("sealtrail: scheduled %s failed to run", self.name)
            self.last_duration = time.monotonic() - started
            if stopping.wait(self._next_wait(self.last_duration)):
                return
