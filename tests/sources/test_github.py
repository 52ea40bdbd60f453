"""GitHub audit log events become valid, deterministic sealtrail events (core/sources/github).

The fixtures are events written after GitHub's audit log event fields: a repository deleted,
members added to the organization and a team, a git clone with a token, branch protection
removed, a repository created by an app, an older export without ``_document_id`` or
``@timestamp``, and a ruleset change.
"""

from __future__ import annotations

import copy
import hashlib
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
from sealtrail.core.sources.base import import_id, record_time
from sealtrail.core.sources.github import SOURCE

FIXTURES = Path(__file__).parent / "fixtures" / "github"
LINES = FIXTURES / "audit.jsonl"


def records() -> list[dict[str, Any]]:
    return [json.loads(line) for line in LINES.read_text(encoding="utf-8").split("\n") if line]


def by_action(action: str) -> dict[str, Any]:
    return next(r for r in records() if r["action"] == action)


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

# action -> (time, outcome, category, actor id, actor type, target)
EXPECTED = {
    "repo.destroy": ("2025-03-04T09:00:00.000000Z", "configuration", "octo-admin", "user",
                     {"id": "acme/legacy-api", "type": "repository"}),
    "org.add_member": ("2025-03-04T09:01:01.250000Z", "admin", "octo-admin", "user",
                       {"id": "newdev", "type": "user"}),
    "team.add_member": ("2025-03-04T09:02:02.500000Z", "admin", "octo-admin", "user",
                        {"id": "newdev", "type": "user"}),
    "git.clone": ("2025-03-04T09:10:00.000000Z", "data_access", "ci-deployer", "user",
                  {"id": "acme/payments", "type": "repository"}),
    "protected_branch.destroy": ("2025-03-04T09:15:00.000000Z", "configuration",
                                 "octo-admin", "user",
                                 {"id": "acme/payments", "type": "repository"}),
    "repo.create": ("2025-03-04T09:20:00.000000Z", "configuration", "release-bot[bot]",
                    "bot", {"id": "acme/release-notes", "type": "repository"}),
    "repo.access": ("2025-03-04T11:02:33.000000Z", "configuration", "octo-admin", "user",
                    {"id": "acme/website", "type": "repository"}),
    "repository_ruleset.update": ("2025-03-04T11:05:00.000000Z", "configuration",
                                  "octo-admin", "user",
                                  {"id": "acme/payments", "type": "repository"}),
}


def test_the_source_is_registered_under_its_name() -> None:
    assert get_source("github") is SOURCE
    assert SOURCE.log_source.as_dict() == {"product": "github", "service": "audit"}


def test_every_fixture_event_maps_as_expected() -> None:
    recs = records()
    assert len(recs) == len(EXPECTED) >= 6
    for rec in recs:
        event = SOURCE.event(rec)
        check(event)
        time, category, actor_id, actor_type, target = EXPECTED[rec["action"]]
        assert event["time"] == time
        assert event["action"] == "github." + rec["action"]
        assert event["outcome"] == "success"
        assert event.get("category") == category
        assert event["actor"]["id"] == actor_id
        assert event["actor"]["type"] == actor_type
        assert event["target"] == target
        assert event["metadata"]["original"] == rec
        assert event["metadata"]["log_source"] == {"product": "github", "service": "audit"}
        assert event["source"] == {"service": "github"}


def test_a_web_action_maps_address_and_agent() -> None:
    event = SOURCE.event(by_action("repo.destroy"))
    assert event["action"] == "github.repo.destroy"
    assert event["actor"]["ip"] == "198.51.100.40"
    assert event["actor"]["user_agent"].startswith("Mozilla/5.0 (Macintosh;")


def test_a_git_clone_over_ipv6() -> None:
    event = SOURCE.event(by_action("git.clone"))
    assert event["actor"] == {"id": "ci-deployer", "type": "user", "ip": "2001:db8:4::1",
                              "user_agent": "git/2.43.0"}


def test_the_id_comes_from_the_document_id() -> None:
    rec = by_action("repo.destroy")
    at = record_time(rec["@timestamp"], "@timestamp")
    assert SOURCE.event(rec)["id"] == import_id("github", rec["_document_id"], at)


