"""Turning what an application records into the exact JSON the client spools and sends.

Pure: the caller passes the time and the random bytes. Each event is validated with the core's
:func:`~sealtrail.core.event.validate_event` (the rules the service applies), gets a UUIDv7
``id`` when it has none (so a resend is recognised by the service and never stored twice) and a
``time`` when it has none (so an event delivered an hour late still says when it happened).

This runs in every ``record()`` of the application, so it does each step once: the fields the
application gave are validated (a given ``id`` or ``time`` is checked and normalised there); the
``id`` and ``time`` made here are canonical by construction and are set on the validated event
afterwards, not parsed back; the event is encoded straight from its struct. The bytes are those
of ``msgspec.json.encode(validate_event(doc with id and time).to_dict())``, the definition
``tests/client/test_prepare.py`` holds this function to.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

import msgspec

from sealtrail.core.errors import ValidationError
from sealtrail.core.event import MAX_EVENT_BYTES, Event, validate_event
from sealtrail.core.timefmt import format_time, unix_micros
from sealtrail.core.uuid7 import uuid7_text


def merge_fields(event: Mapping[str, Any] | Event | None, fields: Mapping[str, Any]
                 ) -> dict[str, Any]:
    """One mapping from an optional event and keyword fields (keywords win; None means absent)."""
    if event is None:
        base: dict[str, Any] = {}
    elif isinstance(event, Event):
        base = event.to_dict()
    elif isinstance(event, Mapping):
        base = dict(event)
    else:
        raise ValidationError("event", f"must be a mapping, not {type(event).__name__}")
    for key, value in fields.items():
        if value is not None:
            base[key] = value
    return base


def prepare_event(doc: Mapping[str, Any], *, now: datetime, rand: bytes) -> tuple[str, bytes]:
    """Validate ``doc``, fill in ``id`` and ``time``; return (id, the event's JSON bytes).

    ``rand`` is 10 random bytes for the id. Raises ValidationError naming the field; nothing
    is returned (so nothing is queued) for an invalid event.
    """
    # 1. Validate what the application gave; an absent (or None) id or time is left out, and
    #    made here, canonical as made (validation would leave them as they are).
    fields = dict(doc)
    made: dict[str, str] = {}
    if fields.get("id") is None:
        fields.pop("id", None)
        made["id"] = uuid7_text(unix_micros(now) // 1000, rand)
    if fields.get("time") is None:
        fields.pop("time", None)
        made["time"] = format_time(now)
    event = validate_event(fields)
    # 2. Fill in the id and time made.
    if made:
        event = msgspec.structs.replace(event, **made)
    # 3. Encode the struct: fields in declared order, absent ones left out, as to_dict gives.
    body = msgspec.json.encode(event)
    if len(body) > MAX_EVENT_BYTES:
        raise ValidationError("event", f"larger than {MAX_EVENT_BYTES} bytes as JSON")
    if event.id is None:  # pragma: no cover - set in step 2 or validated in step 1
        raise ValidationError("id", "missing")
    return event.id, body
