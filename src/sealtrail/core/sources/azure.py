"""Azure Monitor logs as diagnostic settings export them: one source, three Sigma log sources.

A diagnostic setting streams a tenant's or subscription's logs to a storage account (one
``{"records": [...]}`` object per blob, or JSON Lines since November 2018) or to Event Hubs
(``{"records": [...]}`` per message). Three kinds of record arrive that way, and SigmaHQ
writes rules for each under its own log source, so each record carries the one it belongs to
(``Source.log_source_of``, chosen by the record's ``category``):

- Entra ID sign-ins (``SignInLogs``, ``NonInteractiveUserSignInLogs``,
  ``ServicePrincipalSignInLogs``, ``ManagedIdentitySignInLogs``) -> ``azure/signinlogs``;
- Entra ID audit logs (``AuditLogs``; ``Audit`` in the early preview schema)
  -> ``azure/auditlogs``;
- everything else -> ``azure/activitylogs``: the Activity log, whose exported ``category`` is
  ``Write``/``Delete``/``Action`` for Administrative events (the Activity log category moves
  to ``properties.eventCategory``) or the category itself (``Policy``, ``Security``,
  ``ServiceHealth``...).

Read: ``{"records": [...]}`` (also one such object per line, as Event Hubs consumers write
them), ``{"value": [...]}`` and a JSON array (the REST API and ``az monitor activity-log
list``: their events, with ``eventTimestamp``, ``status`` and ``{"value": ...}`` names, are
read too), and JSON Lines.

Mapping (record field -> event field):

- id: a hash of the fields that together tell records apart in every published schema --
  the kind, ``tenantId``, ``correlationId``, ``operationName``, ``time`` (as written, 100 ns
  precision), ``resourceId``, ``resultType`` and the record's own id when it has one
  (``properties.id`` of Entra records, documented unique; ``id``/``eventDataId`` of REST
  events). Activity records exported by diagnostic settings carry no id of their own: the
  start and the end of one operation differ by ``resultType`` and ``time``, the operations of
  one deployment by ``operationName`` and ``resourceId``.
- time: ``time`` (REST: ``eventTimestamp``; Entra: ``createdDateTime``/``activityDateTime``).
- action: ``azure.<operationName>`` with the characters an action may not hold replaced
  (``azure.MICROSOFT_AUTHORIZATION_ROLEASSIGNMENTS_WRITE``, ``azure.Sign-in_activity``).
- outcome: sign-ins by ``properties.status.errorCode`` (else ``resultType``): 0 is success,
  the Conditional Access and assignment blocks (53000-53004, 50105) are denied, any other
  code is failure. Audit logs by ``resultType`` (else ``properties.result``: ``success``,
  ``failure``, ``timeout``, or 0/1/2 in the early schema). Activity by ``resultType`` (REST:
  ``status``): Success/Succeeded/Start/Started/Accept/Accepted and the notification states
  Active/Resolved/Updated/In Progress are success, Failure/Failed/Canceled are failure, a
  failure whose signature or status code says Forbidden/Unauthorized and any Policy ``deny``
  action are denied. A timeout, and a result the record does not state in a way listed here,
  is ``error``: an unknown result must never pass for a success.
- actor.id: the UPN claim of ``identity.claims`` (else its name or ``unique_name`` claim: a
  guest has no UPN), ``caller``, the ``appid`` claim (a service principal calling Resource
  Manager), ``properties.userPrincipalName``,
  the service principal's name or id (service principal and managed identity sign-ins),
  ``properties.initiatedBy.user.userPrincipalName``, the initiating app's display name, name or
  id, ``identity`` when it is text -- the first present -- else ``unknown``. An id starting
  ``key:`` (sealtrail's API keys) is kept as ``azure:key:...``; a failed sign-in's user name
  is whatever was typed.
- actor.type: ``user``, ``service_principal``, ``managed_identity`` or ``application`` where
  the record says; actor.name: the display name; actor.ip: ``callerIpAddress`` (else the
  sign-in's ``ipAddress``, the initiating user's ``ipAddress``, the REST
  ``httpRequest.clientIpAddress``) when it is an address (``<null>`` is not);
  actor.user_agent: a sign-in's ``userAgent``.
- target: Activity: ``resourceId``, its type (``Microsoft.Network/networkSecurityGroups``) and
  name; audit: the first of ``targetResources`` (``id`` or ``userPrincipalName``, its
  ``displayName`` and ``type``); sign-ins: the application signed in to.
- source: ``{"service": "azure"}``; request_id: ``correlationId`` (the records of one
  operation share it).
- category: sign-ins ``authentication``, audit logs ``admin`` (directory administration),
  Activity ``configuration`` (changes to resources and their settings).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Final

from sealtrail.core.errors import ValidationError
from sealtrail.core.sources.base import (
    LogSource,
    Record,
    Source,
    Where,
    action_of,
    ident,
    imported,
    ip,
    json_records,
    obj,
    record_time,
    safe_actor_id,
    text,
)

ACTIVITY: Final = LogSource("azure", "activitylogs")
SIGNIN: Final = LogSource("azure", "signinlogs")
AUDIT: Final = LogSource("azure", "auditlogs")

_SIGNIN_TYPES: Final = {
    "signinlogs": "user",
    "noninteractiveusersigninlogs": "user",
    "serviceprincipalsigninlogs": "service_principal",
    "managedidentitysigninlogs": "managed_identity",
}
_AUDIT_CATEGORIES: Final = frozenset({"auditlogs", "audit"})
_UPN_CLAIM: Final = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/upn"
_NAME_CLAIM: Final = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/name"

# AADSTS 53000-53004: blocked by Conditional Access or device policy; 50105: the user is not
# assigned to the application. The directory refused a valid sign-in: a denial, not a failure.
_DENIED_SIGNIN: Final = frozenset({53000, 53001, 53002, 53003, 53004, 50105})
_SUCCESS: Final = frozenset({"success", "succeeded", "start", "started", "accept", "accepted",
                             "active", "resolved", "updated", "in progress", "inprogress"})
_FAILURE: Final = frozenset({"failure", "failed", "fail", "canceled", "cancelled"})
_REFUSALS: Final = ("forbidden", "unauthorized")


def _value(value: Any) -> Any:
    """REST API events name things ``{"value": ..., "localizedValue": ...}``."""
    return value.get("value") if isinstance(value, dict) else value


def _str(value: Any) -> str | None:
    """A scalar as text (the REST ``{"value": ...}`` form unwrapped); None for anything else."""
    value = _value(value)
    if value is None or isinstance(value, dict | list):
        return None
    out = str(value).strip()
    return out or None


def _int(value: Any) -> int | None:
    """An error code given as a number or as digits."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value.strip())
    return None


