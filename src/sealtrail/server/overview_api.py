"""The console's overview of one log: integrity, activity, open alerts, retention at a glance.

``GET /v1/logs/{log}/overview`` answers what a reviewer checks first: the latest signed
checkpoint and how old it is, the last full verification and its result, how many events
arrived per hour in the last day by category and outcome, open alerts by severity, the
retention policy and open legal holds. It reads no event content: the activity counts come
from the leaves' plain fields (``received_at``, ``category``, ``outcome``), which are never
sealed, so the admin role (which reads no content) may see it too and nothing is recorded as a
read. The scan stops after :data:`MAX_SCANNED` entries from the end, and says so.
"""

from __future__ import annotations

import base64
import threading
import time
from collections import Counter
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
MAX_SCANNED: Final = 50_000
WINDOW: Final = timedelta(hours=24)
BUCKET: Final = timedelta(hours=1)
_FRESH: Final = 5.0  # seconds an answer is reused for the same log and size

router = APIRouter()
as_overview = requires(ROUTES, "GET", "/v1/logs/{log}/overview")


class _Plain(msgspec.Struct):
    """The leaf fields the overview counts (never sealed; the rest is not decoded)."""

    received_at: str = ""
    category: str = ""
    outcome: str = ""


_decode = msgspec.json.Decoder(_Plain).decode
_cache: dict[tuple[int, str], tuple[float, int, dict[str, Any]]] = {}
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
    key = (id(state), name)  # one service's log: two services in a process share nothing
    with _cache_lock:
        hit = _cache.get(key)
    if hit is not None and hit[1] == size and time.monotonic() - hit[0] < _FRESH:
        activity = hit[2]
    else:
        activity = _activity(alog, size, now)
        with _cache_lock:
            _cache[key] = (time.monotonic(), size, activity)
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


def _activity(alog: AuditLog, size: int, now: datetime) -> dict[str, Any]:
    """Events per hour of the last day, by category and outcome, newest entries first."""
    since = now - WINDOW
    start_hour = since.replace(minute=0, second=0, microsecond=0) + BUCKET
    hours = [start_hour - BUCKET + BUCKET * i for i in range(25)]
    per_hour: Counter[int] = Counter()
    categories: Counter[str] = Counter()
    outcomes: Counter[str] = Counter()
    scanned = 0
    complete = True
    for entry in alog.entries_reversed(size):
        if scanned >= MAX_SCANNED:
            complete = False
            break
        scanned += 1
        try:
            plain = _decode(entry.leaf)
            received = parse_time(plain.received_at)
        except (msgspec.DecodeError, ValueError):
            continue  # a retired entry reads as empty; verify reports real damage
        if received < since:
            break
        slot = int((received - hours[0]) // BUCKET)
        if 0 <= slot < len(hours):
            per_hour[slot] += 1
        categories[plain.category or "(none)"] += 1
        outcomes[plain.outcome or "(none)"] += 1
    return {
        "since": format_time(since),
        "bucket_seconds": int(BUCKET.total_seconds()),
        "buckets": [{"start": format_time(h), "count": per_hour[i]}
                    for i, h in enumerate(hours)],
        "by_category": dict(categories.most_common()),
        "by_outcome": dict(outcomes.most_common()),
        "scanned": scanned,
        "complete": complete,
    }
