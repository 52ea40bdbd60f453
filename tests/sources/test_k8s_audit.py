"""Kubernetes audit events become valid, deterministic sealtrail events (core/sources/k8s_audit).

The fixtures are ``audit.k8s.io/v1`` events written after the API reference: the log backend's
JSON Lines (two stages of one request, exec into a pod, secret reads allowed and refused, a
failed delete, impersonation, an RBAC change, an anonymous probe, a server error) and the
webhook backend's ``EventList``.
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
from sealtrail.core.sources.k8s_audit import LOG_SOURCE, SOURCE

FIXTURES = Path(__file__).parent / "fixtures" / "k8s_audit"
LOG = FIXTURES / "audit.jsonl"
EVENT_LIST = FIXTURES / "webhook_eventlist.json"


def records() -> list[dict[str, Any]]:
    return [json.loads(line) for line in LOG.read_text(encoding="utf-8").split("\n") if line]


def record(audit_id: str, stage: str = "ResponseComplete") -> dict[str, Any]:
    return copy.deepcopy(next(r for r in records()
                              if r["auditID"].startswith(audit_id) and r["stage"] == stage))


def events_of(text: str) -> list[dict[str, Any]]:
    return [SOURCE.event(rec) for _, rec in SOURCE.records(text)]


def event_or_field(record: dict[str, Any]) -> dict[str, Any] | str:
    """The event of a record, or the field the ValidationError refusing it names."""
    try:
        return SOURCE.event(record)
    except ValidationError as exc:
        return exc.field


def check(event: dict[str, Any]) -> None:
    """What every imported event must be: valid, and never one of sealtrail's own."""
    validate_event(event)
    service = (event.get("source") or {}).get("service")
    assert reserved_field(event["action"], service, event["actor"]["id"]) is None


# -- the fixture, field by field ---------------------------------------------------------------

# (auditID prefix, stage) -> (action, outcome, category, actor id, actor type, target id)
EXPECTED: dict[tuple[str, str], tuple[Any, ...]] = {
    ("6b0e1f2a", "RequestReceived"): (
        "kubernetes.list.pods", "success", "data_access", "alice@example.com", "user",
        "/api/v1/namespaces/payments/pods?limit=500"),
    ("6b0e1f2a", "ResponseComplete"): (
        "kubernetes.list.pods", "success", "data_access", "alice@example.com", "user",
        "/api/v1/namespaces/payments/pods?limit=500"),
    ("7c1f2a3b", "ResponseStarted"): (
        "kubernetes.create.pods.exec", "success", "admin", "alice@example.com", "user",
        "payments/api-7d9f8b6c5-x2x4q"),
    ("8d2a3b4c", "ResponseComplete"): (
        "kubernetes.get.secrets", "denied", "data_access", "system:serviceaccount:ci:runner",
        "serviceaccount", "payments/db-credentials"),
    ("9e3b4c5d", "ResponseComplete"): (
        "kubernetes.get.secrets", "success", "data_access", "system:serviceaccount:ci:runner",
        "serviceaccount", "ci/registry-token"),
    ("af4c5d6e", "ResponseComplete"): (
        "kubernetes.delete.deployments", "failure", "data_change", "bob@example.com", "user",
        "payments/api-old"),
    ("b05d6e7f", "ResponseComplete"): (
        "kubernetes.patch.configmaps", "success", "data_change", "alice@example.com", "user",
        "payments/api-config"),
    ("c16e7f8a", "ResponseComplete"): (
        "kubernetes.create.clusterrolebindings", "success", "data_change", "alice@example.com",
        "user", "ci-runner-admin"),
    ("d27f8a9b", "ResponseComplete"): (
        "kubernetes.get", "denied", "data_access", "system:anonymous", "user", "/version"),
    ("e38a9b0c", "ResponseComplete"): (
        "kubernetes.list.jobs", "error", "data_access", "bob@example.com", "user",
        "/apis/batch/v1/jobs"),
}


def test_the_source_is_registered_under_its_cli_name() -> None:
    assert get_source("k8s-audit") is SOURCE
    assert SOURCE.log_source.as_dict() == {"product": "kubernetes", "service": "audit"}


