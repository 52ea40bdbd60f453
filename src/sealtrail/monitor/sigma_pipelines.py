"""pySigma processing pipelines: SigmaHQ field names -> the records ``sealtrail import`` keeps.

An imported event keeps the source's record intact at ``metadata.original`` and its Sigma log
source at ``metadata.log_source`` (core/sources/base.py). SigmaHQ's rules for those log
sources name the record's fields, but not always as the record spells them: GCP rules use
Elastic's ``gcp.audit.method_name`` for ``protoPayload.methodName``, Okta rules lower-case
``eventtype``, Azure sign-in rules Log Analytics columns (``ResultType``,
``AuthenticationRequirement``) that an exported record holds as ``resultType`` and
``properties.authenticationRequirement``. So, the way pySigma's backends ship one pipeline
per target data model, each log source here has a :class:`ProcessingPipeline` whose items,
all conditioned on the rule's log source (``LogsourceCondition``), are applied in order:

1. value mappings a field mapping cannot express (Azure sign-ins: ``Status: Success`` is a
   ``resultType`` of 0);
2. explicit field names (:data:`FIELD_MAPPINGS`): where SigmaHQ's name differs from the
   record's own;
3. name prefixes (:data:`PREFIX_MAPPINGS`): whole families of names (``gcp.audit.`` ->
   ``protoPayload.``, the Elastic-style ``okta.``/``github.``/``aws.cloudtrail.`` prefixes
   dropped), only for names step 2 left alone;
4. Azure only: a Log Analytics column that is not a top-level field of the exported record
   lives under ``properties`` (:data:`AZURE_TOP_LEVEL`);
5. every name gets the prefix ``metadata.original.`` (``AddFieldnamePrefixTransformation``).

The rest is done where the event is read (monitor/sigma.py): below ``metadata.original`` a
key that is absent is looked up case-insensitively, then ignoring ``_`` (``source_ranges``
finds ``sourceRanges``), then as a literal dotted key (a Kubernetes annotation
``authorization.k8s.io/decision``); lists on the way are searched element by element; and a
part of the record nested deeper than an event may hold (kept as JSON text by the importer)
is read as the JSON it is. That is why most names need no entry here: CloudTrail, GitHub,
Kubernetes and auditd rules already use the record's own names.

Pipelines hold per-application state in pySigma, so :func:`pipeline` builds a fresh one each
time (it is cheap, and rules are compiled once).
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

from sigma.exceptions import SigmaTransformationError
from sigma.processing.conditions import (
    FieldNameProcessingItemAppliedCondition,
    LogsourceCondition,
    RuleProcessingCondition,
)
from sigma.processing.pipeline import ProcessingItem, ProcessingPipeline
from sigma.processing.transformations import (
    AddFieldnamePrefixTransformation,
    FieldFunctionTransformation,
    FieldMappingTransformation,
    FieldPrefixMappingTransformation,
)
from sigma.processing.transformations.base import DetectionItemTransformation
from sigma.rule import SigmaDetection, SigmaDetectionItem, SigmaLogSource, SigmaRule
from sigma.types import SigmaString

__all__ = ["AZURE_TOP_LEVEL", "FIELD_MAPPINGS", "LOG_SOURCES", "ORIGINAL_PREFIX",
           "PIPELINES_VERSION", "PREFIX_MAPPINGS", "ImportedLogSource", "UnsupportedValueError",
           "apply", "log_sources_of", "map_field_name", "mapping_rows", "pipeline"]

#: Where an imported event keeps the source's record (core/sources/base.py ``ORIGINAL``).
ORIGINAL_PREFIX: Final = "metadata.original."
#: Part of the digest of every imported rule: a change of the mappings below is a change of
#: behaviour, so the engine must not carry a rule's state across it.
PIPELINES_VERSION: Final = 1


@dataclass(frozen=True, slots=True)
class ImportedLogSource:
    """A Sigma log source whose records ``sealtrail import --source <source>`` keeps.

    ``action_segment`` is the first dotted word of the ``action`` its importer writes
    (``aws.iam.CreateUser``): the engine indexes rules by it, so a rule for CloudTrail is only
    ever shown CloudTrail events. ``categories`` are ``logsource.category`` values SigmaHQ
    puts on this log source's rules that say nothing more than the log source itself
    (Kubernetes audit rules say ``category: application``).
    """

    product: str
    service: str
    source: str
    action_segment: str
    categories: frozenset[str] = field(default_factory=frozenset)

    @property
    def key(self) -> str:
        return f"{self.product}/{self.service}"


LOG_SOURCES: Final = (
    ImportedLogSource("aws", "cloudtrail", "cloudtrail", "aws"),
    ImportedLogSource("okta", "okta", "okta", "okta"),
    ImportedLogSource("github", "audit", "github", "github"),
    ImportedLogSource("gcp", "gcp.audit", "gcp", "gcp"),
    ImportedLogSource("azure", "activitylogs", "azure", "azure"),
    ImportedLogSource("azure", "signinlogs", "azure", "azure"),
    ImportedLogSource("azure", "auditlogs", "azure", "azure"),
    ImportedLogSource("kubernetes", "audit", "k8s-audit", "kubernetes",
                      frozenset({"application"})),
    ImportedLogSource("linux", "auditd", "auditd", "linux"),
)

#: SigmaHQ field name -> the record's path (or several, any of which may match), per log
#: source. Only where they differ; lookups are case-insensitive anyway (see the docstring).
FIELD_MAPPINGS: Final[dict[str, dict[str, str | list[str]]]] = {
    "aws/cloudtrail": {
        # Elastic Common Schema names, as some rules and converted rules carry them
        "event.action": "eventName", "event.provider": "eventSource",
        "source.ip": "sourceIPAddress", "user_agent.original": "userAgent",
        "cloud.region": "awsRegion", "cloud.account.id": "recipientAccountId",
    },
    "okta/okta": {
        "eventtype": "eventType", "displaymessage": "displayMessage",
        "legacyeventtype": "legacyEventType",
        "actor.alternateid": "actor.alternateId", "actor.displayname": "actor.displayName",
        "client.ipaddress": "client.ipAddress",
        "client.useragent.rawuseragent": "client.userAgent.rawUserAgent",
        "securitycontext.isproxy": "securityContext.isProxy",
        "target.displayname": "target.displayName", "target.alternateid": "target.alternateId",
    },
    "github/audit": {
        # SigmaHQ says `operation`; the audit log's field is `operation_type`
        "operation": "operation_type",
    },
    "gcp/gcp.audit": {
        # Elastic's gcp.audit fields (what SigmaHQ's GCP rules use) -> the AuditLog entry
        "gcp.audit.method_name": "protoPayload.methodName",
        "gcp.audit.service_name": "protoPayload.serviceName",
        "gcp.audit.resource_name": "protoPayload.resourceName",
        "gcp.audit.type": "protoPayload.@type",
        "gcp.audit.status.code": "protoPayload.status.code",
        "gcp.audit.status.message": "protoPayload.status.message",
        "gcp.audit.authentication_info.principal_email":
            "protoPayload.authenticationInfo.principalEmail",
        "gcp.audit.authentication_info.authority_selector":
            "protoPayload.authenticationInfo.authoritySelector",
        "gcp.audit.authorization_info.permission": "protoPayload.authorizationInfo.permission",
        "gcp.audit.authorization_info.granted": "protoPayload.authorizationInfo.granted",
        "gcp.audit.authorization_info.resource": "protoPayload.authorizationInfo.resource",
        "gcp.audit.request_metadata.caller_ip": "protoPayload.requestMetadata.callerIp",
        "gcp.audit.request_metadata.caller_supplied_user_agent":
            "protoPayload.requestMetadata.callerSuppliedUserAgent",
        "gcp.audit.num_response_items": "protoPayload.numResponseItems",
        # SigmaHQ's `data.protoPayload.*` (a Pub/Sub message around the entry): the log name
        # and the monitored resource are the entry's, not the payload's
        "data.protoPayload.logName": "logName",
        "data.protoPayload.resource.type": "resource.type",
        # bare AuditLog names
        "methodName": "protoPayload.methodName", "serviceName": "protoPayload.serviceName",
        "resourceName": "protoPayload.resourceName",
    },
    "azure/activitylogs": {
        # AzureActivity (Log Analytics) columns; the REST API form names values
        # {"value": ..., "localizedValue": ...}, hence the second path
        "OperationNameValue": ["operationName", "operationName.value"],
        "operationName": ["operationName", "operationName.value"],
        "ActivityStatusValue": ["resultType", "status.value"],
        "ActivityStatus": ["resultType", "status.value"],
        "status": ["resultType", "status.value"],
        "ActivitySubstatusValue": ["resultSignature", "subStatus.value"],
        "CategoryValue": ["category", "category.value"],
        "Caller": ["identity.claims.http://schemas.xmlsoap.org/ws/2005/05/identity/claims/upn",
                   "caller"],
        "ResourceProviderValue": "resourceProviderName.value",
        "eventName": "eventName.value",
    },
    "azure/signinlogs": {
        # SigninLogs (Log Analytics) columns whose exported name differs beyond case
        "ClientApp": "properties.clientAppUsed",
        "Username": "properties.userPrincipalName",
        "LocationDetails": "properties.location",
        "ConditionalAccessPolicies": "properties.appliedConditionalAccessPolicies",
        "ResourceIdentity": "properties.resourceId",
        "IPAddress": "properties.ipAddress",
    },
    "azure/auditlogs": {
        # AuditLogs columns: the exported top-level `category` is "AuditLogs"; the audit
        # category (UserManagement...) and the result are under properties
        "Category": "properties.category", "category": "properties.category",
        "Result": "properties.result", "Status": "properties.result",
        "AADOperationType": "properties.operationType",
    },
    "kubernetes/audit": {
        # the short names SigmaHQ's Kubernetes rules use (as pySigma-backend-elasticsearch)
        "apiGroup": "objectRef.apiGroup", "resource": "objectRef.resource",
        "subresource": "objectRef.subresource", "namespace": "objectRef.namespace",
        "name": "objectRef.name", "username": "user.username", "groups": "user.groups",
        "capabilities": "requestObject.spec.containers.securityContext.capabilities.add",
        "privileged": "requestObject.spec.containers.securityContext.privileged",
        "hostPath": "requestObject.spec.volumes.hostPath",
        "hostNetwork": "requestObject.spec.hostNetwork",
        "hostPID": "requestObject.spec.hostPID", "hostIPC": "requestObject.spec.hostIPC",
        "image": "requestObject.spec.containers.image",
    },
    "linux/auditd": {},
}

#: Name prefixes rewritten (most specific first), for names :data:`FIELD_MAPPINGS` left alone.
PREFIX_MAPPINGS: Final[dict[str, dict[str, str]]] = {
    "aws/cloudtrail": {"aws.cloudtrail.": ""},
    "okta/okta": {"debugcontext.debugdata.": "debugContext.debugData.",
                  "authenticationcontext.": "authenticationContext.",
                  "securitycontext.": "securityContext.", "okta.": ""},
    "github/audit": {"github.": ""},
    "gcp/gcp.audit": {"data.protoPayload.resource.": "resource.",
                      "gcp.audit.": "protoPayload.", "data.": ""},
    "azure/activitylogs": {"azure.activitylogs.": ""},
    "azure/signinlogs": {"azure.signinlogs.": ""},
    "azure/auditlogs": {"azure.auditlogs.": ""},
    "kubernetes/audit": {"kubernetes.audit.": ""},
    "linux/auditd": {"auditd.data.": ""},
}

#: The top-level fields of Azure Monitor records as diagnostic settings export them,
#: lower-cased, per log; the Activity log's also those of the REST API's events. Any other
#: name an Azure rule uses is a Log Analytics column the exported record holds under
#: ``properties``.
_AZURE_EXPORTED: Final = frozenset({
    "time", "resourceid", "operationname", "operationversion", "category", "tenantid",
    "resulttype", "resultsignature", "resultdescription", "durationms", "calleripaddress",
    "correlationid", "identity", "level", "location", "properties",
})
AZURE_TOP_LEVEL: Final[dict[str, frozenset[str]]] = {
    "azure/activitylogs": _AZURE_EXPORTED | {
        "authorization", "caller", "channels", "claims", "description", "eventdataid",
        "eventname", "eventtimestamp", "httprequest", "id", "operationid",
        "resourcegroupname", "resourceprovidername", "resourcetype", "status", "substatus",
        "submissiontimestamp", "subscriptionid"},
    "azure/signinlogs": _AZURE_EXPORTED,
    "azure/auditlogs": _AZURE_EXPORTED,
}


class UnsupportedValueError(SigmaTransformationError):
    """A value this log source's records cannot be compared with; ``construct`` names it."""

    def __init__(self, construct: str, message: str) -> None:
        super().__init__(message)
        self.construct = construct


