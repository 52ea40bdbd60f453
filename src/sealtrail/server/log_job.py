"""A leader job that visits every log on a schedule: the loop the service's jobs share.

Retention, the review check, timestamps and witnessing each run a step for every log of the
data directory, ``delay`` seconds after start and then every ``interval`` seconds (0: off), on
a :class:`sealtrail.log.schedule.Schedule` daemon thread. One log's failure is that log's
alone: it is reported through :meth:`LogJob.failed` and retried at the next run, and the
other logs are still visited. Stopping ends the run between two logs.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime

from sealtrail.core.errors import SealtrailError
from sealtrail.log.schedule import Schedule
from sealtrail.server.logs import Logs

log = logging.getLogger("sealtrail.server")


class LogJob:
    """Runs :meth:`step` for every log on a schedule (see the module docstring)."""

    # Which failures :meth:`run_all` reports and goes on past; anything else ends the run
    # (and the schedule logs it). The witnessing job widens it: a round must not skip the
    # other logs' seals whatever one log's fault.
    caught: tuple[type[BaseException], ...] = (SealtrailError,)

    def __init__(self, thread: str, logs: Logs, now: Callable[[], datetime], *,
                 delay: float, interval: float) -> None:
        self._logs = logs
        self._now = now
        self._schedule = Schedule(thread, self.run_all, delay=delay,
                                  next_wait=lambda _: interval, enabled=interval > 0)

    def start(self) -> None:
        """Start the schedule (no-op when the interval is 0)."""
        self._schedule.start()

    def stop(self) -> None:
        """Stop after the current step (waits at most a second)."""
        self._schedule.stop()

    def run_all(self) -> None:
        """One step for every log now."""
        for name in self._logs.names():
            if self._schedule.stopping.is_set():
                return
            try:
                self.step(name)
            except self.caught as exc:
                self.failed(name, exc)

    def step(self, name: str) -> None:
        """The job's work on one log."""
        raise NotImplementedError

    def failed(self, name: str, exc: BaseException) -> None:
        """Report one log's failure (logged; subclasses also keep it for /metrics)."""
        log.warning("sealtrail: %s for log %s did not run: %s", self._schedule.name, name, exc)


__all__ = ["LogJob"]