def _kind(record: Record) -> str:
    category = (_str(record.get("category")) or "").lower()
    if category in _SIGNIN_TYPES:
        return "signin"
    if category in _AUDIT_CATEGORIES:
        return "audit"
    return "activity"


def log_source_of(record: Record) -> LogSource:
    """The Sigma log source of one record, by its ``category``."""
    return {"signin": SIGNIN, "audit": AUDIT}.get(_kind(record), ACTIVITY)


def records(data: str) -> Iterator[tuple[Where, Record]]:
    """The records of an export; ``{"records": [...]}`` objects one per line are opened too."""
    for where, rec in json_records(data, ("records", "value")):
        inner = rec.get("records")
        if isinstance(inner, list) and "time" not in rec:
            for n, item in enumerate(inner, 1):
                if not isinstance(item, dict):
                    raise ValidationError(f"{where} record {n}", "expected a JSON object")
                yield f"{where} record {n}", item
        else:
            yield where, rec


def _first(*values: Any) -> Any:
    return next((v for v in values if v is not None), None)


def _word(value: Any) -> str | None:
    """The outcome a result word states, or None when it states none known."""
    word = (_str(value) or "").lower()
    if word in _SUCCESS:
        return "success"
    if word in _FAILURE:
        return "failure"
    if word == "timeout":
        return "error"
    return None


def _signin_outcome(record: Record, props: dict[str, Any]) -> str:
    code = _int(obj(props.get("status")).get("errorCode"))
    if code is None:
        code = _int(record.get("resultType"))
    if code is None:
        return _word(record.get("resultType")) or "error"
    if code == 0:
        return "success"
    return "denied" if code in _DENIED_SIGNIN else "failure"


def _audit_outcome(record: Record, props: dict[str, Any]) -> str:
    found = _word(record.get("resultType"))
    if found is not None:
        return found
    result = props.get("result")
    code = _int(result)
    if code is not None:  # the early schema's operationResult: success, failure, timeout
        return {0: "success", 1: "failure"}.get(code, "error")
    return _word(result) or "error"


def _activity_outcome(record: Record, props: dict[str, Any], operation: str) -> str:
    if operation.lower().replace("\\", "/").endswith("policies/deny/action"):
        return "denied"
    found = _word(_first(record.get("resultType"), record.get("status")))
    if found == "failure":
        said = " ".join(s for s in (_str(record.get("resultSignature")),
                                    _str(record.get("subStatus")),
                                    _str(props.get("statusCode"))) if s).lower()
        if any(word in said for word in _REFUSALS):
            return "denied"
    return found or "error"


