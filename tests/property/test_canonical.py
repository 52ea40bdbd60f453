"""The canonical leaf encoding against RFC 8785 (JCS), on the domain documented in canonical.py.

On that domain (strings with any characters but lone surrogates, booleans, null, integers within
±(2**53 - 1), floats that are not whole numbers with magnitude in [1e-5, 1e16), keys without
characters above U+FFFF) the sorted msgspec encoding sealtrail hashes must be byte-for-byte what
the independent ``rfc8785`` package produces.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import msgspec
import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from sealtrail.core import canonical
from sealtrail.core.event import CATEGORIES, MAX_INT, OUTCOMES, Event, Sealed, validate_event
from sealtrail.core.timefmt import format_time

# -- the documented domain -----------------------------------------------------------------

# Any code point but lone surrogates (category Cs): control characters, U+2028, emoji...
_chars = st.characters(exclude_categories=["Cs"])
strings = st.text(_chars, max_size=24)
# JCS sorts keys by UTF-16 code units, msgspec by code point: they agree below U+10000.
keys = st.text(st.characters(max_codepoint=0xFFFF, exclude_categories=["Cs"]), max_size=16)
ints = st.integers(-MAX_INT, MAX_INT)
floats = st.builds(
    lambda x, neg: -x if neg else x,
    st.floats(min_value=1e-5, max_value=1e16, exclude_max=True).filter(
        lambda x: not x.is_integer()),
    st.booleans())
scalars = st.none() | st.booleans() | ints | floats | strings


def json_values(depth: int) -> st.SearchStrategy[Any]:
    """JSON values in the domain, nested at most ``depth`` containers deep."""
    if depth == 0:
        return scalars
    inner = json_values(depth - 1)
    return scalars | st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=4)


metadata = st.dictionaries(keys.filter(bool), json_values(3), max_size=6)


def _encode(value: Any) -> bytes:
    """The encoder canonical.encode_leaf uses (sorted keys, msgspec's JSON)."""
    return canonical._encoder.encode(value)


# -- free-form values ------------------------------------------------------------------------


@given(json_values(4))
def test_sorted_encoding_is_jcs(value: Any) -> None:
    """On the documented domain, canonical's sorted msgspec encoding equals rfc8785.dumps."""
    assert _encode(value) == rfc8785.dumps(value)


@given(floats)
def test_floats_in_domain_are_jcs(x: float) -> None:
    """Floats that are not whole numbers, with magnitude in [1e-5, 1e16), encode as JCS does."""
    assert _encode(x) == rfc8785.dumps(x)
    assert _encode([x, {"k": x}]) == rfc8785.dumps([x, {"k": x}])


def test_floats_outside_domain_differ_as_documented() -> None:
    """Outside the domain msgspec and JCS write floats differently, exactly as canonical.py says."""
    for x, ours, jcs in [(1.0, b"1.0", b"1"), (0.0, b"0.0", b"0"), (1e-6, b"1e-6", b"0.000001"),
                         (1e16, b"1e16", b"10000000000000000")]:
        assert _encode(x) == ours
        assert rfc8785.dumps(x) == jcs


@given(st.dictionaries(keys, scalars, max_size=8))
def test_key_order_is_jcs(value: dict[str, Any]) -> None:
    """Object keys (BMP characters, including ones JSON escapes) are sorted as JCS sorts them."""
    assert _encode(value) == rfc8785.dumps(value)


# -- whole events ----------------------------------------------------------------------------

_ident = st.text(_chars, min_size=1, max_size=40)
_text = st.text(_chars, max_size=40)
_segment = st.text(st.sampled_from("abcXYZ019_:-"), min_size=1, max_size=8)
_action = st.lists(_segment, min_size=1, max_size=4).map(".".join)
_ips = st.ip_addresses().map(str)
_times = st.datetimes(min_value=datetime(1970, 1, 1), max_value=datetime(2200, 1, 1),
                      timezones=st.just(UTC)).map(format_time)
_uuids = st.uuids().map(str)
_non_null = st.booleans() | ints | floats | strings | st.lists(scalars, max_size=3)


def _optional(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.none() | strategy


def _drop_none(d: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if v is not None}


_actor = st.builds(
    lambda *v: _drop_none(dict(zip(("id", "type", "name", "ip", "user_agent", "on_behalf_of"), v,
                                   strict=True))),
    _ident, _optional(_text), _optional(_text), _optional(_ips), _optional(_text),
    _optional(_ident))
_target = st.builds(lambda *v: _drop_none(dict(zip(("type", "id", "name"), v, strict=True))),
                    _optional(_text), _optional(_ident), _optional(_text))
_source = st.builds(lambda *v: _drop_none(dict(zip(("service", "host", "ip"), v, strict=True))),
                    _optional(_text), _optional(_text), _optional(_ips))
_changes = st.builds(lambda *v: _drop_none(dict(zip(("before", "after"), v, strict=True))),
                     _optional(_non_null), _optional(_non_null))


@st.composite
def sequenced_events(draw: st.DrawFn) -> tuple[dict[str, Any], Event]:
    """A valid event as a plain dict (with ``received_at``) and as the sealed Event to encode."""
    doc: dict[str, Any] = {
        "actor": draw(_actor), "action": draw(_action),
        "outcome": draw(st.sampled_from(OUTCOMES)), "id": draw(_uuids), "time": draw(_times)}
    optional: dict[str, st.SearchStrategy[Any]] = {
        "category": st.sampled_from(CATEGORIES), "target": _target, "source": _source,
        "request_id": _ident, "trace_id": _ident, "purpose": _text, "reason": _text,
        "changes": _changes, "metadata": metadata}
    for name, strategy in optional.items():
        if draw(st.booleans()):
            doc[name] = draw(strategy)
    event = validate_event(doc)
    received = draw(_times)
    sealed = msgspec.structs.replace(event, received_at=received)
    return {**doc, "received_at": received}, sealed


@settings(max_examples=300)
@given(sequenced_events())
def test_leaf_is_jcs_of_event_plus_version(case: tuple[dict[str, Any], Event]) -> None:
    """encode_leaf(event) is rfc8785.dumps of the event's fields plus "v": 1."""
    doc, event = case
    leaf = canonical.encode_leaf(event)
    assert leaf == rfc8785.dumps({**doc, "v": 1})
    assert leaf == rfc8785.dumps({**event.to_dict(), "v": 1})


@given(sequenced_events())
def test_leaf_round_trip_is_deterministic(case: tuple[dict[str, Any], Event]) -> None:
    """Decoding a leaf and encoding it again gives the same bytes, and the same event."""
    _, event = case
    leaf = canonical.encode_leaf(event)
    stored = canonical.decode_leaf(leaf)
    assert stored.v == canonical.LEAF_VERSION
    assert canonical.encode_leaf(stored) == leaf
    # Validating what was read back changes nothing: the leaf was already normalised.
    fields = stored.to_dict()
    del fields["v"]
    received = fields.pop("received_at")
    again = msgspec.structs.replace(validate_event(fields), received_at=received)
    assert canonical.encode_leaf(again) == leaf
    assert canonical.leaf_object(leaf) == {**event.to_dict(), "v": 1}


@given(sequenced_events())
def test_leaf_is_one_line(case: tuple[dict[str, Any], Event]) -> None:
    """No raw control byte (LF, CR, ...) ever appears in a leaf: one event is one JSON line."""
    _, event = case
    leaf = canonical.encode_leaf(event)
    assert not any(b < 0x20 for b in leaf)
    assert leaf.decode("utf-8")


@given(st.text(st.characters(max_codepoint=0x9F), min_size=1, max_size=30))
def test_control_characters_are_escaped(text: str) -> None:
    """Strings full of CR, LF and other control characters stay escaped inside one line."""
    event = validate_event({"actor": {"id": text}, "action": "x", "outcome": "failure",
                            "id": str(uuid.UUID(int=1)), "time": "2026-01-01T00:00:00Z",
                            "reason": "line1\r\nline2\x00\x1b[31m" + text,
                            "metadata": {text: [text, "\n"]}})
    leaf = canonical.encode_leaf(
        msgspec.structs.replace(event, received_at="2026-01-01T00:00:00.000000Z"))
    assert b"\n" not in leaf
    assert b"\r" not in leaf
    assert not any(b < 0x20 for b in leaf)
    assert canonical.leaf_object(leaf)["reason"] == "line1\r\nline2\x00\x1b[31m" + text


@given(sequenced_events(), st.booleans(), _ident, st.lists(_segment, min_size=1, max_size=3))
def test_one_leaf_encoder_for_structs_and_their_builtins(
        case: tuple[dict[str, Any], Event], sealed: bool, ct: str, fields: list[str]) -> None:
    """encode_leaf of an event and of its ``to_builtins`` form (as the engine edits it when it
    seals fields, with a ``sealed`` map put in) give the same bytes."""
    _, event = case
    if sealed:
        event = msgspec.structs.replace(event, sealed=Sealed(ct=ct, fields=fields))
    obj: dict[str, Any] = msgspec.to_builtins(event)
    assert canonical.encode_leaf(obj) == canonical.encode_leaf(event)
    assert canonical.encode_leaf(canonical.decode_leaf(canonical.encode_leaf(obj))) == \
        canonical.encode_leaf(event)
