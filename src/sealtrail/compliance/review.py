"""The periodic log review: PCI DSS 10.4.1 (security events reviewed at least daily), 10.4.1.1
(automated review), 10.4.3 (exceptions and anomalies addressed); HIPAA 164.308(a)(1)(ii)(D)
(information system activity review).

For each *period* (a UTC day, named ``YYYY-MM-DD``) of a log, a review item gathers:

- a *summary* of the period's security-relevant events, computed from the log with the search
  layer: counts by category and outcome, failures and denials, administrative and
  configuration changes, reads of the trail (``audit_access``);
- the period's *alerts*: those the monitor recorded in the log during the period (its signed
  ``alert.open`` entries, ``source.service`` ``sealtrail``). The alert store is mutable and
  outside the log, so it only adds display details (current status, count, evidence); an
  alert the log records but the store lost is shown as :data:`MISSING`, never dropped;
- its *exceptions*: every such alert, plus each actor with at least
  :data:`AUTH_FAILURE_THRESHOLD` failed or denied authentication/authorization events in the
  period (below the monitor's brute-force rule, which wants 5 in 5 minutes: slow guessing
  spread over a day is still worth a look).

A reviewer (the auditor role) marks each exception *benign* (with a note) or *assigns* it to
someone (with a note); an assignment is *closed* with a resolution note; the period is *signed
off* with a note once every exception has a disposition. Each of these is an event appended to
the same log by sealtrail itself (``source.service`` ``sealtrail``; actions
:data:`SIGN_OFF`, :data:`BENIGN`, :data:`ASSIGN`, :data:`CLOSE`; category ``audit_access``;
the reviewer as actor, the note as ``reason``), and the review state is *derived* from those
events, never kept beside them: the record is as tamper-evident as the log. Only events that
sealtrail wrote count (a client cannot write ``source.service: sealtrail`` nor the reserved
``sealtrail.*`` actions), so an ingest key cannot forge a sign-off. Each step records how it
came in (``metadata.via``: console, api, cli; the CLI adds the operating-system user). Across
processes two reviewers can both pass the check and both append: after appending, a step reads
the state back and, when its entry is not the one that counts, raises ConflictError naming the
winner (the entry stays in the log, a superseded attempt). What the state needs stays in
fields no policy seals by default (``action``, ``actor.id``, ``target``), so it reads the same
with the keyring locked.

A signed-off period gains an exception later (late events): it is *reopened* until each such
exception has a disposition; the review job alerts on it (rule :data:`REOPENED_RULE`).

A period is *overdue* when it ended more than a grace (:data:`DEFAULT_GRACE`, 24 h) ago
without a sign-off; the service's review job (server/review_job.py) raises an alert for it
through the monitor (rule :data:`OVERDUE_RULE`). The compliance reports check that every
period of their range was signed off and every exception addressed (benign, or assigned and
closed): :func:`review_evidence` feeds ``checks.check_review``.

The module is split as the house style asks: :func:`fold` and :func:`build_item` decide (pure,
``now`` passed in); :class:`ReviewBook` reads the log (and the alert store, for display) and
appends.
"""

from __future__ import annotations

import hashlib
import re
import threading
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Final, Literal

from sealtrail.core.errors import ConfigError, KeyringError, ValidationError
from sealtrail.core.reserved import OWN_SERVICE
from sealtrail.core.timefmt import format_time, parse_time
from sealtrail.log.auditlog import AuditLog
from sealtrail.log.reads import Reader
from sealtrail.log.search import Filter, search
from sealtrail.monitor.alerts import Alert, AlertStore

__all__ = ["ASSIGN", "AUTH_FAILURE_THRESHOLD", "BENIGN", "CLAUSES", "CLOSE", "DEFAULT_GRACE",
           "OVERDUE_RULE", "REOPENED_RULE", "SIGN_OFF", "ConflictError", "PeriodAlert",
           "Record", "ReviewBook", "ReviewItem",
           "access_exception_id", "alert_exception_id", "build_item", "fold", "parse_period",
           "review_evidence"]

SIGN_OFF: Final = "sealtrail.review.sign_off"
BENIGN: Final = "sealtrail.review.exception.benign"
ASSIGN: Final = "sealtrail.review.assign"
CLOSE: Final = "sealtrail.review.close"
ACTIONS: Final = (SIGN_OFF, BENIGN, ASSIGN, CLOSE)
ALERT_OPEN: Final = "alert.open"  # the monitor's record of a new alert (monitor/runner.py)
MISSING: Final = "missing from the alert store"
CATEGORY: Final = "audit_access"
REVIEW_ROLE: Final = "auditor"  # the only role that may record a review (separation of duties)
OVERDUE_RULE: Final = "builtin.review_overdue"
REOPENED_RULE: Final = "builtin.review_reopened"
VIA: Final = frozenset({"cli", "console", "api", "library"})
CLAUSES: Final = ("PCI DSS 10.4.1", "PCI DSS 10.4.1.1", "PCI DSS 10.4.3",
                  "HIPAA 164.308(a)(1)(ii)(D)")
