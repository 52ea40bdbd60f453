"""The automated half of the periodic review (PCI DSS 10.4.1.1): an overdue review is an alert.

A daemon thread (run by the leader only, like retention) looks at every log each ``interval``
seconds (hourly by default): a period that ended more than the grace (24 h) ago without a
sign-off (:mod:`sealtrail.compliance.review`) raises an alert through the monitor (rule
``builtin.review_overdue``, one alert per period: its key is the period id), which records it
in the log (``alert.open``) and hands it to the sinks like any other. A period already alerted
on (whatever that alert's status now) is not alerted again: resolving the alert is the
responder's word that it is being dealt with, and the period stays *overdue* in the review
listing and fails the compliance check until it is signed off.

A period signed off before an exception appeared (a late event, an alert opened afterwards) is
*reopened*; the job raises an alert for it too (rule ``builtin.review_reopened``), once per
period and set of late exceptions: the key is the period and a digest of those exception ids,
and keys already in the alert store (whatever their status, so across restarts too) are not
raised again. A further late exception makes a new set, hence a new alert.

Only the last ``lookback`` days (7) are looked at: a log that was never reviewed raises at most
that many alerts at once, not one per day of its history.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sealtrail.compliance.review import (
    CLAUSES,
    DEFAULT_GRACE,
    OVERDUE_RULE,
    REOPENED_RULE,
    ReviewBook,
    ReviewItem,
)
from sealtrail.monitor.runner import Monitor, system_detection
from sealtrail.server.log_job import LogJob
from sealtrail.server.logs import Logs

log = logging.getLogger("sealtrail.server")

TITLE = "Log review overdue"
REOPENED_TITLE = "Signed-off log review reopened"
MAX_KNOWN = 10_000  # overdue alerts of a log looked at to avoid raising one twice


@dataclass(slots=True)
class ReviewRun:
    """One log's last check: when, which periods it raised alerts for, or what failed."""

    ok: bool
    at: datetime
    raised: list[str] = field(default_factory=list)
    overdue: int = 0
    problem: str = ""
    reopened: list[str] = field(default_factory=list)  # alert keys raised


class ReviewJob(LogJob):
    """Raises an alert for each overdue review, on a schedule."""

    def __init__(self, logs: Logs, monitor: Monitor, now: Callable[[], datetime], *,
                 delay: float, interval: float, grace: timedelta = DEFAULT_GRACE,
                 lookback: int = 7) -> None:
        super().__init__("sealtrail-review", logs, now, delay=delay, interval=interval)
        self._monitor = monitor
        self.grace = grace
        self.lookback = lookback
        self.results: dict[str, ReviewRun] = {}

    def step(self, name: str) -> None:
        """Check one log (:meth:`run_one`) and keep the result."""
        self.results[name] = self.run_one(name)

    def failed(self, name: str, exc: BaseException) -> None:
        log.warning("sealtrail: review check of log %s did not run: %s", name, exc)
        self.results[name] = ReviewRun(False, self._now(), problem=str(exc))

    def run_one(self, name: str) -> ReviewRun:
        """Check one log: alert on each overdue period not alerted on before."""
        now = self._now()
        alog = self._logs.get(name)
        store = self._monitor.store
        book = ReviewBook(alog, store, grace=self.grace)
        recent = book.recent(now, self.lookback)
        overdue = [i for i in recent if i.status == "overdue"]
        known = {a.key for a in store.list(name, rule=OVERDUE_RULE, limit=MAX_KNOWN)}
        raised = []
        for item in overdue:
            if item.period in known:
                continue
            hours = int(self.grace / timedelta(hours=1))
            self._monitor.raise_alert(name, system_detection(
                OVERDUE_RULE, TITLE, "medium", item.period,
                f"the review of log {name} for {item.period} is not signed off "
                f"{hours} h after the period ended ({len(item.exceptions)} exception(s), "
                f"{item.undecided} without a disposition)", CLAUSES), alog=alog)
            raised.append(item.period)
        reopened = self._reopened(name, [i for i in recent if i.status == "reopened"])
        return ReviewRun(True, now, raised, len(overdue), reopened=reopened)

    def _reopened(self, name: str, items: list[ReviewItem]) -> list[str]:
        """Alert on each signed-off period a late exception reopened, once per set."""
        if not items:
            return []
        alog = self._logs.get(name)
        store = self._monitor.store
        known = {a.key for a in store.list(name, rule=REOPENED_RULE, limit=MAX_KNOWN)}
        out = []
        for item in items:
            late = sorted(e.id for e in item.late)
            key = f"{item.period}/" + hashlib.sha256(
                "\n".join(late).encode()).hexdigest()[:16]
            if key in known:
                continue
            self._monitor.raise_alert(name, system_detection(
                REOPENED_RULE, REOPENED_TITLE, "medium", key,
                f"the review of log {name} for {item.period} was signed off, then "
                f"{len(late)} exception(s) appeared: {', '.join(late)}", CLAUSES), alog=alog)
            out.append(key)
        return out
