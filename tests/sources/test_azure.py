"""Azure Monitor records become valid, deterministic sealtrail events (core/sources/azure).

The fixtures are records written after the published schemas of what diagnostic settings
export: the Activity log in the resource-log shape (``{"records": [...]}``, and JSON Lines as
storage accounts write it since 2018), Entra ID sign-ins of all four kinds and Entra ID audit
logs. Each record carries its own Sigma log source.
"""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
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
from sealtrail.core.sources.azure import ACTIVITY, AUDIT, SIGNIN, SOURCE

FIXTURES = Path(__file__).parent / "fixtures" / "azure"
EXPORT = FIXTURES / "diagnostic_settings.json"
ACTIVITY_JSONL = FIXTURES / "activity_PT1H.jsonl"
UPN = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/upn"


def records() -> list[dict[str, Any]]:
    recs: list[dict[str, Any]] = json.loads(EXPORT.read_text(encoding="utf-8"))["records"]
    return recs


def at(time: str) -> dict[str, Any]:
    """The fixture record written at ``time`` (every record's time is distinct)."""
    return copy.deepcopy(next(r for r in records() if r["time"] == time))


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

# time -> (log source, action, outcome, category, actor id, actor type, target id suffix, type)
EXPECTED: dict[str, tuple[Any, ...]] = {
    "2024-04-25T09:12:31.4415207Z": (
        ACTIVITY, "azure.MICROSOFT_AUTHORIZATION_ROLEASSIGNMENTS_WRITE", "success",
        "configuration", "maria.lopez@example.com", "user",
        "ROLEASSIGNMENTS/8C2D1E0F-4B3A-4C5D-9E6F-7A8B9C0D1E2F",
        "MICROSOFT.AUTHORIZATION/ROLEASSIGNMENTS"),
    "2024-04-25T09:12:33.0912744Z": (
        ACTIVITY, "azure.MICROSOFT_AUTHORIZATION_ROLEASSIGNMENTS_WRITE", "success",
        "configuration", "maria.lopez@example.com", "user",
        "ROLEASSIGNMENTS/8C2D1E0F-4B3A-4C5D-9E6F-7A8B9C0D1E2F",
        "MICROSOFT.AUTHORIZATION/ROLEASSIGNMENTS"),
    "2024-04-25T10:47:05.2231870Z": (
        ACTIVITY, "azure.MICROSOFT_COMPUTE_VIRTUALMACHINES_DELETE", "denied", "configuration",
        "devon.ross@example.com", "user", "VIRTUALMACHINES/VM-BATCH-02",
        "MICROSOFT.COMPUTE/VIRTUALMACHINES"),
    "2024-04-25T11:02:17.9876543Z": (
        ACTIVITY, "azure.MICROSOFT_STORAGE_STORAGEACCOUNTS_LISTKEYS_ACTION", "success",
        "configuration", "a1b2c3d4-e5f6-4a7b-8c9d-0e1f2a3b4c5d", "service_principal",
        "STORAGEACCOUNTS/STPAYMENTSPROD", "MICROSOFT.STORAGE/STORAGEACCOUNTS"),
    "2024-04-25T12:30:00.5550000Z": (
        ACTIVITY, "azure.MICROSOFT_AUTHORIZATION_POLICIES_DENY_ACTION", "denied",
        "configuration", "maria.lopez@example.com", "user", "PUBLICIPADDRESSES/PIP-TEST",
        "MICROSOFT.NETWORK/PUBLICIPADDRESSES"),
    "2024-04-25T13:05:44.0000000Z": (
        ACTIVITY, "azure.Microsoft_ServiceHealth_incident_action", "success", "configuration",
        "unknown", None, "/SUBSCRIPTIONS/6F1C2A9E-3B7D-4E58-9A0C-1D2E3F4A5B6C", "subscription"),
    "2024-04-25T08:59:02.1234567Z": (
        SIGNIN, "azure.Sign-in_activity", "success", "authentication",
        "maria.lopez@example.com", "user", "c44b4083-3bb0-49c1-b47d-974e53cbdf3c",
        "application"),
    "2024-04-25T09:40:11.7654321Z": (
        SIGNIN, "azure.Sign-in_activity", "failure", "authentication", "devon.ross@example.com",
        "user", "00000002-0000-0ff1-ce00-000000000000", "application"),
    "2024-04-25T09:41:55.0001234Z": (
        SIGNIN, "azure.Sign-in_activity", "denied", "authentication", "devon.ross@example.com",
        "user", "c44b4083-3bb0-49c1-b47d-974e53cbdf3c", "application"),
    "2024-04-25T10:15:09.3333333Z": (
        SIGNIN, "azure.Sign-in_activity", "success", "authentication",
        "maria.lopez@example.com", "user", "d3590ed6-52b3-4102-aeff-aad2292ab01c",
        "application"),
    "2024-04-25T10:20:00.1000000Z": (
        SIGNIN, "azure.Sign-in_activity", "failure", "authentication", "payments-deployer",
        "service_principal", "a1b2c3d4-e5f6-4a7b-8c9d-0e1f2a3b4c5d", "application"),
    "2024-04-25T10:25:42.4200000Z": (
        SIGNIN, "azure.Sign-in_activity", "success", "authentication", "func-invoice-sync",
        "managed_identity", "e5d4c3b2-a1f0-4e9d-8c7b-6a5f4e3d2c1b", "application"),
    "2024-04-25T11:45:03.9988776Z": (
        AUDIT, "azure.Add_member_to_role", "success", "admin", "maria.lopez@example.com",
        "user", "9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d", "User"),
    "2024-04-25T12:02:48.1112223Z": (
        AUDIT, "azure.Update_application_Certificates_and_secrets_management", "success",
        "admin", "payments-deployer", "application", "0f1e2d3c-4b5a-4968-8776-5a4b3c2d1e0f",
        "Application"),
    "2024-04-25T12:15:30.5000000Z": (
        AUDIT, "azure.Reset_user_password", "failure", "admin", "devon.ross@example.com", "user",
        "5d7e8f90-1a2b-4c3d-9e8f-0a1b2c3d4e5f", "User"),
}


