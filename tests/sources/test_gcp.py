"""Google Cloud Audit Logs entries become valid, deterministic sealtrail events
(core/sources/gcp).

The fixtures are LogEntry objects with AuditLog payloads written after Google's AuditLog and
LogEntry references: admin activity (a service account key, an instance through Terraform, an
IAM policy change), data access refused, failed and unauthenticated, a system event with no
caller, and a VPC Service Controls refusal in the policy log.
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
from sealtrail.core.sources.gcp import AUDIT_LOG_TYPE, SOURCE

FIXTURES = Path(__file__).parent / "fixtures" / "gcp"
LINES = FIXTURES / "audit.jsonl"
PROJECT = "acme-prod"


def records() -> list[dict[str, Any]]:
    return [json.loads(line) for line in LINES.read_text(encoding="utf-8").split("\n") if line]


def by_insert_id(insert_id: str) -> dict[str, Any]:
    return next(r for r in records() if r["insertId"] == insert_id)


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

# insertId -> (time, action, outcome, category, actor id, target)
EXPECTED = {
    "1x7k2mse2b3c": (
        "2025-03-04T09:00:01.234567Z", "gcp.iam.google.iam.admin.v1.CreateServiceAccountKey",
        "success", "configuration", "admin@example.com",
        {"id": "projects/-/serviceAccounts/109876543210987654321",
         "type": "service_account"}),
    "-3kq8z1e4h2xa": (
        "2025-03-04T09:05:12.500000Z", "gcp.storage.storage.objects.get", "denied",
        "data_access", f"deployer@{PROJECT}.iam.gserviceaccount.com",
        {"id": "projects/_/buckets/acme-payroll/objects/2025/02/payroll.csv",
         "type": "gcs_bucket"}),
    "-e9wz7bd1p4c": (
        "2025-03-04T09:10:44.112233Z", "gcp.compute.v1.compute.instances.insert", "success",
        "configuration", f"terraform@{PROJECT}.iam.gserviceaccount.com",
        {"id": f"projects/{PROJECT}/zones/europe-west1-b/instances/web-3",
         "type": "gce_instance"}),
    "-lzm5q2e7k1b": (
        "2025-03-04T09:40:00.051000Z", "gcp.compute.compute.instances.preempted", "success",
        "system", "system@google.com",
        {"id": f"projects/{PROJECT}/zones/europe-west1-b/instances/batch-7",
         "type": "gce_instance"}),
    "1q2w3e4r5t6y": (
        "2025-03-04T10:02:13.777000Z", "gcp.storage.google.storage.objects.list", "denied",
        "authorization", "bob@example.com",
        {"id": "projects/118230958215", "type": "audited_resource"}),
    "-uh7ydbf3a9q": (
        "2025-03-04T10:15:30.400000Z", "gcp.cloudresourcemanager.SetIamPolicy", "success",
        "configuration", "admin@example.com", {"id": f"projects/{PROJECT}", "type": "project"}),
    "q9v8c7x6z5l4": (
        "2025-03-04T10:20:05.000001Z",
        "gcp.bigquery.google.cloud.bigquery.v2.JobService.InsertJob", "failure", "data_access",
        f"etl@{PROJECT}.iam.gserviceaccount.com",
        {"id": f"projects/{PROJECT}/jobs/job_aB3dE5fG7hI9jK1lM3nO5pQ7rS9t",
         "type": "bigquery_project"}),
    "-7fq2x9b3k8mz": (
        "2025-03-04T10:31:59.990000Z",
        "gcp.secretmanager.google.cloud.secretmanager.v1.SecretManagerService."
        "AccessSecretVersion", "denied", "data_access", "unknown",
        {"id": f"projects/{PROJECT}/secrets/db-password/versions/latest",
         "type": "audited_resource"}),
}


def test_the_source_is_registered_under_its_name() -> None:
    assert get_source("gcp") is SOURCE
    assert SOURCE.log_source.as_dict() == {"product": "gcp", "service": "gcp.audit"}


def test_every_fixture_entry_maps_as_expected() -> None:
    recs = records()
    assert len(recs) == len(EXPECTED) >= 6
    for rec in recs:
        event = SOURCE.event(rec)
        check(event)
        time, action, outcome, category, actor_id, target = EXPECTED[rec["insertId"]]
        assert event["time"] == time
        assert event["action"] == action
        assert event["outcome"] == outcome
        assert event.get("category") == category
        assert event["actor"]["id"] == actor_id
        assert event["target"] == target
        assert event["metadata"]["original"] == rec
        assert event["metadata"]["log_source"] == {"product": "gcp", "service": "gcp.audit"}
        assert event["source"] == {"service": rec["protoPayload"]["serviceName"]}


def test_a_person_with_address_and_agent() -> None:
    event = SOURCE.event(by_insert_id("1x7k2mse2b3c"))
    assert event["actor"]["id"] == "admin@example.com"
    assert event["actor"]["ip"] == "198.51.100.61"
    assert event["actor"]["user_agent"].startswith("google-cloud-sdk gcloud/468.0.0")
    assert set(event["actor"]) == {"id", "ip", "user_agent"}


def test_an_impersonated_service_account_acts_on_behalf_of_its_caller() -> None:
    event = SOURCE.event(by_insert_id("-3kq8z1e4h2xa"))
    assert event["actor"]["on_behalf_of"] == "bob@example.com"
    assert event["actor"]["ip"] == "2001:db8:1f70:0:999:de8:7648:6e8"  # normalised


@pytest.mark.parametrize("insert_id", ["-e9wz7bd1p4c", "q9v8c7x6z5l4"])
def test_private_and_internal_caller_ips_are_no_ip(insert_id: str) -> None:
    rec = by_insert_id(insert_id)
    assert rec["protoPayload"]["requestMetadata"]["callerIp"] in ("private", "gce-internal-ip")
    assert "ip" not in SOURCE.event(rec)["actor"]


def test_a_system_event_has_no_request_metadata() -> None:
    event = SOURCE.event(by_insert_id("-lzm5q2e7k1b"))
    assert event["actor"] == {"id": "system@google.com"}


@pytest.mark.parametrize(("status", "outcome"), [
    (None, "success"), ({}, "success"), ({"message": "ok"}, "success"), ({"code": 0}, "success"),
    ({"code": 7}, "denied"), ({"code": 16}, "denied"), ({"code": "7"}, "denied"),
    ({"code": 3}, "failure"), ({"code": 5}, "failure"), ({"code": 13}, "failure"),
    ({"code": True}, "failure"), ({"code": "PERMISSION_DENIED"}, "failure"),
    ({"code": None}, "failure"), ("broken", "failure"),
])
def test_status_codes(status: Any, outcome: str) -> None:
    rec = by_insert_id("1x7k2mse2b3c")
    if status is None:
        del rec["protoPayload"]["status"]
    else:
        rec["protoPayload"]["status"] = status
    assert SOURCE.event(rec)["outcome"] == outcome


@pytest.mark.parametrize(("log", "category"), [
    ("cloudaudit.googleapis.com%2Factivity", "configuration"),
    ("cloudaudit.googleapis.com%2Fdata_access", "data_access"),
    ("cloudaudit.googleapis.com%2Fsystem_event", "system"),
    ("cloudaudit.googleapis.com%2Fpolicy", "authorization"),
    ("cloudaudit.googleapis.com/activity", "configuration"),
    ("cloudaudit.googleapis.com%2factivity", "configuration"),
    ("cloudaudit.googleapis.com%2Faccess_transparency", None),
    ("syslog", None),
])
def test_categories_follow_the_audit_log(log: str, category: str | None) -> None:
    rec = by_insert_id("1x7k2mse2b3c")
    rec["logName"] = f"projects/{PROJECT}/logs/{log}"
    assert SOURCE.event(rec).get("category") == category


def test_the_long_method_name_is_kept_up_to_128_characters() -> None:
    rec = by_insert_id("1x7k2mse2b3c")
    rec["protoPayload"]["methodName"] = "google." + ".".join(["Segment"] * 30)
    event = SOURCE.event(rec)
    check(event)
    assert len(event["action"]) <= 128
    assert event["action"].startswith("gcp.iam.google.Segment.Segment")


# -- identity: stable, distinct, the same from every form of the file ---------------------------

def test_ids_are_stable_across_runs_and_distinct_between_entries() -> None:
    text = LINES.read_text(encoding="utf-8")
    first = events_of(text)
    second = events_of(text)
    assert [e["id"] for e in first] == [e["id"] for e in second]
    assert len({e["id"] for e in first}) == len(first)
    assert first == second


def test_the_id_follows_log_time_and_insert_id() -> None:
    """Cloud Logging's own duplicate rule: the same insertId at another time, or in another
    log, is another entry."""
    rec = by_insert_id("1x7k2mse2b3c")
    same = SOURCE.event(copy.deepcopy(rec))["id"]
    assert SOURCE.event(rec)["id"] == same
    other_log = {**rec, "logName": f"projects/{PROJECT}/logs/cloudaudit.googleapis.com%2Fpolicy"}
    later = {**rec, "timestamp": "2025-03-04T09:00:01.234568Z"}
    nanos = {**rec, "timestamp": "2025-03-04T09:00:01.234567999Z"}  # same microsecond
    assert SOURCE.event(other_log)["id"] != same
    assert SOURCE.event(later)["id"] != same
    assert SOURCE.event(nanos)["id"] == same


def test_json_lines_array_and_one_object_give_the_same_events() -> None:
    lines = events_of(LINES.read_text(encoding="utf-8"))
    array = events_of(json.dumps(records(), ensure_ascii=False, indent=2))  # gcloud --format=json
    one = [events_of(json.dumps(rec))[0] for rec in records()]
    assert lines == array == one
    assert len(lines) == len(EXPECTED)


def test_json_lines_split_on_lf_only() -> None:
    """An instance description holds U+2028 (a line separator to str.splitlines): still one
    record."""
    text = LINES.read_text(encoding="utf-8")
    assert "\u2028" in text
    assert len(text.splitlines()) > len(EXPECTED)
    read = list(SOURCE.records(text))
    assert [where for where, _ in read] == [f"line {n}" for n in range(1, len(EXPECTED) + 1)]
    request = SOURCE.event(read[2][1])["metadata"]["original"]["protoPayload"]["request"]
    assert request["description"] == "web tier\u2028canary"


# -- untrusted records --------------------------------------------------------------------------

@pytest.mark.parametrize(("change", "field"), [
    ({"protoPayload": None}, "protoPayload"), ({"protoPayload": "x"}, "protoPayload"),
    ({"protoPayload": {"@type": "type.googleapis.com/google.cloud.audit.Other"}},
     "protoPayload.@type"),
    ({"insertId": None}, "insertId"), ({"insertId": ""}, "insertId"),
    ({"timestamp": None}, "timestamp"), ({"timestamp": "2025-03-04T09:00:01"}, "timestamp"),
    ({"timestamp": 1.5e300}, "timestamp"), ({"timestamp": "1969-07-20T20:17:40Z"}, "timestamp"),
])
def test_bad_entries_name_the_field(change: dict[str, Any], field: str) -> None:
    rec = by_insert_id("1x7k2mse2b3c")
    rec.update(change)
    with pytest.raises(ValidationError) as info:
        SOURCE.event(rec)
    assert info.value.field == field


@pytest.mark.parametrize("missing", ["serviceName", "methodName"])
def test_an_audit_log_without_service_or_method_is_refused(missing: str) -> None:
    rec = by_insert_id("1x7k2mse2b3c")
    del rec["protoPayload"][missing]
    with pytest.raises(ValidationError) as info:
        SOURCE.event(rec)
    assert info.value.field == f"protoPayload.{missing}"


def test_an_entry_without_type_is_read_as_an_audit_log() -> None:
    rec = by_insert_id("1x7k2mse2b3c")
    assert rec["protoPayload"].pop("@type") == AUDIT_LOG_TYPE
    check(SOURCE.event(rec))


def test_garbage_in_optional_fields_is_left_out() -> None:
    rec = by_insert_id("-3kq8z1e4h2xa")
    rec["protoPayload"].update({
        "authenticationInfo": "bob", "requestMetadata": [1],
        "resourceName": {"x": 1}})
    rec.update({"resource": "gcs_bucket", "logName": 17})
    event = SOURCE.event(rec)
    check(event)
    assert event["actor"] == {"id": "unknown"}
    assert "target" not in event
    assert "category" not in event


def test_a_key_actor_and_a_sealtrail_service_are_not_taken_for_sealtrail() -> None:
    rec = by_insert_id("1x7k2mse2b3c")
    rec["protoPayload"]["authenticationInfo"] = {"principalSubject": "key:abc"}
    rec["protoPayload"]["serviceName"] = "sealtrail"
    event = SOURCE.event(rec)
    check(event)
    assert event["actor"]["id"] == "gcp:key:abc"
    assert event["source"] == {"service": "gcp:sealtrail"}


SCALARS = (st.none() | st.booleans() | st.integers(-(2**53) + 1, 2**53 - 1)
           | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=12))
JSON = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=3)
                    | st.dictionaries(st.text(max_size=8), inner, max_size=3), max_leaves=8)
TIMES = st.datetimes().map(lambda d: d.isoformat() + "Z") | st.integers(-10**14, 10**14)
PATHS = [("insertId",), ("timestamp",), ("logName",), ("resource",), ("resource", "type"),
         ("protoPayload",), ("protoPayload", "@type"), ("protoPayload", "serviceName"),
         ("protoPayload", "methodName"), ("protoPayload", "resourceName"),
         ("protoPayload", "status"), ("protoPayload", "status", "code"),
         ("protoPayload", "authenticationInfo"),
         ("protoPayload", "authenticationInfo", "principalEmail"),
         ("protoPayload", "authenticationInfo", "serviceAccountDelegationInfo"),
         ("protoPayload", "requestMetadata"), ("protoPayload", "requestMetadata", "callerIp")]


def mutate(rec: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    for key in path[:-1]:
        if not isinstance(rec.get(key), dict):
            rec[key] = {}
        rec = rec[key]
    rec[path[-1]] = value


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(records()),
       st.lists(st.tuples(st.sampled_from(PATHS), JSON | TIMES), max_size=5))
def test_garbage_entries_give_a_valid_event_or_a_validation_error(
        base: dict[str, Any], changes: list[tuple[tuple[str, ...], Any]]) -> None:
    rec = copy.deepcopy(base)
    for path, value in changes:
        mutate(rec, path, value)
    event = mapped(rec)
    if event is not None:
        check(event)
        assert event["metadata"]["original"] == rec


@settings(max_examples=200)
@given(st.dictionaries(st.sampled_from([p[0] for p in PATHS]), JSON | TIMES, max_size=6))
def test_entries_made_of_garbage_never_crash(rec: dict[str, Any]) -> None:
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
        stored = log.read(log.entry(receipts[2].index))["metadata"]["original"]
        assert stored["protoPayload"]["request"]["description"] == "web tier\u2028canary"
        log.verify()
