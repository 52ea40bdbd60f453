"""Okta System Log events become valid, deterministic sealtrail events (core/sources/okta).

The fixtures are LogEvents written after Okta's System Log LogEvent object: sign-ins that
succeed and fail, sign-on policy decisions (DENY, CHALLENGE), SSO into an app, user and group
administration, an API token, a policy change and a deactivation by Okta's system principal.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sealtrail import AuditLog
from sealtrail.core.errors import ValidationError
from sealtrail.core.event import validate_event
from sealtrail.core.reserved import reserved_field
from sealtrail.core.sources import get_source
from sealtrail.core.sources.okta import SOURCE

FIXTURES = Path(__file__).parent / "fixtures" / "okta"
ARRAY = FIXTURES / "logs.json"
LINES = FIXTURES / "logs.jsonl"


def records() -> list[dict[str, Any]]:
    recs: list[dict[str, Any]] = json.loads(ARRAY.read_text(encoding="utf-8"))
    return recs


def by_uuid(uuid: str) -> dict[str, Any]:
    return next(r for r in records() if r["uuid"] == uuid)


def events_of(text: str) -> list[dict[str, Any]]:
    return [SOURCE.event(rec) for _, rec in SOURCE.records(text)]


def check(event: dict[str, Any]) -> None:
    """What every imported event must be: valid, and never one of sealtrail's own."""
    validate_event(event)
    service = (event.get("source") or {}).get("service")
    assert reserved_field(event["action"], service, event["actor"]["id"]) is None


def mapped(rec: dict[str, Any]) -> dict[str, Any] | None:
    """The record's event, or None when it is refused with a ValidationError naming a field
    (the only error an untrusted record may cause)."""
    try:
        return SOURCE.event(rec)
    except ValidationError as exc:
        refused = exc
    assert refused.field
    return None


# -- the fixture, field by field ----------------------------------------------------------------

# uuid -> (time, action, outcome, category, actor id, target id)
EXPECTED = {
    "3f1c9e2a-f8b1-11ef-9c3d-5b7e2a1d0c44": (
        "2025-03-04T08:01:12.345000Z", "okta.user.session.start", "success", "authentication",
        "alice@example.com", None),
    "4a2d0f3b-f8b1-11ef-a1b2-0c9d8e7f6a55": (
        "2025-03-04T08:03:40.101000Z", "okta.user.session.start", "failure", "authentication",
        "bob@example.com", None),
    "5b3e1a4c-f8b1-11ef-b2c3-1d0e9f8a7b66": (
        "2025-03-04T08:04:02.777000Z", "okta.policy.evaluate_sign_on", "denied",
        "authorization", "bob@example.com", "rul0legacyauth000001"),
    "6c4f2b5d-f8b1-11ef-83d4-2e1f0a9b8c77": (
        "2025-03-04T08:05:15.020000Z", "okta.policy.evaluate_sign_on", "failure",
        "authorization", "alice@example.com", "rul0mfarequired00001"),
    "7d5a3c6e-f8b1-11ef-94e5-3f2a1b0c9d88": (
        "2025-03-04T08:05:41.512000Z", "okta.user.authentication.sso", "success",
        "authentication", "alice@example.com", "GitHub Enterprise Cloud"),
    "8e6b4d7f-f8b1-11ef-a5f6-4a3b2c1d0e99": (
        "2025-03-04T09:12:00.000000Z", "okta.user.lifecycle.create", "success", "admin",
        "it-admin@example.com", "carol@example.com"),
    "9f7c5e80-f8b1-11ef-b6a7-5b4c3d2e1faa": (
        "2025-03-04T09:12:31.250000Z", "okta.group.user_membership.add", "success", "admin",
        "it-admin@example.com", "carol@example.com"),
    "a08d6f91-f8b1-11ef-87b8-6c5d4e3f2abb": (
        "2025-03-04T09:30:05.900000Z", "okta.system.api_token.create", "success",
        "configuration", "it-admin@example.com", "00T1terraformci00001"),
    "b19e70a2-f8b1-11ef-98c9-7d6e5f4a3bcc": (
        "2025-03-04T09:41:17.003000Z", "okta.policy.lifecycle.update", "success",
        "configuration", "it-admin@example.com", "00p1passwordpolicy01"),
    "c2af81b3-f8b1-11ef-a9da-8e7f6a5b4cdd": (
        "2025-03-04T10:00:00.120000Z", "okta.user.lifecycle.deactivate", "success", "admin",
        "system@okta.com", "dave.contractor@example.com"),
}


def test_the_source_is_registered_under_its_name() -> None:
    assert get_source("okta") is SOURCE
    assert SOURCE.log_source.as_dict() == {"product": "okta", "service": "okta"}


