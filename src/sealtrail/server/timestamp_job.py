"""Scheduled RFC 3161 timestamps in the service: stamp each log whose TSA is configured.

A daemon thread (:class:`sealtrail.log.schedule.Schedule`) runs ``delay`` seconds after start
and then every ``interval`` seconds (0 turns it off). At each run, a log is stamped when it has
a TSA setting, its own ``every`` has passed since its last stamp (by the service's clock, so
tests move it), and something other than that stamp was appended since (a log that does not
change gets no new stamps: its last one still covers it). A TSA that is down or answers a token
that does not verify records nothing; the failure is logged, kept in ``results`` and retried at
the next run, so nothing is lost but time. Runs on the leader only (one stamp per interval).

The job keeps a :class:`sealtrail.log.timestamping.Tracker` per log, so each run reads only
the entries appended since the previous one.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sealtrail.core.errors import SealtrailError
from sealtrail.core.timefmt import parse_time
from sealtrail.log.auditlog import AuditLog
from sealtrail.log.timestamping import Tracker, TsaConfig, load_config, stamp
from sealtrail.server.log_job import LogJob
from sealtrail.server.logs import Logs

log = logging.getLogger("sealtrail.server")


@dataclass(frozen=True, slots=True)
class TimestampRun:
    """One log's last timestamp run: stamped (size, genTime), skipped, or the problem."""

    ok: bool
    at: datetime
    stamped_size: int | None = None
    gen_time: datetime | None = None
    problem: str = ""


@dataclass(slots=True)
class _Followed:
    tracker: Tracker
    last_at: datetime | None = None   # when this job last stamped (its clock)


class TimestampJob(LogJob):
    """Stamps every log's checkpoint with its configured TSA on a schedule."""

    def __init__(self, logs: Logs, now: Callable[[], datetime], *, delay: float,
                 interval: float) -> None:
        super().__init__("sealtrail-timestamps", logs, now, delay=delay, interval=interval)
        self._followed: dict[str, _Followed] = {}
        self.results: dict[str, TimestampRun] = {}

    def step(self, name: str) -> None:
        """Stamp one log if it is due (:meth:`run_one`)."""
        self.run_one(name, self._logs.get(name))

    def failed(self, name: str, exc: BaseException) -> None:
        log.warning("sealtrail: timestamp for log %s not recorded (retried at the next run): "
                    "%s", name, exc)
        self.results[name] = TimestampRun(False, self._now(), problem=str(exc))

    def run_one(self, name: str, alog: AuditLog) -> None:
        """Stamp one log if it is due (see the module docstring)."""
        followed = self._followed.get(name)
        if followed is None:
            followed = self._followed[name] = _Followed(Tracker())
        config = load_config(alog, followed.tracker)
        if config is None:
            return
        now = self._now()
        if not self._due(alog, config, followed, now):
            return
        done = stamp(alog, now, config=config)
        followed.last_at = now
        followed.tracker.follow(alog)
        self.results[name] = TimestampRun(True, now, done.size, done.info.gen_time)

    @staticmethod
    def _due(alog: AuditLog, config: TsaConfig, followed: _Followed, now: datetime) -> bool:
        last = followed.tracker.last_stamp()
        if last is None:
            return alog.size > 0  # never stamped (an empty tree proves nothing)
        if alog.size <= last.last + 1:
            return False  # nothing but the last stamp itself was appended since
        since = followed.last_at or _received_at(alog, last.index)
        return since is None or now - since >= timedelta(seconds=config.every)


def _received_at(alog: AuditLog, index: int) -> datetime | None:
    """When the log received entry ``index`` (after a restart: when the last stamp was made)."""
    try:
        value = alog.entry(index).event().get("received_at")
        return parse_time(value) if isinstance(value, str) else None
    except (SealtrailError, ValueError):
        return None


__all__ = ["TimestampJob", "TimestampRun"]
