"""Compliance checks: one pass over a period's events, then pure decisions per check.

Each check serves clauses of six standards (:data:`CLAUSES`, after compliance.md §10, rows C01,
C03-C05, C07, C10-C12, C16, C18, C25, C28); where a standard has no such requirement the check
is ``not-applicable`` with the reason. The work is split in two, as the house style asks:

1. :class:`Scan` is fed every stored event of the period once (:func:`scan_log`, the only
   function here that reads the log). It keeps counters and a few example indexes, never the
   events. It reads the stored leaf as it is on disk: sealed fields are *present* (their names
   are listed under ``sealed.fields``) without being decrypted, so no check decrypts anything.
2. :func:`evaluate` turns a :class:`Scan` and a :class:`Context` (configuration values read by
   the caller, and ``now``) into :class:`CheckResult` values. It reads neither clock nor disk.

Conventions the checks rely on (docs/reports.md repeats them for operators):

- *security events* are those of categories :data:`SECURITY_CATEGORIES`;
- an *erasure request* is an event whose action ends with ``erasure.request`` or
  ``erasure_request``; it is closed by a later event with action ``subject.erase`` or ending with
  ``erasure.close`` / ``erasure.reject``, matched by ``request_id`` when the request has one,
  else by ``target.id``;
- a *read of the trail* is an event of category ``audit_access``; its actor is anonymous when
  ``actor.id`` is one of :data:`ANONYMOUS_IDS`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Final, Literal

import msgspec

from sealtrail.core import canonical
from sealtrail.core.canonical import StoredEvent
from sealtrail.core.redact import Redactor
from sealtrail.core.skew import MAX_SKEW, MAX_SKEW_MINUTES
from sealtrail.core.sources import is_imported
from sealtrail.core.timefmt import format_time, parse_time
from sealtrail.log.retention import CATEGORY_KEYS, RetentionPolicy

if TYPE_CHECKING:
    from sealtrail.log.apikeys import KeyInfo
    from sealtrail.log.auditlog import AuditLog

Status = Literal["pass", "fail", "warn", "not-applicable"]
STATUSES: Final = ("pass", "fail", "warn", "not-applicable")
STANDARDS: Final = ("pci-dss", "hipaa", "gdpr", "soc2", "nist-800-53", "iso27001")

SECURITY_CATEGORIES: Final = frozenset({"authentication", "authorization", "admin",
                                        "configuration", "data_access", "data_change",
                                        "audit_access"})
ANONYMOUS_IDS: Final = frozenset({"unknown", "anonymous", "-", "none", "null"})
MAX_EXAMPLES: Final = 10
SKEW_SHARE: Final = 0.01          # a source fails when more than 1 % of its events are skewed
VERIFY_MAX_AGE: Final = timedelta(hours=24)
ALERT_TEST_MAX_AGE: Final = timedelta(days=30)
ERASURE_DEADLINE: Final = timedelta(days=30)   # GDPR Art. 12(3): one month
MAX_ADMIN_KEYS: Final = 2
NO_SOURCE: Final = "(no source.service)"
DAY: Final = timedelta(days=1)

# The PCI DSS 10.2.2 fields and the 10.2.1.x event classes, in report order.
FIELDS: Final = ("user", "type", "time", "outcome", "origin", "resource")
CLASSES: Final = {
    "10.2.1.1": "individual access to data",
    "10.2.1.2": "actions by administrative accounts",
    "10.2.1.3": "access to audit logs",
    "10.2.1.4": "invalid logical access attempts",
    "10.2.1.5": "changes to credentials and accounts",
    "10.2.1.6": "initialisation, start, stop or pause of logging",
    "10.2.1.7": "creation and deletion of system-level objects",
}
# Words of an action (split on "." and "_") that put it in a class; see _classes.
_CREDENTIAL_WORDS: Final = frozenset({"password", "credential", "credentials", "mfa", "totp",
                                      "account", "user", "role", "privilege", "permission",
                                      "apikey", "key", "token", "passkey"})
_LIFECYCLE_WORDS: Final = frozenset({"start", "started", "stop", "stopped", "init", "initialize",
                                     "initialise", "initialized", "pause", "paused", "resume",
                                     "resumed", "shutdown"})
_OBJECT_WORDS: Final = frozenset({"create", "created", "delete", "deleted", "remove", "removed",
                                  "drop", "dropped"})
_CLOSERS: Final = ("erasure.close", "erasure.reject")
_REQUESTS: Final = ("erasure.request", "erasure_request")

# Check id -> standard -> the clauses it serves, or (a str) why it does not apply.
CLAUSES: Final[dict[str, dict[str, tuple[str, ...] | str]]] = {
    "fields": {
        "pci-dss": ("10.2.2",), "hipaa": ("164.312(b)", "164.312(a)(2)(i)"),
        "gdpr": ("Art. 5(2)", "Art. 32(1)(b)"), "soc2": ("CC2.1", "CC7.2"),
        "nist-800-53": ("AU-3",), "iso27001": ("A.8.15",)},
    "coverage": {
        "pci-dss": ("10.2.1", *CLASSES), "hipaa": ("164.312(b)", "164.308(a)(5)(ii)(C)"),
        "gdpr": "GDPR prescribes no catalogue of events to be logged",
        "soc2": ("CC7.2",), "nist-800-53": ("AU-2", "AU-12"), "iso27001": ("A.8.15",)},
    "reads": {
        "pci-dss": ("10.2.1.3",), "hipaa": ("164.312(b)",),
        "gdpr": ("Art. 5(1)(f)", "Art. 32(1)(b)"), "soc2": ("CC6.1", "CC7.2"),
        "nist-800-53": ("AU-9",), "iso27001": ("A.8.15",)},
    "verification": {
        "pci-dss": ("10.3.4", "10.4.1"), "hipaa": ("164.312(c)(1)", "164.312(c)(2)"),
        "gdpr": ("Art. 5(1)(f)", "Art. 32(1)(b)"), "soc2": ("CC7.1",),
        "nist-800-53": ("AU-9", "AU-9(3)"), "iso27001": ("A.8.15", "A.5.33")},
    "retention": {
        "pci-dss": ("10.5.1",), "hipaa": ("164.316(b)(2)(i)",),
        "gdpr": ("Art. 5(1)(e)", "Art. 30(1)(f)"), "soc2": ("C1.1", "C1.2"),
        "nist-800-53": ("AU-11",), "iso27001": ("A.5.33", "A.8.10")},
    "clock-skew": {
        "pci-dss": ("10.6.1", "10.6.2"),
        "hipaa": "the HIPAA Security Rule sets no clock-synchronisation requirement",
        "gdpr": "GDPR sets no clock-synchronisation requirement",
        "soc2": "the Trust Services Criteria set no clock-synchronisation requirement",
        "nist-800-53": ("AU-8",), "iso27001": ("A.8.17",)},
    "alerting": {
        "pci-dss": ("10.3.4", "10.7.2"), "hipaa": ("164.312(c)(2)", "164.308(a)(1)(ii)(D)"),
        "gdpr": ("Art. 32(1)(b)",), "soc2": ("CC7.2", "CC7.3"),
        "nist-800-53": ("AU-5", "AU-6"), "iso27001": ("A.8.16",)},
    "secrets": {
        "pci-dss": ("3.3.1", "3.5.1"),
        "hipaa": "the HIPAA Security Rule sets no rule on secrets in audit records",
        "gdpr": ("Art. 5(1)(c)", "Art. 32(1)(a)"), "soc2": ("CC6.1",),
        "nist-800-53": ("AU-9",), "iso27001": ("A.8.11",)},
    "erasure": {
        "pci-dss": "PCI DSS gives data subjects no right to erasure",
        "hipaa": "HIPAA gives no right to erasure (164.526 amendment is not deletion)",
        "gdpr": ("Art. 17", "Art. 12(3)"), "soc2": ("P4.3",),
        "nist-800-53": "SP 800-53 sets no data-subject erasure process",
        "iso27001": ("A.5.34", "A.8.10")},
    "roles": {
        "pci-dss": ("10.3.1", "7.2.1"), "hipaa": ("164.312(a)(1)", "164.308(a)(4)"),
        "gdpr": ("Art. 32(1)(b)",), "soc2": ("CC6.1", "CC6.3"),
        "nist-800-53": ("AU-9(4)", "AC-5", "AC-6"), "iso27001": ("A.5.3", "A.8.2")},
    "review": {
        "pci-dss": ("10.4.1", "10.4.1.1", "10.4.3"), "hipaa": ("164.308(a)(1)(ii)(D)",),
        "gdpr": "GDPR sets no periodic log review requirement",
        "soc2": ("CC4.1", "CC7.2", "CC7.3"), "nist-800-53": ("AU-6",),
        "iso27001": ("A.8.15", "A.8.16")},
}
TITLES: Final = {
    "fields": "Security events carry the six PCI DSS 10.2.2 fields",
    "coverage": "Required event classes (PCI DSS 10.2.1.1-10.2.1.7) are seen, per source",
    "reads": "Reads of the trail are logged with their actor",
    "verification": "Full verification within the last 24 h, no unresolved failure",
    "retention": "Retention minimum, maximum and online period meet the standard",
    "clock-skew": f"Source clocks agree with the log (|received_at - time| <= "
                  f"{MAX_SKEW_MINUTES} min)",
    "alerting": "Alerts on modification are configured and tested",
    "secrets": "No secret or card number stored in clear",
    "erasure": "Erasure requests are closed with an outcome within 30 days",
    "roles": "Access roles are separated",
    "review": "Every period was reviewed and signed off, every exception addressed",
}


@dataclass(frozen=True, slots=True)
class CheckResult:
    """One check's verdict, with the evidence behind it and what to do about a failure."""

    id: str
    title: str
    clauses: tuple[str, ...]
    status: Status
    summary: str
    evidence: Mapping[str, Any] = field(default_factory=dict)
    fix: str = ""

    def to_json(self) -> dict[str, Any]:
        """The check as JSON (the form the report hash covers)."""
        return {"id": self.id, "title": self.title, "clauses": list(self.clauses),
                "status": self.status, "summary": self.summary,
                "evidence": _plain(self.evidence), "fix": self.fix}


