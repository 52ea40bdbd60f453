"""Turning what an application records into the exact JSON the client spools and sends.

Pure: the caller passes the time and the random bytes. Each event is validated with the core's
:func:`~sealtrail.core.event.validate_event` (the rules the service applies), gets a UUIDv7
``id`` when it has none (so a resend is recognised by the service and never stored twice) and a
``time`` when it has none (so an event delivered an hour late still says when it happened).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

import msgspec

from sealtrail.core.errors import ValidationError
from sealtrail.core.event import MAX_EVENT_BYTES, Event, validate_event
from sealtrail.core.timefmt import format_time, unix_micros
from sealtrail.core.uuid7 import uuid7_texts


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
    filled = dict(doc)
    if filled.get("id") is None:
        filled["id"] = uuid7_texts(unix_micros(now) // 1000, rand)[0][0]
    if filled.get("time") is None:
        filled["time"] = format_time(now)
    event = validate_event(filled)
    body = msgspec.json.encode(event.to_dict())
    if len(body) > MAX_EVENT_BYTES:
        raise ValidationError("event", f"larger than {MAX_EVENT_BYTES} bytes as JSON")
    ident: str = event.id if event.id is not None else filled["id"]  # always set above
    return ident, body
