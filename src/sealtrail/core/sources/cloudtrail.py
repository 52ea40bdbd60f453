"""AWS CloudTrail records as sealtrail events.

Reads what CloudTrail writes and what people export from it: a log file as delivered to S3
(``{"Records": [...]}``), a JSON array of records (``aws cloudtrail lookup-events`` output
reshaped, CloudTrail Lake exports), or one record per line (JSON Lines, split on LF only).

Mapping (every record is also kept whole at ``metadata.original``):

- ``id``: from ``eventID`` (required: CloudTrail gives every record one), so a record imported
  twice, from a log file and from an overlapping export, is stored once;
- ``time``: ``eventTime`` (required; before 1970 is refused: a UUIDv7 cannot hold it);
- ``action``: ``aws.<eventSource without .amazonaws.com>.<eventName>`` (both required), e.g.
  ``aws.iam.CreateUser``, ``aws.signin.ConsoleLogin``;
- ``outcome``: no ``errorCode`` -> ``success``, except a ``ConsoleLogin`` whose
  ``responseElements.ConsoleLogin`` is ``Failure`` (CloudTrail records failed console sign-ins
  with an ``errorMessage`` but no ``errorCode``) -> ``failure``; an ``errorCode`` naming a refusal
  (``AccessDenied``, ``UnauthorizedOperation``, ``Forbidden``, any case, with or without a
  ``Client.`` prefix or ``Exception`` suffix) -> ``denied``; any other ``errorCode`` ->
  ``failure`` (throttling and validation errors are the caller's request failing, not a
  refusal a detection rule for denied access should see);
- ``actor``: ``id`` is the first of ``userIdentity.arn``, ``principalId``, ``userName``,
  ``invokedBy``, ``accountId`` (anonymous S3 requests carry only ``ANONYMOUS_PRINCIPAL``
  there), else ``unknown``; ``type`` is ``userIdentity.type``; ``name`` is ``userName`` or, for
  an assumed role, the issuing role's ``sessionContext.sessionIssuer.userName``; ``ip`` is
  ``sourceIPAddress`` when it is an address (it is often a service name such as
  ``autoscaling.amazonaws.com``: then none); ``user_agent`` is ``userAgent``;
- ``target``: the first ``resources[]`` entry with an ``ARN`` (``type`` from its ``type``);
  else the first of these request parameters, typed as CloudFormation types so both ways read
  alike: ``bucketName`` (``AWS::S3::Bucket``), ``userName`` (``AWS::IAM::User``), ``roleName``
  and ``roleArn`` (``AWS::IAM::Role``), ``groupName`` (``AWS::IAM::Group``), ``policyArn``
  (``AWS::IAM::Policy``), ``instanceId`` (``AWS::EC2::Instance``), ``functionName``
  (``AWS::Lambda::Function``), ``keyId`` (``AWS::KMS::Key``), ``secretId``
  (``AWS::SecretsManager::Secret``), ``name`` for CloudTrail itself (``AWS::CloudTrail::Trail``);
  else no target;
- ``source``: ``{"service": eventSource}`` (``awsRegion`` is a region, not a host);
- ``category``: ``ConsoleLogin``, anything from ``signin.amazonaws.com`` and every STS call
  (STS exists to issue credentials) -> ``authentication``; a read -> ``data_access``, where
  ``readOnly`` decides when the record has it and otherwise a ``Get``/``List``/``Describe``
  name does; a write that is a data event (``eventCategory`` ``Data``, e.g. S3 ``PutObject``)
  -> ``data_change``; another write (``readOnly`` false, or a management event) ->
  ``configuration``; anything else (insights, network activity events) -> none.

Actor ids starting ``key:`` name sealtrail's own API keys in its records, so such an id is
kept as ``aws:key:...``; an ``eventSource`` of exactly ``sealtrail`` (never a real one) becomes
``aws:sealtrail`` for the same reason.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any, Final

from sealtrail.core.errors import ValidationError
from sealtrail.core.sources.base import (
    LogSource,
    Record,
    Source,
    Where,
    action_of,
    ident,
    imported,
    ip,
    json_records,
    obj,
    record_time,
    safe_actor_id,
    safe_service,
    text,
)

_PRODUCT: Final = "aws"
_DENIED: Final = re.compile(r"accessdenied|unauthorizedoperation|forbidden", re.IGNORECASE)
_READ_NAME: Final = re.compile(r"^(Get|List|Describe)(?![a-z])")
_AUTH_SOURCES: Final = ("signin.amazonaws.com", "sts.amazonaws.com")
# Request parameters that name what was acted on, in the order they are looked for.
_TARGET_PARAMETERS: Final = (
    ("bucketName", "AWS::S3::Bucket"), ("userName", "AWS::IAM::User"),
    ("roleName", "AWS::IAM::Role"), ("roleArn", "AWS::IAM::Role"),
    ("groupName", "AWS::IAM::Group"), ("policyArn", "AWS::IAM::Policy"),
    ("instanceId", "AWS::EC2::Instance"), ("functionName", "AWS::Lambda::Function"),
    ("keyId", "AWS::KMS::Key"), ("secretId", "AWS::SecretsManager::Secret"))


def _records(body: str) -> Iterator[tuple[Where, Record]]:
    return json_records(body, ("Records",))


def _first(*values: Any) -> str | None:
    for value in values:
        found = ident(value)
        if found is not None:
            return found
    return None


def _outcome(record: Record) -> str:
    code = text(record.get("errorCode"))
    if code is not None:
        return "denied" if _DENIED.search(code) else "failure"
    login = obj(record.get("responseElements")).get("ConsoleLogin")
    if isinstance(login, str) and login.lower() == "failure":
        return "failure"
    return "success"


def _actor(record: Record) -> dict[str, Any]:
    who = obj(record.get("userIdentity"))
    issuer = obj(obj(who.get("sessionContext")).get("sessionIssuer"))
    actor_id = _first(who.get("arn"), who.get("principalId"), who.get("userName"),
                      who.get("invokedBy"), who.get("accountId"))
    if actor_id is not None:
        actor_id = safe_actor_id(_PRODUCT, actor_id)
    return {"id": actor_id, "type": text(who.get("type")),
            "name": text(who.get("userName")) or text(issuer.get("userName")),
            "ip": ip(record.get("sourceIPAddress")), "user_agent": text(record.get("userAgent"))}


def _target(record: Record, source: str) -> dict[str, Any] | None:
    resources = record.get("resources")
    for res in resources if isinstance(resources, list) else ():
        arn = ident(obj(res).get("ARN"))
        if arn is not None:
            return {"id": arn, "type": text(obj(res).get("type"))}
    params = obj(record.get("requestParameters"))
    for key, kind in _TARGET_PARAMETERS:
        found = ident(params.get(key))
        if found is not None:
            return {"id": found, "type": kind}
    if source == "cloudtrail.amazonaws.com":
        found = ident(params.get("name"))
        if found is not None:
            return {"id": found, "type": "AWS::CloudTrail::Trail"}
    return None


def _category(record: Record, source: str, name: str) -> str | None:
    if name == "ConsoleLogin" or source in _AUTH_SOURCES:
        return "authentication"
    read_only = record.get("readOnly")
    if isinstance(read_only, str):
        read_only = {"true": True, "false": False}.get(read_only.lower())
    reads = read_only if isinstance(read_only, bool) else bool(_READ_NAME.match(name))
    if reads:
        return "data_access"
    kind = record.get("eventCategory")
    if kind == "Data":
        return "data_change"
    if read_only is False or kind == "Management":
        return "configuration"
    return None


def event(record: Record) -> dict[str, Any]:
    """The sealtrail event of one CloudTrail record (see the module docstring)."""
    uid = ident(record.get("eventID"))
    if uid is None:
        raise ValidationError("eventID", "missing: every CloudTrail record has one")
    at = record_time(record.get("eventTime"), "eventTime")
    source = text(record.get("eventSource"))
    if source is None:
        raise ValidationError("eventSource", "missing: every CloudTrail record has one")
    name = text(record.get("eventName"))
    if name is None:
        raise ValidationError("eventName", "missing: every CloudTrail record has one")
    service = source.removesuffix(".amazonaws.com")
    return imported(
        SOURCE, record, uid=uid, at=at, action=action_of(_PRODUCT, *service.split("."), name),
        outcome=_outcome(record), actor=_actor(record), target=_target(record, source),
        origin={"service": safe_service(_PRODUCT, source)},
        category=_category(record, source, name))


SOURCE: Final = Source(
    name="cloudtrail", title="AWS CloudTrail", log_source=LogSource(_PRODUCT, "cloudtrail"),
    records=_records, event=event,
    formats='a CloudTrail log file ({"Records": [...]}), a JSON array of records, '
            "or JSON Lines (one record per line)")