def _plain(value: Any) -> Any:
    """JSON-ready: tuples become lists, mappings dicts (keys as text)."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


@dataclass(frozen=True, slots=True)
class Context:
    """Everything but the events: configuration and state read by the caller, and ``now``."""

    now: datetime
    policy: RetentionPolicy | None = None
    meta: Mapping[str, str] = field(default_factory=dict)
    alerting: Mapping[str, Any] | None = None
    keys: Sequence[KeyInfo] | None = None
    # The periodic review's state over the report's range (compliance/review.py's
    # review_evidence); None when the caller did not compute it.
    review: Mapping[str, Any] | None = None


# -- the pass over the events -------------------------------------------------------------------


def _examples(bucket: list[int], index: int) -> None:
    if len(bucket) < MAX_EXAMPLES:
        bucket.append(index)


@dataclass(slots=True)
class _Skew:
    events: int = 0
    skewed: int = 0
    max_seconds: float = 0.0
    examples: list[int] = field(default_factory=list)


@dataclass(slots=True)
class _Request:
    index: int
    time: str
    action: str
    closed_by: int | None = None
    outcome: str | None = None


@dataclass(slots=True)
class Scan:
    """Counters fed by one pass over the period's events (see :meth:`feed`)."""

    events: int = 0
    retired: int = 0
    unreadable: list[int] = field(default_factory=list)
    first_time: str | None = None
    last_time: str | None = None
    # fields (PCI 10.2.2)
    security: int = 0
    missing: dict[str, int] = field(default_factory=lambda: dict.fromkeys(FIELDS, 0))
    missing_examples: list[int] = field(default_factory=list)
    # coverage: source -> class -> count
    coverage: dict[str, dict[str, int]] = field(default_factory=dict)
    # reads
    reads: int = 0
    anonymous_reads: list[int] = field(default_factory=list)
    anonymous_read_count: int = 0
    reads_by_action: dict[str, int] = field(default_factory=dict)
    readers: dict[str, int] = field(default_factory=dict)
    # clock skew per source
    skew: dict[str, _Skew] = field(default_factory=dict)
    # secrets
    secret_events: int = 0
    secret_kinds: dict[str, int] = field(default_factory=dict)
    secret_paths: dict[str, int] = field(default_factory=dict)
    secret_examples: list[int] = field(default_factory=list)
    # erasure
    requests: list[_Request] = field(default_factory=list)
    _open_by_key: dict[str, list[_Request]] = field(default_factory=dict)
    erasures: int = 0
    # personal data per category (sealed fields or subjects present); actors per key
    personal_categories: dict[str, int] = field(default_factory=dict)
    key_actors: dict[str, int] = field(default_factory=dict)
    _redactor: Redactor = field(default_factory=Redactor)

    def feed(self, index: int, ev: StoredEvent) -> None:
        """Count one event (the scan's only per-event work)."""
        self.events += 1
        time = ev.time or ""
        if self.first_time is None:
            self.first_time = time
        self.last_time = time
        sealed = frozenset(ev.sealed.fields) if ev.sealed is not None else frozenset()
        source = (ev.source.service if ev.source is not None else None) or NO_SOURCE
        category = ev.category
        actor_id = ev.actor.id
        if category is not None and (sealed or ev.subjects):
            self.personal_categories[category] = self.personal_categories.get(category, 0) + 1
        if actor_id.startswith("key:"):
            self.key_actors[actor_id[4:]] = self.key_actors.get(actor_id[4:], 0) + 1
        if category in SECURITY_CATEGORIES:
            self._fields(index, ev, sealed)
        per_source = self.coverage.setdefault(source, dict.fromkeys(CLASSES, 0))
        for cls in _classes(ev):
            per_source[cls] += 1
        if category == "audit_access":
            self.reads += 1
            self.reads_by_action[ev.action] = self.reads_by_action.get(ev.action, 0) + 1
            self.readers[actor_id] = self.readers.get(actor_id, 0) + 1
            if actor_id.strip().lower() in ANONYMOUS_IDS:
                self.anonymous_read_count += 1
                _examples(self.anonymous_reads, index)
        self._skew(index, source, ev)
        _, found = self._redactor.redact(ev)
        if found:
            self.secret_events += 1
            _examples(self.secret_examples, index)
            for f in found:
                self.secret_kinds[f.kind] = self.secret_kinds.get(f.kind, 0) + 1
                self.secret_paths[f.path] = self.secret_paths.get(f.path, 0) + 1
        self._erasure(index, ev)

    def _fields(self, index: int, ev: StoredEvent, sealed: frozenset[str]) -> None:
        self.security += 1
        src, actor, target = ev.source, ev.actor, ev.target
        present = {
            "user": bool(actor.id.strip()),
            "type": bool(ev.action),
            "time": bool(ev.time),
            "outcome": bool(ev.outcome),
            "origin": bool((src is not None and (src.ip or src.host)) or actor.ip
                           or {"source.ip", "actor.ip", "source.host"} & sealed),
            "resource": bool((target is not None and (target.id or target.name or target.type))
                             or {"target.id", "target.name", "target.type"} & sealed),
        }
        if all(present.values()):
            return
        for name, ok in present.items():
            if not ok:
                self.missing[name] += 1
        _examples(self.missing_examples, index)

    def _skew(self, index: int, source: str, ev: StoredEvent) -> None:
        if is_imported({"action": ev.action, "metadata": ev.metadata}):
            return  # another system's record: its time is that system's, not a clock to check
        s = self.skew.get(source)
        if s is None:
            s = self.skew[source] = _Skew()
        s.events += 1
        if ev.time == ev.received_at or ev.time is None or ev.received_at is None:
            return  # the log stamped the time itself: no skew (the common case)
        seconds = abs((parse_time(ev.received_at) - parse_time(ev.time)).total_seconds())
        s.max_seconds = max(s.max_seconds, seconds)
        if seconds > MAX_SKEW.total_seconds():
            s.skewed += 1
            _examples(s.examples, index)

    def _erasure(self, index: int, ev: StoredEvent) -> None:
        action = ev.action
        if action.endswith(_REQUESTS):
            req = _Request(index, ev.time or "", action)
            self.requests.append(req)
            key = _request_key(ev)
            if key is not None:
                self._open_by_key.setdefault(key, []).append(req)
            return
        closer = action == "subject.erase" or action.endswith(_CLOSERS)
        if action == "subject.erase":
            self.erasures += 1
        if not closer:
            return
        key = _request_key(ev)
        waiting = self._open_by_key.get(key) if key is not None else None
        if waiting:
            req = waiting.pop(0)
            req.closed_by, req.outcome = index, ev.outcome


