"""Alert routes: list and filter a log's alerts, show one with its events, acknowledge and
resolve them.

Reading alerts is for readers, auditors and admins (an alert points at events; it does not
show their content, so listing is not an audited read). Acknowledging and resolving change
the record and are for auditors and admins; each change is an event in the log naming the key
that made it and the reason it gave.
"""

from __future__ import annotations

import functools
from typing import Any, Final

import msgspec
from fastapi import APIRouter, HTTPException, Query, Request, Response

from sealtrail.core.errors import ConfigError, ValidationError
from sealtrail.log.apikeys import Principal
from sealtrail.log.reads import Reader
from sealtrail.monitor.alerts import SEVERITIES, STATUSES
from sealtrail.server.deps import (
    READERS,
    Service,
    actor_of,
    in_thread,
    open_log,
    read_body,
    requires,
)
from sealtrail.server.openapi import ERRORS, json_body
from sealtrail.server.state import ServiceState

LIST_ROLES: Final = frozenset({"reader", "auditor", "admin"})
CHANGE_ROLES: Final = frozenset({"auditor", "admin"})
ROUTES: Final = {
    ("GET", "/v1/logs/{log}/alerts"): LIST_ROLES,
    ("GET", "/v1/logs/{log}/alerts/{alert_id}"): LIST_ROLES,
    ("POST", "/v1/logs/{log}/alerts/{alert_id}/ack"): CHANGE_ROLES,
    ("POST", "/v1/logs/{log}/alerts/{alert_id}/resolve"): CHANGE_ROLES,
}
MAX_REASON: Final = 4096


router = APIRouter()
as_list = requires(ROUTES, "GET", "/v1/logs/{log}/alerts")
as_detail = requires(ROUTES, "GET", "/v1/logs/{log}/alerts/{alert_id}")
as_ack = requires(ROUTES, "POST", "/v1/logs/{log}/alerts/{alert_id}/ack")
as_resolve = requires(ROUTES, "POST", "/v1/logs/{log}/alerts/{alert_id}/resolve")
_REASON_BODY: Final = json_body({"type": "object", "required": ["reason"], "properties": {
    "reason": {"type": "string", "minLength": 1, "maxLength": MAX_REASON}}},
    "Why: what was checked, what was done")


@router.get("/v1/logs/{log}/alerts", responses=ERRORS)
async def list_alerts(log: str, service: Service, *,
                      status: str | None = Query(None, description="open, acknowledged "
                                                 "or resolved"),
                      severity: str | None = Query(None, description="low, medium, high "
                                                   "or critical"),
                      rule: str | None = Query(None, max_length=256),
                      limit: int = Query(100, ge=1, le=1000),
                      before: str | None = Query(None, max_length=64,
                                                 description="last_seen cursor"),
                      principal: Principal = as_list) -> Response:
    """The log's alerts, newest first; filter by status, severity or rule."""
    open_log(service, log)
    if status is not None and status not in STATUSES:
        raise ValidationError("status", f"use one of {', '.join(STATUSES)}")
    if severity is not None and severity not in SEVERITIES:
        raise ValidationError("severity", f"use one of {', '.join(SEVERITIES)}")
    found = await in_thread(functools.partial(service.monitor.store.list, log, status=status,
                                              severity=severity, rule=rule, limit=limit,
                                              before=before))
    out = [a.to_dict() for a in found]
    nxt = found[-1].last_seen if len(found) == limit else None
    return Response(msgspec.json.encode({"alerts": out, "next_before": nxt}),
                    media_type="application/json")


@router.get("/v1/logs/{log}/alerts/{alert_id}", responses=ERRORS)
async def get_alert(log: str, alert_id: str, service: Service,
                    principal: Principal = as_detail) -> Response:
    """One alert and the events that raised it (its evidence: the newest entries it kept).

    The events are event content: a reader or auditor gets them, and the read is recorded
    (``audit.entries.read``, naming the alert) before they are sent; an admin, who reads no
    event content, gets their indexes only (``events`` is null).
    """
    alog = open_log(service, log)
    if len(alert_id) > 64:
        raise ValidationError("alert_id", "at most 64 characters")
    alert = await in_thread(service.monitor.store.get, alert_id)
    if alert is None or alert.log != log:
        raise HTTPException(404, f"no alert {alert_id!r} in log {log!r}")
    out = alert.to_dict()
    if principal.role not in READERS:
        return Response(msgspec.json.encode({**out, "events": None}),
                        media_type="application/json")

    def read() -> list[dict[str, Any]]:
        size = alog.size
        wanted = sorted({i for i in alert.entries if isinstance(i, int) and 0 <= i < size})
        if not wanted:
            return []
        alog.refresh_keys()
        Reader(actor_of(principal), principal.role).record(
            alog, "audit.entries.read", {"alert": alert_id}, len(wanted))
        rows = []
        for index in wanted:
            entry = alog.entry(index)
            rows.append({"index": index,
                         "event": None if entry.retired else alog.read(entry)})
        return rows

    events = await in_thread(read)
    return Response(msgspec.json.encode({**out, "events": events}),
                    media_type="application/json")


@router.post("/v1/logs/{log}/alerts/{alert_id}/ack", responses=ERRORS,
             openapi_extra=_REASON_BODY)
async def ack_alert(log: str, alert_id: str, request: Request, service: Service,
                    principal: Principal = as_ack) -> Response:
    """Acknowledge an alert (someone is on it); recorded with who and why."""
    return await _change(service, log, alert_id, request, principal, "acknowledged")


@router.post("/v1/logs/{log}/alerts/{alert_id}/resolve", responses=ERRORS,
             openapi_extra=_REASON_BODY)
async def resolve_alert(log: str, alert_id: str, request: Request, service: Service,
                        principal: Principal = as_resolve) -> Response:
    """Resolve an alert; recorded with who and why."""
    return await _change(service, log, alert_id, request, principal, "resolved")


async def _change(service: ServiceState, log: str, alert_id: str,  # noqa: PLR0917
                  request: Request, principal: Principal, status: str) -> Response:
    """Set an alert's status, recorded in the log with the key and the reason it gave."""
    alog = open_log(service, log)
    body = await read_body(request, MAX_REASON * 2)  # never read whole past the limit
    if body is None:
        raise ValidationError("reason", f"at most {MAX_REASON} characters")
    try:
        doc = msgspec.json.decode(body or b"{}")
    except msgspec.DecodeError as exc:
        raise ValidationError("body", "not JSON") from exc
    reason = doc.get("reason") if isinstance(doc, dict) else None
    if not isinstance(reason, str) or not reason.strip():
        raise ValidationError("reason", "required: say why (what was checked, what was "
                              "done)")
    if len(reason) > MAX_REASON:
        raise ValidationError("reason", f"at most {MAX_REASON} characters")
    monitor = service.monitor
    current = await in_thread(monitor.store.get, alert_id)
    if current is None or current.log != log:
        raise HTTPException(404, f"no alert {alert_id!r} in log {log!r}")
    try:
        alert = await in_thread(functools.partial(monitor.change_status, alog, alert_id,
                                                  status, actor=actor_of(principal),
                                                  reason=reason))
    except ConfigError as exc:
        raise HTTPException(409, str(exc)) from exc
    return Response(msgspec.json.encode(alert.to_dict()), media_type="application/json")