def test_an_event_without_document_id_is_identified_by_its_canonical_json() -> None:
    rec = by_action("repo.access")
    assert "_document_id" not in rec
    assert "@timestamp" not in rec
    digest = hashlib.sha256(json.dumps(rec, sort_keys=True).encode()).hexdigest()
    at = record_time(rec["created_at"], "created_at")
    assert SOURCE.event(rec)["id"] == import_id("github", "sha256:" + digest, at)
    reordered = dict(reversed(list(rec.items())))
    assert SOURCE.event(reordered)["id"] == SOURCE.event(rec)["id"]
    assert SOURCE.event({**rec, "visibility": "internal"})["id"] != SOURCE.event(rec)["id"]


@pytest.mark.parametrize(("fields", "time"), [
    ({"@timestamp": 1741078800123}, "2025-03-04T09:00:00.123000Z"),
    ({"@timestamp": None, "created_at": 1741078800123}, "2025-03-04T09:00:00.123000Z"),
    ({"created_at": "2025-03-04T10:00:00+01:00"}, "2025-03-04T09:00:00.000000Z"),
    ({"created_at": "2025-03-04T09:00:00.5Z", "@timestamp": 1741078800000},
     "2025-03-04T09:00:00.000000Z"),  # @timestamp first
])
def test_times(fields: dict[str, Any], time: str) -> None:
    rec = {"action": "repo.create", "actor": "octo", **fields}
    assert SOURCE.event(rec)["time"] == time


@pytest.mark.parametrize(("action", "category"), [
    ("git.fetch", "data_access"), ("git.push", "data_change"),
    ("team.create", "admin"), ("org.remove_outside_collaborator", "admin"),
    ("business.add_admin", "admin"), ("org.invite_member", "admin"),
    ("repo.add_member", "admin"), ("org.update_default_repository_permission",
                                   "configuration"),
    ("hook.create", "configuration"), ("integration_installation.create", "configuration"),
    ("workflows.completed_workflow_run", None), ("secret_scanning_alert.resolve", None),
])
def test_categories(action: str, category: str | None) -> None:
    rec = by_action("repo.destroy")
    rec["action"] = action
    assert SOURCE.event(rec).get("category") == category


@pytest.mark.parametrize(("fields", "target"), [
    ({"repo": "acme/x", "user": "u", "org": "acme"}, {"id": "acme/x", "type": "repository"}),
    ({"user": "u", "team": "acme/t", "org": "acme"}, {"id": "u", "type": "user"}),
    ({"team": "acme/t", "org": "acme"}, {"id": "acme/t", "type": "team"}),
    ({"org": "acme"}, {"id": "acme", "type": "organization"}),
    ({"business": "acme-corp"}, {"id": "acme-corp", "type": "enterprise"}),
    ({}, None),
])
def test_targets(fields: dict[str, Any], target: dict[str, str] | None) -> None:
    rec = {"action": "x.y", "@timestamp": 1741078800000, "_document_id": "d", **fields}
    assert SOURCE.event(rec).get("target") == target


def test_an_event_without_actor_is_by_unknown() -> None:
    event = SOURCE.event({"action": "org.sso_response", "@timestamp": 1741078800000,
                          "_document_id": "d1", "org": "acme"})
    check(event)
    assert event["actor"] == {"id": "unknown"}
    event = SOURCE.event({"action": "org.sso_response", "@timestamp": 1741078800000,
                          "_document_id": "d1", "actor_id": 42})
    assert event["actor"] == {"id": "42", "type": "user"}


# -- identity: stable, distinct, the same from every form of the file ---------------------------

def test_ids_are_stable_across_runs_and_distinct_between_events() -> None:
    text = LINES.read_text(encoding="utf-8")
    first = events_of(text)
    second = events_of(text)
    assert [e["id"] for e in first] == [e["id"] for e in second]
    assert len({e["id"] for e in first}) == len(first)
    assert first == second


def test_json_lines_array_and_one_object_give_the_same_events() -> None:
    lines = events_of(LINES.read_text(encoding="utf-8"))
    array = events_of(json.dumps(records(), ensure_ascii=False))
    one = [events_of(json.dumps(rec))[0] for rec in records()]
    assert lines == array == one
    assert len(lines) == len(EXPECTED)