def _request_key(ev: StoredEvent) -> str | None:
    if ev.request_id:
        return "request:" + ev.request_id
    if ev.target is not None and ev.target.id:
        return "target:" + ev.target.id
    return None


def _classes(ev: StoredEvent) -> Iterable[str]:
    """The PCI DSS 10.2.1.x classes one event evidences (docs/reports.md lists the rules)."""
    cat, outcome = ev.category, ev.outcome
    words = frozenset(ev.action.lower().replace("_", ".").split("."))
    if cat in ("data_access", "data_change"):
        yield "10.2.1.1"
    if cat == "admin":
        yield "10.2.1.2"
    if cat == "audit_access":
        yield "10.2.1.3"
    if cat in ("authentication", "authorization") and outcome in ("failure", "denied"):
        yield "10.2.1.4"
    if cat in ("authentication", "admin", "configuration") and words & _CREDENTIAL_WORDS and (
            outcome == "success" and not words & {"login", "logout", "signin", "authenticate"}):
        yield "10.2.1.5"
    if cat in ("system", "configuration", "admin") and words & _LIFECYCLE_WORDS:
        yield "10.2.1.6"
    if cat in ("system", "configuration") and words & _OBJECT_WORDS:
        yield "10.2.1.7"


def scan_log(alog: AuditLog, since: datetime | None, until: datetime | None,
             scan: Scan | None = None) -> Scan:
    """Feed every stored event with ``since <= time < until`` to one :class:`Scan`.

    Reads leaves as stored (no decryption); retired entries are counted, not read.
    """
    out = scan if scan is not None else Scan()
    lo = format_time(since) if since is not None else None
    hi = format_time(until) if until is not None else None
    for entry in alog.entries(0):
        if entry.retired:
            out.retired += 1
            continue
        try:
            ev = canonical.decode_leaf(entry.leaf)
        except (msgspec.DecodeError, ValueError):
            _examples(out.unreadable, entry.index)
            continue
        # Stored times are canonical (fixed-width UTC), so text order is time order.
        t = ev.time or ""
        if (lo is not None and t < lo) or (hi is not None and t >= hi):
            continue
        out.feed(entry.index, ev)
    return out