DEFAULT_GRACE: Final = timedelta(hours=24)
AUTH_FAILURE_THRESHOLD: Final = 3
MAX_NOTE: Final = 4096
MAX_NAME: Final = 256
MAX_PERIODS: Final = 366      # periods one listing may cover
MAX_EXAMPLES: Final = 20      # event indexes kept per exception or summary bucket
DAY: Final = timedelta(days=1)
# How far before a period's start the scan begins reading, by received_at (see start_index).
SCAN_SLACK: Final = timedelta(days=1)

_PERIOD = re.compile(r"\d{4}-\d{2}-\d{2}")
_EXCEPTION_ID = re.compile(r"(alert-[0-9a-f-]{36}|auth-[0-9a-f]{16})")
_ASSIGNMENT_ID = re.compile(r"asg-[0-9a-f]{12}")
_FAIL_OUTCOMES: Final = frozenset({"failure", "denied"})
_ACCESS_CATEGORIES: Final = frozenset({"authentication", "authorization"})
_CHANGE_CATEGORIES: Final = frozenset({"admin", "configuration"})

Status = Literal["pending", "overdue", "signed_off", "reopened"]
Disposition = Literal["benign", "assigned"]


class ConflictError(ConfigError):
    """The review cannot take this step now (the API answers 409): a sign-off with an open
    exception, a second disposition, a closed assignment closed again."""


# -- periods ------------------------------------------------------------------------------------


def parse_period(text: str, now: datetime, *, name: str = "period") -> date:
    """A period id (``YYYY-MM-DD``, a UTC day) checked strictly: ValidationError naming
    ``name`` when it is not one, or when the day has not begun yet."""
    if not isinstance(text, str) or not _PERIOD.fullmatch(text):
        raise ValidationError(name, "a period is a UTC day written YYYY-MM-DD, e.g. 2026-12-02")
    try:
        day = date.fromisoformat(text)
    except ValueError as exc:
        raise ValidationError(name, f"{text!r} is not a calendar day") from exc
    if day > now.astimezone(UTC).date():
        raise ValidationError(name, f"{text} is in the future: only a day that has begun can "
                              "be reviewed")
    return day


def period_bounds(day: date) -> tuple[datetime, datetime]:
    """The period's start (inclusive) and end (exclusive), UTC."""
    start = datetime.combine(day, time(0), tzinfo=UTC)
    return start, start + DAY


def _days(first: date, last: date) -> list[date]:
    return [first + timedelta(days=k) for k in range((last - first).days + 1)]


# -- the summary of a period's events -----------------------------------------------------------


@dataclass(slots=True)
class Summary:
    """Counters over one period's events (never the events themselves)."""

    events: int = 0
    by_category: dict[str, int] = field(default_factory=dict)
    by_outcome: dict[str, int] = field(default_factory=dict)
    failures: int = 0                 # outcome failure, denied or error, any category
    access_failures: int = 0          # failed/denied authentication or authorization
    changes: int = 0                  # category admin or configuration
    change_actions: dict[str, int] = field(default_factory=dict)
    trail_reads: int = 0              # category audit_access, sealtrail's own reviews aside
    failure_examples: list[int] = field(default_factory=list)
    change_examples: list[int] = field(default_factory=list)
    # actor id -> (count, example indexes) of failed/denied access
    access_failures_by_actor: dict[str, tuple[int, list[int]]] = field(default_factory=dict)
    # how many indexes per actor are kept: enough to know which entry crossed the threshold
    keep: int = MAX_EXAMPLES

    def feed(self, index: int, ev: Mapping[str, Any]) -> None:
        """Count one event of the period."""
        self.events += 1
        category = str(ev.get("category") or "(none)")
        outcome = str(ev.get("outcome") or "(none)")
        self.by_category[category] = self.by_category.get(category, 0) + 1
        self.by_outcome[outcome] = self.by_outcome.get(outcome, 0) + 1
        if outcome in {"failure", "denied", "error"}:
            self.failures += 1
            if len(self.failure_examples) < MAX_EXAMPLES:
                self.failure_examples.append(index)
        if category in _ACCESS_CATEGORIES and outcome in _FAIL_OUTCOMES:
            self.access_failures += 1
            actor = ev.get("actor")
            who = str(actor.get("id")) if isinstance(actor, Mapping) else "(unknown)"
            count, examples = self.access_failures_by_actor.get(who, (0, []))
            if len(examples) < self.keep:
                examples.append(index)
            self.access_failures_by_actor[who] = (count + 1, examples)
        if category in _CHANGE_CATEGORIES:
            self.changes += 1
            action = str(ev.get("action", ""))
            self.change_actions[action] = self.change_actions.get(action, 0) + 1
            if len(self.change_examples) < MAX_EXAMPLES:
                self.change_examples.append(index)
        if category == "audit_access" and ev.get("action") not in ACTIONS:
            self.trail_reads += 1

    def to_json(self, *, counts_only: bool = False) -> dict[str, Any]:
        """The summary as the API and the CLI show it; ``counts_only`` (for an admin, who
        reads no event content) leaves out the client-written action names and the example
        entries."""
        doc: dict[str, Any] = {
            "events": self.events, "by_category": dict(sorted(self.by_category.items())),
            "by_outcome": dict(sorted(self.by_outcome.items())),
            "failures": self.failures, "access_failures": self.access_failures,
            "changes": self.changes, "trail_reads": self.trail_reads}
        if not counts_only:
            doc.update({"change_actions": dict(sorted(self.change_actions.items())),
                        "failure_examples": self.failure_examples,
                        "change_examples": self.change_examples})
        return doc