@dataclass
class _SignInStatus(DetectionItemTransformation):
    """``Status: Success``/``Failure`` of SigmaHQ's sign-in rules (the portal's words) as the
    exported record says it: ``resultType`` 0 is a success, any other code a failure."""

    def apply_detection_item(self, detection_item: SigmaDetectionItem
                             ) -> SigmaDetection | SigmaDetectionItem | None:
        if detection_item.field is None or detection_item.field.lower() != "status":
            return None
        words = set()
        for value in detection_item.value:
            if not isinstance(value, SigmaString) or value.contains_special():
                raise UnsupportedValueError(f"{detection_item.field}", "sign-in Status is "
                                            "compared with Success or Failure only")
            words.add(str(value).lower())
        if words - {"success", "failure"} or len(words) != 1:
            raise UnsupportedValueError(f"{detection_item.field}", f"sign-in Status "
                                        f"{sorted(words)} cannot be evaluated on exported "
                                        "records (only Success or Failure, by resultType)")
        item = copy.copy(detection_item)
        item.field = "resultType"
        item.value = [SigmaString("0")]
        item.modifiers = []
        if words == {"failure"}:
            item.negated = not detection_item.negated
        return item


def _azure_columns(top: frozenset[str]) -> Callable[[str | None], str]:
    """A Log Analytics column not at the top of the exported record is under properties."""
    def column(field_name: str | None) -> str:
        if field_name is None:  # keywords: not applied to them (apply_keyword is False)
            return ""
        head = field_name.partition(".")[0].lower()
        return field_name if head in top else f"properties.{field_name}"
    return column


