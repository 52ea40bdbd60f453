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
from datetime import UTC, datetime
from typing import Any, Final

import msgspec

from sealtrail.core.errors import ValidationError
from sealtrail.core.event import MAX_EVENT_BYTES, Event, validate_event
from sealtrail.core.timefmt import format_time, unix_micros

_MS_MASK: Final = (1 << 48) - 1
_VERSION_MASK: Final = ~(0xF << 76)
_VERSION_7: Final = 0x7 << 76
_VARIANT_MASK: Final = ~(0x3 << 62)
_VARIANT_10: Final = 0x2 << 62
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)


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


def uuid7_text(unix_ms: int, rand: bytes) -> str:
    """The canonical text of one UUIDv7 (RFC 9562 §5.7) from milliseconds and 10 random bytes;
    the same text as :func:`sealtrail.core.uuid7.uuid7_texts` gives, for one id, in one int."""
    if len(rand) != 10:
        raise ValueError("uuid7 needs 10 random bytes")
    value = (unix_ms & _MS_MASK) << 80 | int.from_bytes(rand, "big")
    h = f"{(value & _VERSION_MASK & _VARIANT_MASK) | _VERSION_7 | _VARIANT_10:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


# The text of the last whole second formatted, "YYYY-MM-DDTHH:MM:SS", by its Unix second:
# events recorded within one second share it. One tuple, replaced whole (thread-safe).
_last_second: tuple[int, str] = (0, "1970-01-01T00:00:00")


def _second_text(unix_s: int, now: datetime) -> str:
    global _last_second  # noqa: PLW0603 - a one-entry cache of a pure function
    second, text = _last_second
    if second != unix_s:
        text = (f"{now.year:04d}-{now.month:02d}-{now.day:02d}T{now.hour:02d}:"
                f"{now.minute:02d}:{now.second:02d}")
        _last_second = (unix_s, text)
    return text


def utc_text(now: datetime) -> str:
    """:func:`~sealtrail.core.timefmt.format_time` of ``now``, by fields when it is already in
    UTC (what ``datetime.now(UTC)`` gives), else by the core's function."""
    if now.tzinfo is not UTC:
        return format_time(now)
    delta = now - _EPOCH
    return f"{_second_text(delta.days * 86400 + delta.seconds, now)}.{now.microsecond:06d}Z"


def _id_and_time(now: datetime, rand: bytes) -> tuple[str, str]:
    """The UUIDv7 text for ``now`` and ``rand``, and ``now``'s canonical text."""
    if now.tzinfo is not UTC:
        return uuid7_text(unix_micros(now) // 1000, rand), format_time(now)
    delta = now - _EPOCH
    unix_s = delta.days * 86400 + delta.seconds
    micros = delta.microseconds
    return (uuid7_text(unix_s * 1000 + micros // 1000, rand),
            f"{_second_text(unix_s, now)}.{micros:06d}Z")


def prepare_event(doc: Mapping[str, Any], *, now: datetime, rand: bytes) -> tuple[str, bytes]:
    """Validate ``doc``, fill in ``id`` and ``time``; return (id, the event's JSON bytes).

    ``rand`` is 10 random bytes for the id. Raises ValidationError naming the field; nothing
    is returned (so nothing is queued) for an invalid event.
    """
    # 1. Validate what the application gave; an absent (or None) id or time is left out.
    fields = dict(doc)
    make_id = fields.get("id") is None
    make_time = fields.get("time") is None
    if make_id:
        fields.pop("id", None)
    if make_time:
        fields.pop("time", None)
    event = validate_event(fields)
    # 2. Fill in the id and time, canonical as made (validation would leave them as they are).
    if make_id or make_time:
        ident, text = _id_and_time(now, rand) if make_id else ("", utc_text(now))
        if make_id and make_time:
            event = msgspec.structs.replace(event, id=ident, time=text)
        elif make_id:
            event = msgspec.structs.replace(event, id=ident)
        else:
            event = msgspec.structs.replace(event, time=text)
    # 3. Encode the struct: fields in declared order, absent ones left out, as to_dict gives.
    body = msgspec.json.encode(event)
    if len(body) > MAX_EVENT_BYTES:
        raise ValidationError("event", f"larger than {MAX_EVENT_BYTES} bytes as JSON")
    if event.id is None:  # pragma: no cover - set in step 2 or validated in step 1
        raise ValidationError("id", "missing")
    return event.id, body