# -- the decisions ------------------------------------------------------------------------------


def _result(check: str, status: Status, summary: str, evidence: Mapping[str, Any],
            fix: str = "") -> CheckResult:
    return CheckResult(check, TITLES[check], (), status, summary, evidence,
                       fix if status in ("fail", "warn") else "")


def check_fields(scan: Scan, ctx: Context) -> CheckResult:
    """PCI DSS 10.2.2: user, type, time, outcome, origin and resource on every security event."""
    ev: dict[str, Any] = {"security_events": scan.security,
                          "categories": sorted(SECURITY_CATEGORIES)}
    bad = {k: v for k, v in scan.missing.items() if v}
    if bad:
        ev |= {"missing": bad, "example_indexes": scan.missing_examples}
        return _result("fields", "fail", f"{sum(1 for _ in bad)} field(s) missing on some of "
                       f"{scan.security} security event(s): "
                       + ", ".join(f"{k} ({v})" for k, v in bad.items()), ev,
                       "Make the sources set source.ip or source.host (origin) and target.id, "
                       "target.name or target.type (resource) on every security event.")
    if not scan.security:
        return _result("fields", "warn", "no security event in the period", ev,
                       "Widen the period, or check that sources send security events.")
    return _result("fields", "pass", f"all {scan.security} security event(s) carry the six "
                   "fields", ev)