# -- the review record, folded from the log's entries ---------------------------------------------


@dataclass(frozen=True, slots=True)
class Record:
    """One review event as read back from the log (only what the state needs)."""

    index: int
    action: str
    target_type: str
    target_id: str
    actor: str
    time: str
    note: str
    assignee: str = ""
    via: str = ""       # metadata.via: cli, console, api (empty: not recorded or sealed)
    os_user: str = ""   # metadata.os_user: who ran the CLI, as the operating system knows them


@dataclass(slots=True)
class Step:
    """Who did a step of the review, when, why, through what, and where it is in the log."""

    by: str
    at: str
    note: str
    index: int
    via: str = ""
    os_user: str = ""

    def to_json(self) -> dict[str, Any]:
        """JSON form."""
        return {"by": self.by, "at": self.at, "note": self.note, "index": self.index,
                "via": self.via or None, "os_user": self.os_user or None}


@dataclass(slots=True)
class Assignment:
    """An exception handed to someone, tracked until it is closed."""

    id: str
    exception: str
    assignee: str
    opened: Step
    closed: Step | None = None

    def to_json(self) -> dict[str, Any]:
        """JSON form."""
        return {"id": self.id, "exception": self.exception, "assignee": self.assignee,
                "status": "closed" if self.closed is not None else "open",
                "assigned": self.opened.to_json(),
                "closed": None if self.closed is None else self.closed.to_json()}


@dataclass(slots=True)
class PeriodRecord:
    """What the log says was done about one period."""

    sign_off: Step | None = None
    dispositions: dict[str, tuple[Disposition, Step, str | None]] = field(default_factory=dict)
    assignments: dict[str, Assignment] = field(default_factory=dict)


def fold(records: Iterable[Record]) -> dict[str, PeriodRecord]:
    """The review state per period from the review events, in log order (pure).

    The first record of each step wins: a second sign-off, a second disposition of one
    exception or a second close (two reviewers racing, or a replayed request) changes nothing.
    """
    out: dict[str, PeriodRecord] = {}
    for rec in records:
        period, _, rest = rec.target_id.partition("/")
        state = out.setdefault(period, PeriodRecord())
        step = Step(rec.actor, rec.time, rec.note, rec.index, rec.via, rec.os_user)
        if rec.action == SIGN_OFF and rec.target_type == "review_period" and not rest:
            if state.sign_off is None:
                state.sign_off = step
        elif rec.action in (BENIGN, ASSIGN) and rec.target_type == "review_exception":
            exc_id, _, asg = rest.partition("/")
            if not exc_id or exc_id in state.dispositions:
                continue
            if rec.action == BENIGN:
                state.dispositions[exc_id] = ("benign", step, None)
            elif asg:
                state.dispositions[exc_id] = ("assigned", step, asg)
                state.assignments[asg] = Assignment(asg, exc_id, rec.assignee, step)
        elif rec.action == CLOSE and rec.target_type == "review_assignment":
            found = state.assignments.get(rest)
            if found is not None and found.closed is None:
                found.closed = step
    return out


# -- exceptions and the item ----------------------------------------------------------------------


@dataclass(slots=True)
class PeriodAlert:
    """An alert of the period as the log records it (the monitor's signed ``alert.open``
    entry), with the alert store's row for display only (its current status, count,
    evidence). ``stored`` None: the alert is in the log but its row is gone from the store,
    which is shown, never taken as "no alert"."""

    id: str
    index: int          # the alert.open entry
    opened: str         # that entry's time
    severity: str
    title: str
    rule: str
    stored: Alert | None = None

    @property
    def status(self) -> str:
        """The store's current status, or :data:`MISSING`."""
        return self.stored.status if self.stored is not None else MISSING

    def to_json(self, *, counts_only: bool = False) -> dict[str, Any]:
        """JSON form; ``counts_only`` leaves out the store's message and evidence (the
        message may quote actor ids: event content)."""
        doc: dict[str, Any] = {"id": self.id, "entry": self.index, "opened": self.opened,
                               "rule": self.rule, "severity": self.severity,
                               "title": self.title, "status": self.status,
                               "in_store": self.stored is not None}
        a = self.stored
        if a is not None:
            doc.update({"first_seen": a.first_seen, "last_seen": a.last_seen,
                        "count": a.count, "clauses": a.clauses})
            if not counts_only:
                doc.update({"key": a.key, "message": a.message,
                            "entries": a.entries[:MAX_EXAMPLES]})
        return doc


