"""AWS CloudTrail records become valid, deterministic sealtrail events (core/sources/cloudtrail).

The fixtures are records written after the CloudTrail record-contents documentation: console
sign-ins (success and failure), STS, IAM through an assumed role, S3 data events, refusals,
failures that are not refusals, AWS service callers and the root user.
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
from sealtrail.core.sources.cloudtrail import SOURCE

FIXTURES = Path(__file__).parent / "fixtures" / "cloudtrail"
TRAIL = FIXTURES / "trail.json"
TRAIL_JSONL = FIXTURES / "trail.jsonl"
ACCT = "123456789012"


def records() -> list[dict[str, Any]]:
    recs: list[dict[str, Any]] = json.loads(TRAIL.read_text(encoding="utf-8"))["Records"]
    return recs


def by_id(event_id: str) -> dict[str, Any]:
    return next(r for r in records() if r["eventID"] == event_id)


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

# eventID -> (time, action, outcome, category, actor id, target id)
EXPECTED = {
    "0b6a8f14-3c1e-4d52-9a57-6e1f0c2d7a01": (
        "2025-03-04T08:15:02.000000Z", "aws.signin.ConsoleLogin", "success", "authentication",
        f"arn:aws:iam::{ACCT}:user/alice", None),
    "5d2c7e90-81a4-4f3b-b6d2-3a9e4c1f8b02": (
        "2025-03-04T08:16:40.000000Z", "aws.signin.ConsoleLogin", "failure", "authentication",
        ACCT, None),
    "a41e9d3b-6c02-4b8f-9e17-d5c3b2a1f003": (
        "2025-03-04T08:20:11.000000Z", "aws.sts.AssumeRole", "success", "authentication",
        f"arn:aws:iam::{ACCT}:user/bob", f"arn:aws:iam::{ACCT}:role/DeployRole"),
    "e7f3a2c1-94b8-4d6e-a0f5-2c8b1d9e7f04": (
        "2025-03-04T08:22:45.000000Z", "aws.iam.CreateUser", "success", "configuration",
        f"arn:aws:sts::{ACCT}:assumed-role/DeployRole/bob-deploy", "svc-reporting"),
    "3c9d8b7a-1e2f-4a5b-8c6d-9e0f1a2b3c05": (
        "2025-03-04T09:02:17.000000Z", "aws.s3.GetObject", "denied", "data_access",
        f"arn:aws:sts::{ACCT}:assumed-role/AnalyticsReader/i-0a1b2c3d4e5f67890",
        "arn:aws:s3:::acme-payroll/2025/02/payroll.csv"),
    "9f8e7d6c-5b4a-4392-8170-6f5e4d3c2b06": (
        "2025-03-04T09:30:00.000000Z", "aws.ec2.RunInstances", "denied", "configuration",
        f"arn:aws:iam::{ACCT}:user/carol", None),
    "b2c3d4e5-f6a7-4b8c-9d0e-1f2a3b4c5d07": (
        "2025-03-04T09:45:12.000000Z", "aws.ec2.DescribeInstances", "success", "data_access",
        "ssm.amazonaws.com", None),
    "c0ffee00-1234-4abc-9def-0123456789a8": (
        "2025-03-04T10:03:27.000000Z", "aws.cloudtrail.StopLogging", "success",
        "configuration", f"arn:aws:iam::{ACCT}:root",
        f"arn:aws:cloudtrail:us-east-1:{ACCT}:trail/org-trail"),
    "d4c3b2a1-0f9e-4d8c-b7a6-958473625109": (
        "2025-03-04T10:10:05.000000Z", "aws.iam.DeleteRole", "failure", "configuration",
        f"arn:aws:sts::{ACCT}:assumed-role/DeployRole/bob-deploy", "LegacyBatchRole"),
    "e1d2c3b4-a596-4877-8695-a4b3c2d1e010": (
        "2025-03-04T10:30:42.000000Z", "aws.s3.PutObject", "success", "data_change",
        f"arn:aws:sts::{ACCT}:assumed-role/ci-artifacts/GitHubActions",
        "arn:aws:s3:::acme-ci-artifacts/builds/1842/app.tar.gz"),
    "f2e3d4c5-b6a7-4988-9a0b-1c2d3e4f5a11": (
        "2025-03-04T11:00:00.000000Z", "aws.kms.RotateKey", "success", "configuration",
        "kms.amazonaws.com",
        f"arn:aws:kms:eu-west-1:{ACCT}:key/1234abcd-12ab-34cd-56ef-1234567890ab"),
}


def test_the_source_is_registered_under_its_name() -> None:
    assert get_source("cloudtrail") is SOURCE
    assert SOURCE.log_source.as_dict() == {"product": "aws", "service": "cloudtrail"}


def test_every_fixture_record_maps_as_expected() -> None:
    recs = records()
    assert len(recs) == len(EXPECTED) >= 8
    for rec in recs:
        event = SOURCE.event(rec)
        check(event)
        time, action, outcome, category, actor_id, target_id = EXPECTED[rec["eventID"]]
        assert event["time"] == time
        assert event["action"] == action
        assert event["outcome"] == outcome
        assert event.get("category") == category
        assert event["actor"]["id"] == actor_id
        assert event.get("target", {}).get("id") == target_id
        assert event["metadata"]["original"] == rec
        assert event["metadata"]["log_source"] == {"product": "aws", "service": "cloudtrail"}
        assert event["source"] == {"service": rec["eventSource"]}


def test_console_login_maps_the_person_address_and_agent() -> None:
    event = SOURCE.event(by_id("0b6a8f14-3c1e-4d52-9a57-6e1f0c2d7a01"))
    assert event["actor"] == {
        "id": f"arn:aws:iam::{ACCT}:user/alice", "type": "IAMUser", "name": "alice",
        "ip": "198.51.100.23",
        "user_agent": "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"}
    assert "target" not in event


def test_an_assumed_role_is_named_by_its_issuing_role() -> None:
    event = SOURCE.event(by_id("e7f3a2c1-94b8-4d6e-a0f5-2c8b1d9e7f04"))
    assert event["actor"]["type"] == "AssumedRole"
    assert event["actor"]["name"] == "DeployRole"
    assert event["actor"]["ip"] == "2001:db8:85a3::8a2e:370:7334"
    assert event["target"] == {"id": "svc-reporting", "type": "AWS::IAM::User"}


def test_a_service_name_as_source_address_is_no_ip() -> None:
    event = SOURCE.event(by_id("b2c3d4e5-f6a7-4b8c-9d0e-1f2a3b4c5d07"))
    assert event["actor"] == {"id": "ssm.amazonaws.com", "type": "AWSService",
                              "user_agent": "ssm.amazonaws.com"}


def test_resources_give_the_target_with_its_type() -> None:
    event = SOURCE.event(by_id("3c9d8b7a-1e2f-4a5b-8c6d-9e0f1a2b3c05"))
    assert event["target"] == {"id": "arn:aws:s3:::acme-payroll/2025/02/payroll.csv",
                               "type": "AWS::S3::Object"}


def test_a_service_event_without_address_or_agent() -> None:
    event = SOURCE.event(by_id("f2e3d4c5-b6a7-4988-9a0b-1c2d3e4f5a11"))
    assert event["actor"] == {"id": "kms.amazonaws.com"}
    assert event["target"]["type"] == "AWS::KMS::Key"


@pytest.mark.parametrize(("error_code", "outcome"), [
    ("AccessDenied", "denied"), ("AccessDeniedException", "denied"),
    ("Client.UnauthorizedOperation", "denied"), ("UnauthorizedOperation", "denied"),
    ("Forbidden", "denied"), ("accessdenied", "denied"),
    ("ThrottlingException", "failure"), ("NoSuchEntityException", "failure"),
    ("InvalidParameterValue", "failure"), ("Server.InternalError", "failure"),
])
def test_error_codes_say_denied_or_failure(error_code: str, outcome: str) -> None:
    rec = by_id("e7f3a2c1-94b8-4d6e-a0f5-2c8b1d9e7f04")
    rec["errorCode"] = error_code
    assert SOURCE.event(rec)["outcome"] == outcome


@pytest.mark.parametrize(("fields", "category"), [
    ({"eventName": "GetBucketPolicy"}, "data_access"),
    ({"eventName": "ListUsers"}, "data_access"),
    ({"eventName": "DescribeTrails"}, "data_access"),
    ({"eventName": "GetawayPlan"}, None),        # a word starting Get, not a read; unsure
    ({"eventName": "GetawayPlan", "eventCategory": "Management"}, "configuration"),
    ({"eventName": "LookupEvents", "readOnly": True}, "data_access"),
    ({"eventName": "GetThing", "readOnly": False}, "configuration"),  # readOnly decides
    ({"eventName": "PutObject", "eventCategory": "Data"}, "data_change"),
    ({"eventName": "Anything", "eventCategory": "Insight"}, None),
    ({"eventSource": "signin.amazonaws.com", "eventName": "CheckMfa"}, "authentication"),
    ({"eventSource": "sts.amazonaws.com", "eventName": "GetSessionToken"}, "authentication"),
])
def test_categories(fields: dict[str, Any], category: str | None) -> None:
    rec = by_id("e7f3a2c1-94b8-4d6e-a0f5-2c8b1d9e7f04")
    for key in ("readOnly", "eventCategory"):
        rec.pop(key)
    rec.update(fields)
    assert SOURCE.event(rec).get("category") == category


def test_request_parameters_name_a_target_when_no_resources() -> None:
    rec = by_id("9f8e7d6c-5b4a-4392-8170-6f5e4d3c2b06")
    rec["requestParameters"] = {"instanceId": "i-0123456789abcdef0", "force": True}
    assert SOURCE.event(rec)["target"] == {"id": "i-0123456789abcdef0",
                                           "type": "AWS::EC2::Instance"}


# -- identity: stable, distinct, the same from every form of the file ---------------------------

def test_ids_are_stable_across_runs_and_distinct_between_records() -> None:
    text = TRAIL.read_text(encoding="utf-8")
    first = events_of(text)
    second = events_of(text)
    assert [e["id"] for e in first] == [e["id"] for e in second]
    assert len({e["id"] for e in first}) == len(first)
    assert first == second


def test_container_array_and_json_lines_give_the_same_events() -> None:
    container = events_of(TRAIL.read_text(encoding="utf-8"))
    array = events_of(json.dumps(records()))
    lines = events_of(TRAIL_JSONL.read_text(encoding="utf-8"))
    assert container == array == lines
    assert len(container) == len(EXPECTED)


def test_json_lines_split_on_lf_only() -> None:
    """A tag value holds U+2028 (a line separator to str.splitlines): still one record."""
    text = TRAIL_JSONL.read_text(encoding="utf-8")
    assert "\u2028" in text
    assert len(text.splitlines()) > len(EXPECTED)  # what a naive reader would do wrong
    read = list(SOURCE.records(text))
    assert [where for where, _ in read] == [f"line {n}" for n in range(1, len(EXPECTED) + 1)]
    event = SOURCE.event(read[3][1])
    tags = event["metadata"]["original"]["requestParameters"]["tags"]
    assert tags[0]["value"] == "data team\u2028reporting"


# -- untrusted records --------------------------------------------------------------------------

@pytest.mark.parametrize(("change", "field"), [
    ({"eventID": None}, "eventID"), ({"eventID": ""}, "eventID"), ({"eventID": {}}, "eventID"),
    ({"eventTime": None}, "eventTime"), ({"eventTime": "yesterday"}, "eventTime"),
    ({"eventTime": "2025-03-04T08:15:02"}, "eventTime"),  # no zone
    ({"eventTime": True}, "eventTime"), ({"eventTime": [1]}, "eventTime"),
    ({"eventTime": "1969-12-31T23:59:59Z"}, "eventTime"), ({"eventTime": 1e300}, "eventTime"),
    ({"eventSource": None}, "eventSource"), ({"eventSource": {"a": 1}}, "eventSource"),
    ({"eventName": None}, "eventName"), ({"eventName": ""}, "eventName"),
])
def test_bad_records_name_the_field(change: dict[str, Any], field: str) -> None:
    rec = by_id("0b6a8f14-3c1e-4d52-9a57-6e1f0c2d7a01")
    rec.update(change)
    with pytest.raises(ValidationError) as info:
        SOURCE.event(rec)
    assert info.value.field == field


def test_garbage_in_optional_fields_is_left_out() -> None:
    rec = by_id("e7f3a2c1-94b8-4d6e-a0f5-2c8b1d9e7f04")
    rec.update({"userIdentity": "root", "sourceIPAddress": 12, "userAgent": {"x": 1},
                "resources": {"ARN": "x"}, "requestParameters": [1, 2],
                "responseElements": "Failure", "errorCode": None, "readOnly": "maybe"})
    event = SOURCE.event(rec)
    check(event)
    assert event["actor"] == {"id": "unknown"}
    assert event["outcome"] == "success"
    assert "target" not in event


def test_a_key_actor_id_is_not_taken_for_a_sealtrail_key() -> None:
    rec = by_id("0b6a8f14-3c1e-4d52-9a57-6e1f0c2d7a01")
    rec["userIdentity"] = {"type": "IAMUser", "userName": "key:ops"}
    event = SOURCE.event(rec)
    check(event)
    assert event["actor"]["id"] == "aws:key:ops"


def test_a_sealtrail_event_source_is_not_taken_for_sealtrail() -> None:
    rec = by_id("0b6a8f14-3c1e-4d52-9a57-6e1f0c2d7a01")
    rec["eventSource"] = "sealtrail"
    event = SOURCE.event(rec)
    check(event)
    assert event["source"] == {"service": "aws:sealtrail"}
    assert event["action"] == "aws.sealtrail.ConsoleLogin"


def test_values_json_cannot_hold_exactly_are_kept_as_text() -> None:
    """A record holding an integer beyond I-JSON keeps it as its decimal text (base.py's
    fitting), so the event validates and nothing of the record is lost."""
    rec = by_id("0b6a8f14-3c1e-4d52-9a57-6e1f0c2d7a01")
    rec["additionalEventData"]["huge"] = 2**60
    event = SOURCE.event(rec)
    validate_event(event)
    assert event["metadata"]["original"]["additionalEventData"]["huge"] == str(2**60)


SCALARS = (st.none() | st.booleans() | st.integers(-(2**53) + 1, 2**53 - 1)
           | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=12))
JSON = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=3)
                    | st.dictionaries(st.text(max_size=8), inner, max_size=3), max_leaves=8)
TIMES = st.datetimes().map(lambda d: d.isoformat() + "Z") | st.integers(-10**14, 10**14)
PATHS = [("eventID",), ("eventTime",), ("eventSource",), ("eventName",), ("errorCode",),
         ("readOnly",), ("eventCategory",), ("sourceIPAddress",), ("userAgent",),
         ("userIdentity",), ("userIdentity", "arn"), ("userIdentity", "principalId"),
         ("userIdentity", "userName"), ("userIdentity", "type"),
         ("userIdentity", "sessionContext"), ("resources",), ("requestParameters",),
         ("responseElements",)]


def mutate(rec: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    for key in path[:-1]:
        if not isinstance(rec.get(key), dict):
            rec[key] = {}
        rec = rec[key]
    rec[path[-1]] = value


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(records()),
       st.lists(st.tuples(st.sampled_from(PATHS), JSON | TIMES), max_size=5))
def test_garbage_records_give_a_valid_event_or_a_validation_error(
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
def test_records_made_of_garbage_never_crash(rec: dict[str, Any]) -> None:
    event = mapped(rec)
    if event is not None:
        check(event)


# -- end to end ---------------------------------------------------------------------------------

def test_import_into_a_log_is_exactly_once_and_verifies(tmp_path: Path) -> None:
    events = events_of(TRAIL.read_text(encoding="utf-8"))
    with AuditLog.open(tmp_path, encryption=False) as log:
        receipts = log.append_many(events)
        assert not any(r.duplicate for r in receipts)
        again = log.append_many(events_of(TRAIL_JSONL.read_text(encoding="utf-8")))
        assert all(r.duplicate for r in again)
        assert [r.index for r in again] == [r.index for r in receipts]
        assert [r.id for r in again] == [e["id"] for e in events]
        assert log.size == len(events)
        # The record is stored under metadata.original; the log's ingest redaction masks
        # what looks like a secret in it (access key ids, session tokens), nothing else.
        stored = log.read(log.entry(receipts[3].index))["metadata"]["original"]
        assert stored["requestParameters"] == records()[3]["requestParameters"]  # U+2028 kept
        assert stored["eventID"] == records()[3]["eventID"]
        log.verify()