def check_coverage(scan: Scan, ctx: Context) -> CheckResult:
    """PCI DSS 10.2.1.1-7: each class seen at least once; listed per source."""
    totals = {c: sum(s[c] for s in scan.coverage.values()) for c in CLASSES}
    unseen = [c for c, n in totals.items() if not n]
    per_source = {src: dict(counts) for src, counts
                  in sorted(scan.coverage.items())}
    ev = {"classes": dict(CLASSES), "totals": totals, "per_source": per_source,
          "unseen": unseen}
    if unseen:
        return _result("coverage", "warn", f"{len(unseen)} class(es) never seen in the period "
                       f"(cannot prove they are logged): {', '.join(unseen)}", ev,
                       "Have each in-scope source log these event classes, or record a "
                       "synthetic test event for each, or document why a class does not apply.")
    return _result("coverage", "pass", "every 10.2.1.x class seen in the period", ev)


def check_reads(scan: Scan, ctx: Context) -> CheckResult:
    """Reads of the trail (category audit_access) exist and all name their actor."""
    top = sorted(scan.readers.items(), key=lambda kv: (-kv[1], kv[0]))[:MAX_EXAMPLES]
    ev: dict[str, Any] = {"reads": scan.reads, "by_action": dict(sorted(
        scan.reads_by_action.items())), "readers": len(scan.readers), "top_readers": dict(top)}
    if scan.anonymous_read_count:
        ev |= {"anonymous": scan.anonymous_read_count,
               "example_indexes": scan.anonymous_reads}
        return _result("reads", "fail", f"{scan.anonymous_read_count} of {scan.reads} read(s) "
                       "of the trail have no identified actor", ev,
                       "Give every reader its own credential; never read the trail as "
                       "'unknown' or 'anonymous'.")
    if not scan.reads:
        return _result("reads", "warn", "no read of the trail in the period (nothing to show)",
                       ev, "Nothing to fix if nobody read the trail; a canary query proves "
                       "that reads are recorded.")
    return _result("reads", "pass", f"{scan.reads} read(s), each with an actor", ev)


def check_verification(scan: Scan, ctx: Context) -> CheckResult:
    """A full verification within 24 h, and no failure newer than the last success."""
    at, failed = ctx.meta.get("verified_at"), ctx.meta.get("verify_failed_at")
    ev = {"verified_at": at, "verified_size": _int(ctx.meta.get("verified_size")),
          "verify_failed_at": failed, "max_age_hours": int(VERIFY_MAX_AGE / timedelta(hours=1))}
    fix = "Run 'sealtrail verify' at least daily (cron or the service's schedule)."
    if failed is not None and (at is None or parse_time(failed) >= parse_time(at)):
        return _result("verification", "fail", f"the last verification FAILED at {failed}", ev,
                       "Investigate the integrity failure (sealtrail verify shows the entry); "
                       "restore from a verified copy and record the incident.")
    if at is None:
        return _result("verification", "fail", "the log was never fully verified", ev, fix)
    age = ctx.now - parse_time(at)
    if age > VERIFY_MAX_AGE:
        return _result("verification", "fail", f"the last full verification was at {at}, "
                       f"{age.days} day(s) ago", ev, fix)
    return _result("verification", "pass", f"verified at {at}", ev)