def pipeline(source: ImportedLogSource) -> ProcessingPipeline:
    """A fresh pipeline mapping a rule of ``source`` onto ``metadata.original.*``."""
    key = source.key
    ident = "sealtrail_" + key.replace("/", "_").replace(".", "_")

    def only() -> list[RuleProcessingCondition]:
        """The items' rule condition (each item needs its own: it binds to the pipeline)."""
        return [LogsourceCondition(product=source.product, service=source.service)]

    items: list[ProcessingItem] = []
    if key == "azure/signinlogs":
        items.append(ProcessingItem(identifier=f"{ident}_status",
                                    transformation=_SignInStatus(), rule_conditions=only()))
    mapped = [f"{ident}_fields"]
    items.append(ProcessingItem(identifier=mapped[0], rule_conditions=only(),
                                transformation=FieldMappingTransformation(
                                    dict(FIELD_MAPPINGS[key]))))  # type: ignore[arg-type]

    def untouched() -> dict[str, object]:
        """Field-name conditions: only names no earlier item mapped."""
        return {"field_name_conditions": [FieldNameProcessingItemAppliedCondition(i)
                                          for i in mapped],
                "field_name_condition_linking": any, "field_name_condition_negation": True}

    if PREFIX_MAPPINGS[key]:
        items.append(ProcessingItem(
            identifier=f"{ident}_prefixes", rule_conditions=only(),
            transformation=FieldPrefixMappingTransformation(
                dict(PREFIX_MAPPINGS[key])),  # type: ignore[arg-type]
            **untouched()))  # type: ignore[arg-type]
        mapped.append(f"{ident}_prefixes")
    if source.product == "azure":
        items.append(ProcessingItem(
            identifier=f"{ident}_properties", rule_conditions=only(),
            transformation=FieldFunctionTransformation({}, _azure_columns(
                AZURE_TOP_LEVEL[key])),
            **untouched()))  # type: ignore[arg-type]
    items.append(ProcessingItem(identifier=f"{ident}_original", rule_conditions=only(),
                                transformation=AddFieldnamePrefixTransformation(
                                    ORIGINAL_PREFIX)))
    return ProcessingPipeline(name=f"sealtrail: {source.product}/{source.service} records "
                              "at metadata.original", priority=20, items=items)


