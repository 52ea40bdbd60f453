"""Canonical JSON: the one place sealtrail turns values into the JSON it hashes, signs or seals.

Two encodings live here, each written once:

- the leaf encoding (:func:`encode_leaf`, and :func:`encode_json` for any other value that must
  match it: sealed fields' plaintext, redaction markers, exports), described below;
- :func:`compact_json`, the standard library's sorted, compact text, which report hashes, rule
  digests, webhook bodies, import ids and the log's signed settings were defined with. It
  differs from the leaf encoding on floats (``1e+16`` where msgspec writes ``1e16``) and NaN,
  so neither may stand in for the other.

The leaf encoding
-----------------

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

import json
from collections.abc import Mapping
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


def encode_json(value: Any) -> bytes:
    """Any JSON value in the leaf encoding: keys sorted, compact, UTF-8, one line (control
    characters escaped). Raises UnicodeEncodeError for a string holding a lone surrogate."""
    return _encoder.encode(value)


def encode_leaf(event: Event | Mapping[str, Any]) -> bytes:
    """The leaf bytes of a sequenced event (``id``, ``time`` and ``received_at`` must be set).

    The event is an :class:`Event`, or its :func:`msgspec.to_builtins` form with fields taken
    out and a ``sealed`` map put in (the engine seals fields that way, without rebuilding
    structs per event). Both encode to the same bytes: the deterministic encoder writes struct
    fields in declaration order, which is sorted (checked above), and sorts dict keys.
    """
    if isinstance(event, Event):
        if event.id is None or event.received_at is None or event.time is None:
            raise ValueError("only a sequenced event (id, time, received_at set) has a leaf")
        if isinstance(event, StoredEvent):
            # Read back from a leaf, it carries ``v`` as a field: drop it, or it would be
            # written twice.
            fields = msgspec.structs.asdict(event)
            del fields["v"]
            event = Event(**fields)
        sealed = event.sealed is not None
    else:
        if "id" not in event or "received_at" not in event or "time" not in event:
            raise ValueError("only a sequenced event (id, time, received_at set) has a leaf")
        sealed = event.get("sealed") is not None
    try:
        body = _encoder.encode(event)
    except UnicodeEncodeError as exc:
        raise ValidationError("event", "contains a lone surrogate (not valid Unicode)") from exc
    leaf = body[:-1] + _VERSION_SUFFIX
    # Sequencing adds ids and times (1 KiB of slack); sealing adds base64 (4/3) and key ids,
    # which the tiles' uint16 entry length still bounds.
    limit = MAX_LEAF_BYTES if sealed else MAX_EVENT_BYTES + 1024
    if len(leaf) > limit:
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


# -- compact JSON text ----------------------------------------------------------------------

def compact_json(value: Any, *, ascii: bool = False, lenient: bool = False) -> str:
    """``json.dumps`` with keys sorted and no whitespace: the text hashed, signed or compared
    where the leaf encoding is not used.

    ``ascii`` escapes every non-ASCII character as ``\\uXXXX`` (the form rule digests and the
    log's settings statement were defined with); otherwise text stays as it is (encode the
    result as UTF-8). ``lenient`` is for untrusted records whose digest must not fail: NaN and
    the infinities are written as ``NaN``/``Infinity`` and any other object as its ``str()``;
    without it they raise ValueError or TypeError.
    """
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=ascii,
                      allow_nan=lenient, default=str if lenient else None)