def _int(text: str | None) -> int | None:
    return int(text) if text is not None and text.isdigit() else None


def _days(value: timedelta | None) -> float | None:
    return None if value is None else value / DAY


def _kept(rule_min: timedelta | None, rule_max: timedelta | None) -> timedelta | None:
    """How long an entry is surely kept (None: forever): a purge needs age > max and > min."""
    if rule_max is None:
        return None
    return max(rule_max, rule_min or timedelta(0))


_FLOORS: Final = {"pci-dss": (timedelta(days=365), timedelta(days=90)),
                  "hipaa": (timedelta(days=6 * 365), None),
                  "soc2": (timedelta(days=365), None),
                  "nist-800-53": (timedelta(days=365), None),
                  "iso27001": (timedelta(days=365), None)}


def check_retention(scan: Scan, ctx: Context, standard: str) -> CheckResult:
    """Minimum and online floors per standard; for GDPR, a maximum on personal-data categories."""
    policy = ctx.policy
    ev: dict[str, Any] = {"policy": policy.to_json() if policy is not None else None}
    if standard == "gdpr":
        personal = sorted(scan.personal_categories)
        ev["personal_data_categories"] = personal
        if policy is None:
            return _result("retention", "warn", "no retention policy: personal data is kept "
                           "forever", ev, "Set a maximum for categories carrying personal "
                           "data: sealtrail retention set --preset gdpr.")
        unbounded = [c for c in personal if policy.rule_for(c).max is None]
        ev["without_max"] = unbounded
        if unbounded:
            return _result("retention", "warn", "no maximum for categories carrying personal "
                           f"data: {', '.join(unbounded)}", ev,
                           "Set a max for these categories (storage limitation), or record "
                           "why they must be kept (Art. 17(3)).")
        return _result("retention", "pass", "every category carrying personal data has a "
                       "maximum", ev)
    floor, online_floor = _FLOORS[standard]
    ev["min_days_required"] = floor / DAY
    if online_floor is not None:
        ev["online_days_required"] = online_floor / DAY
    if policy is None:
        status: Status = "warn" if standard in ("pci-dss", "hipaa") else "fail"
        return _result("retention", status, "no retention policy (everything is kept forever, "
                       "but no policy documents it)", ev,
                       f"Set one: sealtrail retention set --preset "
                       f"{standard if standard in ('pci-dss', 'hipaa', 'soc2') else 'soc2'}.")
    problems: list[str] = []
    rules: dict[str, Any] = {}
    for cat in CATEGORY_KEYS:
        rule = policy.rule_for(cat)
        kept = _kept(rule.min, rule.max)
        rules[cat] = {"kept_days": _days(kept), "online_days": _days(rule.online)}
        if kept is not None and kept < floor:
            problems.append(f"{cat}: kept {_days(kept):g} d < {floor / DAY:g} d")
        if online_floor is not None and rule.online is not None and rule.online < online_floor:
            problems.append(f"{cat}: online {rule.online / DAY:g} d < {online_floor / DAY:g} d")
    ev["effective"] = rules
    if problems:
        ev["problems"] = problems
        return _result("retention", "fail", "; ".join(problems), ev,
                       f"Raise the policy's min (and online) to the floor: sealtrail retention "
                       f"set --preset {standard if standard in ('pci-dss', 'hipaa') else 'soc2'}.")
    return _result("retention", "pass", f"policy {policy.name!r} meets the floors", ev)


def check_skew(scan: Scan, ctx: Context) -> CheckResult:
    """Per source: more than 1 % of events off by more than :data:`MAX_SKEW` fails."""
    per_source: dict[str, Any] = {}
    bad: list[str] = []
    for src, s in sorted(scan.skew.items()):
        share = s.skewed / s.events if s.events else 0.0
        per_source[src] = {"events": s.events, "skewed": s.skewed, "share": round(share, 6),
                           "max_skew_seconds": round(s.max_seconds, 3),
                           "example_indexes": s.examples}
        if share > SKEW_SHARE:
            bad.append(src)
    ev = {"limit_seconds": MAX_SKEW.total_seconds(), "max_share": SKEW_SHARE,
          "per_source": per_source}
    if bad:
        return _result("clock-skew", "fail", f"source clock skew over {MAX_SKEW_MINUTES} min "
                       f"on more than 1 % of events: {', '.join(bad)}", ev,
                       "Synchronise these sources' clocks to the designated NTP servers "
                       "(chrony/ntpd) and check their time zone handling.")
    if not per_source:
        return _result("clock-skew", "warn", "no event in the period", ev,
                       "Widen the period.")
    return _result("clock-skew", "pass", "every source within bounds", ev)