def test_the_log_has_every_expected_record() -> None:
    assert len(records()) == len(EXPECTED) >= 8


@pytest.mark.parametrize("key", sorted(EXPECTED))
def test_each_record_maps_to_its_fields(key: tuple[str, str]) -> None:
    rec = record(*key)
    ev = SOURCE.event(rec)
    check(ev)
    action, outcome, category, actor, actor_type, target = EXPECTED[key]
    assert (ev["action"], ev["outcome"], ev["category"]) == (action, outcome, category)
    assert (ev["actor"]["id"], ev["actor"]["type"]) == (actor, actor_type)
    assert ev["target"]["id"] == target
    assert ev["source"] == {"service": "kubernetes"}
    assert ev["request_id"] == rec["auditID"]
    assert ev["metadata"] == {"log_source": LOG_SOURCE.as_dict(), "original": rec}


def test_exec_maps_the_whole_actor_and_target() -> None:
    ev = SOURCE.event(record("7c1f2a3b", "ResponseStarted"))
    assert ev["time"] == "2024-05-02T14:03:44.598311Z"  # stageTimestamp
    assert ev["actor"] == {"id": "alice@example.com", "type": "user", "ip": "192.0.2.10",
                           "user_agent": "kubectl/v1.29.3 (linux/amd64) kubernetes/6813625"}
    assert ev["target"] == {"id": "payments/api-7d9f8b6c5-x2x4q", "type": "pods",
                            "name": "api-7d9f8b6c5-x2x4q"}
    assert "\u2028" in ev["metadata"]["original"]["annotations"][
        "authorization.k8s.io/reason"]


def test_impersonation_is_on_behalf_of() -> None:
    ev = SOURCE.event(record("b05d6e7f"))
    assert ev["actor"]["id"] == "alice@example.com"
    assert ev["actor"]["on_behalf_of"] == "bob@example.com"


def test_the_first_source_ip_is_the_actors() -> None:
    ev = SOURCE.event(record("af4c5d6e"))
    assert ev["actor"]["ip"] == "198.51.100.40"
    assert ev["metadata"]["original"]["sourceIPs"] == ["198.51.100.40", "10.0.0.5"]


# -- reading files -----------------------------------------------------------------------------

def test_json_lines_split_on_lf_only() -> None:
    text = LOG.read_text(encoding="utf-8")
    assert "\u2028" in text
    found = list(SOURCE.records(text))
    assert [w for w, _ in found] == [f"line {n}" for n in range(1, 11)]
    crlf = text.replace("\n", "\r\n")
    assert [r for _, r in SOURCE.records(crlf)] == [r for _, r in found]


def test_the_webhook_event_list_is_read() -> None:
    evs = events_of(EVENT_LIST.read_text(encoding="utf-8"))
    for ev in evs:
        check(ev)
    assert [(e["action"], e["outcome"], e["category"]) for e in evs] == [
        ("kubernetes.watch.secrets", "success", "data_access"),
        ("kubernetes.create.tokenreviews", "success", "authentication"),
        ("kubernetes.delete.pods", "success", "data_change"),
    ]
    assert evs[2]["actor"]["ip"] == "2001:db8::40"


def test_a_json_array_and_an_event_list_give_the_same_events() -> None:
    recs = records()
    whole = events_of(LOG.read_text(encoding="utf-8"))
    assert events_of(json.dumps(recs)) == whole
    assert events_of(json.dumps({"kind": "EventList", "items": recs})) == whole


def test_a_broken_line_is_named() -> None:
    text = LOG.read_text(encoding="utf-8").split("\n")
    text[3] = text[3][:40]
    with pytest.raises(ValidationError) as err:
        list(SOURCE.records("\n".join(text)))
    assert err.value.field == "line 4"


# -- ids ---------------------------------------------------------------------------------------

def test_ids_are_stable_and_unique() -> None:
    text = LOG.read_text(encoding="utf-8")
    first, second = events_of(text), events_of(text)
    assert [e["id"] for e in first] == [e["id"] for e in second]
    listed = events_of(EVENT_LIST.read_text(encoding="utf-8"))
    assert len({e["id"] for e in first + listed}) == len(first) + len(listed)


