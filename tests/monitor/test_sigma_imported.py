"""SigmaHQ-style rules on imported logs: every rule of the corpus (tests/monitor/sigma_corpus,
one per file, written the way SigmaHQ writes rules for these log sources) fires on a source
record written to match it, and does not fire on the same record with one field changed.

The records are the sources' own (CloudTrail records, Okta LogEvents, audit.log lines...),
turned into events by the real importers exactly as ``sealtrail import`` stores them, and run
through the engine (so the rules' index keys are exercised too).
"""

from __future__ import annotations

import copy
import gzip
import json
import textwrap
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from sealtrail.core.sources import get_source
from sealtrail.core.sources.base import checked_event
from sealtrail.monitor.engine import evaluate_events, load_rules
from sealtrail.monitor.rules import Rule, RuleError, RulesError
from sealtrail.monitor.sigma import SigmaRulesError, load_sigma
from sealtrail.monitor.sigma_pipelines import LOG_SOURCES, mapping_rows
from tests import clirun

CORPUS = Path(__file__).parent / "sigma_corpus"
T = "2026-03-01T10:00:00Z"


# -- source records ----------------------------------------------------------------------------

def merged(base: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """``base`` with ``patch`` merged in (nested mappings merged, anything else replaced)."""
    out = copy.deepcopy(base)
    for k, v in patch.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = merged(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def cloudtrail(n: int, **patch: Any) -> dict[str, Any]:
    return merged({
        "eventVersion": "1.09",
        "userIdentity": {"type": "IAMUser", "principalId": "AIDAEXAMPLEALICE",
                         "arn": "arn:aws:iam::111122223333:user/alice",
                         "accountId": "111122223333", "accessKeyId": "AKIAEXAMPLE",
                         "userName": "alice"},
        "eventTime": T, "eventSource": "iam.amazonaws.com", "eventName": "ListUsers",
        "awsRegion": "eu-west-1", "sourceIPAddress": "203.0.113.10",
        "userAgent": "aws-cli/2.15.0 Python/3.11", "requestParameters": None,
        "responseElements": None, "requestID": f"req-{n}", "eventID": f"evt-{n:04d}",
        "readOnly": False, "eventType": "AwsApiCall", "managementEvent": True,
        "recipientAccountId": "111122223333", "eventCategory": "Management"}, patch)


def okta(n: int, **patch: Any) -> dict[str, Any]:
    return merged({
        "uuid": f"3f1c9e2a-f8b1-11ef-9c3d-5b7e2a1d{n:04d}", "published": "2026-03-01T10:00:00.000Z",
        "eventType": "user.session.start", "version": "0", "severity": "INFO",
        "displayMessage": "User login to Okta", "legacyEventType": "core.user_auth.login_success",
        "actor": {"id": "00u1a2b3c4", "type": "User", "alternateId": "alice@example.com",
                  "displayName": "Alice Example"},
        "client": {"ipAddress": "203.0.113.5",
                   "userAgent": {"rawUserAgent": "Mozilla/5.0", "os": "Mac OS X",
                                 "browser": "CHROME"}},
        "outcome": {"result": "SUCCESS", "reason": None},
        "securityContext": {"asNumber": 64496, "isp": "example isp", "isProxy": False},
        "debugContext": {"debugData": {"requestUri": "/idp/idx/identify"}},
        "target": None}, patch)


def github(n: int, **patch: Any) -> dict[str, Any]:
    return merged({
        "@timestamp": 1772359200000, "_document_id": f"docid{n:04d}", "action": "repo.create",
        "actor": "octo-admin", "actor_id": 5829301, "created_at": 1772359200000,
        "operation_type": "create", "org": "acme", "org_id": 7711001,
        "actor_location": {"country_code": "DE"}, "user_agent": "Mozilla/5.0"}, patch)


def gcp(n: int, **patch: Any) -> dict[str, Any]:
    return merged({
        "protoPayload": {
            "@type": "type.googleapis.com/google.cloud.audit.AuditLog", "status": {},
            "authenticationInfo": {"principalEmail": "mallory@example.com"},
            "requestMetadata": {"callerIp": "203.0.113.9",
                                "callerSuppliedUserAgent": "google-cloud-sdk gcloud/468.0.0"},
            "serviceName": "iam.googleapis.com", "methodName": "google.iam.admin.v1.GetRole",
            "authorizationInfo": [{"resource": "projects/acme-prod", "permission": "iam.roles.get",
                                   "granted": True}],
            "resourceName": "projects/acme-prod"},
        "insertId": f"insert{n:04d}", "resource": {"type": "project",
                                                  "labels": {"project_id": "acme-prod"}},
        "timestamp": "2026-03-01T10:00:00.000Z", "severity": "NOTICE",
        "logName": "projects/acme-prod/logs/cloudaudit.googleapis.com%2Factivity"}, patch)


_CLAIMS = {"http://schemas.xmlsoap.org/ws/2005/05/identity/claims/upn": "eve@example.com",
           "name": "Eve Example"}


def azure_activity(n: int, **patch: Any) -> dict[str, Any]:
    return merged({
        "time": "2026-03-01T10:00:00.0000000Z",
        "resourceId": "/SUBSCRIPTIONS/6F1C2A9E-3B7D-4E58-9A0C-1D2E3F4A5B6C/RESOURCEGROUPS/RG-PAY"
                      "/PROVIDERS/MICROSOFT.KEYVAULT/VAULTS/KV-PAY",
        "operationName": "MICROSOFT.KEYVAULT/VAULTS/READ", "category": "Administrative",
        "resultType": "Success", "resultSignature": "Succeeded.OK", "durationMs": "120",
        "callerIpAddress": "203.0.113.30", "correlationId": f"c0ffee00-0000-4000-8000-{n:012d}",
        "identity": {"claims": _CLAIMS}, "level": "Information", "location": "global",
        "properties": {"statusCode": "OK", "eventCategory": "Administrative"}}, patch)


def azure_signin(n: int, **patch: Any) -> dict[str, Any]:
    return merged({
        "time": "2026-03-01T10:00:00.0000000Z",
        "resourceId": "/tenants/0b8e5c4d-7a21-4f3e-8d9c-2a1b3c4d5e6f/providers/Microsoft.aadiam",
        "operationName": "Sign-in activity", "operationVersion": "1.0", "category": "SignInLogs",
        "tenantId": "0b8e5c4d-7a21-4f3e-8d9c-2a1b3c4d5e6f", "resultType": "0",
        "resultSignature": "None", "resultDescription": "", "durationMs": 0,
        "callerIpAddress": "203.0.113.40", "correlationId": f"5161e100-0000-4000-8000-{n:012d}",
        "identity": "Eve Example", "Level": 4, "location": "FR",
        "properties": {
            "id": f"5161e100-1111-4000-8000-{n:012d}",
            "createdDateTime": "2026-03-01T10:00:00.0000000+00:00",
            "userDisplayName": "Eve Example", "userPrincipalName": "eve@example.com",
            "appId": "c44b4083-3bb0-49c1-b47d-974e53cbdf3c", "appDisplayName": "Azure Portal",
            "ipAddress": "203.0.113.40", "status": {"errorCode": 0}, "clientAppUsed": "Browser",
            "userAgent": "Mozilla/5.0", "deviceDetail": {"deviceId": "", "operatingSystem":
                                                         "Windows10", "browser": "Edge 122"},
            "location": {"city": "Paris", "countryOrRegion": "FR"},
            "conditionalAccessStatus": "success", "isInteractive": True, "riskDetail": "none",
            "riskLevelAggregated": "none", "riskLevelDuringSignIn": "none", "riskState": "none",
            "riskEventTypes": [], "resourceDisplayName": "Windows Azure Service Management API",
            "authenticationRequirement": "multiFactorAuthentication", "userType": "Member",
            "homeTenantId": "0b8e5c4d-7a21-4f3e-8d9c-2a1b3c4d5e6f"}}, patch)


def azure_audit(n: int, **patch: Any) -> dict[str, Any]:
    return merged({
        "time": "2026-03-01T10:00:00.0000000Z",
        "resourceId": "/tenants/0b8e5c4d-7a21-4f3e-8d9c-2a1b3c4d5e6f/providers/Microsoft.aadiam",
        "operationName": "Update user", "operationVersion": "1.0", "category": "AuditLogs",
        "tenantId": "0b8e5c4d-7a21-4f3e-8d9c-2a1b3c4d5e6f", "resultType": "Success",
        "resultSignature": "None", "durationMs": 0, "callerIpAddress": "203.0.113.41",
        "correlationId": f"a0d17000-0000-4000-8000-{n:012d}", "identity": "Eve Example",
        "Level": 4, "location": "EU",
        "properties": {
            "id": f"Directory_a0d17000_{n:04d}", "category": "UserManagement",
            "result": "success", "resultReason": "", "activityDisplayName": "Update user",
            "activityDateTime": "2026-03-01T10:00:00.0000000+00:00",
            "loggedByService": "Core Directory", "operationType": "Update",
            "initiatedBy": {"user": {"id": "5d7e8f90", "userPrincipalName": "eve@example.com",
                                     "ipAddress": "203.0.113.41"}},
            "targetResources": [{"id": "9a8b7c6d", "type": "User",
                                 "userPrincipalName": "devon@example.com"}],
            "additionalDetails": []}}, patch)


def k8s(n: int, **patch: Any) -> dict[str, Any]:
    return merged({
        "kind": "Event", "apiVersion": "audit.k8s.io/v1", "level": "RequestResponse",
        "auditID": f"6b0e1f2a-3c4d-4e5f-8a6b-{n:012d}", "stage": "ResponseComplete",
        "requestURI": "/api/v1/namespaces/payments/pods", "verb": "create",
        "user": {"username": "mallory@example.com", "groups": ["system:authenticated"]},
        "sourceIPs": ["203.0.113.50"], "userAgent": "kubectl/v1.29.3 (linux/amd64)",
        "objectRef": {"resource": "pods", "namespace": "payments", "name": "web-0",
                      "apiVersion": "v1"},
        "responseStatus": {"metadata": {}, "code": 201},
        "requestReceivedTimestamp": "2026-03-01T10:00:00.000000Z",
        "stageTimestamp": "2026-03-01T10:00:00.050000Z",
        "annotations": {"authorization.k8s.io/decision": "allow",
                        "authorization.k8s.io/reason": "RBAC: allowed by ClusterRoleBinding"}},
        patch)


def pod(**container: Any) -> dict[str, Any]:
    return {"kind": "Pod", "apiVersion": "v1", "metadata": {"name": "web-0"},
            "spec": {"containers": [{"name": "web", "image": "alpine:3.19", **container}]}}


def audit_line(serial: int, body: str) -> str:
    kind, _, rest = body.partition(" ")
    return f"type={kind} msg=audit(1772359200.{serial:03d}:{4000 + serial}): {rest}\n"


# -- the corpus's cases ------------------------------------------------------------------------

@dataclass(frozen=True)
class Case:
    """A record that matches the rule, and the one change (``path`` -> ``value``, or for
    audit.log lines ``old`` -> ``new`` text) that makes it a near miss."""

    source: str
    record: dict[str, Any] | str
    path: str
    value: Any


CASES: dict[str, Case] = {
    # -- aws/cloudtrail
    "ct_trail_tampering": Case("cloudtrail", cloudtrail(
        1, eventSource="cloudtrail.amazonaws.com", eventName="StopLogging",
        requestParameters={"name": "arn:aws:cloudtrail:eu-west-1:111122223333:trail/org"}),
        "eventName", "StartLogging"),
    "ct_root_activity": Case("cloudtrail", cloudtrail(
        2, userIdentity={"type": "Root", "principalId": "111122223333",
                         "arn": "arn:aws:iam::111122223333:root", "userName": None},
        eventName="CreateUser", requestParameters={"userName": "backdoor"}),
        "eventType", "AwsServiceEvent"),
    "ct_console_login_without_mfa": Case("cloudtrail", cloudtrail(
        3, eventSource="signin.amazonaws.com", eventName="ConsoleLogin",
        eventType="AwsConsoleSignIn", responseElements={"ConsoleLogin": "Success"},
        additionalEventData={"LoginTo": "https://console.aws.amazon.com/",
                             "MobileVersion": "No", "MFAUsed": "No"}),
        "additionalEventData.MFAUsed", "Yes"),
    "ct_access_key_for_other_user": Case("cloudtrail", cloudtrail(
        4, eventName="CreateAccessKey", requestParameters={"userName": "bob"},
        responseElements={"accessKey": {"userName": "bob", "status": "Active",
                                        "accessKeyId": "AKIANEW"}}),
        "responseElements.accessKey.userName", "alice"),
    "ct_instance_credentials_off_network": Case("cloudtrail", cloudtrail(
        5, userIdentity={"type": "AssumedRole", "principalId": "AROAEXAMPLE:i-0a1b2c3d4e5f67890",
                         "arn": "arn:aws:sts::111122223333:assumed-role/web-role/"
                                "i-0a1b2c3d4e5f67890", "userName": None},
        eventSource="s3.amazonaws.com", eventName="ListBuckets", sourceIPAddress="198.51.100.77"),
        "sourceIPAddress", "10.20.30.40"),
    "ct_secret_scanner_user_agent": Case("cloudtrail", cloudtrail(
        6, eventSource="sts.amazonaws.com", eventName="GetCallerIdentity",
        userAgent="TruffleHog/3.63.2 aws-sdk-go/1.50"),
        "userAgent", "aws-cli/2.15.0 Python/3.11"),
    # -- okta
    "okta_session_via_proxy": Case("okta", okta(
        1, securityContext={"isProxy": True}), "securityContext.isProxy", False),
    "okta_password_typed_as_username": Case("okta", okta(
        2, legacyEventType="core.user_auth.login_failed", displayMessage="User login to Okta",
        outcome={"result": "FAILURE", "reason": "INVALID_CREDENTIALS"},
        actor={"alternateId": "Summer2026!hunter"}),
        "actor.alternateId", "alice@example.com"),
    "okta_admin_console_new_behaviour": Case("okta", okta(
        3, eventType="policy.evaluate_sign_on", displayMessage="Evaluation of sign-on policy",
        target=[{"id": "0oa1okta", "type": "AppInstance", "alternateId": "Okta Admin Console",
                 "displayName": "Okta Admin Console"}],
        debugContext={"debugData": {"behaviors": "{New Geo-Location=NEGATIVE, New Device="
                                                 "POSITIVE, New IP=POSITIVE}"}}),
        "debugContext.debugData.behaviors", "{New Geo-Location=NEGATIVE, New Device=NEGATIVE}"),
    "okta_all_factors_reset": Case("okta", okta(
        4, eventType="user.mfa.factor.reset_all", displayMessage="Reset all factors for user",
        legacyEventType="core.user.factor.reset_all"),
        "displayMessage", "Reset factor for user"),
    # -- github
    "gh_actions_secret_created": Case("github", github(
        1, action="org.create_actions_secret"), "action", "org.update_actions_secret"),
    "gh_push_protection_bypass": Case("github", github(
        2, action="secret_scanning_push_protection.bypass", repo="acme/payments"),
        "action", "secret_scanning_push_protection.enable"),
    "gh_two_factor_requirement_disabled": Case("github", github(
        3, action="org.disable_two_factor_requirement", operation_type="modify"),
        "operation_type", "create"),
    "gh_clone_from_unexpected_country": Case("github", github(
        4, action="git.clone", repo="acme/payments", repository_public=False,
        operation_type="access", actor_location={"country_code": "KP"}),
        "actor_location.country_code", "FR"),
    # -- gcp
    "gcp_service_account_key_created": Case("gcp", gcp(
        1, protoPayload={"methodName": "google.iam.admin.v1.CreateServiceAccountKey",
                         "resourceName": "projects/-/serviceAccounts/1098765"}),
        "protoPayload.authenticationInfo.principalEmail",
        "service-42@cloudservices.gserviceaccount.com"),
    "gcp_firewall_ssh_open_to_world": Case("gcp", gcp(
        2, protoPayload={"serviceName": "compute.googleapis.com",
                         "methodName": "v1.compute.firewalls.insert",
                         "request": {"@type": "type.googleapis.com/compute.firewalls.insert",
                                     "name": "allow-ssh", "direction": "INGRESS",
                                     "sourceRanges": ["0.0.0.0/0"],
                                     "alloweds": [{"IPProtocol": "tcp", "ports": ["22"]}]}}),
        "protoPayload.request.sourceRanges", ["10.0.0.0/8"]),
    "gcp_gke_rolebinding_changed": Case("gcp", gcp(
        3, protoPayload={"serviceName": "k8s.io",
                         "methodName": "io.k8s.authorization.rbac.v1.clusterrolebindings.create"},
        resource={"type": "k8s_cluster"}),
        "protoPayload.methodName", "io.k8s.authorization.rbac.v1.clusterrolebindings.delete"),
    "gcp_storage_access_denied": Case("gcp", gcp(
        4, protoPayload={"serviceName": "storage.googleapis.com",
                         "methodName": "storage.objects.get",
                         "status": {"code": 7, "message": "PERMISSION_DENIED"},
                         "authorizationInfo": [{"resource": "projects/_/buckets/payroll",
                                                "permission": "storage.objects.get",
                                                "granted": False}]},
        logName="projects/acme-prod/logs/cloudaudit.googleapis.com%2Fdata_access"),
        "protoPayload.status.code", 5),
    "gcp_log_sink_changed_by_person": Case("gcp", gcp(
        5, protoPayload={"serviceName": "logging.googleapis.com",
                         "methodName": "google.logging.v2.ConfigServiceV2.DeleteSink"}),
        "protoPayload.authenticationInfo.principalEmail",
        "log-router@acme-prod.iam.gserviceaccount.com"),
    # -- azure
    "az_activity_keyvault_key_deleted": Case("azure", azure_activity(
        1, operationName="MICROSOFT.KEYVAULT/VAULTS/KEYS/DELETE", category="Delete"),
        "operationName", "MICROSOFT.KEYVAULT/VAULTS/KEYS/READ"),
    "az_activity_elevate_access": Case("azure", azure_activity(
        2, operationName="MICROSOFT.AUTHORIZATION/ELEVATEACCESS/ACTION", category="Action",
        resourceId="/providers/Microsoft.Authorization"),
        "resultType", "Failure"),
    "az_activity_storage_keys_listed": Case("azure", azure_activity(
        3, operationName="MICROSOFT.STORAGE/STORAGEACCOUNTS/LISTKEYS/ACTION", category="Action",
        resourceId="/SUBSCRIPTIONS/6F1C2A9E/RESOURCEGROUPS/RG-PAY/PROVIDERS/"
                   "MICROSOFT.STORAGE/STORAGEACCOUNTS/STPAY"),
        "operationName", "MICROSOFT.STORAGE/STORAGEACCOUNTS/READ"),
    "az_signin_account_locked": Case("azure", azure_signin(
        1, resultType="50053", resultDescription="Account is locked because the user tried to "
        "sign in too many times with an incorrect user ID or password.",
        properties={"status": {"errorCode": 50053}}),
        "resultType", "50126"),
    "az_signin_risky_single_factor": Case("azure", azure_signin(
        2, properties={"authenticationRequirement": "singleFactorAuthentication",
                       "riskState": "atRisk", "riskLevelDuringSignIn": "high",
                       "deviceDetail": {"trustType": ""}}),
        "properties.riskState", "none"),
    "az_signin_legacy_protocol": Case("azure", azure_signin(
        3, properties={"clientAppUsed": "IMAP4",
                       "authenticationRequirement": "singleFactorAuthentication"}),
        "properties.clientAppUsed", "Browser"),
    "az_signin_failed_from_noncompliant_device": Case("azure", azure_signin(
        4, resultType="53000", properties={"status": {"errorCode": 53000},
                                           "deviceDetail": {"isCompliant": False,
                                                            "isManaged": True}}),
        "resultType", "0"),
    "az_signin_mfa_interrupted": Case("azure", azure_signin(
        5, resultType="50074", resultDescription="Strong Authentication is required.",
        properties={"status": {"errorCode": 50074}}),
        "resultDescription", "Invalid username or password."),
    "az_audit_temporary_access_pass": Case("azure", azure_audit(
        1, operationName="Admin registered temporary access pass method for user",
        properties={"category": "UserManagement",
                    "activityDisplayName": "Admin registered temporary access pass method for "
                                           "user"}),
        "properties.result", "failure"),
    "az_audit_guest_invited_by_unapproved": Case("azure", azure_audit(
        2, operationName="Invite external user",
        properties={"activityDisplayName": "Invite external user",
                    "initiatedBy": {"user": {"userPrincipalName": "bob@example.com"}}}),
        "properties.initiatedBy.user.userPrincipalName", "partners-desk@example.com"),
    "az_audit_global_admin_assigned": Case("azure", azure_audit(
        3, operationName="Add member to role",
        properties={"category": "RoleManagement", "activityDisplayName": "Add member to role",
                    "targetResources": [{"id": "9a8b7c6d", "type": "User",
                                         "userPrincipalName": "devon@example.com"},
                                        {"id": "62e90394", "type": "Role",
                                         "displayName": "Global Administrator"}]}),
        "properties.targetResources.1.displayName", "Security Reader"),
    # -- kubernetes
    "k8s_exec_into_pod": Case("k8s-audit", k8s(
        1, requestURI="/api/v1/namespaces/payments/pods/web-0/exec?command=sh&stdin=true",
        objectRef={"subresource": "exec"}, responseStatus={"code": 101}),
        "objectRef.subresource", "log"),
    "k8s_privileged_pod_created": Case("k8s-audit", k8s(
        2, requestObject=pod(securityContext={"privileged": True})),
        "requestObject.spec.containers.0.securityContext.privileged", False),
    "k8s_secrets_listed_by_user": Case("k8s-audit", k8s(
        3, verb="list", requestURI="/api/v1/namespaces/payments/secrets",
        objectRef={"resource": "secrets", "name": None}, responseStatus={"code": 200}),
        "user.username", "system:serviceaccount:kube-system:generic-garbage-collector"),
    "k8s_request_refused": Case("k8s-audit", k8s(
        4, verb="get", requestURI="/api/v1/namespaces/kube-system/secrets/admin-token",
        objectRef={"resource": "secrets", "namespace": "kube-system", "name": "admin-token"},
        responseStatus={"code": 403, "status": "Failure", "reason": "Forbidden"},
        annotations={"authorization.k8s.io/decision": "forbid"}),
        "responseStatus.code", 200),
    "k8s_hostpath_volume": Case("k8s-audit", k8s(
        5, requestObject=merged(pod(), {"spec": {"volumes": [
            {"name": "host-root", "hostPath": {"path": "/", "type": "Directory"}}]}})),
        "objectRef.namespace", "kube-system"),
    # -- linux/auditd
    "lnx_auditd_chattr_immutable_removed": Case("auditd", audit_line(
        1, 'EXECVE argc=3 a0="chattr" a1="-i" a2="/etc/passwd"'), 'a1="-i"', 'a1="+i"'),
    "lnx_auditd_ld_preload_written": Case("auditd", audit_line(
        2, 'PATH item=0 name="/etc/ld.so.preload" inode=131 dev=fd:00 mode=0100644 ouid=0 '
           "ogid=0 rdev=00:00 nametype=CREATE"),
        'name="/etc/ld.so.preload"', 'name="/etc/ld.so.conf"'),
    "lnx_auditd_account_created": Case("auditd", audit_line(
        3, "SYSCALL arch=c000003e syscall=59 success=yes exit=0 a0=55d0c1d2e3f0 a1=55d0c1d2e4a0 "
           'a2=55d0c1d2e4c0 a3=0 items=2 ppid=2210 pid=2301 auid=1000 uid=0 gid=0 euid=0 tty=pts0 '
           'ses=3 comm="useradd" exe="/usr/sbin/useradd" key="user_mgmt"'),
        "success=yes", "success=no"),
    "lnx_auditd_hidden_path": Case("auditd", audit_line(
        4, 'PATH item=0 name="/tmp/.cache/kworker" inode=2210 dev=fd:00 mode=0100755 ouid=1000 '
           "ogid=1000 rdev=00:00 nametype=NORMAL"),
        'name="/tmp/.cache/kworker"', 'name="/tmp/cache/kworker"'),
    "lnx_auditd_base64_decode_pipeline": Case("auditd", audit_line(
        5, 'EXECVE argc=3 a0="base64" a1="-d" a2="/tmp/payload.b64"'), 'a1="-d"', 'a1="-w0"'),
}


def event_of(source: str, raw: dict[str, Any] | str) -> dict[str, Any]:
    """The event ``sealtrail import --source SOURCE`` stores for one record (an audit.log
    line is read by the source's own reader into its record first)."""
    src = get_source(source)
    if isinstance(raw, str):
        ((_, record),) = list(src.records(raw))
    else:
        record = raw
    return checked_event(src, record).to_dict()


def near_miss(case: Case) -> dict[str, Any] | str:
    """The case's record with its one field changed."""
    if isinstance(case.record, str):
        assert case.path in case.record
        return case.record.replace(case.path, str(case.value))
    out = copy.deepcopy(case.record)
    *parents, last = case.path.split(".")
    node: Any = out
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node[part]
    if isinstance(node, list):
        node[int(last)] = case.value
    else:
        assert last in node, f"{case.path} is not in the record"
        node[last] = case.value
    return out


def corpus_files() -> dict[str, Path]:
    return {p.stem: p for p in sorted(CORPUS.rglob("*.yml"))}


@pytest.fixture(scope="module")
def corpus() -> dict[str, Rule]:
    """Every corpus rule by file stem (each file is loaded on its own)."""
    out = {}
    for stem, path in corpus_files().items():
        (rule,) = load_sigma(path)
        out[stem] = rule
    return out


def fired(rules: list[Rule], events: list[dict[str, Any]]) -> list[tuple[int, str]]:
    return [(i, d.rule) for i, d in evaluate_events(rules, events)]


# -- the corpus ------------------------------------------------------------------------------

def test_every_corpus_rule_has_a_case_and_ids_are_unique() -> None:
    """One case per rule file, at least 30 rules, at least 3 per source, unique uuid ids."""
    files = corpus_files()
    assert sorted(files) == sorted(CASES)
    assert len(files) >= 30
    per_source = Counter(case.source for case in CASES.values())
    assert set(per_source) == {"cloudtrail", "okta", "github", "gcp", "azure", "k8s-audit",
                               "auditd"}
    assert min(per_source.values()) >= 3
    docs = [yaml.safe_load(p.read_text()) for p in files.values()]
    ids = [d["id"] for d in docs]
    assert len(set(ids)) == len(ids)
    assert all(d.get("title") and len(d["id"]) == 36 for d in docs)


@pytest.mark.parametrize("stem", sorted(CASES))
def test_corpus_rule_fires_on_its_record(stem: str, corpus: dict[str, Rule]) -> None:
    """The rule fires on the source record written to match it, once imported."""
    case = CASES[stem]
    rule = corpus[stem]
    ev = event_of(case.source, case.record)
    assert fired([rule], [ev]) == [(0, rule.id)]


@pytest.mark.parametrize("stem", sorted(CASES))
def test_corpus_rule_misses_the_near_miss(stem: str, corpus: dict[str, Rule]) -> None:
    """The same record with one field changed does not fire the rule."""
    case = CASES[stem]
    ev = event_of(case.source, near_miss(case))
    assert fired([corpus[stem]], [ev]) == []


def test_the_whole_corpus_loads_at_once() -> None:
    """The corpus directory loads in one go, by load_sigma and by the engine's loader."""
    by_sigma = load_sigma(CORPUS)
    assert len(by_sigma) == len(corpus_files())
    assert [r.id for r in load_rules(CORPUS)] == [r.id for r in by_sigma]


def test_rules_run_only_on_their_own_log_source() -> None:
    """All rules over all records: each record fires only rules of its own log source (a
    CloudTrail rule never sees an Okta event, even one with the same field names)."""
    rules = load_sigma(CORPUS)
    product_of = {}
    for path in corpus_files().values():
        doc = yaml.safe_load(path.read_text())
        product_of[doc["id"]] = (doc["logsource"]["product"], doc["logsource"].get("service"))
    events = [event_of(c.source, c.record) for c in CASES.values()]
    for i, rule_id in fired(rules, events):
        source = events[i]["metadata"]["log_source"]
        product, service = product_of[rule_id]
        assert source["product"] == product
        assert service is None or source["service"] == service
    assert {r for _, r in fired(rules, events)} == {r.id for r in rules}


def test_log_sources_match_the_importers() -> None:
    """The pipelines' log sources are the ones the importers write, and every importer's
    action starts with the segment the rules are indexed by."""
    for case in CASES.values():
        ev = event_of(case.source, case.record)
        source = ev["metadata"]["log_source"]
        (ls,) = [x for x in LOG_SOURCES if (x.product, x.service) ==
                 (source["product"], source["service"])]
        assert ls.source == case.source
        assert ev["action"].split(".")[0] == ls.action_segment
    assert {ls.source for ls in LOG_SOURCES} == {c.source for c in CASES.values()}


# -- lookups into the record ---------------------------------------------------------------------

def rule(logsource: str, detection: str, *, name: str = "r") -> Rule:
    text = (f"title: t\nname: {name}\nlogsource: {logsource}\ndetection:\n"
            + textwrap.indent(textwrap.dedent(detection), "  "))
    (out,) = load_sigma(text)
    return out


AWS = "{product: aws, service: cloudtrail}"


@pytest.mark.parametrize(("detection", "expected"), [
    ("sel:\n  eventName: StopLogging\ncondition: sel", True),
    ("sel:\n  EVENTNAME: stoplogging\ncondition: sel", True),             # key case forgiven
    ("sel:\n  event_name: StopLogging\ncondition: sel", True),            # and underscores
    ("sel:\n  user_identity.account_id: '111122223333'\ncondition: sel", True),
    ("sel:\n  aws.cloudtrail.event_name: StopLogging\ncondition: sel", True),   # ECS prefix
    ("sel:\n  event.action: StopLogging\ncondition: sel", True),          # ECS name
    ("sel:\n  requestParameters.name|contains: ':trail/'\ncondition: sel", True),
    ("sel:\n  requestParameters: null\ncondition: sel", False),
    ("sel:\n  responseElements: null\ncondition: sel", True),              # JSON null
    ("sel:\n  noSuchField|exists: false\ncondition: sel", True),
    ("sel:\n  actor.id: alice\ncondition: sel", False),   # record names, not sealtrail's
    ("sel:\n  userIdentity|contains: '\"userName\":\"alice\"'\ncondition: sel", True),
])
def test_record_lookups(detection: str, expected: bool) -> None:
    """Field names read the record; absent keys are looked up forgivingly; objects compare as
    their JSON text."""
    ev = event_of("cloudtrail", CASES["ct_trail_tampering"].record)
    assert rule(AWS, detection).condition.test(ev) is expected


def test_dotted_keys_lists_and_depth_cut_parts_are_read() -> None:
    """A literal dotted key (Kubernetes annotations), a list on the way (containers), and a
    part nested deeper than an event holds (kept as JSON text by the importer) all read."""
    record = k8s(20, requestObject=pod(securityContext={"capabilities": {"add": ["SYS_ADMIN"]}}),
                 annotations={"authorization.k8s.io/decision": "forbid"})
    ev = event_of("k8s-audit", record)
    kept = ev["metadata"]["original"]["requestObject"]["spec"]["containers"][0]
    assert isinstance(kept["securityContext"]["capabilities"]["add"], str)  # cut to JSON text
    k8s_src = "{product: kubernetes, service: audit}"
    for detection in ("sel:\n  annotations.authorization.k8s.io/decision: forbid\n"
                      "condition: sel",
                      "sel:\n  capabilities: SYS_ADMIN\ncondition: sel",
                      "sel:\n  requestObject.spec.containers.image|startswith: alpine\n"
                      "condition: sel"):
        assert rule(k8s_src, detection).condition.test(ev), detection
    assert not rule(k8s_src, "sel:\n  capabilities: NET_ADMIN\ncondition: sel"
                    ).condition.test(ev)


def test_azure_sign_in_status_reads_result_type() -> None:
    """``Status: Success``/``Failure`` (the portal's words) is decided by resultType."""
    signin = "{product: azure, service: signinlogs}"
    ok = event_of("azure", azure_signin(30))
    bad = event_of("azure", azure_signin(31, resultType="50126",
                                         properties={"status": {"errorCode": 50126}}))
    success = rule(signin, "sel:\n  Status: Success\ncondition: sel")
    failure = rule(signin, "sel:\n  Status: Failure\ncondition: sel")
    assert (success.condition.test(ok), success.condition.test(bad)) == (True, False)
    assert (failure.condition.test(ok), failure.condition.test(bad)) == (False, True)
    code = rule(signin, "sel:\n  Status.errorCode: 50126\ncondition: sel")
    assert code.condition.test(bad)
    assert not code.condition.test(ok)


def test_rule_naming_only_the_product_runs_on_every_log_of_it() -> None:
    """``product: azure`` alone runs on activity, sign-in and audit records, each read
    through its own mapping (Category is the audit category in audit logs)."""
    r = rule("{product: azure}", "sel:\n  callerIpAddress|startswith: '203.0.113.'\n"
             "condition: sel")
    events = [event_of("azure", f(40)) for f in (azure_activity, azure_signin, azure_audit)]
    assert [r.condition.test(e) for e in events] == [True, True, True]
    assert r.condition.keys == frozenset({"a:azure"})
    audit = rule("{product: azure}", "sel:\n  Category: UserManagement\ncondition: sel")
    assert [audit.condition.test(e) for e in events] == [False, False, True]


def test_imported_rules_do_not_run_on_sealtrail_events() -> None:
    """An application event that looks like a CloudTrail record, but was not imported, is not
    shown to CloudTrail rules; sealtrail rules still see imported events by their mapped
    fields."""
    r = rule(AWS, "sel:\n  eventName: StopLogging\ncondition: sel")
    fake = {"action": "aws.cloudtrail.StopLogging", "outcome": "success",
            "actor": {"id": "x"}, "metadata": {"original": {"eventName": "StopLogging"}}}
    assert not r.condition.test(fake)
    own = rule("{product: sealtrail}", "sel:\n  action: aws.cloudtrail.StopLogging\n"
               "condition: sel")
    assert own.condition.test(event_of("cloudtrail", CASES["ct_trail_tampering"].record))


def test_keywords_search_only_the_record_and_only_with_keywords() -> None:
    """Keywords search string values of the imported record (not sealtrail's mapped fields);
    plain keywords are found inside values, as in full-text search."""
    ev = event_of("cloudtrail", CASES["ct_trail_tampering"].record)
    assert rule(AWS, "kw:\n  - 'org'\ncondition: kw").condition.test(ev)
    assert rule(AWS, "kw:\n  - '*STOPlog*'\ncondition: kw").condition.test(ev)
    assert rule(AWS, "kw:\n  - 111122223333\ncondition: kw").condition.test(ev)
    assert not rule(AWS, "kw:\n  - 'aws.cloudtrail.StopLogging'\ncondition: kw"
                    ).condition.test(ev)  # the action is sealtrail's, not the record's
    assert not rule(AWS, "kw:\n  '|all':\n    - stoplogging\n    - startlogging\n"
                    "condition: kw").condition.test(ev)


def test_correlation_over_imported_rules_groups_by_mapped_fields() -> None:
    """An event_count correlation over a CloudTrail rule groups by the record's field."""
    text = f"""
title: Denied call
name: denied
logsource: {AWS}
detection:
  sel:
    errorCode: AccessDenied
  condition: sel
---
title: Many denied calls
name: many_denied
correlation:
  type: event_count
  rules: [denied]
  group-by: [userIdentity.arn]
  timespan: 10m
  condition:
    gte: 3
"""
    (corr,) = load_sigma(text)
    assert corr.group_by == ("metadata.original.userIdentity.arn",)
    events = [event_of("cloudtrail", cloudtrail(50 + i, errorCode="AccessDenied",
                                                eventTime=f"2026-03-01T10:0{i}:00Z"))
              for i in range(3)]
    assert fired([corr], events) == [(2, "many_denied")]


# -- refusals ------------------------------------------------------------------------------------

@pytest.mark.parametrize(("logsource", "detection", "construct", "says"), [
    ("{product: windows, service: security}", "sel:\n  EventID: 4625\ncondition: sel",
     "logsource.product", "aws/cloudtrail"),
    ("{category: process_creation}", "sel:\n  Image|endswith: x\ncondition: sel",
     "logsource.product", "linux/auditd"),
    ("{product: aws, service: guardduty}", "sel:\n  type: x\ncondition: sel",
     "logsource.service", "cloudtrail"),
    ("{product: linux, category: process_creation}", "sel:\n  Image|endswith: x\n"
     "condition: sel", "logsource.category", "process_creation"),
    (AWS, "sel:\n  eventName|expand: '%names%'\ncondition: sel", "eventName|expand",
     "not supported"),
    (AWS, "sel:\n  eventName|base64: x\ncondition: sel", "eventName|base64", "not supported"),
    ("{product: azure, service: signinlogs}", "sel:\n  Status: Interrupted\ncondition: sel",
     "Status", "Success or Failure"),
])
def test_what_cannot_be_evaluated_is_refused(logsource: str, detection: str, construct: str,
                                             says: str) -> None:
    """Refusals name the rule, the construct, and what would be accepted."""
    with pytest.raises(RuleError) as info:
        rule(logsource, detection, name="refused_rule")
    assert info.value.field == construct
    assert info.value.rule == "refused_rule"
    assert says in str(info.value)


def test_kubernetes_application_category_is_accepted() -> None:
    """SigmaHQ's Kubernetes rules say ``category: application``: it describes the log."""
    r = rule("{product: kubernetes, service: audit, category: application}",
             "sel:\n  verb: create\ncondition: sel")
    assert r.condition.test(event_of("k8s-audit", CASES["k8s_exec_into_pod"].record))


BAD_RULES = {
    "windows.yml": "title: Failed logon\nid: 7e76cd77-345d-4329-b7b8-0a53d7459bec\n"
                   "logsource: {product: windows, service: security}\n"
                   "detection: {sel: {EventID: 4625}, condition: sel}\n",
    "expand.yml": "title: Listed users\nid: f1167da6-4872-4d6f-852d-538ea6771c7e\n"
                  f"logsource: {AWS}\n"
                  "detection: {sel: {userIdentity.userName|expand: '%admins%'}, "
                  "condition: sel}\n",
    "broken.yml": "title: Broken condition\nname: broken_condition\n"
                  f"logsource: {AWS}\n"
                  "detection: {sel: {eventName: StopLogging}, condition: sel and nothere}\n",
}


def test_a_directory_with_bad_rules_names_every_one(tmp_path: Path) -> None:
    """Three bad rules among good ones: one error names all three (file, rule, reason), and
    none of the directory's rules is loaded."""
    for name, text in BAD_RULES.items():
        (tmp_path / name).write_text(text)
    for stem in ("ct_trail_tampering", "okta_session_via_proxy"):
        path = corpus_files()[stem]
        (tmp_path / path.name).write_text(path.read_text())
    for load in (load_sigma, load_rules):  # Sigma alone, or with native rules (RulesError)
        with pytest.raises(RulesError) as info:
            load(tmp_path)
        text = str(info.value)
        assert len(info.value.errors) == 3
        assert {e.field for e in info.value.errors} == {
            "logsource.product", "userIdentity.userName|expand", "detection"}
        for name in BAD_RULES:
            assert name in text
        assert "7e76cd77-345d-4329-b7b8-0a53d7459bec" in text
        assert "broken_condition" in text
        assert "nothere" in text
        assert isinstance(info.value, RuleError)


def test_a_correlation_over_a_refused_rule_is_named_too() -> None:
    """A correlation whose rule is refused is reported with it, not with a crash."""
    text = ("title: a\nname: a\nlogsource: {product: windows}\n"
            "detection: {sel: {x: 1}, condition: sel}\n---\n"
            "title: c\nname: c\ncorrelation: {type: event_count, rules: [a], timespan: 5m, "
            "condition: {gte: 2}}\n")
    with pytest.raises(SigmaRulesError) as info:
        load_sigma(text)
    assert [(e.rule, e.field) for e in info.value.errors] == [
        ("a", "logsource.product"), ("c", "correlation.rules")]


# -- rules test --source ---------------------------------------------------------------------

def sealtrail(*args: str, cwd: Path) -> clirun.Ran[str]:
    """``sealtrail ARGS`` in-process, from ``cwd``."""
    return clirun.sealtrail(*args, cwd=cwd, text=True)


def test_rules_test_with_source_reads_a_cloudtrail_log(tmp_path: Path) -> None:
    """``rules test RULES --events FILE --source cloudtrail`` reads a CloudTrail log file
    (gzipped, as S3 delivers it) and prints each detection with the rule's id and title."""
    names = ["ct_trail_tampering", "ct_root_activity", "ct_access_key_for_other_user"]
    records = [CASES[n].record for n in names] + [near_miss(CASES["ct_trail_tampering"])]
    log = tmp_path / "111122223333_CloudTrail_eu-west-1_20260301T1000Z.json.gz"
    log.write_bytes(gzip.compress(json.dumps({"Records": records}).encode()))
    res = sealtrail("rules", "test", str(CORPUS / "aws"), "--events", str(log),
                    "--source", "cloudtrail", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    ids = {n: yaml.safe_load(corpus_files()[n].read_text()) for n in names}
    assert len(lines) == 3
    for n, line in zip(names, lines, strict=True):
        assert ids[n]["id"] in line
        assert ids[n]["title"] in line
    assert lines[0].startswith("event 0 (record 1): ")
    assert "3 detection(s) from 6 rule(s) over 4 event(s)" in res.stderr
    jsonl = sealtrail("rules", "test", str(CORPUS / "aws"), "--events", str(log),
                      "--source", "cloudtrail", "--format", "jsonl", cwd=tmp_path)
    assert [json.loads(x)["rule"] for x in jsonl.stdout.split("\n") if x] == [
        ids[n]["id"] for n in names]


def test_rules_test_with_source_reads_an_audit_log(tmp_path: Path) -> None:
    """audit.log lines, one event per record, with ``--source auditd``."""
    log = tmp_path / "audit.log"
    log.write_text("".join(str(CASES[n].record) for n in (
        "lnx_auditd_chattr_immutable_removed", "lnx_auditd_ld_preload_written")))
    res = sealtrail("rules", "test", str(CORPUS / "linux"), "--events", str(log),
                    "--source", "auditd", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert [line.split(": ")[0] for line in res.stdout.splitlines()] == [
        "event 0 (line 1)", "event 1 (line 2)"]


def test_rules_test_refuses_an_unknown_source_and_a_bad_record(tmp_path: Path) -> None:
    """A bad --source exits 2 naming the choices; a record the importer refuses, naming it."""
    log = tmp_path / "trail.json"
    log.write_text(json.dumps({"Records": [{"eventName": "x"}]}))
    res = sealtrail("rules", "test", str(CORPUS / "aws"), "--events", str(log),
                    "--source", "cloudtail", cwd=tmp_path)
    assert res.returncode == 2
    assert "cloudtrail, okta, github, gcp, azure, k8s-audit, auditd" in " ".join(
        res.stderr.split())
    res = sealtrail("rules", "test", str(CORPUS / "aws"), "--events", str(log),
                    "--source", "cloudtrail", cwd=tmp_path)
    assert res.returncode == 2
    assert "record 1" in res.stderr
    assert "eventID" in res.stderr


def test_rules_test_names_every_bad_rule_of_a_directory(tmp_path: Path) -> None:
    """``rules test DIR`` with three bad rules exits 2 with one line per refused rule."""
    for name, text in BAD_RULES.items():
        (tmp_path / name).write_text(text)
    log = tmp_path / "trail.json"
    log.write_text(json.dumps({"Records": [CASES["ct_trail_tampering"].record]}))
    res = sealtrail("rules", "test", str(tmp_path), "--events", str(log), "--source",
                    "cloudtrail", cwd=tmp_path)
    assert res.returncode == 2
    refused = [line for line in res.stderr.splitlines() if line.startswith("error:   rule ")]
    assert len(refused) == 3
    for name in BAD_RULES:
        assert name in res.stderr


# -- the documentation ---------------------------------------------------------------------------

def test_the_mapping_table_in_the_docs_is_the_pipelines() -> None:
    """docs/rules.md's field mapping table lists exactly the pipelines' mappings."""
    docs = (Path(__file__).resolve().parents[2] / "docs" / "rules.md").read_text()
    rows = []
    for line in docs.splitlines():
        cells = [c.strip() for c in line.strip("|").split("|")]
        if len(cells) == 3 and "/" in cells[0] and cells[1].startswith("`"):
            rows.append((cells[0], cells[1].strip("`"),
                         " or ".join(p.strip().strip("`") for p in cells[2].split(" or "))))
    assert rows == mapping_rows()
