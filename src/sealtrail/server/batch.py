"""A posted batch of events: parsed, then every event validated, every invalid one reported.

Pure functions over the request body. A batch is stored whole or not at all, so the answer to
an invalid batch lists each invalid event (up to :data:`MAX_REPORTED`) by its position:
``{"index": i, "field": "events[i].actor.id", "message": ...}``. Clients read ``index``; the
``field`` text is for people.
"""

from __future__ import annotations

from typing import Any, Final

import msgspec

from sealtrail.core.errors import ValidationError
from sealtrail.core.event import Event, validate_event
from sealtrail.core.jsonlines import numbered_lines
from sealtrail.core.sources import claims_import

MAX_REPORTED: Final = 100


def parse_events(body: bytes, content_type: str) -> list[Any]:
    """A JSON array, or JSON Lines (``application/x-ndjson``), as a list of raw items."""
    if "ndjson" in content_type or "jsonl" in content_type or "json-seq" in content_type:
        items: list[Any] = []
        for n, line in numbered_lines(body):  # LF only: JSON may hold U+2028 unescaped
            try:
                items.append(msgspec.json.decode(line))
            except msgspec.DecodeError as exc:
                raise ValidationError("event", f"malformed JSON: {exc}", line=n) from exc
            except RecursionError as exc:
                raise ValidationError("event", "nested too deeply", line=n) from exc
        return items
    try:
        doc = msgspec.json.decode(body)
    except msgspec.DecodeError as exc:
        raise ValidationError("body", f"malformed JSON: {exc}") from exc
    except RecursionError as exc:
        raise ValidationError("body", "nested too deeply") from exc
    if not isinstance(doc, list):
        raise ValidationError("body", "must be a JSON array of events (or JSON Lines)")
    return doc


def validate_all(raw: list[Any]) -> tuple[list[Event], list[dict[str, Any]]]:
    """Every event validated; every invalid one reported (index and field)."""
    events: list[Event] = []
    errors: list[dict[str, Any]] = []
    for i, item in enumerate(raw):
        try:
            event = validate_event(item)
            claim = claims_import(event.metadata)
            if claim is not None:
                raise claim
            events.append(event)
        except ValidationError as exc:
            errors.append({"index": i, "field": f"events[{i}].{exc.field}",
                           "message": exc.message})
            if len(errors) >= MAX_REPORTED:
                break
    return events, errors