def log_sources_of(product: str, service: str | None) -> list[ImportedLogSource]:
    """The imported log sources a rule's ``product`` (and ``service``, if given) names."""
    p = product.lower()
    s = service.lower() if service is not None else None
    return [ls for ls in LOG_SOURCES if ls.product == p and (s is None or ls.service == s)]


def apply(source: ImportedLogSource, rule: SigmaRule) -> SigmaRule:
    """A copy of ``rule`` with ``source``'s pipeline applied (the rule itself is untouched).

    The copy's log source is set to ``source`` (lower-case, service named) first, so a rule
    naming only the product, or spelling it in capitals, is mapped like one naming both.
    """
    out = copy.deepcopy(rule)
    out.logsource = SigmaLogSource(rule.logsource.category, source.product, source.service)
    pipeline(source).apply(out)
    return out


@functools.lru_cache(maxsize=4096)
def map_field_name(source_key: str, name: str) -> list[str]:
    """The event paths a field name of a rule for ``source_key`` reads (for correlation
    ``group-by`` and ``value_count`` fields, which pySigma maps only through the rules they
    reference): the same pipeline applied to a one-item rule."""
    (source,) = (ls for ls in LOG_SOURCES if ls.key == source_key)
    probe = SigmaRule.from_dict({
        "title": "probe", "logsource": {"product": source.product, "service": source.service},
        "detection": {"sel": {name: "x"}, "condition": "sel"}})
    mapped = apply(source, probe)
    out: list[str] = []

    def walk(det: SigmaDetection | SigmaDetectionItem) -> None:
        if isinstance(det, SigmaDetection):
            for item in det.detection_items:
                walk(item)
        elif det.field is not None:
            out.append(det.field)
    for det in mapped.detection.detections.values():
        walk(det)
    return out


def mapping_rows() -> list[tuple[str, str, str]]:
    """(log source, SigmaHQ name, record path) for the documentation's table."""
    rows: list[tuple[str, str, str]] = []
    for key, table in FIELD_MAPPINGS.items():
        for name, target in table.items():
            paths = target if isinstance(target, list) else [target]
            rows.append((key, name, " or ".join(paths)))
        for prefix, target in PREFIX_MAPPINGS[key].items():
            rows.append((key, f"{prefix}*", f"{target}*" if target else "*"))
    return rows

