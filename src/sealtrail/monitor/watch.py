"""The integrity watch: every log verified in full, continuously, within a CPU budget.

A daemon thread verifies every log (``AuditLog.verify``) a few seconds after start and then
again after 20 times the last run's duration (about 5 % of one core), at least
``min_interval`` and at most ``interval`` seconds later: a small log is re-verified every few
seconds, so a byte changed in its files is found within seconds (PCI DSS 10.3.4), and a large
one as often as the budget allows. The last result per log is kept; in the service a failure
shows as ``sealtrail_verification_ok{log} 0``, makes /readyz answer 503, and ``on_result``
hands it to the monitor, which raises a critical alert.

The watch also remembers, in memory, the newest head it verified per log and holds each next
verification to it (besides the head memory file every process keeps, log/headmemory.py): a
log moved backwards or forked while the service runs fails, and keeps failing, even if the
memory file was deleted too. A database file replaced under the running service fails at
once (``AuditLog.check_identity``), checked with every incremental round. With the keyring,
the derived tables (blind indexes, subject keys) are rebuilt and compared after the first
full run and then every few hours (``derived_interval``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from sealtrail.core.errors import SealtrailError
from sealtrail.log.auditlog import AuditLog
from sealtrail.log.schedule import Schedule
from sealtrail.log.verify import Increment

log = logging.getLogger("sealtrail.monitor")


@dataclass(frozen=True, slots=True)
class Result:
    """One verification: whether the log was intact, at what size, when, and what failed."""

    ok: bool
    size: int
    at: datetime
    problem: str = ""


class LogRegistry(Protocol):
    """What the watch needs of the service's (or the monitor process's) open logs."""

    def names(self) -> list[str]:
        """The logs of the data directory."""

    def get(self, name: str) -> AuditLog:
        """One log, opened."""


class Verifier:
    """Verifies every log on a schedule in a daemon thread; ``results`` holds the latest."""

    def __init__(self, logs: LogRegistry, now: Callable[[], datetime], *, delay: float,
                 interval: float, min_interval: float | None = None,
                 increment_interval: float = 2.0,
                 derived_interval: float = 6 * 3600.0,
                 on_result: Callable[[str, Result], None] | None = None) -> None:
        self._logs = logs
        self._now = now
        self._lock = threading.Lock()  # one check of a log at a time
        self._increments: dict[str, Increment] = {}
        # Between full runs: only what was appended, against the signed head, every few
        # seconds (verify_increment), so a new entry is checked soon after it lands.
        self._incremental = Schedule(
            "sealtrail-verify-new", self.verify_new, delay=delay + increment_interval,
            enabled=interval > 0 and increment_interval > 0,
            next_wait=lambda _: increment_interval)
        # Continuous watch: the next run comes after 20x the last run's duration (a 5 % CPU
        # budget), at least ``min_interval`` and at most ``interval`` seconds later.
        low = interval if min_interval is None else min(min_interval, interval)
        self._schedule = Schedule(
            "sealtrail-verify", self.verify_all, delay=delay, enabled=interval > 0,
            next_wait=lambda took: min(interval, max(low, 20 * took)))
        self._on_result = on_result
        self.results: dict[str, Result] = {}
        # The newest signed head verified per log: the next full run must extend it.
        self._verified: dict[str, str] = {}
        # The keyed check of derived data (blind indexes, subject keys: about 50 us an entry)
        # runs after the first full run of an unlocked log, then every ``derived_interval`` s.
        self._derived_interval = derived_interval
        self._derived_at: dict[str, float] = {}

    @property
    def last_duration(self) -> float:
        """Seconds the last scheduled run took."""
        return self._schedule.last_duration

    def start(self) -> None:
        """Start the schedules (no-op when the interval is 0: disabled)."""
        self._schedule.start()
        self._incremental.start()

    def stop(self) -> None:
        """Stop after the current verification (waits at most a second for it)."""
        self._incremental.stop()
        self._schedule.stop()

    def verify_new(self) -> None:
        """Check each log's entries appended since its last check (after a full run passed)."""
        for name, since in list(self._increments.items()):
            if self._schedule.stopping.is_set():
                return
            with self._lock:
                if self._increments.get(name) is not since:
                    continue  # a full run replaced it meanwhile
                try:
                    alog = self._logs.get(name)
                    alog.check_identity()
                    self._increments[name] = alog.verify_increment(since)
                except Exception as exc:  # any failure to check is a failed check (closed)
                    del self._increments[name]  # the next full run starts over
                    self._record(name, Result(False, 0, self._now(),
                                              f"new entries: {exc}"))

    def verify_all(self) -> None:
        """Verify every log now and record the results."""
        for name in self._logs.names():
            if self._schedule.stopping.is_set():
                return
            try:
                alog = self._logs.get(name)
            except SealtrailError:
                continue  # a log that does not open: /readyz reports it already
            with self._lock:
                try:
                    head = alog.checkpoint().note  # read first: verify proves it is extended
                    report = alog.verify(trusted_checkpoint=self._verified.get(name))
                    self._increments[name] = alog.increment_at(report.size)
                    self._verified[name] = head
                    self._check_derived(name, alog)
                except Exception as exc:  # any failure to check is a failed check (closed)
                    # Tampering, or storage that cannot be read through: either way the log
                    # is not known intact, so an earlier pass must not keep standing.
                    self._increments.pop(name, None)
                    result = Result(False, 0, self._now(), str(exc))
                else:
                    result = Result(True, report.size, self._now())
            self._record(name, result)

    def _check_derived(self, name: str, alog: AuditLog) -> None:
        """Rebuild the blind indexes and check the subject keys when due (raises on a
        difference, which the caller records as a failed verification)."""
        if self._derived_interval <= 0 or not alog.encrypted or alog.keyring is None:
            return
        last = self._derived_at.get(name)
        if last is not None and time.monotonic() - last < self._derived_interval:
            return
        alog.verify_derived()
        self._derived_at[name] = time.monotonic()

    def _record(self, name: str, result: Result) -> None:
        self.results[name] = result
        if self._on_result is not None:
            try:
                self._on_result(name, result)
            except Exception:  # the schedule must survive a failing callback
                log.exception("sealtrail: verification callback failed")