def test_every_fixture_event_maps_as_expected() -> None:
    recs = records()
    assert len(recs) == len(EXPECTED) >= 6
    for rec in recs:
        event = SOURCE.event(rec)
        check(event)
        time, action, outcome, category, actor_id, target_id = EXPECTED[rec["uuid"]]
        assert event["time"] == time
        assert event["action"] == action
        assert event["outcome"] == outcome
        assert event.get("category") == category
        assert event["actor"]["id"] == actor_id
        assert event.get("target", {}).get("id") == target_id
        assert event["metadata"]["original"] == rec
        assert event["metadata"]["log_source"] == {"product": "okta", "service": "okta"}
        assert event["source"] == {"service": "okta"}


def test_a_sign_in_maps_the_person_address_and_agent() -> None:
    event = SOURCE.event(by_uuid("4a2d0f3b-f8b1-11ef-a1b2-0c9d8e7f6a55"))
    assert event["actor"] == {
        "id": "bob@example.com", "type": "User", "name": "Bob Example", "ip": "2001:db8::42",
        "user_agent": "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"}
    assert "target" not in event  # Okta gives a sign-in no target


def test_the_first_target_is_the_target() -> None:
    event = SOURCE.event(by_uuid("9f7c5e80-f8b1-11ef-b6a7-5b4c3d2e1faa"))
    assert event["target"] == {"id": "carol@example.com", "type": "User",
                               "name": "Carol Example"}


def test_an_unknown_alternate_id_gives_way_to_the_okta_id() -> None:
    event = SOURCE.event(by_uuid("a08d6f91-f8b1-11ef-87b8-6c5d4e3f2abb"))
    assert event["target"] == {"id": "00T1terraformci00001", "type": "Token",
                               "name": "terraform-ci"}
    rec = by_uuid("4a2d0f3b-f8b1-11ef-a1b2-0c9d8e7f6a55")
    rec["actor"]["alternateId"] = "unknown"
    assert SOURCE.event(rec)["actor"]["id"] == "00u2b3c4d5e6F7g8H9i0"


def test_the_system_principal_without_client() -> None:
    event = SOURCE.event(by_uuid("c2af81b3-f8b1-11ef-a9da-8e7f6a5b4cdd"))
    assert event["actor"] == {"id": "system@okta.com", "type": "SystemPrincipal",
                              "name": "Okta System"}


@pytest.mark.parametrize(("result", "outcome"), [
    ("SUCCESS", "success"), ("ALLOW", "success"), ("success", "success"),
    ("DENY", "denied"), ("FAILURE", "failure"), ("CHALLENGE", "failure"),
    ("SKIPPED", "failure"), ("UNKNOWN", "failure"), (None, "failure"), (3, "failure"),
])
def test_outcome_results(result: Any, outcome: str) -> None:
    rec = by_uuid("3f1c9e2a-f8b1-11ef-9c3d-5b7e2a1d0c44")
    rec["outcome"] = {"result": result, "reason": None}
    assert SOURCE.event(rec)["outcome"] == outcome


@pytest.mark.parametrize(("event_type", "category"), [
    ("user.session.end", "authentication"),
    ("user.authentication.auth_via_mfa", "authentication"),
    ("policy.evaluate_sign_on", "authorization"),
    ("policy.rule.update", "configuration"),
    ("system.org.rate_limit.warning", "configuration"),
    ("user.lifecycle.suspend", "admin"),
    ("group.user_membership.remove", "admin"),
    ("application.user_membership.add", "admin"),
    ("user.account.lock", None),
    ("app.oauth2.as.token.grant", None),
])
def test_categories(event_type: str, category: str | None) -> None:
    rec = by_uuid("3f1c9e2a-f8b1-11ef-9c3d-5b7e2a1d0c44")
    rec["eventType"] = event_type
    event = SOURCE.event(rec)
    assert event.get("category") == category
    assert event["action"] == "okta." + event_type


# -- identity: stable, distinct, the same from every form of the file ---------------------------

def test_ids_are_stable_across_runs_and_distinct_between_events() -> None:
    text = ARRAY.read_text(encoding="utf-8")
    first = events_of(text)
    second = events_of(text)
    assert [e["id"] for e in first] == [e["id"] for e in second]
    assert len({e["id"] for e in first}) == len(first)
    assert first == second


def test_array_json_lines_and_one_object_give_the_same_events() -> None:
    array = events_of(ARRAY.read_text(encoding="utf-8"))
    lines = events_of(LINES.read_text(encoding="utf-8"))
    one = [events_of(json.dumps(rec))[0] for rec in records()]
    assert array == lines == one
    assert len(array) == len(EXPECTED)


def test_json_lines_split_on_lf_only() -> None:
    """A group name holds U+2028 (a line separator to str.splitlines): still one record."""
    text = LINES.read_text(encoding="utf-8")
    assert "\u2028" in text
    assert len(text.splitlines()) > len(EXPECTED)
    read = list(SOURCE.records(text))
    assert [where for where, _ in read] == [f"line {n}" for n in range(1, len(EXPECTED) + 1)]
    group = SOURCE.event(read[6][1])["metadata"]["original"]["target"][1]
    assert group["displayName"] == "Engineering\u2028(contractors)"