def test_json_lines_split_on_lf_only() -> None:
    """A ruleset name holds U+2028 (a line separator to str.splitlines): still one record."""
    text = LINES.read_text(encoding="utf-8")
    assert "\u2028" in text
    assert len(text.splitlines()) > len(EXPECTED)
    read = list(SOURCE.records(text))
    assert [where for where, _ in read] == [f"line {n}" for n in range(1, len(EXPECTED) + 1)]
    original = SOURCE.event(read[-1][1])["metadata"]["original"]
    assert original["ruleset_name"] == "protect main\u2028(release)"


# -- untrusted records --------------------------------------------------------------------------

@pytest.mark.parametrize(("change", "field"), [
    ({"action": None}, "action"), ({"action": ""}, "action"), ({"action": ["a"]}, "action"),
    ({"@timestamp": None, "created_at": None}, "@timestamp"),
    ({"@timestamp": "soon"}, "@timestamp"), ({"@timestamp": True}, "@timestamp"),
    ({"@timestamp": -5_000_000_000_000}, "@timestamp"),
    ({"@timestamp": None, "created_at": "2025-03-04 09:00"}, "created_at"),
    ({"@timestamp": None, "created_at": {"seconds": 1}}, "created_at"),
])
def test_bad_events_name_the_field(change: dict[str, Any], field: str) -> None:
    rec = by_action("repo.destroy")
    rec.update(change)
    with pytest.raises(ValidationError) as info:
        SOURCE.event(rec)
    assert info.value.field == field


def test_garbage_in_optional_fields_is_left_out() -> None:
    rec = by_action("repo.destroy")
    rec.update({"actor": {"login": "x"}, "actor_id": None, "actor_ip": "localhost",
                "user_agent": ["x"], "repo": {"name": "x"}, "org": "", "business": None,
                "actor_is_bot": "yes"})
    event = SOURCE.event(rec)
    check(event)
    assert event["actor"] == {"id": "unknown"}
    assert "target" not in event


def test_a_key_actor_id_is_not_taken_for_a_sealtrail_key() -> None:
    rec = by_action("repo.destroy")
    rec["actor"] = "key:deploy"
    event = SOURCE.event(rec)
    check(event)
    assert event["actor"]["id"] == "github:key:deploy"


def test_a_hand_built_event_that_is_not_json_is_a_validation_error() -> None:
    with pytest.raises(ValidationError) as info:
        SOURCE.event({"action": "repo.create", "@timestamp": 1741078800000, "x": {1, 2}})
    assert info.value.field == "_document_id"


SCALARS = (st.none() | st.booleans() | st.integers(-(2**53) + 1, 2**53 - 1)
           | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=12))
JSON = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=3)
                    | st.dictionaries(st.text(max_size=8), inner, max_size=3), max_leaves=8)
TIMES = st.datetimes().map(lambda d: d.isoformat() + "Z") | st.integers(-10**14, 10**14)
KEYS = ["_document_id", "@timestamp", "created_at", "action", "actor", "actor_id",
        "actor_ip", "actor_is_bot", "user_agent", "repo", "user", "team", "org", "business"]


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(records()),
       st.dictionaries(st.sampled_from(KEYS), JSON | TIMES, max_size=5))
def test_garbage_events_give_a_valid_event_or_a_validation_error(
        base: dict[str, Any], changes: dict[str, Any]) -> None:
    rec = copy.deepcopy(base)
    rec.update(changes)
    event = mapped(rec)
    if event is not None:
        check(event)
        assert event["metadata"]["original"] == rec


@settings(max_examples=200)
@given(st.dictionaries(st.sampled_from(KEYS), JSON | TIMES, max_size=8))
def test_events_made_of_garbage_never_crash(rec: dict[str, Any]) -> None:
    event = mapped(rec)
    if event is not None:
        check(event)


# -- end to end ---------------------------------------------------------------------------------

def test_import_into_a_log_is_exactly_once_and_verifies(tmp_path: Path) -> None:
    events = events_of(LINES.read_text(encoding="utf-8"))
    with AuditLog.open(tmp_path, encryption=False) as log:
        receipts = log.append_many(events)
        assert not any(r.duplicate for r in receipts)
        again = log.append_many(events_of(json.dumps(records())))
        assert all(r.duplicate for r in again)
        assert [r.index for r in again] == [r.index for r in receipts]
        assert [r.id for r in again] == [e["id"] for e in events]
        assert log.size == len(events)
        stored = log.read(log.entry(receipts[-1].index))["metadata"]["original"]
        assert stored["ruleset_name"] == "protect main\u2028(release)"
        log.verify()
