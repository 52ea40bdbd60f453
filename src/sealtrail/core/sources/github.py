"""GitHub organization and enterprise audit log events as sealtrail events.

Reads what the REST API returns (``GET /orgs/{org}/audit-log``, ``GET /enterprises/{e}/audit-log``:
a JSON array), one event, or JSON Lines (audit log streaming and the exports write one event
per line).

Mapping (every event is also kept whole at ``metadata.original``):

- ``id``: from ``_document_id``; an event without one (older exports) is identified by the
  SHA-256 of its canonical JSON (``json.dumps(record, sort_keys=True)``), so the same event
  imported twice is still stored once;
- ``time``: ``@timestamp`` (Unix milliseconds), else ``created_at`` (milliseconds or RFC 3339);
  one of them is required; before 1970 is refused (a UUIDv7 cannot hold it);
- ``action``: ``github.<action>`` (required), e.g. ``github.repo.destroy``;
- ``outcome``: always ``success``: the audit log records actions GitHub carried out, not
  attempts (refused requests are not in it);
- ``actor``: ``id`` is ``actor`` (the login), else ``actor_id``, else ``unknown`` (events GitHub
  itself causes have none); ``type`` ``bot`` when ``actor_is_bot`` is true or the login ends
  ``[bot]``, else ``user``; ``ip`` ``actor_ip`` (when an address); ``user_agent`` ``user_agent``;
- ``target``: the most specific of ``repo`` (type ``repository``), ``user`` (``user``), ``team``
  (``team``), ``org`` (``organization``), else ``business`` (``enterprise``);
- ``source``: ``{"service": "github"}``;
- ``category`` (a simple rule on the action): ``git.clone`` and ``git.fetch`` ->
  ``data_access``; ``git.push`` -> ``data_change``; any ``team.*`` action, and any action whose
  operation names a membership (``member``, ``collaborator``, ``owner``, ``admin``, ``invite``)
  -> ``admin``; other ``org.*``, ``repo.*``, ``business.*``, ``enterprise.*``,
  ``protected_branch.*``, ``repository_ruleset.*``, ``hook.*`` and
  ``integration_installation.*`` actions (settings of what GitHub holds) ->
  ``configuration``; anything else -> none.

An actor id starting ``key:`` (the ids sealtrail gives its own API keys) is kept as
``github:key:...``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from datetime import datetime
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
    record_time,
    safe_actor_id,
    text,
)

_PRODUCT: Final = "github"
_TARGETS: Final = (("repo", "repository"), ("user", "user"), ("team", "team"),
                   ("org", "organization"), ("business", "enterprise"))
_GIT: Final = {"git.clone": "data_access", "git.fetch": "data_access", "git.push": "data_change"}
_MEMBERSHIP: Final = ("member", "collaborator", "owner", "admin", "invite")
_SETTINGS: Final = frozenset({
    "org", "repo", "business", "enterprise", "protected_branch", "repository_ruleset", "hook",
    "integration_installation"})


def _records(body: str) -> Iterator[tuple[Where, Record]]:
    return json_records(body)


def _uid(record: Record) -> str:
    found = ident(record.get("_document_id"))
    if found is not None:
        return found
    try:
        canonical = json.dumps(record, sort_keys=True)  # ASCII: escapes every non-ASCII char
    except (TypeError, ValueError):  # only a caller's hand-built dict can get here
        raise ValidationError("_document_id", "missing, and the event is not plain JSON "
                              "to identify it by") from None
    return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()


def _when(record: Record) -> datetime:
    """``@timestamp`` else ``created_at`` (record_time refuses a time before 1970)."""
    field = "@timestamp" if record.get("@timestamp") is not None else "created_at"
    value = record.get(field)
    if value is None:
        raise ValidationError("@timestamp", "missing (and no created_at): the event's time "
                              "is required")
    return record_time(value, field)


def _actor(record: Record) -> dict[str, Any]:
    login = ident(record.get("actor"))
    actor_id = login or ident(record.get("actor_id"))
    if actor_id is not None:
        actor_id = safe_actor_id(_PRODUCT, actor_id)
    kind = None
    if record.get("actor_is_bot") is True or (login or "").endswith("[bot]"):
        kind = "bot"
    elif actor_id is not None:
        kind = "user"
    return {"id": actor_id, "type": kind, "ip": ip(record.get("actor_ip")),
            "user_agent": text(record.get("user_agent"))}


def _target(record: Record) -> dict[str, Any] | None:
    for key, kind in _TARGETS:
        found = ident(record.get(key))
        if found is not None:
            return {"id": found, "type": kind}
    return None


def _category(action: str) -> str | None:
    if action in _GIT:
        return _GIT[action]
    family, _, operation = action.partition(".")
    if family == "team" or any(word in operation for word in _MEMBERSHIP):
        return "admin"
    return "configuration" if family in _SETTINGS else None


def event(record: Record) -> dict[str, Any]:
    """The sealtrail event of one GitHub audit log event (see the module docstring)."""
    action = text(record.get("action"))
    if action is None:
        raise ValidationError("action", "missing: every GitHub audit log event has one")
    at = _when(record)
    return imported(
        SOURCE, record, uid=_uid(record), at=at,
        action=action_of(_PRODUCT, *action.split(".")), outcome="success",
        actor=_actor(record), target=_target(record), origin={"service": _PRODUCT},
        category=_category(action))


SOURCE: Final = Source(
    name="github", title="GitHub audit log", log_source=LogSource(_PRODUCT, "audit"),
    records=_records, event=event,
    formats="the audit log API's JSON array, one event, or JSON Lines (streaming and exports)")
