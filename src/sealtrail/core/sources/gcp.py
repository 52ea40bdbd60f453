"""Google Cloud Audit Logs as sealtrail events.

Reads Cloud Logging ``LogEntry`` objects whose ``protoPayload`` is an ``AuditLog``: JSON Lines
(a sink's export, one entry per line), a JSON array (``gcloud logging read --format=json``),
or one entry.

Mapping (every entry is also kept whole at ``metadata.original``):

- ``id``: from ``logName``, ``timestamp`` and ``insertId`` (``insertId`` required): Cloud
  Logging itself treats entries of one log with the same time and ``insertId`` as duplicates,
  so an entry exported twice (by a sink and by ``gcloud``) is stored once;
- ``time``: ``timestamp`` (required; before 1970 is refused: a UUIDv7 cannot hold it);
- ``action``: ``gcp.<protoPayload.serviceName without .googleapis.com>.<methodName>`` (both
  required), e.g. ``gcp.iam.google.iam.admin.v1.CreateServiceAccountKey``: the dotted words
  stay words of the action, cut at 128 characters;
- ``outcome``: ``protoPayload.status.code`` absent or 0 (proto3 JSON leaves a zero code out,
  so an empty ``status`` is OK) -> ``success``; 7 (``PERMISSION_DENIED``) or 16
  (``UNAUTHENTICATED``) -> ``denied``; any other code, or a status that cannot be read ->
  ``failure``;
- ``actor``: ``id`` is ``authenticationInfo.principalEmail``, else ``principalSubject``, else
  ``unknown``; ``on_behalf_of`` the first ``serviceAccountDelegationInfo`` principal (who
  impersonated the service account that acted); ``ip`` ``requestMetadata.callerIp`` when an
  address (it can be ``private`` or ``gce-internal-ip``: then none); ``user_agent``
  ``requestMetadata.callerSuppliedUserAgent``; no ``type`` (the AuditLog does not say one);
- ``target``: ``id`` ``protoPayload.resourceName``, ``type`` the entry's monitored
  ``resource.type`` (``gce_instance``, ``service_account``, ...);
- ``source``: ``{"service": protoPayload.serviceName}``;
- ``category`` by which audit log the entry is in (``logName`` ends
  ``cloudaudit.googleapis.com%2F<log>``, or ``/<log>`` unescaped): ``data_access`` ->
  ``data_access``; ``activity`` (admin activity: changes to configuration and metadata) ->
  ``configuration``; ``system_event`` (Google's own actions on resources) -> ``system``;
  ``policy`` (a security policy refused the access) -> ``authorization``; any other log ->
  none.

An entry whose ``protoPayload`` says another ``@type`` than the AuditLog is refused (naming
``protoPayload.@type``): it is some other log, and its fields would be misread. An actor id
starting ``key:`` (the ids sealtrail gives its own API keys) is kept as ``gcp:key:...``; a
``serviceName`` of exactly ``sealtrail`` (never a real one) becomes ``gcp:sealtrail``.
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
    safe_service,
    text,
)
from sealtrail.core.timefmt import format_time

_PRODUCT: Final = "gcp"
AUDIT_LOG_TYPE: Final = "type.googleapis.com/google.cloud.audit.AuditLog"
_DENIED_CODES: Final = frozenset({7, 16})  # PERMISSION_DENIED, UNAUTHENTICATED
_LOGS: Final = (("data_access", "data_access"), ("activity", "configuration"),
                ("system_event", "system"), ("policy", "authorization"))


def _records(body: str) -> Iterator[tuple[Where, Record]]:
    return json_records(body)


def _outcome(payload: dict[str, Any]) -> str:
    status = payload.get("status")
    if status is None:
        return "success"
    code = status.get("code", 0) if isinstance(status, dict) else None
    if isinstance(code, str) and code.strip().isdecimal():
        code = int(code)
    if not isinstance(code, int) or isinstance(code, bool):
        return "failure"
    if code == 0:
        return "success"
    return "denied" if code in _DENIED_CODES else "failure"


def _actor(payload: dict[str, Any]) -> dict[str, Any]:
    auth = obj(payload.get("authenticationInfo"))
    meta = obj(payload.get("requestMetadata"))
    actor_id = ident(auth.get("principalEmail")) or ident(auth.get("principalSubject"))
    if actor_id is not None:
        actor_id = safe_actor_id(_PRODUCT, actor_id)
    delegation = auth.get("serviceAccountDelegationInfo")
    first = delegation[0] if isinstance(delegation, list) and delegation else None
    behalf = obj(obj(first).get("firstPartyPrincipal")).get("principalEmail")
    return {"id": actor_id, "on_behalf_of": ident(behalf), "ip": ip(meta.get("callerIp")),
            "user_agent": text(meta.get("callerSuppliedUserAgent"))}


def _category(log_name: str | None) -> str | None:
    name = (log_name or "").replace("%2F", "/").replace("%2f", "/")
    for log, category in _LOGS:
        if name.endswith(f"cloudaudit.googleapis.com/{log}"):
            return category
    return None


def event(record: Record) -> dict[str, Any]:
    """The sealtrail event of one Cloud Audit Logs entry (see the module docstring)."""
    payload = record.get("protoPayload")
    if not isinstance(payload, dict):
        raise ValidationError("protoPayload", "missing: not a Cloud Audit Logs entry")
    kind = payload.get("@type")
    if kind is not None and kind != AUDIT_LOG_TYPE:
        raise ValidationError("protoPayload.@type", f"{text(kind)!r} is not an AuditLog "
                              f"({AUDIT_LOG_TYPE}): not a Cloud Audit Logs entry")
    insert_id = ident(record.get("insertId"))
    if insert_id is None:
        raise ValidationError("insertId", "missing: every Cloud Logging entry has one")
    at = record_time(record.get("timestamp"), "timestamp")
    service = text(payload.get("serviceName"))
    if service is None:
        raise ValidationError("protoPayload.serviceName", "missing: every AuditLog has one")
    method = text(payload.get("methodName"))
    if method is None:
        raise ValidationError("protoPayload.methodName", "missing: every AuditLog has one")
    log_name = text(record.get("logName"))
    short = service.removesuffix(".googleapis.com")
    return imported(
        SOURCE, record, uid=f"{log_name or ''}\n{format_time(at)}\n{insert_id}", at=at,
        action=action_of(_PRODUCT, *short.split("."), *method.split(".")),
        outcome=_outcome(payload), actor=_actor(payload),
        target={"id": ident(payload.get("resourceName")),
                "type": text(obj(record.get("resource")).get("type"))},
        origin={"service": safe_service(_PRODUCT, service)},
        category=_category(log_name))


SOURCE: Final = Source(
    name="gcp", title="Google Cloud Audit Logs", log_source=LogSource(_PRODUCT, "gcp.audit"),
    records=_records, event=event,
    formats="Cloud Logging entries with an AuditLog payload: JSON Lines (a sink's export), "
            "the JSON array of gcloud logging read --format=json, or one entry")