def test_the_source_is_registered_under_its_cli_name() -> None:
    assert get_source("azure") is SOURCE
    assert SOURCE.log_source == ACTIVITY


def test_the_export_mixes_all_three_log_kinds() -> None:
    recs = records()
    assert len(recs) == len(EXPECTED) >= 9
    kinds = [SOURCE.source_of(r) for r in recs]
    assert kinds.count(ACTIVITY) == 6
    assert kinds.count(SIGNIN) == 6
    assert kinds.count(AUDIT) == 3


@pytest.mark.parametrize("time", sorted(EXPECTED))
def test_each_record_maps_to_its_fields(time: str) -> None:
    rec = at(time)
    ev = SOURCE.event(rec)
    check(ev)
    log_source, action, outcome, category, actor, actor_type, target, target_type = (
        EXPECTED[time])
    assert ev["metadata"]["log_source"] == log_source.as_dict()
    assert SOURCE.source_of(rec) == log_source
    assert (ev["action"], ev["outcome"], ev["category"]) == (action, outcome, category)
    assert ev["actor"]["id"] == actor
    assert ev["actor"].get("type") == actor_type
    assert ev["target"]["id"].endswith(target)
    assert ev["target"]["type"] == target_type
    assert ev["source"] == {"service": "azure"}
    assert ev["request_id"] == rec["correlationId"]
    assert ev["metadata"]["original"] == rec


def test_times_are_normalised_to_microseconds_in_utc() -> None:
    ev = SOURCE.event(at("2024-04-25T09:12:31.4415207Z"))
    assert ev["time"] == "2024-04-25T09:12:31.441520Z"
    ms = int(datetime(2024, 4, 25, 9, 12, 31, 441000, tzinfo=UTC).timestamp() * 1000)
    assert ev["id"].replace("-", "")[:12] == f"{ms:012x}"  # UUIDv7 at the record's ms


