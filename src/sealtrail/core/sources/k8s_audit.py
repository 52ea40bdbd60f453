"""Kubernetes API server audit events (``audit.k8s.io/v1`` ``Event``).

The log backend writes one event per line (JSON Lines); the webhook backend posts an
``EventList`` (``{"kind": "EventList", "items": [...]}``); both are read, and a JSON array.
Sigma log source: ``kubernetes/audit``.

One request is audited at up to four stages (``RequestReceived``, ``ResponseStarted`` for
long-running requests such as watch and exec, ``ResponseComplete``, ``Panic``), each its own
event sharing the request's ``auditID``.

Mapping (record field -> event field):

- id: a hash of ``auditID``, ``stage`` and the whole record: the API server takes ``auditID``
  from a client's ``Audit-ID`` header when one is sent, so two requests may share it; the
  same record imported twice keeps its id.
- time: ``stageTimestamp``, else ``requestReceivedTimestamp``.
- action: ``kubernetes.<verb>.<resource>[.<subresource>]`` (``kubernetes.create.pods.exec``,
  ``kubernetes.get.secrets``); a non-resource request (``/healthz``) is ``kubernetes.<verb>``.
- outcome: ``responseStatus.code``: below 400 success, 401 and 403 denied, other 4xx failure,
  5xx error (the server failed, not the request). Without a code: ``Panic`` is error; the
  other stages are success -- ``RequestReceived`` records that the request arrived, and its
  result is on the later stage's event, which shares the request_id.
- actor.id: ``user.username`` (``unknown`` without one; an id starting ``key:``, sealtrail's
  API keys, is kept as ``kubernetes:key:...``); actor.type ``serviceaccount`` for
  ``system:serviceaccount:<namespace>:<name>``, else ``user``; actor.on_behalf_of: the
  ``impersonatedUser`` the request acted as; actor.ip: the first of ``sourceIPs`` (the
  client, when a trusted proxy set X-Forwarded-For -- without one the client may set it: the
  record keeps every address); actor.user_agent: ``userAgent`` (set by the client).
- target: ``objectRef``: id ``<namespace>/<name>`` (``<name>`` when cluster-scoped), else the
  ``requestURI`` (lists, creates without a name, non-resource requests); type the resource;
  name the object's name.
- source: ``{"service": "kubernetes"}``; request_id: ``auditID``.
- category: ``get``/``list``/``watch`` are data_access -- reads of ``secrets`` included, the
  reads Sigma rules watch most; ``create``/``update``/``patch``/``delete``/
  ``deletecollection`` are data_change; ``exec``/``attach``/``portforward``/``proxy`` into a
  workload are admin; ``impersonate``/``bind``/``escalate`` and access reviews are
  authorization; token reviews are authentication; any other verb has none.
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
    record_digest,
    record_time,
    safe_actor_id,
    text,
)

LOG_SOURCE: Final = LogSource("kubernetes", "audit")
SERVICE_ACCOUNT_PREFIX: Final = "system:serviceaccount:"

_READS: Final = frozenset({"get", "list", "watch"})
_WRITES: Final = frozenset({"create", "update", "patch", "delete", "deletecollection"})
_AUTHZ_VERBS: Final = frozenset({"impersonate", "bind", "escalate"})
_INTERACTIVE: Final = frozenset({"exec", "attach", "portforward", "proxy"})
_AUTHZ_REVIEWS: Final = frozenset({"subjectaccessreviews", "selfsubjectaccessreviews",
                                   "localsubjectaccessreviews", "selfsubjectrulesreviews"})
_AUTHN_REVIEWS: Final = frozenset({"tokenreviews", "selfsubjectreviews"})


def _name(value: Any) -> str | None:
    """A name part (verb, resource...): text or a number; None for anything else."""
    if isinstance(value, bool) or not isinstance(value, str | int):
        return None
    out = str(value).strip()
    return out or None


def records(data: str) -> Iterator[tuple[Where, Record]]:
    """The events of a log file (JSON Lines), an ``EventList`` or a JSON array."""
    return json_records(data, ("items",))


def _outcome(record: Record) -> str:
    code = obj(record.get("responseStatus")).get("code")
    if isinstance(code, str) and code.strip().isdigit():
        code = int(code)
    if isinstance(code, int) and not isinstance(code, bool):
        if code < 400:
            return "success"
        if code in (401, 403):
            return "denied"
        return "error" if code >= 500 else "failure"
    return "error" if _name(record.get("stage")) == "Panic" else "success"


def _category(verb: str, resource: str | None, subresource: str | None) -> str | None:
    verb = verb.lower()
    if subresource in _INTERACTIVE:
        return "admin"
    if resource in _AUTHN_REVIEWS:
        return "authentication"
    if resource in _AUTHZ_REVIEWS or verb in _AUTHZ_VERBS:
        return "authorization"
    if verb in _READS:
        return "data_access"
    if verb in _WRITES:
        return "data_change"
    return None


def _first_ip(value: Any) -> str | None:
    if isinstance(value, list) and value:
        return ip(value[0])
    return ip(value) if isinstance(value, str) else None


def event(record: Record) -> dict[str, Any]:
    """The sealtrail event for one audit event (see the module docstring)."""
    audit_id = ident(record.get("auditID"))
    if audit_id is None:
        raise ValidationError("auditID", "missing: every audit event has its request's id")
    verb = _name(record.get("verb"))
    if verb is None:
        raise ValidationError("verb", "missing: every audit event names the request's verb")
    stage = _name(record.get("stage")) or ""
    stamp = record.get("stageTimestamp")
    at = record_time(stamp if stamp is not None else record.get("requestReceivedTimestamp"),
                     "stageTimestamp" if stamp is not None else "requestReceivedTimestamp")

    ref = obj(record.get("objectRef"))
    resource, subresource = _name(ref.get("resource")), _name(ref.get("subresource"))
    namespace, name = _name(ref.get("namespace")), _name(ref.get("name"))
    if name is not None:
        target_id = ident(f"{namespace}/{name}" if namespace else name)
    else:
        target_id = ident(record.get("requestURI"))

    user = obj(record.get("user"))
    username = ident(user.get("username")) or "unknown"
    actor = {
        "id": safe_actor_id("kubernetes", username),
        "type": "serviceaccount" if username.startswith(SERVICE_ACCOUNT_PREFIX) else "user",
        "on_behalf_of": ident(obj(record.get("impersonatedUser")).get("username")),
        "ip": _first_ip(record.get("sourceIPs")),
        "user_agent": text(record.get("userAgent")),
    }
    out = imported(
        # auditID is the client's Audit-ID header when it sends one: with the record's digest,
        # two requests under one chosen id stay two events.
        SOURCE, record, uid=f"{audit_id}\x1f{stage}\x1f{record_digest(record)}", at=at,
        action=action_of("kubernetes", verb, resource or "", subresource or ""),
        outcome=_outcome(record), actor=actor,
        target={"id": target_id, "type": text(resource), "name": text(name)},
        origin={"service": "kubernetes"},
        category=_category(verb, resource, subresource))
    out["request_id"] = audit_id
    return out


SOURCE: Final = Source(
    name="k8s-audit",
    title="Kubernetes API server audit log (audit.k8s.io/v1)",
    log_source=LOG_SOURCE,
    records=records,
    event=event,
    formats='JSON Lines (log backend), an EventList {"items": [...]} (webhook), a JSON array',
)