@dataclass(slots=True)
class ReviewException:
    """One exception of a period: an alert, or an actor's repeated failed access.
    ``appeared`` is the log entry that made it one (the alert's ``alert.open``, the failure
    that reached the threshold): an exception appearing after the sign-off reopens the
    period."""

    id: str
    kind: Literal["alert", "access_failures"]
    title: str
    severity: str
    detail: dict[str, Any]
    appeared: int = -1
    disposition: Disposition | None = None
    step: Step | None = None
    assignment: Assignment | None = None

    @property
    def addressed(self) -> bool:
        """Benign, or assigned and the assignment closed (PCI DSS 10.4.3)."""
        return self.disposition == "benign" or (
            self.assignment is not None and self.assignment.closed is not None)

    def to_json(self, *, counts_only: bool = False) -> dict[str, Any]:
        """JSON form; ``counts_only`` keeps the rule, severity and counts of the detail only
        (not actor ids, messages or example entries)."""
        detail = self.detail
        if counts_only:
            detail = {k: v for k, v in detail.items()
                      if k in {"alert", "rule", "status", "count", "threshold", "entry",
                               "opened", "in_store", "clauses", "first_seen"}}
        return {"id": self.id, "kind": self.kind, "title": self.title,
                "severity": self.severity, "detail": detail, "appeared": self.appeared,
                "disposition": self.disposition, "addressed": self.addressed,
                "decided": None if self.step is None else self.step.to_json(),
                "assignment": None if self.assignment is None else self.assignment.id}


def alert_exception_id(alert_id: str) -> str:
    """The exception id of an alert."""
    return f"alert-{alert_id}"


def access_exception_id(actor_id: str) -> str:
    """The exception id of an actor's repeated failed access (a digest: actor ids are free
    text and appear in URLs)."""
    return "auth-" + hashlib.sha256(actor_id.encode()).hexdigest()[:16]


def _alert_exception(a: PeriodAlert) -> ReviewException:
    detail: dict[str, Any] = {"alert": a.id, "rule": a.rule, "status": a.status,
                              "entry": a.index, "opened": a.opened,
                              "in_store": a.stored is not None}
    if a.stored is not None:
        s = a.stored
        detail.update({"first_seen": s.first_seen, "count": s.count,
                       "entries": s.entries[:MAX_EXAMPLES], "clauses": s.clauses})
    title = a.title if a.stored is not None else f"{a.title} ({MISSING})"
    return ReviewException(alert_exception_id(a.id), "alert", title, a.severity, detail,
                           a.index)


def exceptions_of(alerts: Sequence[PeriodAlert], summary: Summary, threshold: int
                  ) -> list[ReviewException]:
    """The period's exceptions before any disposition (pure): its alerts, then every actor
    with ``threshold`` or more failed or denied authentication/authorization events."""
    out = [_alert_exception(a) for a in alerts]
    for actor, (count, examples) in sorted(summary.access_failures_by_actor.items()):
        if count >= threshold:
            out.append(ReviewException(
                access_exception_id(actor), "access_failures",
                f"{count} failed or denied access attempts by one actor",
                "medium" if count < 10 else "high",
                {"actor": actor, "count": count, "threshold": threshold,
                 "entries": examples[:MAX_EXAMPLES]},
                examples[min(threshold, len(examples)) - 1]))
    return out


@dataclass(slots=True)
class ReviewItem:
    """One period's review: what happened, what stood out, and what the reviewer did."""

    period: str
    start: datetime
    end: datetime
    status: Status
    summary: Summary
    alerts: list[PeriodAlert]
    exceptions: list[ReviewException]
    assignments: list[Assignment]
    sign_off: Step | None

    @property
    def late(self) -> list[ReviewException]:
        """Exceptions that appeared after the sign-off and have no disposition yet (they
        make the period *reopened* until each is marked benign or assigned)."""
        if self.sign_off is None:
            return []
        return [e for e in self.exceptions
                if e.appeared > self.sign_off.index and e.disposition is None]

    @property
    def open_exceptions(self) -> int:
        """Exceptions not addressed yet (no disposition, or an open assignment)."""
        return sum(1 for e in self.exceptions if not e.addressed)

    @property
    def undecided(self) -> int:
        """Exceptions with no disposition at all (these block a sign-off)."""
        return sum(1 for e in self.exceptions if e.disposition is None)

    def brief(self) -> dict[str, Any]:
        """The listing's row."""
        return {"period": self.period, "start": format_time(self.start),
                "end": format_time(self.end), "status": self.status,
                "events": self.summary.events, "alerts": len(self.alerts),
                "exceptions": {"total": len(self.exceptions), "open": self.open_exceptions,
                               "addressed": len(self.exceptions) - self.open_exceptions,
                               "undecided": self.undecided},
                "assignments_open": sum(1 for a in self.assignments if a.closed is None),
                "late_exceptions": [e.id for e in self.late],
                "signed_off": None if self.sign_off is None else self.sign_off.to_json()}

    def to_json(self, *, counts_only: bool = False) -> dict[str, Any]:
        """The whole item; ``counts_only`` for a role that reads no event content (admin):
        no client-written text (action names, actor ids, alert messages) or example
        entries, only rules, severities and counts."""
        return {**self.brief(), "summary": self.summary.to_json(counts_only=counts_only),
                "alerts": [a.to_json(counts_only=counts_only) for a in self.alerts],
                "exception_list": [e.to_json(counts_only=counts_only)
                                   for e in self.exceptions],
                "assignments": [a.to_json() for a in self.assignments],
                "counts_only": counts_only}