def test_sign_in_actor_carries_the_address_and_user_agent() -> None:
    ev = SOURCE.event(at("2024-04-25T08:59:02.1234567Z"))
    assert ev["actor"] == {
        "id": "maria.lopez@example.com", "type": "user", "name": "Maria Lopez",
        "ip": "198.51.100.23",
        "user_agent": ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 "
                       "(KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36")}
    assert ev["target"]["name"] == "Azure Portal"


def test_activity_actor_comes_from_the_claims_and_caller_ip() -> None:
    ev = SOURCE.event(at("2024-04-25T10:47:05.2231870Z"))
    assert ev["actor"] == {"id": "devon.ross@example.com", "type": "user",
                           "name": "Devon Ross", "ip": "2001:db8:4c1::1f"}
    assert ev["target"]["name"] == "VM-BATCH-02"


def test_audit_log_null_caller_address_is_no_address() -> None:
    ev = SOURCE.event(at("2024-04-25T12:02:48.1112223Z"))
    assert "ip" not in ev["actor"]  # "<null>"
    assert ev["target"]["name"] == "payments-api"


def test_audit_target_falls_back_to_the_user_principal_name() -> None:
    ev = SOURCE.event(at("2024-04-25T11:45:03.9988776Z"))
    assert ev["target"]["name"] == "devon.ross@example.com"  # displayName is null
    assert ev["actor"]["ip"] == "198.51.100.23"


# -- reading files -----------------------------------------------------------------------------

def test_storage_json_lines_split_on_lf_only() -> None:
    text = ACTIVITY_JSONL.read_text(encoding="utf-8")
    assert "\u2028" in text
    found = list(SOURCE.records(text))
    assert [w for w, _ in found] == ["line 1", "line 2", "line 3"]
    assert "payments\u2028team" in found[0][1]["properties"]["requestbody"]
    evs = [SOURCE.event(r) for _, r in found]
    for ev in evs:
        check(ev)
    assert [e["outcome"] for e in evs] == ["success", "success", "failure"]
    assert evs[1]["target"]["type"] == "MICROSOFT.NETWORK/NETWORKSECURITYGROUPS/SECURITYRULES"


def test_event_hubs_messages_one_per_line_are_opened() -> None:
    recs = records()
    text = "\n".join(json.dumps({"records": recs[i:i + 4]}) for i in range(0, len(recs), 4))
    found = list(SOURCE.records(text))
    assert [r for _, r in found] == recs
    assert found[0][0] == "line 1 record 1"
    assert found[5][0] == "line 2 record 2"


def test_array_and_value_wrappers_give_the_same_events() -> None:
    recs = records()
    whole = events_of(EXPORT.read_text(encoding="utf-8"))
    assert events_of(json.dumps(recs)) == whole
    assert events_of(json.dumps({"value": recs})) == whole
    assert events_of("\n".join(json.dumps(r) for r in recs)) == whole


def test_a_non_object_inside_records_names_it() -> None:
    with pytest.raises(ValidationError) as err:
        list(SOURCE.records('{"records": [{"time": "x"}, 7]}'))
    assert err.value.field == "record 2"
    with pytest.raises(ValidationError) as err:
        list(SOURCE.records('{"records": [{"a": 1}, "x"]}\n'))
    assert err.value.field == "record 2"
    with pytest.raises(ValidationError) as err:
        list(SOURCE.records('{"records": []}\n{"records": [1]}\n'))
    assert err.value.field == "line 2 record 1"


# -- ids ---------------------------------------------------------------------------------------

def test_ids_are_stable_and_unique() -> None:
    text = EXPORT.read_text(encoding="utf-8")
    first, second = events_of(text), events_of(text)
    assert [e["id"] for e in first] == [e["id"] for e in second]
    jsonl = events_of(ACTIVITY_JSONL.read_text(encoding="utf-8"))
    ids = {e["id"] for e in first + jsonl}
    assert len(ids) == len(first) + len(jsonl)