def check_alerting(scan: Scan, ctx: Context) -> CheckResult:
    """Alerting on modification: sinks, an integrity watch, and a test within 30 days."""
    cfg = ctx.alerting
    if cfg is None:
        return _result("alerting", "warn", "not configured in this report's context", {},
                       "Generate the report where the monitor runs (it passes its alerting "
                       "configuration), or attest to it separately.")
    sinks = int(cfg.get("sinks") or 0)
    watch = bool(cfg.get("integrity_watch"))
    last = cfg.get("last_test_alert")
    ev = {"sinks": sinks, "integrity_watch": watch, "last_test_alert": last,
          "max_test_age_days": ALERT_TEST_MAX_AGE / DAY}
    problems = []
    if sinks < 1:
        problems.append("no alert sink")
    if not watch:
        problems.append("no integrity watch")
    if not isinstance(last, str):
        problems.append("alerting never tested")
    elif ctx.now - parse_time(last) > ALERT_TEST_MAX_AGE:
        problems.append(f"last test alert {last} is older than 30 days")
    if problems:
        return _result("alerting", "fail", "; ".join(problems), ev,
                       "Configure at least one sink and the integrity watch, then send a "
                       "test alert (monthly).")
    return _result("alerting", "pass", f"{sinks} sink(s), integrity watch on, tested {last}",
                   ev)


def check_secrets(scan: Scan, ctx: Context) -> CheckResult:
    """The redactor's detectors over the clear (unsealed) stored values find nothing."""
    ev: dict[str, Any] = {"redaction": ctx.meta.get("redaction"), "scanned": scan.events}
    if scan.secret_events:
        ev |= {"events": scan.secret_events, "kinds": dict(sorted(scan.secret_kinds.items())),
               "paths": dict(sorted(scan.secret_paths.items())),
               "example_indexes": scan.secret_examples}
        return _result("secrets", "fail", f"{scan.secret_events} event(s) hold a secret or "
                       "card number in clear: " + ", ".join(sorted(scan.secret_kinds)), ev,
                       "Turn ingest redaction on (sealtrail init --redaction mask), fix the "
                       "sources, rotate the leaked secrets, and purge or erase the entries "
                       "where the retention policy allows.")
    return _result("secrets", "pass", f"no secret found in {scan.events} event(s)", ev)


def check_erasure(scan: Scan, ctx: Context) -> CheckResult:
    """Every erasure request closed with an outcome; none open past 30 days."""
    closed = [r for r in scan.requests if r.closed_by is not None]
    pending = [r for r in scan.requests if r.closed_by is None]
    overdue = [r for r in pending if ctx.now - parse_time(r.time) > ERASURE_DEADLINE]
    ev: dict[str, Any] = {
        "requests": len(scan.requests), "closed": len(closed), "open": len(pending),
        "overdue": len(overdue), "subject_erasures": scan.erasures,
        "outcomes": _count(r.outcome or "" for r in closed),
        "open_indexes": [r.index for r in pending[:MAX_EXAMPLES]],
        "overdue_indexes": [r.index for r in overdue[:MAX_EXAMPLES]]}
    if overdue:
        return _result("erasure", "fail", f"{len(overdue)} erasure request(s) open for more "
                       "than 30 days", ev,
                       "Erase (sealtrail erase), or record the refusal with its Art. 17(3) "
                       "ground as an '...erasure.reject' event with the request's request_id.")
    if not scan.requests:
        return _result("erasure", "pass", "no erasure request in the period", ev)
    return _result("erasure", "pass", f"{len(closed)} closed, {len(pending)} open within the "
                   "deadline", ev)


def _count(values: Iterable[str]) -> dict[str, int]:
    out: dict[str, int] = {}
    for v in values:
        out[v] = out.get(v, 0) + 1
    return dict(sorted(out.items()))