def test_ids_are_pinned() -> None:
    """Exactly-once across versions: the same record must keep its id in every release."""
    assert SOURCE.event(record("8d2a3b4c"))["id"] == "018f399f-6ae1-72c9-9214-6487632261b8"


def test_the_stages_of_one_request_are_two_events_of_one_request() -> None:
    received = SOURCE.event(record("6b0e1f2a", "RequestReceived"))
    complete = SOURCE.event(record("6b0e1f2a", "ResponseComplete"))
    assert received["id"] != complete["id"]
    assert received["request_id"] == complete["request_id"]
    assert received["time"] < complete["time"]


def test_the_id_is_the_audit_id_the_stage_and_the_record() -> None:
    """A client may choose the Audit-ID: two different requests under one id and stage stay
    two events; the same record imported again keeps its id."""
    rec = record("9e3b4c5d")
    assert SOURCE.event(rec)["id"] == SOURCE.event(copy.deepcopy(rec))["id"]
    other = copy.deepcopy(rec)
    other["verb"] = "create"
    other["objectRef"] = {"resource": "clusterrolebindings", "name": "pwn"}
    assert SOURCE.event(rec)["id"] != SOURCE.event(other)["id"]
    other = copy.deepcopy(rec)
    other["stage"] = "ResponseStarted"
    assert SOURCE.event(rec)["id"] != SOURCE.event(other)["id"]


# -- outcomes, categories and edges --------------------------------------------------------------

@pytest.mark.parametrize(("code", "stage", "outcome"), [
    (200, "ResponseComplete", "success"),
    (101, "ResponseStarted", "success"),
    (302, "ResponseComplete", "success"),
    (401, "ResponseComplete", "denied"),
    (403, "ResponseComplete", "denied"),
    (404, "ResponseComplete", "failure"),
    (409, "ResponseComplete", "failure"),
    (422, "ResponseComplete", "failure"),
    (500, "ResponseComplete", "error"),
    (503, "ResponseComplete", "error"),
    ("403", "ResponseComplete", "denied"),
    (None, "ResponseComplete", "success"),
    (None, "RequestReceived", "success"),
    (None, "Panic", "error"),
    (True, "Panic", "error"),
])
def test_outcomes(code: Any, stage: str, outcome: str) -> None:
    rec = record("9e3b4c5d")
    rec["stage"] = stage
    if code is None:
        del rec["responseStatus"]
    else:
        rec["responseStatus"]["code"] = code
    assert SOURCE.event(rec)["outcome"] == outcome


@pytest.mark.parametrize(("verb", "resource", "subresource", "category"), [
    ("get", "secrets", None, "data_access"),
    ("list", "secrets", None, "data_access"),
    ("watch", "secrets", None, "data_access"),
    ("create", "secrets", None, "data_change"),
    ("deletecollection", "pods", None, "data_change"),
    ("create", "pods", "exec", "admin"),
    ("get", "pods", "portforward", "admin"),
    ("create", "pods", "attach", "admin"),
    ("impersonate", "users", None, "authorization"),
    ("bind", "clusterroles", None, "authorization"),
    ("escalate", "roles", None, "authorization"),
    ("create", "selfsubjectaccessreviews", None, "authorization"),
    ("create", "tokenreviews", None, "authentication"),
    ("post", None, None, None),
])
def test_categories(verb: str, resource: str | None, subresource: str | None,
                    category: str | None) -> None:
    rec = record("9e3b4c5d")
    rec["verb"] = verb
    rec["objectRef"] = {k: v for k, v in (("resource", resource), ("subresource", subresource),
                                          ("name", "x")) if v is not None}
    ev = SOURCE.event(rec)
    check(ev)
    assert ev.get("category") == category


def test_the_request_received_time_is_used_without_a_stage_time() -> None:
    rec = record("9e3b4c5d")
    del rec["stageTimestamp"]
    assert SOURCE.event(rec)["time"] == "2024-05-02T14:05:01.200000Z"


def test_an_actor_named_like_a_sealtrail_key_is_kept_apart() -> None:
    rec = record("9e3b4c5d")
    rec["user"] = {"username": "key:deploy"}
    ev = SOURCE.event(rec)
    assert ev["actor"]["id"] == "kubernetes:key:deploy"
    check(ev)


