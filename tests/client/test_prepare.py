"""``prepare_event`` gives exactly the bytes of the plain definition (validate the event with
its id and time filled in, then encode its dict), for made and given ids and times; and its
core's fast UUIDv7 and time texts equal its general ones."""

from __future__ import annotations

import os
import random
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sealtrail.client.prepare import prepare_event
from sealtrail.core.errors import ValidationError
from sealtrail.core.event import Event, validate_event
from sealtrail.core.timefmt import _format_general, format_time, unix_micros
from sealtrail.core.uuid7 import uuid7_text, uuid7_texts


def reference(doc: dict[str, Any], *, now: datetime, rand: bytes) -> tuple[str, bytes]:
    """The definition: fill id and time in, validate with the core, encode the dict."""
    filled = dict(doc)
    if filled.get("id") is None:
        filled["id"] = uuid7_texts(unix_micros(now) // 1000, rand)[0][0]
    if filled.get("time") is None:
        filled["time"] = _format_general(now)
    event = validate_event(filled)
    body = msgspec.json.encode(event.to_dict())
    assert event.id is not None
    return event.id, body


def _event(rng: random.Random) -> dict[str, Any]:
    ev: dict[str, Any] = {"actor": {"id": f"u{rng.randrange(1000)}"},
                          "action": rng.choice(["doc.read", "user.login", "a:b.c-d"]),
                          "outcome": rng.choice(["success", "failure", "denied", "error"])}
    optional: dict[str, Any] = {
        "category": "data_access",
        "target": {"type": "doc", "id": "d-1", "name": "Ré port ✓"},
        "source": {"service": "api", "ip": "2001:db8::1", "host": "h"},
        "metadata": {"z": 1, "a": [1.5, None, {"y": "x", "b": True}], "é": "\u2028\n"},
        "changes": {"before": {"b": 1, "a": 2}, "after": None},
        "subjects": ["patient-1", "patient-2"],
        "request_id": "req-1", "trace_id": "t" * 32, "reason": "why", "purpose": "audit",
        "id": rng.choice([None, "0190D4A4-5A9E-7C3E-8F1A-0123456789AB",
                          "0190d4a4-5a9e-7c3e-8f1a-0123456789ab"]),
        "time": rng.choice([None, "2026-01-31T12:00:00+01:30", "2026-01-31t12:00:00.123456789z",
                            "2026-01-31T12:00:00.000001Z"]),
    }
    for key, value in optional.items():
        if rng.random() < 0.5:
            ev[key] = value
    if rng.random() < 0.3:
        ev["actor"] = {"ip": "10.0.0.1", "name": "N", "id": "x", "type": "user"}
    return dict(rng.sample(list(ev.items()), len(ev)))  # any key order


def test_prepare_gives_the_definitions_bytes() -> None:
    rng = random.Random(15)
    zones = [UTC, timezone(timedelta(hours=-7)), timezone(timedelta(hours=5, minutes=45))]
    for _ in range(2000):
        ev = _event(rng)
        now = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(microseconds=rng.randrange(10**14))
        now = now.astimezone(rng.choice(zones))
        rand = rng.randbytes(10)
        assert prepare_event(ev, now=now, rand=rand) == reference(ev, now=now, rand=rand)


def test_prepare_takes_an_event_struct_as_a_mapping() -> None:
    ev = validate_event({"actor": {"id": "a"}, "action": "x.y", "outcome": "success",
                         "metadata": {"b": 1, "a": 2}})
    now, rand = datetime.now(UTC), os.urandom(10)
    doc = ev.to_dict()
    assert prepare_event(doc, now=now, rand=rand) == reference(doc, now=now, rand=rand)
    assert isinstance(ev, Event)


@pytest.mark.parametrize(("doc", "field"), [
    ({"actor": {"id": "a"}, "action": "x", "outcome": "maybe"}, "outcome"),
    ({"actor": {"id": "a"}, "action": "x", "outcome": "success", "id": "nope"}, "id"),
    ({"actor": {"id": "a"}, "action": "x", "outcome": "success", "time": "noon"}, "time"),
    ({"actor": {"id": "a"}, "action": "x", "outcome": "success",
      "metadata": {"big": 2**60}}, "metadata.big"),
    ({"actor": {"id": "a"}, "action": "x", "outcome": "success",
      "metadata": {"s": "x" * 40_000}}, "event"),
])
def test_prepare_refuses_what_the_definition_refuses(doc: dict[str, Any], field: str) -> None:
    now, rand = datetime.now(UTC), os.urandom(10)
    with pytest.raises(ValidationError) as fast:
        prepare_event(doc, now=now, rand=rand)
    assert fast.value.field == field
    if field != "event":  # the size limit is prepare's own check, not validate_event's
        with pytest.raises(ValidationError) as ref:
            reference(doc, now=now, rand=rand)
        assert (ref.value.field, str(ref.value)) == (fast.value.field, str(fast.value))


@settings(max_examples=300)
@given(st.integers(0, 2**48 + 5), st.binary(min_size=10, max_size=10))
def test_uuid7_text_is_the_cores(ms: int, rand: bytes) -> None:
    assert uuid7_text(ms, rand) == uuid7_texts(ms, rand)[0][0]


@settings(max_examples=300)
@given(st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30),
                    timezones=st.sampled_from([UTC, timezone(timedelta(hours=3))])))
def test_format_time_by_fields_is_the_general_one(dt: datetime) -> None:
    assert format_time(dt) == _format_general(dt)


def test_times_within_one_second_and_across_it() -> None:
    """Events of one second share its formatted text; the next second gets its own."""
    start = datetime(2026, 12, 31, 23, 59, 58, 999_998, tzinfo=UTC)
    for step in range(6):
        now = start + timedelta(microseconds=step)
        for _ in range(2):
            assert format_time(now) == _format_general(now)
            rand = os.urandom(10)
            doc = {"actor": {"id": "a"}, "action": "x", "outcome": "success"}
            assert prepare_event(doc, now=now, rand=rand) == reference(doc, now=now, rand=rand)
    late = start + timedelta(seconds=1)
    assert format_time(late) == "2026-12-31T23:59:59.999998Z"
    assert format_time(start) == "2026-12-31T23:59:58.999998Z"  # back again: not a stale text
