"""Alert routes: list and filter a log's alerts, acknowledge and resolve them.

Reading alerts is for readers, auditors and admins (an alert points at events; it does not
show their content, so listing is not an audited read). Acknowledging and resolving change
the record and are for auditors and admins; each change is an event in the log naming the key
that made it and the reason it gave.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, Final

import msgspec
from fastapi import Depends, FastAPI, HTTPException, Query, Request, Response

from sealtrail.core.errors import ConfigError, ValidationError
from sealtrail.log.apikeys import Principal
from sealtrail.log.auditlog import AuditLog
from sealtrail.monitor.alerts import SEVERITIES, STATUSES
from sealtrail.monitor.runner import Monitor

LIST_ROLES: Final = frozenset({"reader", "auditor", "admin"})
CHANGE_ROLES: Final = frozenset({"auditor", "admin"})
ROUTES: Final = {
    ("GET", "/v1/logs/{log}/alerts"): LIST_ROLES,
    ("POST", "/v1/logs/{log}/alerts/{alert_id}/ack"): CHANGE_ROLES,
    ("POST", "/v1/logs/{log}/alerts/{alert_id}/resolve"): CHANGE_ROLES,
}
MAX_REASON: Final = 4096


def add_alert_routes(app: FastAPI, monitor: Monitor, *,
                     role: Callable[[str, str], Callable[..., Principal]],
                     open_log: Callable[[str], AuditLog],
                     in_thread: Callable[..., Any],
                     errors: dict[int | str, dict[str, Any]],
                     body_schema: Callable[[dict[str, Any], str], dict[str, Any]]) -> None:
    """Register the alert routes on ``app`` (roles from :data:`ROUTES`)."""
    as_list = Depends(role("GET", "/v1/logs/{log}/alerts"))
    as_ack = Depends(role("POST", "/v1/logs/{log}/alerts/{alert_id}/ack"))
    as_resolve = Depends(role("POST", "/v1/logs/{log}/alerts/{alert_id}/resolve"))

    @app.get("/v1/logs/{log}/alerts", responses=errors)
    async def list_alerts(log: str, *,
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
        open_log(log)
        if status is not None and status not in STATUSES:
            raise ValidationError("status", f"use one of {', '.join(STATUSES)}")
        if severity is not None and severity not in SEVERITIES:
            raise ValidationError("severity", f"use one of {', '.join(SEVERITIES)}")
        found = await in_thread(functools.partial(monitor.store.list, log, status=status,
                                                  severity=severity, rule=rule, limit=limit,
                                                  before=before))
        out = [a.to_dict() for a in found]
        nxt = found[-1].last_seen if len(found) == limit else None
        return Response(msgspec.json.encode({"alerts": out, "next_before": nxt}),
                        media_type="application/json")

    reason_body = body_schema({"type": "object", "required": ["reason"], "properties": {
        "reason": {"type": "string", "minLength": 1, "maxLength": MAX_REASON}}},
        "Why: what was checked, what was done")

    async def change(log: str, alert_id: str, request: Request, principal: Principal,
                     status: str) -> Response:
        alog = open_log(log)
        body = await request.body()
        if len(body) > MAX_REASON * 2:
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
        current = await in_thread(monitor.store.get, alert_id)
        if current is None or current.log != log:
            raise HTTPException(404, f"no alert {alert_id!r} in log {log!r}")
        actor = {"id": f"key:{principal.key_id}", "type": "api_key", "name": principal.name}
        try:
            alert = await in_thread(functools.partial(monitor.change_status, alog, alert_id,
                                                      status, actor=actor, reason=reason))
        except ConfigError as exc:
            raise HTTPException(409, str(exc)) from exc
        return Response(msgspec.json.encode(alert.to_dict()), media_type="application/json")

    @app.post("/v1/logs/{log}/alerts/{alert_id}/ack", responses=errors,
              openapi_extra=reason_body)
    async def ack_alert(log: str, alert_id: str, request: Request,
                        principal: Principal = as_ack) -> Response:
        """Acknowledge an alert (someone is on it); recorded with who and why."""
        return await change(log, alert_id, request, principal, "acknowledged")

    @app.post("/v1/logs/{log}/alerts/{alert_id}/resolve", responses=errors,
              openapi_extra=reason_body)
    async def resolve_alert(log: str, alert_id: str, request: Request,
                            principal: Principal = as_resolve) -> Response:
        """Resolve an alert; recorded with who and why."""
        return await change(log, alert_id, request, principal, "resolved")