# -- untrusted records --------------------------------------------------------------------------

@pytest.mark.parametrize(("change", "field"), [
    ({"uuid": None}, "uuid"), ({"uuid": " "}, "uuid"), ({"uuid": ["a"]}, "uuid"),
    ({"published": None}, "published"), ({"published": "2025-03-04"}, "published"),
    ({"published": {"t": 1}}, "published"), ({"published": "1900-01-01T00:00:00Z"}, "published"),
    ({"eventType": None}, "eventType"), ({"eventType": ""}, "eventType"),
    ({"eventType": {"x": "y"}}, "eventType"),
])
def test_bad_events_name_the_field(change: dict[str, Any], field: str) -> None:
    rec = by_uuid("3f1c9e2a-f8b1-11ef-9c3d-5b7e2a1d0c44")
    rec.update(change)
    with pytest.raises(ValidationError) as info:
        SOURCE.event(rec)
    assert info.value.field == field


def test_garbage_in_optional_fields_is_left_out() -> None:
    rec = by_uuid("9f7c5e80-f8b1-11ef-b6a7-5b4c3d2e1faa")
    rec.update({"actor": ["x"], "client": "198.51.100.1", "outcome": "SUCCESS",
                "target": [None, 7, {"displayName": {"a": 1}}]})
    event = SOURCE.event(rec)
    check(event)
    assert event["actor"] == {"id": "unknown"}
    assert event["outcome"] == "failure"
    assert "target" not in event  # the first object target has nothing usable


def test_a_key_actor_id_is_not_taken_for_a_sealtrail_key() -> None:
    rec = by_uuid("3f1c9e2a-f8b1-11ef-9c3d-5b7e2a1d0c44")
    rec["actor"]["alternateId"] = "key:ab12"
    event = SOURCE.event(rec)
    check(event)
    assert event["actor"]["id"] == "okta:key:ab12"


def test_event_types_with_odd_characters_still_make_an_action() -> None:
    rec = by_uuid("3f1c9e2a-f8b1-11ef-9c3d-5b7e2a1d0c44")
    rec["eventType"] = "..sealtrail. x/y ..audit."
    event = SOURCE.event(rec)
    check(event)
    assert event["action"] == "okta.sealtrail.x_y.audit"


SCALARS = (st.none() | st.booleans() | st.integers(-(2**53) + 1, 2**53 - 1)
           | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=12))
JSON = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=3)
                    | st.dictionaries(st.text(max_size=8), inner, max_size=3), max_leaves=8)
TIMES = st.datetimes().map(lambda d: d.isoformat() + "Z") | st.integers(-10**14, 10**14)
PATHS = [("uuid",), ("published",), ("eventType",), ("outcome",), ("outcome", "result"),
         ("actor",), ("actor", "alternateId"), ("actor", "id"), ("actor", "type"),
         ("actor", "displayName"), ("client",), ("client", "ipAddress"),
         ("client", "userAgent"), ("client", "userAgent", "rawUserAgent"), ("target",)]


def mutate(rec: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    for key in path[:-1]:
        if not isinstance(rec.get(key), dict):
            rec[key] = {}
        rec = rec[key]
    rec[path[-1]] = value


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(records()),
       st.lists(st.tuples(st.sampled_from(PATHS), JSON | TIMES), max_size=5))
def test_garbage_events_give_a_valid_event_or_a_validation_error(
        base: dict[str, Any], changes: list[tuple[tuple[str, ...], Any]]) -> None:
    rec = copy.deepcopy(base)
    for path, value in changes:
        mutate(rec, path, value)
    event = mapped(rec)
    if event is not None:
        check(event)
        assert event["metadata"]["original"] == rec


@settings(max_examples=200)
@given(st.dictionaries(st.sampled_from([p[0] for p in PATHS]), JSON | TIMES, max_size=8))
def test_events_made_of_garbage_never_crash(rec: dict[str, Any]) -> None:
    event = mapped(rec)
    if event is not None:
        check(event)


# -- end to end ---------------------------------------------------------------------------------

def test_import_into_a_log_is_exactly_once_and_verifies(tmp_path: Path) -> None:
    events = events_of(ARRAY.read_text(encoding="utf-8"))
    with AuditLog.open(tmp_path, encryption=False) as log:
        receipts = log.append_many(events)
        assert not any(r.duplicate for r in receipts)
        again = log.append_many(events_of(LINES.read_text(encoding="utf-8")))
        assert all(r.duplicate for r in again)
        assert [r.index for r in again] == [r.index for r in receipts]
        assert [r.id for r in again] == [e["id"] for e in events]
        assert log.size == len(events)
        stored = log.read(log.entry(receipts[6].index))["metadata"]["original"]
        assert stored["target"] == records()[6]["target"]  # U+2028 kept
        log.verify()
