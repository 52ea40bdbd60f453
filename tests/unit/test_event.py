"""Event validation: every rejection is a ValidationError whose ``field`` names what is wrong.

Each bad document is checked both as JSON text (:func:`parse_event`, the path untrusted input
takes) and as a Python mapping (:func:`validate_event`, the embedded API).
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import msgspec
import pytest

from sealtrail.core import canonical
from sealtrail.core.errors import SealtrailError, ValidationError
from sealtrail.core.event import (
    MAX_DEPTH,
    MAX_EVENT_BYTES,
    MAX_INT,
    Event,
    parse_event,
    validate_event,
)

BASE: dict[str, Any] = {"actor": {"id": "u-1"}, "action": "doc.read", "outcome": "success"}


def _without(key: str) -> dict[str, Any]:
    return {k: v for k, v in BASE.items() if k != key}


def _nest(levels: int) -> Any:
    """``levels`` objects nested inside each other around the number 1."""
    value: Any = 1
    for _ in range(levels):
        value = {"a": value}
    return value


# (case id, document, expected field or field prefix ending in '.')
BAD: list[tuple[str, dict[str, Any], str]] = [
    ("actor-id-wrong-type", {**BASE, "actor": {"id": 5}}, "actor.id"),
    ("actor-id-empty", {**BASE, "actor": {"id": ""}}, "actor.id"),
    ("actor-id-too-long", {**BASE, "actor": {"id": "x" * 257}}, "actor.id"),
    ("missing-actor-id", {**BASE, "actor": {"name": "Ann"}}, "actor.id"),
    ("missing-actor", _without("actor"), "actor"),
    ("actor-not-object", {**BASE, "actor": "u-1"}, "actor"),
    ("missing-action", _without("action"), "action"),
    ("missing-outcome", _without("outcome"), "outcome"),
    ("bad-outcome", {**BASE, "outcome": "ok"}, "outcome"),
    ("outcome-wrong-type", {**BASE, "outcome": True}, "outcome"),
    ("bad-category", {**BASE, "category": "misc"}, "category"),
    ("action-with-space", {**BASE, "action": "doc read"}, "action"),
    ("action-empty-segment", {**BASE, "action": "doc..read"}, "action"),
    ("action-trailing-dot", {**BASE, "action": "doc."}, "action"),
    ("action-newline", {**BASE, "action": "doc.read\nuser.login"}, "action"),
    ("action-too-long", {**BASE, "action": "a" * 129}, "action"),
    ("actor-ip", {**BASE, "actor": {"id": "u", "ip": "999.1.1.1"}}, "actor.ip"),
    ("actor-ip-text", {**BASE, "actor": {"id": "u", "ip": "localhost"}}, "actor.ip"),
    ("source-ip", {**BASE, "source": {"ip": "not-an-ip"}}, "source.ip"),
    ("source-ip-v6", {**BASE, "source": {"ip": "2001:db8::g"}}, "source.ip"),
    ("unknown-field", {**BASE, "colour": "red"}, "colour"),
    ("unknown-actor-field", {**BASE, "actor": {"id": "u", "role": "admin"}}, "actor.role"),
    ("unknown-changes-field", {**BASE, "changes": {"diff": 1}}, "changes.diff"),
    ("metadata-too-deep", {**BASE, "metadata": _nest(12)}, "metadata."),
    ("metadata-list-too-deep", {**BASE, "metadata": {"a": [[[[[[[[[[1]]]]]]]]]]}}, "metadata."),
    ("changes-too-deep", {**BASE, "changes": {"before": _nest(12)}}, "changes.before."),
    ("huge-integer", {**BASE, "metadata": {"n": MAX_INT + 1}}, "metadata.n"),
    ("huge-negative-integer", {**BASE, "metadata": {"n": -MAX_INT - 1}}, "metadata.n"),
    ("huge-integer-in-list", {**BASE, "metadata": {"n": [1, 10**30]}}, "metadata.n[1]"),
    ("huge-integer-in-changes", {**BASE, "changes": {"after": {"x": 2**64}}}, "changes.after.x"),
    ("metadata-not-object", {**BASE, "metadata": [1, 2]}, "metadata"),
    ("metadata-key-too-long", {**BASE, "metadata": {"k" * 129: 1}}, "metadata."),
    ("id-not-uuid", {**BASE, "id": "abc"}, "id"),
    ("id-wrong-type", {**BASE, "id": 7}, "id"),
    ("received-at-supplied", {**BASE, "received_at": "2026-01-01T00:00:00Z"}, "received_at"),
    ("time-words", {**BASE, "time": "yesterday"}, "time"),
    ("time-no-zone", {**BASE, "time": "2026-01-01T00:00:00"}, "time"),
    ("time-bad-month", {**BASE, "time": "2026-13-01T00:00:00Z"}, "time"),
    ("time-bad-day", {**BASE, "time": "2026-02-30T00:00:00Z"}, "time"),
    ("reason-too-long", {**BASE, "reason": "r" * 4097}, "reason"),
    ("target-id-wrong-type", {**BASE, "target": {"id": ["x"]}}, "target.id"),
]


def _matches(field: str, want: str) -> bool:
    return field.startswith(want) if want.endswith(".") else field == want


@pytest.mark.parametrize(("doc", "field"), [(d, f) for _, d, f in BAD], ids=[c for c, _, _ in BAD])
def test_parse_event_names_the_field(doc: dict[str, Any], field: str) -> None:
    """parse_event rejects the JSON document with a ValidationError naming the bad field."""
    with pytest.raises(ValidationError) as info:
        parse_event(json.dumps(doc).encode())
    assert _matches(info.value.field, field), info.value
    assert str(info.value).startswith(f"{info.value.field}: ")


@pytest.mark.parametrize(("doc", "field"), [(d, f) for _, d, f in BAD], ids=[c for c, _, _ in BAD])
def test_validate_event_names_the_field(doc: dict[str, Any], field: str) -> None:
    """validate_event rejects the mapping with a ValidationError naming the bad field."""
    with pytest.raises(ValidationError) as info:
        validate_event(doc)
    assert _matches(info.value.field, field), info.value


def test_metadata_depth_limit_boundary() -> None:
    """Seven levels of metadata nesting are fine; the depth error names the innermost path."""
    validate_event({**BASE, "metadata": _nest(7)})
    with pytest.raises(ValidationError) as info:
        validate_event({**BASE, "metadata": _nest(20)})
    assert info.value.field.startswith("metadata.a.a.a")
    assert "nested deeper than 8" in info.value.message


def test_integer_limit_boundary() -> None:
    """Integers up to ±(2**53 - 1) are accepted; one past is rejected."""
    validate_event({**BASE, "metadata": {"lo": -MAX_INT, "hi": MAX_INT}})
    with pytest.raises(ValidationError):
        validate_event({**BASE, "metadata": {"hi": MAX_INT + 1}})


def test_non_finite_float_names_the_field() -> None:
    """NaN and infinity in metadata are rejected, naming the field."""
    for bad in (float("nan"), float("inf"), float("-inf")):
        with pytest.raises(ValidationError) as info:
            validate_event({**BASE, "metadata": {"x": {"y": bad}}})
        assert info.value.field == "metadata.x.y"


def test_oversized_event_is_rejected() -> None:
    """A JSON event larger than 32 KiB is rejected as a whole before it is decoded."""
    doc = {**BASE, "metadata": {"blob": "x" * MAX_EVENT_BYTES}}
    raw = json.dumps(doc).encode()
    assert len(raw) > MAX_EVENT_BYTES
    with pytest.raises(ValidationError) as info:
        parse_event(raw)
    assert info.value.field == "event"
    assert "32768" in info.value.message


def test_oversized_event_from_python_is_rejected_at_encoding() -> None:
    """An event built in Python that exceeds the limit cannot become a leaf."""
    event = validate_event({**BASE, "id": str(uuid.UUID(int=1)), "time": "2026-01-01T00:00:00Z",
                            "metadata": {"blob": "x" * (MAX_EVENT_BYTES + 2048)}})
    sealed = msgspec.structs.replace(event, received_at="2026-01-01T00:00:00.000000Z")
    with pytest.raises(ValidationError) as info:
        canonical.encode_leaf(sealed)
    assert info.value.field == "event"


@pytest.mark.parametrize("raw", [
    b'{"actor":{"id":"\xff"},"action":"a","outcome":"success"}',
    b'{"actor":{"id":"u"},"action":"a","outcome":"success","metadata":{"\xc3\x28":1}}',
    b'{"actor":{"id":"\xc0\xaf"},"action":"a","outcome":"success"}',
    b'{"actor":{"id":"\xed\xa0\x80"},"action":"a","outcome":"success"}',
], ids=["invalid-byte", "invalid-key", "overlong", "encoded-surrogate"])
def test_invalid_utf8_is_a_validation_error(raw: bytes) -> None:
    """Bytes that are not UTF-8 are a ValidationError on the event, not a UnicodeDecodeError."""
    with pytest.raises(ValidationError) as info:
        parse_event(raw)
    assert info.value.field == "event"


@pytest.mark.parametrize("raw", [
    b"", b"{", b'{"actor":', b"{'actor': 1}", b'{"actor":{"id":"u"},}', b"nul",
    b'{"actor":{"id":"u"},"action":"a","outcome":"success"}x',
    b'{"actor":{"id":"\\ud800"},"action":"a","outcome":"success"}',
], ids=["empty", "open-brace", "truncated", "single-quotes", "trailing-comma", "bad-literal",
        "trailing-garbage", "escaped-lone-surrogate"])
def test_malformed_json_is_a_validation_error(raw: bytes) -> None:
    """Malformed JSON is a ValidationError on the whole event."""
    with pytest.raises(ValidationError) as info:
        parse_event(raw)
    assert info.value.field == "event"


def test_deeply_nested_json_is_a_validation_error() -> None:
    """JSON nested thousands of levels deep is rejected cleanly, without a RecursionError."""
    raw = (b'{"actor":{"id":"u"},"action":"a","outcome":"success","metadata":{"a":'
           + b"[" * 5000 + b"]" * 5000 + b"}}")
    with pytest.raises(ValidationError) as info:
        parse_event(raw)
    assert info.value.field.startswith(("event", "metadata"))


@pytest.mark.parametrize("raw", [b"[1, 2]", b'"event"', b"null", b"42", b"true"],
                         ids=["array", "string", "null", "number", "bool"])
def test_non_object_json_is_rejected(raw: bytes) -> None:
    """A JSON value that is not an object is a ValidationError on the event."""
    with pytest.raises(ValidationError) as info:
        parse_event(raw)
    assert info.value.field == "event"


@pytest.mark.parametrize("obj", [[1], "event", None, 5], ids=["list", "str", "none", "int"])
def test_validate_event_rejects_non_mappings(obj: Any) -> None:
    """validate_event rejects anything but an Event or a mapping."""
    with pytest.raises(ValidationError) as info:
        validate_event(obj)
    assert info.value.field == "event"


def test_validation_error_is_a_sealtrail_error() -> None:
    """ValidationError sits under SealtrailError and can be re-located at an input line."""
    with pytest.raises(SealtrailError):
        parse_event(b"{}")
    err = ValidationError("actor.id", "bad").at_line(3)
    assert (err.field, err.line, str(err)) == ("actor.id", 3, "line 3: actor.id: bad")


def test_valid_event_is_normalised() -> None:
    """A valid event parses; its id and time are normalised to one canonical text."""
    u = uuid.UUID("0190a3a4-1234-7abc-8def-0123456789ab")
    doc = {**BASE, "id": str(u).upper(), "time": "2026-01-31T13:00:00.5+01:00",
           "actor": {"id": "u", "ip": "2001:DB8::1"}, "source": {"ip": "192.0.2.1"},
           "category": "data_access", "metadata": {"k": [1, 2.5, None, True, "s\n"]}}
    ev = parse_event(json.dumps(doc))
    assert isinstance(ev, Event)
    assert ev.id == str(u)
    assert ev.time == "2026-01-31T12:00:00.500000Z"
    assert validate_event(doc) == ev
    assert validate_event(ev) == ev
    assert parse_event(json.dumps(ev.to_dict())) == ev


def test_control_characters_are_data() -> None:
    """CR, LF and other control characters are allowed inside strings (they are escaped later)."""
    ev = validate_event({**BASE, "reason": "a\r\nb\x00c", "actor": {"id": "x\ny"}})
    assert ev.reason == "a\r\nb\x00c"
    assert ev.actor.id == "x\ny"


def test_metadata_nesting_limit_is_exactly_eight_containers() -> None:
    """Eight nested containers (metadata itself the first) pass; a ninth is rejected by name."""
    def nested(levels: int) -> dict[str, object]:
        inner: dict[str, object] = {"leaf": 1}
        for _ in range(levels - 1):
            inner = {"k": inner}
        return inner

    base = {"actor": {"id": "a"}, "action": "x.y", "outcome": "success"}
    assert MAX_DEPTH == 8
    validate_event({**base, "metadata": nested(8)})
    validate_event({**base, "changes": {"before": [[[[[[[[1]]]]]]]]}})
    with pytest.raises(ValidationError) as info:
        validate_event({**base, "metadata": nested(9)})
    assert info.value.field.startswith("metadata.k")
    assert "deeper than 8" in info.value.message