def build_item(day: date, summary: Summary, alerts: Sequence[PeriodAlert], record: PeriodRecord,  # noqa: PLR0917 - the parts of an item
               now: datetime, grace: timedelta = DEFAULT_GRACE,
               threshold: int = AUTH_FAILURE_THRESHOLD) -> ReviewItem:
    """A period's item from its parts (pure)."""
    start, end = period_bounds(day)
    exceptions = exceptions_of(alerts, summary, threshold)
    for exc in exceptions:
        found = record.dispositions.get(exc.id)
        if found is not None:
            exc.disposition, exc.step, asg = found
            exc.assignment = record.assignments.get(asg) if asg is not None else None
    item = ReviewItem(day.isoformat(), start, end, "pending", summary, list(alerts),
                      exceptions, list(record.assignments.values()), record.sign_off)
    item.status = ("reopened" if item.late
                   else "signed_off" if record.sign_off is not None
                   else "overdue" if now >= end + grace else "pending")
    return item


# -- reading the log and the alerts, appending the steps ------------------------------------------


def _record(index: int, ev: Mapping[str, Any]) -> Record | None:
    """The review record of one event, or None when it is not one sealtrail wrote."""
    action = ev.get("action")
    if action not in ACTIONS:
        return None
    source = ev.get("source")
    if not isinstance(source, Mapping) or source.get("service") != OWN_SERVICE:
        return None  # a client's imitation: sealtrail's own records carry its source
    target = ev.get("target")
    actor = ev.get("actor")
    if not isinstance(target, Mapping) or not isinstance(actor, Mapping):
        return None
    tid, ttype = target.get("id"), target.get("type")
    if not isinstance(tid, str) or not isinstance(ttype, str):
        if "sealed" in ev:
            raise KeyringError("the review's targets are sealed in this log and its keyring "
                               "is locked: open it to read the review state")
        return None
    meta = ev.get("metadata")
    meta = meta if isinstance(meta, Mapping) else {}

    def text(key: str) -> str:
        value = meta.get(key)
        return value if isinstance(value, str) else ""

    return Record(index, str(action), ttype, tid, str(actor.get("id", "")),
                  str(ev.get("time", "")), str(ev.get("reason", "")), text("assignee"),
                  text("via"), text("os_user"))


_ALERT_REASON = re.compile(r"\[(\w+)\] (.*)", re.DOTALL)


def _logged_alert(index: int, ev: Mapping[str, Any]) -> PeriodAlert | None:
    """The alert an ``alert.open`` entry sealtrail wrote records, else None (a client cannot
    write ``alert.*`` nor ``source.service: sealtrail``; both are checked anyway)."""
    if ev.get("action") != ALERT_OPEN:
        return None
    source = ev.get("source")
    if not isinstance(source, Mapping) or source.get("service") != OWN_SERVICE:
        return None
    target = ev.get("target")
    if not isinstance(target, Mapping) or target.get("type") != "alert":
        return None
    alert_id = target.get("id")
    if not isinstance(alert_id, str) or not alert_id:
        return None
    found = _ALERT_REASON.fullmatch(str(ev.get("reason", "")))
    severity, title = (found.group(1), found.group(2)) if found else ("unknown", "Alert")
    meta = ev.get("metadata")
    rule = meta.get("rule") if isinstance(meta, Mapping) else None
    return PeriodAlert(alert_id, index, str(ev.get("time", "")), severity, title,
                       rule if isinstance(rule, str) else "")


_LOCKS: dict[str, threading.Lock] = {}
_LOCKS_GUARD = threading.Lock()


def _lock_of(alog: AuditLog) -> threading.Lock:
    """One lock per log origin in this process: a check and the append that follows it are
    not interleaved with another request's (across processes the fold's first-wins rule
    settles a race)."""
    with _LOCKS_GUARD:
        return _LOCKS.setdefault(alog.origin, threading.Lock())


