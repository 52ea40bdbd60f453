"""The console's overview of one log: integrity, activity, open alerts, retention at a glance.

``GET /v1/logs/{log}/overview`` answers what a reviewer checks first: the latest signed
checkpoint and how old it is, the last full verification and its result, how many events
arrived per hour in the last day by category and outcome, open alerts by severity, the
retention policy and open legal holds. It reads no event content: the activity counts come
from the leaves' plain fields (``received_at``, ``category``, ``outcome``), which are never
sealed, so the admin role (which reads no content) may see it too and nothing is recorded as a
read. The counts are kept per hour and brought up to date with the entries appended since
the last answer (:func:`_activity`), so a console refreshing every few seconds costs what
arrived meanwhile; only the first answer reads back through the window (at most
:data:`MAX_SCANNED` entries, and it says when it stopped there).
"""

from __future__ import annotations

import base64
import threading
import weakref
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Final

import msgspec
from fastapi import APIRouter, Response

from sealtrail.core.errors import SealtrailError
from sealtrail.core.timefmt import format_time, parse_time
from sealtrail.log.apikeys import Principal
from sealtrail.log.auditlog import AuditLog
from sealtrail.log.retention import load_policy
from sealtrail.server.deps import Service, in_thread, open_log, requires
from sealtrail.server.openapi import ERRORS
from sealtrail.server.state import ServiceState

ROUTES: Final = {("GET", "/v1/logs/{log}/overview"): frozenset({"reader", "auditor", "admin"})}
MAX_SCANNED: Final = 2_000_000  # the first count's cap (later ones count only new entries)
WINDOW: Final = timedelta(hours=24)
BUCKET: Final = timedelta(hours=1)

router = APIRouter()
as_overview = requires(ROUTES, "GET", "/v1/logs/{log}/overview")


class _Plain(msgspec.Struct):
    """The leaf fields the overview counts (never sealed; the rest is not decoded)."""

    received_at: str = ""
    category: str = ""
    outcome: str = ""


_decode = msgspec.json.Decoder(_Plain).decode
_cache_lock = threading.Lock()


@router.get("/v1/logs/{log}/overview", responses=ERRORS)
async def get_overview(log: str, service: Service,
                       principal: Principal = as_overview) -> Response:
    """Integrity, the last day's activity, open alerts and retention of one log."""
    alog = open_log(service, log)
    doc = await in_thread(_overview, service, log, alog)
    return Response(msgspec.json.encode(doc), media_type="application/json")


def _overview(state: ServiceState, name: str, alog: AuditLog) -> dict[str, Any]:
    now = state.config.clock()
    signed = alog.checkpoint()
    size = signed.checkpoint.size
    activity = _activity(alog, size, now)
    result = state.verifier.results.get(name)
    verification = (None if result is None else
                    {"ok": result.ok, "size": result.size, "at": format_time(result.at),
                     "problem": result.problem})
    open_alerts: Counter[str] = Counter()
    acknowledged = 0
    for (log, status, severity), count in state.monitor.store.counts().items():
        if log != name:
            continue
        if status == "open":
            open_alerts[severity] += count
        elif status == "acknowledged":
            acknowledged += count
    policy = load_policy(alog)
    try:
        holds: int | None = len(alog.holds())
        holds_note = ""
    except SealtrailError as exc:  # an unencrypted log has none; a locked one cannot say
        holds, holds_note = None, exc.public_message()
    return {
        "log": name,
        "now": format_time(now),
        "checkpoint": {"size": size, "root": base64.b64encode(signed.checkpoint.root).decode(),
                       "origin": signed.checkpoint.origin},
        "verification": verification,
        "alerts": {"open": dict(open_alerts), "acknowledged": acknowledged},
        "activity": activity,
        "retention": {"policy": None if policy is None else policy.to_json(),
                      "holds": holds, "holds_note": holds_note},
    }


@dataclass
class _Hour:
    """One hour's counts."""

    count: int = 0
    categories: Counter[str] = field(default_factory=Counter)
    outcomes: Counter[str] = field(default_factory=Counter)


@dataclass
class _Tally:
    """A log's counts per hour of receipt, kept up to date entry by entry: entries
    ``[0, size)`` are counted (the older ones only as far as the window and the cap went)."""

    size: int
    hours: dict[datetime, _Hour]
    scanned: int
    complete: bool
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, received_at: str, category: str, outcome: str) -> datetime | None:
        """Count one entry in its hour (None when its time does not read)."""
        try:
            received = parse_time(received_at)
        except ValueError:
            return None
        hour = self.hours.setdefault(_hour_of(received), _Hour())
        hour.count += 1
        hour.categories[category or "(none)"] += 1
        hour.outcomes[outcome or "(none)"] += 1
        return received


def _hour_of(at: datetime) -> datetime:
    return at.replace(minute=0, second=0, microsecond=0)


# Keyed by the open log object itself, held weakly: one service's log, forgotten with it (an
# id() could be reused by the next service's object and hand it another log's counts).
_tallies: weakref.WeakKeyDictionary[AuditLog, _Tally] = weakref.WeakKeyDictionary()


def _activity(alog: AuditLog, size: int,
              now: datetime) -> dict[str, Any]:
    """Events per hour of the last day, by category and outcome.

    The first call counts backwards from the newest entry to the start of the window (at
    most :data:`MAX_SCANNED` entries); later calls count only the entries appended since, so a
    console refreshing every few seconds costs what arrived meanwhile, however busy the log.
    Hours that left the window are dropped. A log that shrank (restored from a backup) is
    counted again.
    """
    since = now - WINDOW
    first_hour = _hour_of(since)
    with _cache_lock:
        tally = _tallies.get(alog)
        if tally is None or size < tally.size:
            tally = _tallies[alog] = _Tally(0, {}, 0, True)
    with tally.lock:
        if tally.size == 0 and size > 0:
            _count_back(tally, alog, size, since)
        elif size > tally.size:
            for entry in alog.entries(tally.size, size):
                plain = _plain(entry.leaf)
                if plain is not None:
                    tally.add(plain.received_at, plain.category, plain.outcome)
                tally.scanned += 1
            tally.size = size
        for hour in [h for h in tally.hours if h < first_hour]:
            del tally.hours[hour]
        hours = [first_hour + BUCKET * i for i in range(25)]
        categories: Counter[str] = Counter()
        outcomes: Counter[str] = Counter()
        for counts in tally.hours.values():
            categories.update(counts.categories)
            outcomes.update(counts.outcomes)
        return {
            "since": format_time(first_hour),
            "bucket_seconds": int(BUCKET.total_seconds()),
            "buckets": [{"start": format_time(h), "count": tally.hours[h].count
                         if h in tally.hours else 0} for h in hours],
            "by_category": dict(categories.most_common()),
            "by_outcome": dict(outcomes.most_common()),
            "scanned": tally.scanned,
            "complete": tally.complete,
        }


def _count_back(tally: _Tally, alog: AuditLog, size: int, since: datetime) -> None:
    """The first count: newest entries first, back to the window's start or the cap."""
    floor = _hour_of(since)
    for entry in alog.entries_reversed(size):
        if tally.scanned >= MAX_SCANNED:
            tally.complete = False
            break
        tally.scanned += 1
        plain = _plain(entry.leaf)
        if plain is None:
            continue  # a retired entry reads as empty; verify reports real damage
        received = tally.add(plain.received_at, plain.category, plain.outcome)
        if received is not None and received < floor:
            break
    tally.size = size


def _plain(leaf: bytes) -> _Plain | None:
    try:
        return _decode(leaf)
    except msgspec.DecodeError:
        return None
