"""Scheduled retention in the service: archive what is past its online period, purge what is
past its maximum, for every log that has a retention policy.

A daemon thread runs a minute after start and then every ``interval`` seconds (daily by
default; 0 turns it off). Time comes from the service's clock, so tests move it. Each run's
outcome per log is kept in ``results`` (for /metrics); a log that is locked or fails is
skipped and retried at the next run, never half-done: each archive segment and each purge
commits atomically with its receipt.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sealtrail.log.archive import apply_retention
from sealtrail.log.retention import load_policy
from sealtrail.server.log_job import LogJob
from sealtrail.server.logs import Logs

log = logging.getLogger("sealtrail.server")
SERVICE_ACTOR = {"id": "sealtrail-service", "type": "service", "name": "retention job"}


@dataclass(frozen=True, slots=True)
class RetentionRun:
    """One log's last retention run."""

    ok: bool
    at: datetime
    archived: int = 0
    purged: int = 0
    problem: str = ""


class RetentionJob(LogJob):
    """Applies every log's retention policy on a schedule."""

    def __init__(self, logs: Logs, now: Callable[[], datetime], *, delay: float,
                 interval: float) -> None:
        super().__init__("sealtrail-retention", logs, now, delay=delay, interval=interval)
        self.results: dict[str, RetentionRun] = {}

    def step(self, name: str) -> None:
        """Apply one log's retention policy (none: nothing to do)."""
        alog = self._logs.get(name)
        policy = load_policy(alog)
        if policy is None:
            return
        # Purge first: what is past its maximum goes for good instead of to an archive.
        result = apply_retention(alog, policy, actor=SERVICE_ACTOR)
        archived = sum(seg.end - seg.start for seg, _ in result.archived)
        purged = result.purged + sum(e - s for s, e, _ in result.archived_purged)
        self.results[name] = RetentionRun(True, self._now(), archived, purged)

    def failed(self, name: str, exc: BaseException) -> None:
        log.warning("sealtrail: retention for log %s did not run: %s", name, exc)
        self.results[name] = RetentionRun(False, self._now(), problem=str(exc))