def _origin(via: str, os_user: str | None) -> dict[str, str]:
    """How a step came in (``metadata.via``) and, from the CLI, the operating-system user who
    ran it: file access lets anyone name any reviewer, so the record says so."""
    if via not in VIA:
        raise ConfigError(f"via: one of {', '.join(sorted(VIA))}")
    out = {"via": via}
    if os_user:
        out["os_user"] = os_user[:MAX_NAME]
    return out


def _note(note: str, name: str = "note") -> str:
    if not isinstance(note, str) or not note.strip():
        raise ValidationError(name, "required: say what was checked and why")
    if len(note) > MAX_NOTE:
        raise ValidationError(name, f"at most {MAX_NOTE} characters")
    return note


def _name(value: str, name: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValidationError(name, "required")
    if len(value) > MAX_NAME or not value.isprintable():
        raise ValidationError(name, f"at most {MAX_NAME} printable characters")
    return value.strip()


class ReviewBook:
    """The review of one log: reads its events and its alerts, appends the reviewer's steps.

    ``alerts`` is the monitor's alert store (None: a data directory never monitored, so no
    alert). ``grace`` is how long after a period ends its sign-off may wait; ``threshold`` how
    many failed or denied accesses by one actor in a period make an exception.
    """

    def __init__(self, alog: AuditLog, alerts: AlertStore | None, *,
                 grace: timedelta = DEFAULT_GRACE,
                 threshold: int = AUTH_FAILURE_THRESHOLD) -> None:
        if threshold < 1:
            raise ConfigError("threshold: at least 1")
        self.alog = alog
        self.alerts = alerts
        self.grace = grace
        self.threshold = threshold

    # -- reading --------------------------------------------------------------------------------

    def first_day(self, not_before: date | None = None) -> date | None:
        """The day of the earliest event ``time`` in the log (None: no event yet), not of
        entry 0: a back-filled import carries times older than its entries. Every entry is
        read once; with ``not_before`` (a caller that clamps to it anyway) only the entries
        received from that day on (less :data:`SCAN_SLACK`) are, plus entry 0's time — a
        scan bounded by the window, not by the log."""
        begin = 0 if not_before is None else self.start_index(period_bounds(not_before)[0])
        found: list[datetime] = []

        def times(start: int, *, one: bool) -> None:
            for entry in self.alog.entries(start):
                if entry.retired:
                    continue
                try:
                    when = parse_time(str(entry.event().get("time")))
                except ValueError:
                    continue
                found[:] = [min([*found, when])]
                if one:
                    return

        if begin > 0:
            times(0, one=True)  # the first readable entry, as before
        times(begin, one=False)
        return found[0].astimezone(UTC).date() if found else None

    def _received(self, index: int) -> datetime | None:
        """When entry ``index`` was received (None: retired or unreadable)."""
        entry = self.alog.entry(index)
        if entry.retired:
            return None
        try:
            return parse_time(str(entry.event().get("received_at")))
        except ValueError:
            return None

    def start_index(self, since: datetime) -> int:
        """The first entry worth reading for events of ``since`` on: a binary search on
        ``received_at`` (the log's own clock, in index order) for the first entry received
        after ``since`` less :data:`SCAN_SLACK` (an event received before its own time by more
        than that, a source's clock a day fast, is not counted). Retired entries, which
        retention takes from the front, count as earlier."""
        lo, hi = 0, self.alog.size
        bound = since - SCAN_SLACK
        while lo < hi:
            mid = (lo + hi) // 2
            got = self._received(mid)
            if got is None or got < bound:
                lo = mid + 1
            else:
                hi = mid
        return lo

    def _scan(self, first: date, last: date
              ) -> tuple[dict[date, Summary], list[Record], dict[date, list[PeriodAlert]]]:
        """One pass over the log from ``first`` on: each day's summary up to ``last``, every
        review record (they are all written after the day they review began) and each day's
        alerts, from the monitor's signed ``alert.open`` entries."""
        start, _ = period_bounds(first)
        _, end = period_bounds(last)
        keep = max(MAX_EXAMPLES, self.threshold)
        summaries = {d: Summary(keep=keep) for d in _days(first, last)}
        alerts: dict[date, list[PeriodAlert]] = {d: [] for d in _days(first, last)}
        records: list[Record] = []
        begin = self.start_index(start)
        for entry, ev in search(self.alog, Filter(since=start), limit=1 << 62,
                                newest_first=False, after=begin - 1 if begin else None):
            rec = _record(entry.index, ev)
            if rec is not None:
                records.append(rec)
            try:
                when = parse_time(str(ev.get("time")))
            except ValueError:
                continue
            if when < end:
                day = when.astimezone(UTC).date()
                summaries[day].feed(entry.index, ev)
                logged = _logged_alert(entry.index, ev)
                if logged is not None:
                    alerts[day].append(logged)
        return summaries, records, alerts

    def _with_store(self, alerts: list[PeriodAlert]) -> list[PeriodAlert]:
        """The store's row of each alert, for display (its current status); an alert the log
        records but the store lost keeps ``stored`` None and shows as :data:`MISSING`."""
        if self.alerts is not None:
            for a in alerts:
                row = self.alerts.get(a.id)
                a.stored = row if row is not None and row.log == self.alog.name else None
                if a.stored is not None:
                    a.rule = a.rule or a.stored.rule
        return alerts

    def items(self, first: date, last: date, now: datetime) -> list[ReviewItem]:
        """Every period from ``first`` to ``last`` (inclusive, oldest first)."""
        if last < first:
            raise ValidationError("until", "must not be before since")
        if (last - first).days >= MAX_PERIODS:
            raise ValidationError("since", f"at most {MAX_PERIODS} periods at once")
        summaries, records, alerts = self._scan(first, last)
        folded = fold(records)
        return [build_item(d, summaries[d], self._with_store(alerts[d]),
                           folded.get(d.isoformat(), PeriodRecord()), now, self.grace,
                           self.threshold) for d in _days(first, last)]

    def listing(self, now: datetime, since: date | None = None, until: date | None = None
                ) -> list[ReviewItem]:
        """The periods of ``since..until`` (defaults: the day of the log's earliest event
        time, or 30 days back when that is longer ago; today), newest first."""
        today = now.astimezone(UTC).date()
        last = until or today
        if since is None:
            window = last - timedelta(days=29)
            began = self.first_day(window) or today
            since = min(max(began, window), last)
        return list(reversed(self.items(since, last, now)))

    def item(self, day: date, now: datetime, *, reader: Reader | None = None) -> ReviewItem:
        """One period's item; with ``reader``, recorded as an audited read (it shows actor ids
        and event indexes) before it is returned."""
        found = self.items(day, day, now)[0]
        if reader is not None:
            reader.record(self.alog, "audit.search", {"review_period": found.period},
                          found.summary.events)
        return found

    # -- the reviewer's steps -------------------------------------------------------------------

    def _append(self, actor: Mapping[str, Any], role: str, action: str,  # noqa: PLR0917 - one event's parts
                target: tuple[str, str], note: str, meta: Mapping[str, Any],
                origin: Mapping[str, str]) -> int:
        if role != REVIEW_ROLE:
            raise ConfigError(f"role {role!r} may not record a review: only an auditor may "
                              "(separation of duties: an admin does not review itself)")
        event = {"actor": dict(actor), "action": action, "category": CATEGORY,
                 "outcome": "success", "target": {"type": target[0], "id": target[1]},
                 "reason": note, "metadata": {"role": role, **origin, **meta}}
        return self.alog.append_own([event])[0].index

    def _current(self, day: date, now: datetime) -> ReviewItem:
        return self.items(day, day, now)[0]

    @staticmethod
    def _superseded(what: str, mine: int, winner: Step | None) -> ConflictError:
        """Another process's step reached the log first (the check before the append is
        only per process): ours stays in the log as a recorded, superseded attempt."""
        who = "another step" if winner is None else (
            f"{winner.by} (entry {winner.index}, at {winner.at})")
        return ConflictError(f"{what} was recorded first by {who}: your entry {mine} is in "
                             "the log as a superseded attempt and does not count")

    def sign_off(self, day: date, *, actor: Mapping[str, Any], role: str, note: str,
                 now: datetime, via: str = "library", os_user: str | None = None
                 ) -> ReviewItem:
        """Sign the period off (ConflictError while an exception has no disposition, before the
        period is over, or when it is signed off already)."""
        note = _note(note)
        with _lock_of(self.alog):
            item = self._current(day, now)
            if item.sign_off is not None:
                raise ConflictError(f"period {item.period} is already signed off (entry "
                               f"{item.sign_off.index})")
            if now < item.end:
                raise ConflictError(f"period {item.period} is not over yet: sign it off after "
                               f"{format_time(item.end)}")
            if item.undecided:
                raise ConflictError(f"period {item.period} has {item.undecided} exception(s) with "
                               "no disposition: mark each benign or assign it first")
            mine = self._append(actor, role, SIGN_OFF, ("review_period", item.period), note,
                                {"events": item.summary.events,
                                 "exceptions": len(item.exceptions),
                                 "open": item.open_exceptions}, _origin(via, os_user))
            after = self._current(day, now)
            if after.sign_off is None or after.sign_off.index != mine:
                raise self._superseded(f"the sign-off of period {item.period}", mine,
                                       after.sign_off)
            return after

    def _exception(self, item: ReviewItem, exception_id: str) -> ReviewException:
        if not _EXCEPTION_ID.fullmatch(exception_id):
            raise ValidationError("exception_id", "not an exception id (alert-<uuid> or "
                                  "auth-<16 hex>)")
        for exc in item.exceptions:
            if exc.id == exception_id:
                return exc
        raise LookupError(f"no exception {exception_id} in period {item.period}")

    def dispose(self, day: date, exception_id: str, disposition: str, *,
                actor: Mapping[str, Any], role: str, note: str, now: datetime,
                assignee: str | None = None, via: str = "library",
                os_user: str | None = None) -> ReviewItem:
        """Mark an exception benign, or assign it to ``assignee`` (LookupError: no such
        exception in the period; ConflictError: it has a disposition already)."""
        note = _note(note)
        if disposition not in ("benign", "assigned"):
            raise ValidationError("disposition", "benign or assigned")
        if disposition == "assigned":
            assignee = _name(assignee or "", "assignee")
        elif assignee is not None:
            raise ValidationError("assignee", "only an assigned exception has an assignee")
        origin = _origin(via, os_user)
        with _lock_of(self.alog):
            item = self._current(day, now)
            exc = self._exception(item, exception_id)
            if exc.disposition is not None:
                raise ConflictError(f"exception {exception_id} is already {exc.disposition}")
            if exc.kind == "access_failures" and exc.detail.get("actor") == actor.get("id"):
                raise ConflictError("the failed access attempts are your own: another reviewer "
                               "must decide on them")
            target = f"{item.period}/{exception_id}"
            if disposition == "benign":
                mine = self._append(actor, role, BENIGN, ("review_exception", target), note,
                                    {"exception": exception_id}, origin)
            else:
                asg = "asg-" + uuid.uuid4().hex[:12]
                mine = self._append(actor, role, ASSIGN,
                                    ("review_exception", f"{target}/{asg}"), note,
                                    {"exception": exception_id, "assignment": asg,
                                     "assignee": assignee}, origin)
            after = self._current(day, now)
            won = self._exception(after, exception_id).step
            if won is None or won.index != mine:
                raise self._superseded(f"the disposition of exception {exception_id}", mine,
                                       won)
            return after

    def close(self, day: date, assignment_id: str, *, actor: Mapping[str, Any], role: str,
              note: str, now: datetime, via: str = "library", os_user: str | None = None
              ) -> ReviewItem:
        """Close an assignment with its resolution (LookupError: none such; ConflictError:
        already closed)."""
        note = _note(note)
        if not _ASSIGNMENT_ID.fullmatch(assignment_id):
            raise ValidationError("assignment_id", "not an assignment id (asg-<12 hex>)")
        with _lock_of(self.alog):
            item = self._current(day, now)
            found = next((a for a in item.assignments if a.id == assignment_id), None)
            if found is None:
                raise LookupError(f"no assignment {assignment_id} in period {item.period}")
            if found.closed is not None:
                raise ConflictError(f"assignment {assignment_id} is already closed (entry "
                               f"{found.closed.index})")
            mine = self._append(actor, role, CLOSE,
                                ("review_assignment", f"{item.period}/{assignment_id}"), note,
                                {"assignment": assignment_id, "exception": found.exception},
                                _origin(via, os_user))
            after = self._current(day, now)
            won = next((a.closed for a in after.assignments if a.id == assignment_id), None)
            if won is None or won.index != mine:
                raise self._superseded(f"the closing of assignment {assignment_id}", mine, won)
            return after

    # -- what is late ---------------------------------------------------------------------------

    def recent(self, now: datetime, lookback: int = 7) -> list[ReviewItem]:
        """The ended periods of the last ``lookback`` days (from the log's first day), oldest
        first."""
        today = now.astimezone(UTC).date()
        window = today - timedelta(days=lookback)
        began = self.first_day(window)
        if began is None:
            return []
        first = max(began, window)
        last = today - DAY
        if last < first:
            return []
        return self.items(first, last, now)

    def overdue(self, now: datetime, lookback: int = 7) -> list[ReviewItem]:
        """The periods of the last ``lookback`` days whose review is overdue, oldest
        first."""
        return [i for i in self.recent(now, lookback) if i.status == "overdue"]


def review_evidence(book: ReviewBook, since: datetime | None, until: datetime | None,
                    now: datetime) -> dict[str, Any]:
    """What the compliance report's review check needs for ``since <= t < until``: every
    period of the range that has ended (a day still running cannot be reviewed yet), each with
    its status and open exceptions. The check itself is ``checks.check_review`` (pure)."""
    today = now.astimezone(UTC).date()
    first = (since.astimezone(UTC).date() if since is not None
             else book.first_day() or today)
    end = until if until is not None else now
    last = (end - timedelta(microseconds=1)).astimezone(UTC).date()
    last = min(last, today - DAY)  # the periods that have ended
    if last < first:
        return {"periods": [], "grace_hours": book.grace / timedelta(hours=1)}
    if (last - first).days >= MAX_PERIODS:
        first = last - timedelta(days=MAX_PERIODS - 1)
    rows = [{"period": i.period, "status": i.status, "exceptions": len(i.exceptions),
             "open": i.open_exceptions, "signed_off_by": None if i.sign_off is None
             else i.sign_off.by} for i in book.items(first, last, now)]
    return {"periods": rows, "grace_hours": book.grace / timedelta(hours=1),
            "threshold": book.threshold, "first": first.isoformat(), "last": last.isoformat()}
