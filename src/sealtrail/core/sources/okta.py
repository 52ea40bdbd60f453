"""Okta System Log events (``LogEvent`` objects) as sealtrail events.

Reads what the System Log API returns (``GET /api/v1/logs``: a JSON array of LogEvents), one
LogEvent, or JSON Lines (one LogEvent per line, as log shippers and event hooks store them).

Mapping (every LogEvent is also kept whole at ``metadata.original``):

- ``id``: from ``uuid`` (required: Okta gives every LogEvent one), so overlapping pulls of
  the System Log store each event once;
- ``time``: ``published`` (required; before 1970 is refused: a UUIDv7 cannot hold it);
- ``action``: ``okta.<eventType>`` (required), e.g. ``okta.user.session.start``: the dotted
  words of the eventType stay words of the action (other characters an action may not hold
  become ``_``);
- ``outcome``: from ``outcome.result``: ``SUCCESS`` and ``ALLOW`` -> ``success``; ``DENY`` ->
  ``denied``; everything else -> ``failure``: ``FAILURE``; ``CHALLENGE`` (the actor was asked
  for more proof and the action did not happen yet); ``SKIPPED`` and ``UNKNOWN`` (Okta does not
  say it happened); a missing result. So ``success`` is only ever what Okta itself reported
  as success or allowed, and a rule counting unsuccessful attempts sees every other one;
- ``actor``: ``id`` is ``actor.alternateId`` (the login or e-mail address people search by)
  or else ``actor.id`` (also when the alternateId is Okta's placeholder ``unknown``);
  ``type`` ``actor.type`` (``User``, ``SystemPrincipal``, ...); ``name`` ``actor.displayName``;
  ``ip`` ``client.ipAddress`` (when an address); ``user_agent``
  ``client.userAgent.rawUserAgent``;
- ``target``: the first object of ``target[]``: ``id`` its ``alternateId`` or ``id`` (the
  same rule as the actor's: policies, rules and tokens have the alternateId ``unknown``),
  ``type`` and ``name`` (``displayName``);
- ``source``: ``{"service": "okta"}``;
- ``category`` by ``eventType``: ``user.session.*`` and ``user.authentication.*`` ->
  ``authentication``; ``policy.evaluate_*`` (a policy's decision on a sign-on, not a change to
  it) -> ``authorization``; other ``policy.*`` and ``system.*`` -> ``configuration``;
  ``user.lifecycle.*``, ``group.*`` and ``application.user_membership.*`` (who exists and
  belongs where) -> ``admin``; anything else -> none.

An actor id starting ``key:`` (the ids sealtrail gives its own API keys) is kept as
``okta:key:...``.
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

_PRODUCT: Final = "okta"
_OUTCOMES: Final = {"SUCCESS": "success", "ALLOW": "success", "DENY": "denied"}
# eventType prefixes and their category, the first match wins.
_CATEGORIES: Final = (
    ("user.session.", "authentication"), ("user.authentication.", "authentication"),
    ("policy.evaluate_", "authorization"),
    ("policy.", "configuration"), ("system.", "configuration"),
    ("user.lifecycle.", "admin"), ("group.", "admin"),
    ("application.user_membership.", "admin"))


def _records(body: str) -> Iterator[tuple[Where, Record]]:
    return json_records(body)


def _okta_id(part: dict[str, Any]) -> str | None:
    """An actor's or target's alternateId, or its Okta id when the alternateId is missing or
    Okta's placeholder ``unknown`` (which would make every policy the same target)."""
    alternate = ident(part.get("alternateId"))
    if alternate is None or alternate.lower() == "unknown":
        return ident(part.get("id")) or alternate
    return alternate


def _outcome(record: Record) -> str:
    result = obj(record.get("outcome")).get("result")
    return _OUTCOMES.get(result.upper(), "failure") if isinstance(result, str) else "failure"


def _actor(record: Record) -> dict[str, Any]:
    who = obj(record.get("actor"))
    client = obj(record.get("client"))
    actor_id = _okta_id(who)
    if actor_id is not None:
        actor_id = safe_actor_id(_PRODUCT, actor_id)
    return {"id": actor_id, "type": text(who.get("type")), "name": text(who.get("displayName")),
            "ip": ip(client.get("ipAddress")),
            "user_agent": text(obj(client.get("userAgent")).get("rawUserAgent"))}


def _target(record: Record) -> dict[str, Any] | None:
    targets = record.get("target")
    for item in targets if isinstance(targets, list) else ():
        if isinstance(item, dict):
            return {"id": _okta_id(item),
                    "type": text(item.get("type")), "name": text(item.get("displayName"))}
    return None


def _category(event_type: str) -> str | None:
    for prefix, category in _CATEGORIES:
        if event_type.startswith(prefix):
            return category
    return None


def event(record: Record) -> dict[str, Any]:
    """The sealtrail event of one Okta LogEvent (see the module docstring)."""
    uid = ident(record.get("uuid"))
    if uid is None:
        raise ValidationError("uuid", "missing: every Okta LogEvent has one")
    at = record_time(record.get("published"), "published")
    event_type = text(record.get("eventType"))
    if event_type is None:
        raise ValidationError("eventType", "missing: every Okta LogEvent has one")
    return imported(
        SOURCE, record, uid=uid, at=at, action=action_of(_PRODUCT, *event_type.split(".")),
        outcome=_outcome(record), actor=_actor(record), target=_target(record),
        origin={"service": _PRODUCT}, category=_category(event_type))


SOURCE: Final = Source(
    name="okta", title="Okta System Log", log_source=LogSource(_PRODUCT, "okta"),
    records=_records, event=event,
    formats="the System Log API's JSON array of LogEvents, one LogEvent, "
            "or JSON Lines (one LogEvent per line)")