def _actor(kind: str, record: Record, props: dict[str, Any]) -> dict[str, Any]:
    identity = record.get("identity")
    claims = obj(obj(identity).get("claims")) or obj(record.get("claims"))
    initiated = obj(props.get("initiatedBy"))
    user, app = obj(initiated.get("user")), obj(initiated.get("app"))
    signin_sp = kind == "signin" and _SIGNIN_TYPES.get(
        (_str(record.get("category")) or "").lower()) != "user"
    user_claim = _first(claims.get(_UPN_CLAIM), claims.get(_NAME_CLAIM),
                        claims.get("unique_name"))
    candidates = [user_claim, record.get("caller"), claims.get("appid"),
                  props.get("userPrincipalName")]
    if signin_sp:
        candidates += [props.get("servicePrincipalName"), props.get("servicePrincipalId"),
                       props.get("appDisplayName")]
    candidates += [user.get("userPrincipalName"), app.get("displayName"),
                   app.get("servicePrincipalName"), app.get("appId"),
                   identity if isinstance(identity, str) else None]
    actor_id = next((i for i in map(ident, (_value(c) for c in candidates)) if i), "unknown")

    if kind == "signin":
        kind_type: str | None = _SIGNIN_TYPES.get((_str(record.get("category")) or "").lower())
    elif kind == "audit":
        kind_type = "user" if user else "application" if app else None
    elif "@" in actor_id:
        kind_type = "user"
    elif claims.get("appid") is not None and user_claim is None:
        kind_type = "service_principal"
    else:
        kind_type = None
    http = obj(record.get("httpRequest"))
    return {
        "id": safe_actor_id("azure", actor_id),
        "type": kind_type,
        "name": text(_first(claims.get("name"), props.get("userDisplayName"),
                            user.get("displayName"))),
        "ip": _first(*(ip(v) for v in (record.get("callerIpAddress"), props.get("ipAddress"),
                                        user.get("ipAddress"), http.get("clientIpAddress")))),
        "user_agent": text(props.get("userAgent")) if kind == "signin" else None,
    }


def _resource_type(resource_id: str) -> str | None:
    """``Microsoft.Network/networkSecurityGroups`` from an ARM resource id."""
    low = resource_id.lower()
    at = low.rfind("/providers/")
    if at < 0:
        parts = [p for p in low.split("/") if p]
        if len(parts) >= 2 and parts[-2] in ("subscriptions", "resourcegroups", "tenants"):
            return parts[-2].rstrip("s")
        return None
    segments = [s for s in resource_id[at + len("/providers/"):].split("/") if s]
    if len(segments) < 2:
        return None
    return text("/".join([segments[0], *segments[1::2]]))


def _target(kind: str, record: Record, props: dict[str, Any]) -> dict[str, Any] | None:
    if kind == "audit":
        resources = props.get("targetResources")
        first = obj(resources[0]) if isinstance(resources, list) and resources else {}
        return {"id": ident(_first(first.get("id"), first.get("userPrincipalName"))),
                "name": text(_first(first.get("displayName"), first.get("userPrincipalName"))),
                "type": text(first.get("type"))}
    if kind == "signin":
        return {"id": ident(props.get("appId")),
                "name": text(_first(props.get("appDisplayName"),
                                    props.get("resourceDisplayName"))),
                "type": "application"}
    resource_id = _str(record.get("resourceId"))
    if resource_id is None:
        return None
    return {"id": ident(resource_id),
            "type": _resource_type(resource_id) or text(_str(record.get("resourceType"))),
            "name": text(resource_id.rstrip("/").rsplit("/", 1)[-1])}


def event(record: Record) -> dict[str, Any]:
    """The sealtrail event for one Azure Monitor record (see the module docstring)."""
    kind = _kind(record)
    props = obj(record.get("properties"))
    operation = _str(record.get("operationName"))
    if operation is None:
        raise ValidationError("operationName", "missing: every Azure Monitor record names its "
                              "operation")
    raw_time = _first(record.get("time"), record.get("eventTimestamp"),
                      props.get("createdDateTime"), props.get("activityDateTime"))
    at = record_time(raw_time, "time")
    own_id = _first(*(_str(v) for v in (props.get("id"), record.get("id"),
                                         record.get("eventDataId"))))
    uid = "\x1f".join(s or "" for s in (
        kind, _str(record.get("tenantId")), _str(record.get("correlationId")), operation,
        _str(raw_time), _str(record.get("resourceId")), _str(record.get("resultType")), own_id))
    if kind == "signin":
        outcome, category = _signin_outcome(record, props), "authentication"
    elif kind == "audit":
        outcome, category = _audit_outcome(record, props), "admin"
    else:
        outcome, category = _activity_outcome(record, props, operation), "configuration"
    out = imported(SOURCE, record, uid=uid, at=at, action=action_of("azure", operation),
                   outcome=outcome, actor=_actor(kind, record, props),
                   target=_target(kind, record, props), origin={"service": "azure"},
                   category=category)
    correlation = ident(record.get("correlationId"))
    if correlation is not None:
        out["request_id"] = correlation
    return out


SOURCE: Final = Source(
    name="azure",
    title="Azure Monitor: Activity log, Entra ID sign-in and audit logs",
    log_source=ACTIVITY,
    records=records,
    event=event,
    formats='{"records": [...]} (storage account, Event Hubs), a JSON array, JSON Lines',
    log_source_of=log_source_of,
)