def test_ids_are_pinned() -> None:
    """Exactly-once across versions: the same record must keep its id in every release."""
    assert (SOURCE.event(at("2024-04-25T09:40:11.7654321Z"))["id"]
            == "018f14a0-7775-7388-a80b-b064b2045227")
    assert (SOURCE.event(at("2024-04-25T09:12:31.4415207Z"))["id"]
            == "018f1487-21d1-73fd-8835-a86ea44d41e9")


def test_start_and_end_of_one_operation_are_two_events() -> None:
    start = SOURCE.event(at("2024-04-25T09:12:31.4415207Z"))
    end = SOURCE.event(at("2024-04-25T09:12:33.0912744Z"))
    assert start["request_id"] == end["request_id"]
    assert start["id"] != end["id"]


@pytest.mark.parametrize("field", ["resultType", "resourceId", "correlationId", "tenantId"])
def test_the_id_depends_on_each_identifying_field(field: str) -> None:
    rec = at("2024-04-25T09:40:11.7654321Z")
    other = copy.deepcopy(rec)
    other[field] = "something-else"
    assert SOURCE.event(rec)["id"] != SOURCE.event(other)["id"]


def test_the_id_depends_on_the_records_own_id() -> None:
    rec = at("2024-04-25T09:40:11.7654321Z")
    other = copy.deepcopy(rec)
    other["properties"]["id"] = "another-sign-in"
    assert SOURCE.event(rec)["id"] != SOURCE.event(other)["id"]


def test_the_id_ignores_fields_that_do_not_identify() -> None:
    rec = at("2024-04-25T09:40:11.7654321Z")
    other = copy.deepcopy(rec)
    other["properties"]["riskState"] = "atRisk"
    assert SOURCE.event(rec)["id"] == SOURCE.event(other)["id"]


# -- outcomes, actors and shapes beyond the fixture --------------------------------------------

def sign_in(**changes: Any) -> dict[str, Any]:
    rec = at("2024-04-25T09:40:11.7654321Z")
    rec.update(changes)
    return rec


@pytest.mark.parametrize(("error_code", "result_type", "outcome"), [
    (0, "50126", "success"),           # the status wins over resultType
    (50053, "0", "failure"),           # account locked
    (53003, "53003", "denied"),        # Conditional Access
    (50105, "50105", "denied"),        # not assigned to the application
    (None, "0", "success"),
    (None, "50074", "failure"),
    (None, None, "error"),             # no result at all: never a success
    ("0", None, "success"),            # digits as text
])
def test_sign_in_outcomes(error_code: Any, result_type: Any, outcome: str) -> None:
    rec = sign_in(resultType=result_type)
    rec["properties"]["status"] = {"errorCode": error_code}
    assert SOURCE.event(rec)["outcome"] == outcome


@pytest.mark.parametrize(("result_type", "result", "outcome"), [
    ("Success", "failure", "success"),
    ("Failure", None, "failure"),
    (None, "success", "success"),
    (None, "timeout", "error"),
    (None, 0, "success"),               # the early schema's operationResult
    (None, 1, "failure"),
    (None, 2, "error"),
    (None, None, "error"),
    ("Whatever", None, "error"),
])
def test_audit_outcomes(result_type: Any, result: Any, outcome: str) -> None:
    rec = at("2024-04-25T11:45:03.9988776Z")
    rec["resultType"] = result_type
    rec["properties"]["result"] = result
    assert SOURCE.event(rec)["outcome"] == outcome


@pytest.mark.parametrize(("result_type", "signature", "outcome"), [
    ("Succeeded", "", "success"),
    ("Accept", "", "success"),
    ("Resolved", "", "success"),
    ("In Progress", "", "success"),
    ("Failed", "Failed.Conflict", "failure"),
    ("Failure", "Failed.Unauthorized", "denied"),
    ("Canceled", "", "failure"),
    ("Paused", "", "error"),
    (None, "", "error"),
])
def test_activity_outcomes(result_type: Any, signature: str, outcome: str) -> None:
    rec = at("2024-04-25T09:12:33.0912744Z")
    rec["resultType"], rec["resultSignature"] = result_type, signature
    rec["properties"].pop("statusCode")
    assert SOURCE.event(rec)["outcome"] == outcome