def test_a_request_without_a_user_is_unknown() -> None:
    rec = record("9e3b4c5d")
    del rec["user"]
    assert SOURCE.event(rec)["actor"]["id"] == "unknown"


def test_a_host_name_in_source_ips_is_no_address() -> None:
    rec = record("9e3b4c5d")
    rec["sourceIPs"] = ["proxy.internal", "10.0.0.9"]
    assert "ip" not in SOURCE.event(rec)["actor"]


# -- refusals ----------------------------------------------------------------------------------

@pytest.mark.parametrize(("change", "field"), [
    ({"auditID": None}, "auditID"),
    ({"auditID": ""}, "auditID"),
    ({"auditID": {"x": 1}}, "auditID"),
    ({"verb": None}, "verb"),
    ({"verb": ["get"]}, "verb"),
    ({"stageTimestamp": "2024-05-02 14:05:01"}, "stageTimestamp"),
    ({"stageTimestamp": 12.5e99}, "stageTimestamp"),
    ({"stageTimestamp": None, "requestReceivedTimestamp": None}, "requestReceivedTimestamp"),
])
def test_missing_or_bad_required_fields_name_the_field(change: dict[str, Any],
                                                        field: str) -> None:
    rec = record("9e3b4c5d")
    rec.update(change)
    with pytest.raises(ValidationError) as err:
        SOURCE.event(rec)
    assert err.value.field == field


KEYS = ["auditID", "stage", "verb", "requestURI", "user", "username", "impersonatedUser",
        "sourceIPs", "userAgent", "objectRef", "resource", "subresource", "namespace", "name",
        "responseStatus", "code", "stageTimestamp", "requestReceivedTimestamp", "annotations"]
scalars = (st.none() | st.booleans() | st.integers(-(2**53) + 1, 2**53 - 1)
           | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=12)
           | st.sampled_from(["get", "secrets", "exec", "system:serviceaccount:a:b", "key:x",
                              "2024-05-02T14:05:01Z", "Panic", "10.0.0.1", "sealtrail.x",
                              "audit.search"]))
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3)
                      | st.dictionaries(st.sampled_from(KEYS), inner, max_size=4),
                      max_leaves=12)


def _with_required(record: dict[str, Any], required: bool) -> dict[str, Any]:
    """Garbage that mostly has what is required, so most of it reaches the mapping."""
    if required:
        record.update(auditID="a-1", verb="get", stageTimestamp="2024-05-02T14:05:01Z")
    return record


garbage = st.builds(_with_required, st.dictionaries(st.sampled_from(KEYS), values, max_size=10),
                    st.sampled_from([True, True, True, False]))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(garbage, st.dictionaries(st.sampled_from(KEYS), values, max_size=5))
def test_garbage_gives_a_valid_event_or_a_validation_error(
        record_: dict[str, Any], ref: dict[str, Any]) -> None:
    record_.setdefault("objectRef", ref)
    ev = event_or_field(record_)
    if isinstance(ev, str):
        assert ev in ("auditID", "verb", "stageTimestamp", "requestReceivedTimestamp")
        return
    check(ev)
    assert ev["action"].startswith("kubernetes.")
    assert ev["metadata"]["original"] == record_


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=200))
def test_garbage_text_gives_records_or_a_validation_error(data: str) -> None:
    try:
        for _, rec in SOURCE.records(data):
            assert isinstance(rec, dict)
    except ValidationError:
        pass


# -- end to end --------------------------------------------------------------------------------

def test_the_log_appends_once_and_verifies(tmp_path: Path) -> None:
    events = (events_of(LOG.read_text(encoding="utf-8"))
              + events_of(EVENT_LIST.read_text(encoding="utf-8")))
    with AuditLog.open(tmp_path, encryption=False) as log:
        receipts = log.append_many(events)
        assert len(receipts) == len(events) == 13
        assert not any(r.duplicate for r in receipts)
        again = log.append_many(events)
        assert all(r.duplicate for r in again)
        assert [r.index for r in again] == [r.index for r in receipts]
        log.verify()
