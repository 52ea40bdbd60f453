"""The canonical leaf encoding: the exact bytes that are hashed into the log.

A leaf is one JSON object: the event's fields (absent ones left out) plus ``"v": 1``, the format
version. It is encoded deterministically:

- object keys sorted (by code point), no insignificant whitespace, UTF-8 (no ``\\u`` escapes
  except for the control characters U+0000-U+001F, which use the short forms \\b \\t \\n \\f \\r
  or lowercase ``\\u00xx``), ``"`` and ``\\`` escaped;
- integers in decimal; floats in the shortest text that reads back the same.

On the domain where the two meet — strings, booleans, null, integers within ±(2**53 - 1), floats
that are not whole numbers with magnitude in [1e-5, 1e16), and keys without characters above
U+FFFF — this is byte-for-byte RFC 8785 (JCS); the property test
``tests/property/test_canonical.py`` checks it. Outside it floats differ: msgspec writes ``1.0``,
``0.0``, ``1e-6`` and ``1e16`` where JCS writes ``1``, ``0``, ``0.000001`` and
``10000000000000000``.

Because every field name sorts before ``v``, the version is spliced in at the end: one encode
per event on the hot path.
"""

from __future__ import annotations

from typing import Any, Final

import msgspec

from sealtrail.core.errors import ValidationError
from sealtrail.core.event import (
    MAX_EVENT_BYTES,
    Actor,
    Changes,
    Event,
    Sealed,
    Source,
    Target,
)

LEAF_VERSION: Final = 1
MAX_LEAF_BYTES: Final = 65535  # entry bundles (tlog-tiles) use uint16 length prefixes
_VERSION_SUFFIX: Final = b',"v":1}'

_encoder = msgspec.json.Encoder(order="deterministic")


def _fields_sorted(cls: type[msgspec.Struct]) -> bool:
    return list(cls.__struct_fields__) == sorted(cls.__struct_fields__)


# ``deterministic`` order is the canonical (sorted) order only while every struct declares its
# fields sorted: a field added out of order would change leaf bytes, so refuse to run.
_STRUCTS = (Event, Actor, Target, Source, Changes, Sealed)
if not all(_fields_sorted(c) for c in _STRUCTS):  # pragma: no cover
    raise RuntimeError("event structs must declare their fields in sorted order")


class StoredEvent(Event, frozen=True, forbid_unknown_fields=True, omit_defaults=True,
                  kw_only=True):
    """An event as read back from a leaf: the event plus its format version."""

    v: int


_leaf_decoder = msgspec.json.Decoder(StoredEvent)


def encode_leaf(event: Event) -> bytes:
    """The leaf bytes of a sequenced event (``id`` and ``received_at`` must be set)."""
    if event.id is None or event.received_at is None or event.time is None:
        raise ValueError("only a sequenced event (id, time, received_at set) has a leaf")
    if isinstance(event, StoredEvent):
        # Read back from a leaf, it carries ``v`` as a field: drop it, or it would be written twice.
        fields = msgspec.structs.asdict(event)
        del fields["v"]
        event = Event(**fields)
    try:
        body = _encoder.encode(event)
    except UnicodeEncodeError as exc:
        raise ValidationError("event", "contains a lone surrogate (not valid Unicode)") from exc
    leaf = body[:-1] + _VERSION_SUFFIX
    # Sequencing adds ids and times (1 KiB of slack); sealing adds base64 (4/3) and key ids,
    # which the tiles' uint16 entry length still bounds.
    limit = MAX_LEAF_BYTES if event.sealed else MAX_EVENT_BYTES + 1024
    if len(leaf) > limit:
        raise ValidationError("event", f"larger than {MAX_EVENT_BYTES} bytes once sequenced")
    return leaf


def encode_sealed_leaf(obj: dict[str, Any]) -> bytes:
    """The leaf bytes of a sequenced event given as a plain object with its ``sealed`` map.

    Byte-identical to :func:`encode_leaf` of the same event: the deterministic encoder sorts
    dict keys, which is the order the structs declare. The engine builds sealed leaves this
    way to avoid rebuilding structs per event.
    """
    if "id" not in obj or "received_at" not in obj or "time" not in obj:
        raise ValueError("only a sequenced event (id, time, received_at set) has a leaf")
    try:
        body = _encoder.encode(obj)
    except UnicodeEncodeError as exc:
        raise ValidationError("event", "contains a lone surrogate (not valid Unicode)") from exc
    leaf = body[:-1] + _VERSION_SUFFIX
    if len(leaf) > MAX_LEAF_BYTES:
        raise ValidationError("event", f"larger than {MAX_EVENT_BYTES} bytes once sequenced")
    return leaf


def decode_leaf(leaf: bytes) -> StoredEvent:
    """Read a leaf back into an event; raises msgspec errors on bytes that are not a v1 leaf."""
    ev = _leaf_decoder.decode(leaf)
    if ev.v != LEAF_VERSION:
        raise ValueError(f"leaf format version {ev.v} is not supported")
    return ev


def leaf_object(leaf: bytes) -> dict[str, Any]:
    """A leaf as a plain JSON object (for output), without re-validating it."""
    out: dict[str, Any] = msgspec.json.decode(leaf)
    return out