def test_rest_api_events_are_read_too() -> None:
    """``az monitor activity-log list`` prints REST events: ``{"value": ...}`` names."""
    rest = {
        "caller": "ops@example.com",
        "claims": {UPN: "ops@example.com", "name": "Ops"},
        "correlationId": "7d6c5b4a-3928-4716-9e5d-4c3b2a1f0e9d",
        "eventDataId": "d0d36f97-b29c-4cd9-9d3d-0a1b2c3d4e5f",
        "eventTimestamp": "2024-05-01T10:00:00.1234567Z",
        "category": {"value": "Administrative", "localizedValue": "Administrative"},
        "operationName": {"value": "Microsoft.Network/networkSecurityGroups/write",
                          "localizedValue": "Create or Update Network Security Group"},
        "status": {"value": "Succeeded", "localizedValue": "Succeeded"},
        "httpRequest": {"clientRequestId": "x", "clientIpAddress": "192.0.2.44",
                        "method": "PUT"},
        "resourceId": "/subscriptions/s1/resourcegroups/rg/providers/Microsoft.Network/"
                      "networkSecurityGroups/nsg1",
    }
    ev = SOURCE.event(rest)
    check(ev)
    assert SOURCE.source_of(rest) == ACTIVITY
    assert ev["action"] == "azure.Microsoft_Network_networkSecurityGroups_write"
    assert ev["time"] == "2024-05-01T10:00:00.123456Z"
    assert ev["outcome"] == "success"
    assert ev["actor"] == {"id": "ops@example.com", "type": "user", "name": "Ops",
                           "ip": "192.0.2.44"}
    assert ev["target"] == {"id": rest["resourceId"], "name": "nsg1",
                            "type": "Microsoft.Network/networkSecurityGroups"}
    other = dict(rest, eventDataId="another")
    assert SOURCE.event(other)["id"] != ev["id"]


def test_the_legacy_audit_category_is_the_audit_log() -> None:
    assert SOURCE.source_of({"category": "Audit"}) == AUDIT
    assert SOURCE.source_of({"category": "signinlogs"}) == SIGNIN
    assert SOURCE.source_of({"category": "Write"}) == ACTIVITY
    assert SOURCE.source_of({"category": ["SignInLogs"]}) == ACTIVITY
    assert SOURCE.source_of({}) == ACTIVITY


def test_a_guest_without_upn_is_named_by_the_name_claim() -> None:
    rec = at("2024-04-25T10:47:05.2231870Z")
    claims = rec["identity"]["claims"]
    del claims[UPN]
    claims["http://schemas.xmlsoap.org/ws/2005/05/identity/claims/name"] = (
        "live.com#guest@example.org")
    ev = SOURCE.event(rec)
    assert ev["actor"]["id"] == "live.com#guest@example.org"
    assert ev["actor"]["type"] == "user"


def test_an_actor_named_like_a_sealtrail_key_is_kept_apart() -> None:
    rec = sign_in()
    rec["properties"]["userPrincipalName"] = "key:ops"
    ev = SOURCE.event(rec)
    assert ev["actor"]["id"] == "azure:key:ops"
    check(ev)


def test_an_actor_with_nothing_to_name_it_is_unknown() -> None:
    rec = at("2024-04-25T11:45:03.9988776Z")
    rec["properties"]["initiatedBy"] = {}
    del rec["identity"]
    ev = SOURCE.event(rec)
    assert ev["actor"] == {"id": "unknown", "ip": "198.51.100.23"}


def test_the_text_identity_names_an_otherwise_anonymous_audit_actor() -> None:
    rec = at("2024-04-25T11:45:03.9988776Z")
    rec["properties"]["initiatedBy"] = {}
    rec["identity"] = "MS-PIM"
    assert SOURCE.event(rec)["actor"]["id"] == "MS-PIM"


# -- refusals ----------------------------------------------------------------------------------