def check_roles(scan: Scan, ctx: Context) -> CheckResult:
    """At most two active admin keys; no admin key writing events; not only admin keys."""
    if not ctx.keys:
        return _result("roles", "warn", "no service API keys (embedded use): roles are those "
                       "of the host's file permissions", {"keys": 0},
                       "Attest to who can read and write the data directory.")
    now = ctx.now
    active = [k for k in ctx.keys if k.revoked is None
              and (k.expires is None or parse_time(k.expires) > now)]
    by_role = _count(k.role for k in active)
    admins = {k.id for k in active if k.role == "admin"}
    admin_writers = {k: n for k, n in scan.key_actors.items() if k in admins}
    ev = {"keys": len(ctx.keys), "active": len(active), "active_by_role": by_role,
          "max_admin_keys": MAX_ADMIN_KEYS, "admin_keys_as_actors": admin_writers}
    problems = []
    if len(admins) > MAX_ADMIN_KEYS:
        problems.append(f"{len(admins)} active admin keys (at most {MAX_ADMIN_KEYS})")
    if active and len(admins) == len(active):
        problems.append("only admin keys are active: no separate ingest/reader/auditor role")
    if admin_writers:
        problems.append(f"admin key(s) acting in events: {', '.join(sorted(admin_writers))}")
    if problems:
        return _result("roles", "fail", "; ".join(problems), ev,
                       "Revoke surplus admin keys (sealtrail keys revoke) and give producers "
                       "ingest keys and reviewers reader/auditor keys.")
    return _result("roles", "pass", "roles are separated: " + ", ".join(
        f"{r} {n}" for r, n in by_role.items()), ev)


def check_review(scan: Scan, ctx: Context) -> CheckResult:
    """Every ended period of the range signed off, every exception addressed (benign, or
    assigned and the assignment closed): PCI DSS 10.4.1 / 10.4.3 (compliance/review.py)."""
    rev = ctx.review
    if rev is None:
        return _result("review", "warn", "the periodic review was not assessed in this "
                       "report's context", {},
                       "Generate the report with the review state (sealtrail review list "
                       "shows it), or attest to the daily review separately.")
    periods = [p for p in rev.get("periods", ()) if isinstance(p, Mapping)]
    unsigned = [str(p["period"]) for p in periods if p.get("status") != "signed_off"]
    overdue = [str(p["period"]) for p in periods if p.get("status") == "overdue"]
    reopened = [str(p["period"]) for p in periods if p.get("status") == "reopened"]
    open_exc = {str(p["period"]): int(p.get("open") or 0) for p in periods
                if int(p.get("open") or 0) > 0}
    ev = {"periods": len(periods), "signed_off": len(periods) - len(unsigned),
          "not_signed_off": unsigned[:MAX_EXAMPLES * 3], "overdue": overdue[:MAX_EXAMPLES * 3],
          "reopened": reopened[:MAX_EXAMPLES * 3],
          "open_exceptions": open_exc, "grace_hours": rev.get("grace_hours"),
          "exceptions": sum(int(p.get("exceptions") or 0) for p in periods),
          "first": rev.get("first"), "last": rev.get("last")}
    if not periods:
        return _result("review", "warn", "no period of the range has ended yet", ev,
                       "Widen the period.")
    problems = []
    if unsigned:
        problems.append(f"{len(unsigned)} period(s) not signed off ({len(overdue)} overdue"
                        + (f", {len(reopened)} reopened by late exceptions" if reopened
                           else "") + ")")
    if open_exc:
        problems.append(f"{sum(open_exc.values())} exception(s) not addressed in "
                        f"{len(open_exc)} period(s)")
    if problems:
        return _result("review", "fail", "; ".join(problems), ev,
                       "Review each period (sealtrail review show / the console's Review "
                       "page): mark every exception benign or assign it, close the "
                       "assignments, and sign the period off.")
    return _result("review", "pass", f"{len(periods)} period(s) signed off, "
                   f"{ev['exceptions']} exception(s) addressed", ev)


CHECKS: Final = ("fields", "coverage", "reads", "verification", "retention", "clock-skew",
                 "alerting", "secrets", "erasure", "roles", "review")


def evaluate(scan: Scan, ctx: Context, standard: str) -> list[CheckResult]:
    """Every check of :data:`CHECKS` for one standard, in order (pure)."""
    if standard not in STANDARDS:
        raise ValueError(f"standard {standard!r}: use one of {', '.join(STANDARDS)}")
    out = []
    for check in CHECKS:
        clauses = CLAUSES[check][standard]
        if isinstance(clauses, str):
            out.append(CheckResult(check, TITLES[check], (), "not-applicable", clauses))
            continue
        if check == "retention":
            res = check_retention(scan, ctx, standard)
        else:
            res = _FUNCS[check](scan, ctx)
        out.append(CheckResult(res.id, res.title, clauses, res.status, res.summary,
                               res.evidence, res.fix))
    return out


_FUNCS: Final = {"fields": check_fields, "coverage": check_coverage, "reads": check_reads,
                 "verification": check_verification, "clock-skew": check_skew,
                 "alerting": check_alerting, "secrets": check_secrets,
                 "erasure": check_erasure, "roles": check_roles,
                 "review": check_review}