@pytest.mark.parametrize(("change", "field"), [
    ({"time": None}, "time"),
    ({"time": "yesterday"}, "time"),
    ({"time": ["2024-04-25T09:40:11Z"]}, "time"),
    ({"operationName": None}, "operationName"),
    ({"operationName": {"localizedValue": "x"}}, "operationName"),
    ({"operationName": "   "}, "operationName"),
])
def test_missing_or_bad_required_fields_name_the_field(change: dict[str, Any],
                                                        field: str) -> None:
    rec = sign_in(**change)
    rec["properties"].pop("createdDateTime")
    with pytest.raises(ValidationError) as err:
        SOURCE.event(rec)
    assert err.value.field == field


def test_the_entra_time_is_used_when_time_is_missing() -> None:
    rec = sign_in()
    del rec["time"]
    assert SOURCE.event(rec)["time"] == "2024-04-25T09:40:11.765432Z"


KEYS = ["time", "operationName", "category", "resultType", "resultSignature", "correlationId",
        "callerIpAddress", "identity", "properties", "resourceId", "caller", "claims",
        "tenantId", "status", "httpRequest", "eventTimestamp", "id", "eventDataId",
        "status", "errorCode", "userPrincipalName", "initiatedBy", "user", "app",
        "targetResources", "claims", UPN, "appid", "ipAddress", "userAgent", "value"]
scalars = (st.none() | st.booleans() | st.integers(-(2**53) + 1, 2**53 - 1)
           | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=12)
           | st.sampled_from(["SignInLogs", "AuditLogs", "ServicePrincipalSignInLogs", "0",
                              "2024-04-25T09:40:11Z", "key:x", "Failure", "192.0.2.1",
                              "MICROSOFT.X/Y/WRITE", "<null>", "::1"]))
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3)
                      | st.dictionaries(st.sampled_from(KEYS), inner, max_size=4),
                      max_leaves=12)


def _with_required(record: dict[str, Any], time: bool, operation: bool) -> dict[str, Any]:
    """Garbage that mostly has what is required, so most of it reaches the mapping."""
    if time:
        record["time"] = "2024-04-25T09:40:11.1234567Z"
    if operation:
        record["operationName"] = "Sign-in activity"
    return record


garbage = st.builds(_with_required, st.dictionaries(st.sampled_from(KEYS), values, max_size=10),
                    st.sampled_from([True, True, True, False]),
                    st.sampled_from([True, True, True, False]))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(garbage)
def test_garbage_gives_a_valid_event_or_a_validation_error(record: dict[str, Any]) -> None:
    ev = event_or_field(record)
    if isinstance(ev, str):
        assert ev in ("time", "operationName")
        return
    check(ev)
    assert ev["metadata"]["original"] == record


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(sorted(EXPECTED)), st.sampled_from(KEYS), values)
def test_a_fixture_record_with_one_field_spoiled_still_validates_or_is_refused(
        time: str, key: str, value: Any) -> None:
    rec = at(time)
    rec[key] = value
    if isinstance(rec.get("properties"), dict):
        rec["properties"][key] = copy.deepcopy(value)
    ev = event_or_field(rec)
    if isinstance(ev, str):
        assert ev in ("time", "operationName")
        return
    check(ev)


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=200))
def test_garbage_text_gives_records_or_a_validation_error(data: str) -> None:
    try:
        for _, rec in SOURCE.records(data):
            assert isinstance(rec, dict)
    except ValidationError:
        pass


# -- end to end --------------------------------------------------------------------------------

def test_the_export_appends_once_and_verifies(tmp_path: Path) -> None:
    events = (events_of(EXPORT.read_text(encoding="utf-8"))
              + events_of(ACTIVITY_JSONL.read_text(encoding="utf-8")))
    with AuditLog.open(tmp_path, encryption=False) as log:
        receipts = log.append_many(events)
        assert len(receipts) == len(events) == 18
        assert not any(r.duplicate for r in receipts)
        again = log.append_many(events)
        assert all(r.duplicate for r in again)
        assert [r.index for r in again] == [r.index for r in receipts]
        assert [r.id for r in again] == [e["id"] for e in events]
        log.verify()
