"""SIEM exports: stored events as OCSF, CEF, ECS, CSV, JSON Lines and RFC 5424 syslog.

Each format is one pure function from a stored entry ``(index, event, leaf hash)`` to one record;
:func:`write_export` streams any of them (a generator over entries, constant memory) and
:class:`SyslogForwarder` is the only I/O here: it sends syslog messages over UDP, TCP or TLS.
The mapping tables are in docs/siem.md. Every record carries the log name, the entry index and
the leaf hash (hex), so a SIEM record can be traced back to an inclusion proof.

Specs: OCSF 1.1.0 (classes Authentication 3002, API Activity 6003), ArcSight CEF rev. 25
(header and extension escaping), ECS 8.11 (categorization fields), RFC 4180 (CSV), RFC 5424 and
RFC 5425/6587 (syslog and octet counting, via :mod:`sealtrail.core.syslog`).

Sealed personal fields stay sealed unless the caller asks otherwise: :func:`export_entries`
takes the stored events (``open_sealed=False``, the default) or the opened ones
(``open_sealed=True``); the record functions never decrypt, they render what they are given.
"""

from __future__ import annotations

import csv
import io
import ipaddress
import re
import socket
import ssl
import unicodedata
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from types import MappingProxyType, TracebackType
from typing import Any, BinaryIO, Final, Literal, TextIO, cast

from sealtrail import __version__
from sealtrail.core import syslog
from sealtrail.core.canonical import encode_json
from sealtrail.core.errors import ConfigError, ValidationError
from sealtrail.core.merkle.hashing import leaf_hash as _leaf_hash
from sealtrail.core.timefmt import parse_time, unix_micros
from sealtrail.log.auditlog import Entry

__all__ = [
    "CEF_SEVERITY",
    "CSV_COLUMNS",
    "ECS_VERSION",
    "ERASED_CELL",
    "FORMATS",
    "OCSF_SEVERITY",
    "OCSF_UNKNOWN",
    "OCSF_VERSION",
    "OPEN_SEALED_DETAIL",
    "SD_ID",
    "SEALED_CELL",
    "SYSLOG_SEVERITY",
    "ExportEntry",
    "ExportFormat",
    "SyslogForwarder",
    "Verb",
    "action_verb",
    "cef_header_escape",
    "cef_value_escape",
    "csv_cell",
    "ecs_categorization",
    "export_entries",
    "export_format",
    "iter_export",
    "to_cef",
    "to_csv_row",
    "to_ecs",
    "to_jsonl",
    "to_ocsf",
    "to_syslog",
    "write_export",
]

OCSF_VERSION: Final = "1.1.0"
ECS_VERSION: Final = "8.11.0"
PRODUCT: Final = "sealtrail"
# No IANA Private Enterprise Number is registered for sealtrail: RFC 5612 reserves 32473 for
# documentation and examples, which is what an unregistered SD-ID may honestly use.
SD_ID: Final = "sealtrail@32473"
_UDP_MAX: Final = 65507  # the largest UDP payload over IPv4

# -- decisions shared by every format (pure) ---------------------------------------------------

Verb = Literal["logon", "logoff", "create", "read", "update", "delete", "other"]

_VERB_WORDS: Final[dict[Verb, str]] = {
    "logon": "login logon signin authenticate authenticated",
    "logoff": "logout logoff signout",
    "create": "create created add added insert inserted new register registered upload uploaded "
              "import imported invite invited grant granted issue issued generate generated",
    "read": "read view viewed get list listed search searched query queried export exported "
            "download downloaded access accessed show fetch fetched open opened lookup",
    "update": "update updated edit edited modify modified change changed set patch patched "
              "rename renamed move moved enable enabled disable disabled reset replace replaced "
              "assign assigned rotate rotated restore restored",
    "delete": "delete deleted remove removed destroy destroyed erase erased purge purged "
              "revoke revoked drop dropped unlink unlinked",
}
_VERBS: Final = {word: verb for verb, words in _VERB_WORDS.items() for word in words.split()}
_TOKEN_SPLIT = re.compile(r"[_\-:]+")


def action_verb(action: str) -> Verb:
    """What kind of act an action names, from its verb: ``user.login`` → ``logon``.

    Segments are read from the last to the first; in each, the whole segment without
    separators (``sign_in`` → ``signin``) and then its words left to right are looked up
    (``password_reset`` → ``reset`` → ``update``). Nothing recognised is ``other``.
    """
    for segment in reversed(action.lower().split(".")):
        words = [w for w in _TOKEN_SPLIT.split(segment) if w]
        for word in ("".join(words), *words):
            if word in _VERBS:
                return _VERBS[word]
    return "other"


# One severity table for every format, by outcome (docs/siem.md, "Severity").
OCSF_SEVERITY: Final = MappingProxyType(
    {"success": 1, "failure": 2, "error": 2, "denied": 3})  # Informational, Low, Low, Medium
CEF_SEVERITY: Final = MappingProxyType({"success": 1, "failure": 4, "error": 5, "denied": 6})
SYSLOG_SEVERITY: Final = MappingProxyType(
    {"success": "notice", "failure": "warning", "error": "error", "denied": "warning"})
_OCSF_SEVERITY_NAMES: Final = {1: "Informational", 2: "Low", 3: "Medium", 99: "Other"}


def _outcome(event: Mapping[str, Any]) -> str:
    return str(event.get("outcome", ""))


def _part(event: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    """A sub-object of the event (``actor``, ``target``, ``source``); empty when absent."""
    value = event.get(name)
    return value if isinstance(value, Mapping) else {}


def _epoch_ms(event: Mapping[str, Any], field: str) -> int:
    text = event.get(field)
    if not isinstance(text, str):
        raise ValidationError(field, "missing: a stored event always has it")
    try:
        return unix_micros(parse_time(text)) // 1000
    except ValueError as exc:
        raise ValidationError(field, str(exc)) from exc


def _trace(index: int, leaf_hash: bytes, log: str) -> dict[str, Any]:
    return {"log": log, "index": index, "leaf_hash": leaf_hash.hex()}


def _rest(event: Mapping[str, Any]) -> dict[str, Any]:
    """The event's fields no standard field of OCSF, CEF or ECS carries, left out when absent."""
    actor = _part(event, "actor")
    out: dict[str, Any] = {}
    for key in ("category", "metadata", "changes", "reason", "purpose", "subjects", "sealed",
                "erased"):
        if key in event:
            out[key] = event[key]
    if "on_behalf_of" in actor:
        out["actor_on_behalf_of"] = actor["on_behalf_of"]
    return out


def _drop_empty(obj: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in obj.items() if v is not None and v != {}}


# -- OCSF 1.1 ------------------------------------------------------------------------------------

_OCSF_AUTH_ACTIVITY: Final = {"logon": (1, "Logon"), "logoff": (2, "Logoff")}
_OCSF_API_ACTIVITY: Final = {"create": (1, "Create"), "read": (2, "Read"),
                             "update": (3, "Update"), "delete": (4, "Delete")}
_OCSF_STATUS: Final = {"success": (1, "Success"), "failure": (2, "Failure"),
                       "denied": (2, "Failure"), "error": (2, "Failure")}
_OCSF_USER_TYPE: Final = {"user": (1, "User"), "admin": (2, "Admin"), "system": (3, "System")}


def _ocsf_user(actor: Mapping[str, Any]) -> dict[str, Any]:
    user: dict[str, Any] = {"uid": actor.get("id"), "name": actor.get("name")}
    kind = actor.get("type")
    if isinstance(kind, str):
        type_id, caption = _OCSF_USER_TYPE.get(kind.lower(), (99, kind))
        user["type_id"], user["type"] = type_id, caption
    return _drop_empty(user)


# A DNS host name (RFC 1123 labels of letters, digits and inner hyphens, dot-separated): what
# OCSF's ``hostname_t`` accepts. Anything else (an underscore, a space, a control character,
# non-ASCII) is not a host name in OCSF's sense and goes to the endpoint's free-text ``name``.
_HOSTNAME = re.compile(
    r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?\.)*[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?")
# What fills an object the class requires when the event says nothing true that could:
# ``src_endpoint.name`` (API Activity) and ``service.name`` (Authentication).
OCSF_UNKNOWN: Final = "unknown"


def _ocsf_endpoint(host: Any, ip: Any) -> dict[str, Any]:
    """An OCSF network endpoint from a host text and an address; empty when neither is usable."""
    endpoint: dict[str, Any] = {}
    if isinstance(host, str) and host:
        endpoint["hostname" if _HOSTNAME.fullmatch(host) else "name"] = host
    if _ip_version(ip):
        endpoint["ip"] = ip
    return endpoint


def to_ocsf(index: int, event: Mapping[str, Any], leaf_hash: bytes, *, log: str
            ) -> dict[str, Any]:
    """One event as an OCSF 1.1 event: Authentication (3002) or API Activity (6003).

    ``category == "authentication"`` is Authentication (Logon, Logoff or Other by the action's
    verb); everything else is API Activity (Create, Read, Update, Delete or Other).
    ``type_uid = class_uid * 100 + activity_id``; fields with no OCSF home go to ``unmapped``.
    Every record is valid against the OCSF 1.1.0 schema, class constraints included
    (docs/siem.md, "OCSF 1.1").
    """
    actor, target, source = _part(event, "actor"), _part(event, "target"), _part(event, "source")
    outcome, verb = _outcome(event), action_verb(str(event.get("action", "")))
    if event.get("category") == "authentication":
        class_uid, class_name, category_uid, category_name = (
            3002, "Authentication", 3, "Identity & Access Management")
        activity_id, activity_name = _OCSF_AUTH_ACTIVITY.get(verb, (99, "Other"))
    else:
        class_uid, class_name, category_uid, category_name = (
            6003, "API Activity", 6, "Application Activity")
        activity_id, activity_name = _OCSF_API_ACTIVITY.get(verb, (99, "Other"))
    status_id, status = _OCSF_STATUS.get(outcome, (99, "Other"))
    severity_id = OCSF_SEVERITY.get(outcome, 99)
    user = _ocsf_user(actor)
    src = _ocsf_endpoint(None, actor.get("ip"))
    dst = _ocsf_endpoint(source.get("host"), source.get("ip"))
    record: dict[str, Any] = {
        "class_uid": class_uid, "class_name": class_name,
        "category_uid": category_uid, "category_name": category_name,
        "activity_id": activity_id, "activity_name": activity_name,
        "type_uid": class_uid * 100 + activity_id,
        "type_name": f"{class_name}: {activity_name}",
        "time": _epoch_ms(event, "time"),
        "severity_id": severity_id, "severity": _OCSF_SEVERITY_NAMES[severity_id],
        "status_id": status_id, "status": status,
        "message": f"{event.get('action')} {outcome}",
        "metadata": _drop_empty({
            "version": OCSF_VERSION,
            "product": {"name": PRODUCT, "vendor_name": PRODUCT, "version": __version__},
            "uid": event.get("id"), "log_name": log, "sequence": index,
            "logged_time": _epoch_ms(event, "received_at"),
            "original_time": event.get("time"), "correlation_uid": event.get("trace_id")}),
        "actor": {"user": user},
        "src_endpoint": src,
        "dst_endpoint": dst,
        "unmapped": {**_trace(index, leaf_hash, log), **_rest(event)},
    }
    if outcome != "success":
        record["status_detail"] = outcome
    if "user_agent" in actor:
        record["http_request"] = {"user_agent": actor["user_agent"]}
    if class_uid == 3002:
        record["user"] = user  # the user being authenticated: the actor itself
        if "service" in source:
            record["service"] = {"name": source["service"]}
        elif not dst:  # the class needs service or dst_endpoint: say that it is not known
            record["service"] = {"name": OCSF_UNKNOWN}
        if "request_id" in event:
            record["unmapped"]["request_id"] = event["request_id"]
        if target:
            record["unmapped"]["target"] = dict(target)
    else:
        # API Activity requires src_endpoint: without a known (or unsealed) caller address,
        # its name says the caller is not known rather than inventing an address.
        record["src_endpoint"] = src or {"name": OCSF_UNKNOWN}
        record["api"] = _drop_empty({
            "operation": event.get("action"),
            "service": _drop_empty({"name": source.get("service")}),
            "request": _drop_empty({"uid": event.get("request_id")})})
        if "id" in target or "name" in target:  # a resource needs its uid or its name
            record["resources"] = [_drop_empty({
                "uid": target.get("id"), "name": target.get("name"), "type": target.get("type")})]
        elif target:
            record["unmapped"]["target"] = dict(target)
    return _drop_empty(record)


# -- CEF -----------------------------------------------------------------------------------------

def cef_header_escape(value: str) -> str:
    """A CEF header field: ``\\`` and ``|`` escaped; CR and LF (not allowed there) become spaces."""
    return (value.replace("\\", "\\\\").replace("|", "\\|")
            .replace("\r", " ").replace("\n", " "))


def cef_value_escape(value: str) -> str:
    """A CEF extension value: ``\\`` and ``=`` escaped, CR and LF written ``\\r`` and ``\\n``."""
    return (value.replace("\\", "\\\\").replace("=", "\\=")
            .replace("\r", "\\r").replace("\n", "\\n"))


def _ip_version(value: Any) -> int:
    try:
        return ipaddress.ip_address(str(value)).version
    except ValueError:
        return 0


def to_cef(index: int, event: Mapping[str, Any], leaf_hash: bytes, *, log: str) -> str:
    """One event as one CEF:0 line (no line terminator); extension keys in a fixed order."""
    actor, target, source = _part(event, "actor"), _part(event, "target"), _part(event, "source")
    action, outcome = str(event.get("action", "")), _outcome(event)
    ext: list[tuple[str, Any]] = [
        ("rt", _epoch_ms(event, "time")),
        ("externalId", event.get("id")),
        ("act", action), ("outcome", outcome), ("cat", event.get("category")),
        ("suid", actor.get("id")), ("suser", actor.get("name", actor.get("id"))),
    ]
    ip = actor.get("ip")
    if _ip_version(ip) == 6:
        ext += [("c6a2", ip), ("c6a2Label", "Source IPv6 Address")]
    else:
        ext.append(("src", ip))
    ext += [("requestClientApplication", actor.get("user_agent")),
            ("dvchost", source.get("host"))]
    dvc = source.get("ip")
    if _ip_version(dvc) == 6:
        ext += [("c6a1", dvc), ("c6a1Label", "Device IPv6 Address")]
    else:
        ext.append(("dvc", dvc))
    ext += [
        ("dproc", source.get("service")),
        ("reason", event.get("reason")),
        ("cs1Label", "log"), ("cs1", log),
        ("cs2Label", "leafHash"), ("cs2", leaf_hash.hex()),
        ("cn1Label", "index"), ("cn1", index),
        ("deviceCustomDate1Label", "receivedAt"),
        ("deviceCustomDate1", _epoch_ms(event, "received_at")),
        ("cs3Label", "targetType"), ("cs3", target.get("type")),
        ("cs4Label", "targetId"), ("cs4", target.get("id")),
        ("cs5Label", "targetName"), ("cs5", target.get("name")),
        ("cs6Label", "requestId"), ("cs6", event.get("request_id")),
        ("flexString1Label", "traceId"), ("flexString1", event.get("trace_id")),
    ]
    rest = _rest(event)
    rest.pop("category", None)
    rest.pop("reason", None)
    if "type" in actor:
        rest["actor_type"] = actor["type"]
    if rest:
        ext.append(("msg", encode_json(rest).decode("utf-8")))
    # A label whose value is absent says nothing: drop both.
    present = {k for k, v in ext if v is not None}
    pairs = [(k, v) for k, v in ext if v is not None
             and not (k.endswith("Label") and k.removesuffix("Label") not in present)]
    extension = " ".join(f"{k}={cef_value_escape(str(v))}" for k, v in pairs)
    name = f"{action} {outcome}"
    header = "|".join(cef_header_escape(h) for h in (
        PRODUCT, PRODUCT, __version__, action, name))
    return f"CEF:0|{header}|{CEF_SEVERITY.get(outcome, 5)}|{extension}"


# -- ECS 8.x -------------------------------------------------------------------------------------

# sealtrail category → (ECS event.category, {verb: event.type}, default event.type, prefix);
# every type used is one ECS expects for that category (docs/siem.md, "ECS categories").
_CRUD: Final = {"create": "creation", "update": "change", "delete": "deletion"}
_ECS_CATEGORY: Final[dict[str | None, tuple[str, Mapping[str, str], str, tuple[str, ...]]]] = {
    "authentication": ("authentication", {"logon": "start", "logoff": "end"}, "info", ()),
    "authorization": ("iam", _CRUD, "info", ()),
    "admin": ("iam", _CRUD, "info", ("admin",)),
    "configuration": ("configuration", {**_CRUD, "read": "access"}, "info", ()),
    "data_access": ("database", {}, "access", ()),
    "data_change": ("database", {}, "change", ()),
    "system": ("host", {"read": "access", "create": "change", "update": "change",
                        "delete": "change", "logon": "start", "logoff": "end"}, "info", ()),
    "audit_access": ("api", {}, "access", ()),
    None: ("api", {**_CRUD, "read": "access", "logon": "start", "logoff": "end"}, "info", ()),
}
_ECS_OUTCOME: Final = {"success": "success", "failure": "failure", "denied": "failure",
                       "error": "failure"}


def ecs_categorization(category: str | None, action: str) -> tuple[list[str], list[str]]:
    """``(event.category, event.type)`` for a sealtrail category and action."""
    ecs_category, by_verb, default, prefix = _ECS_CATEGORY.get(category, _ECS_CATEGORY[None])
    return [ecs_category], [*prefix, by_verb.get(action_verb(action), default)]


def to_ecs(index: int, event: Mapping[str, Any], leaf_hash: bytes, *, log: str
           ) -> dict[str, Any]:
    """One event as an ECS 8.x document; fields with no ECS home go under ``sealtrail``."""
    actor, target, source = _part(event, "actor"), _part(event, "target"), _part(event, "source")
    action, outcome = str(event.get("action", "")), _outcome(event)
    category = event.get("category")
    ecs_category, ecs_type = ecs_categorization(
        category if isinstance(category, str) else None, action)
    users = [actor.get("id"), actor.get("on_behalf_of")]
    ips = [actor.get("ip"), source.get("ip")]
    own = {**_trace(index, leaf_hash, log), **_rest(event)}
    own.pop("reason", None)
    if target:
        own["target"] = dict(target)
    if "type" in actor:
        own["actor_type"] = actor["type"]
    doc: dict[str, Any] = {
        "@timestamp": event.get("time"),
        "message": f"{action} {outcome}",
        "ecs": {"version": ECS_VERSION},
        "event": _drop_empty({
            "id": event.get("id"), "action": action, "category": ecs_category,
            "type": ecs_type, "outcome": _ECS_OUTCOME.get(outcome, "unknown"), "kind": "event",
            "created": event.get("received_at"), "dataset": "sealtrail.audit",
            "module": "sealtrail", "sequence": index,
            "severity": OCSF_SEVERITY.get(outcome), "reason": event.get("reason")}),
        "user": _drop_empty({"id": actor.get("id"), "name": actor.get("name")}),
        "source": _drop_empty({"ip": actor.get("ip")}),
        "user_agent": _drop_empty({"original": actor.get("user_agent")}),
        "host": _drop_empty({"name": source.get("host"),
                             "ip": [source["ip"]] if "ip" in source else None}),
        "service": _drop_empty({"name": source.get("service")}),
        "trace": _drop_empty({"id": event.get("trace_id")}),
        "http": ({"request": {"id": event["request_id"]}} if "request_id" in event else None),
        "related": _drop_empty({
            "user": sorted({u for u in users if isinstance(u, str)}) or None,
            "ip": sorted({i for i in ips if isinstance(i, str)}) or None}),
        "sealtrail": own,
    }
    return _drop_empty(doc)


# -- CSV -----------------------------------------------------------------------------------------

CSV_COLUMNS: Final = (
    "index", "time", "received_at", "id", "log", "category", "action", "outcome", "actor_id",
    "actor_name", "actor_ip", "target_type", "target_id", "target_name", "source_service",
    "source_host", "source_ip", "request_id", "reason", "leaf_hash")
SEALED_CELL: Final = "[sealed]"  # a personal field left sealed (docs/siem.md, "Sealed fields")
ERASED_CELL: Final = "[erased]"  # a personal field whose subject key was erased
_FORMULA_START: Final = ("=", "+", "-", "@", "\t", "\r")
_CELL_ESCAPES: Final = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def csv_cell(value: Any) -> str:
    """One CSV cell, safe to open in a spreadsheet and to read line by line.

    1. A cell starting with ``= + - @``, TAB or CR gets a leading ``'`` (OWASP CSV injection):
       a spreadsheet shows it as text instead of evaluating a formula.
    2. Control, format and line-separator characters are written as escapes (``\\n``,
       ``\\u001b``, ``\\u202e``), as the CLI's tables do: one record is one line, whatever reads it.
    """
    text = "" if value is None else str(value)
    if text.startswith(_FORMULA_START):  # 1
        text = "'" + text
    out = []
    for ch in text:  # 2
        if ch in _CELL_ESCAPES:
            out.append(_CELL_ESCAPES[ch])
        elif unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp", "Cs"):
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    return "".join(out)


def to_csv_row(index: int, event: Mapping[str, Any], leaf_hash: bytes, *, log: str
               ) -> list[str]:
    """One event as the cells of :data:`CSV_COLUMNS`; absent fields are empty cells."""
    actor, target, source = _part(event, "actor"), _part(event, "target"), _part(event, "source")
    sealed, erased = _sealed_fields(event), event.get("erased") or ()

    def personal(path: str, value: Any) -> Any:
        if value is None and path in sealed:
            return SEALED_CELL
        if value is None and path in erased:
            return ERASED_CELL
        return value

    values = (
        index, event.get("time"), event.get("received_at"), event.get("id"), log,
        event.get("category"), event.get("action"), event.get("outcome"), actor.get("id"),
        personal("actor.name", actor.get("name")), personal("actor.ip", actor.get("ip")),
        target.get("type"), target.get("id"), personal("target.name", target.get("name")),
        source.get("service"), source.get("host"), personal("source.ip", source.get("ip")),
        event.get("request_id"), event.get("reason"), leaf_hash.hex())
    return [csv_cell(v) for v in values]


def _sealed_fields(event: Mapping[str, Any]) -> tuple[str, ...]:
    sealed = event.get("sealed")
    fields = sealed.get("fields") if isinstance(sealed, Mapping) else None
    return tuple(f for f in fields if isinstance(f, str)) if isinstance(fields, list) else ()


def _csv_line(cells: Iterable[str]) -> str:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\r\n").writerow(cells)
    return buf.getvalue()


# -- JSON Lines ----------------------------------------------------------------------------------

def to_jsonl(index: int, event: Mapping[str, Any], leaf_hash: bytes, *, log: str) -> bytes:
    """The event as stored plus ``index``, ``log`` and ``leaf_hash``: sorted-key JSON, one line.

    The three added names are not event fields (the event model forbids unknown fields), so
    nothing of the event is overwritten.
    """
    return encode_json({**event, **_trace(index, leaf_hash, log)})


# -- syslog (RFC 5424) ---------------------------------------------------------------------------

Payload = Literal["cef", "ocsf", "ecs", "jsonl"]


def to_syslog(index: int, event: Mapping[str, Any], leaf_hash: bytes, *, log: str,
              payload: Payload = "cef", facility: str = "authpriv",
              app_name: str = PRODUCT) -> bytes:
    """One RFC 5424 message: the CEF line (or the OCSF, ECS or JSON Lines record) as MSG.

    Timestamp is the event's ``time``, HOSTNAME its ``source.host``, MSGID its action (cut to
    32 characters), severity from the outcome; ``[sealtrail@32473 log= index= leaf_hash= id=]``
    structured data traces it to the log. ``authpriv`` (the default) keeps messages, which
    may hold personal data, out of world-readable files on most syslog daemons.
    """
    if facility not in syslog.FACILITIES:
        raise ValidationError("facility", f"unknown syslog facility {facility!r}; one of "
                                          f"{', '.join(syslog.FACILITIES)}")
    if payload == "cef":
        message = to_cef(index, event, leaf_hash, log=log)
    elif payload == "ocsf":
        message = encode_json(to_ocsf(index, event, leaf_hash, log=log)).decode("utf-8")
    elif payload == "ecs":
        message = encode_json(to_ecs(index, event, leaf_hash, log=log)).decode("utf-8")
    elif payload == "jsonl":
        message = to_jsonl(index, event, leaf_hash, log=log).decode("utf-8")
    else:
        raise ValidationError("payload", f"unknown syslog payload {payload!r}; one of cef, "
                                         "ocsf, ecs, jsonl")
    sd = {SD_ID: [("log", log), ("index", str(index)), ("leaf_hash", leaf_hash.hex()),
                  ("id", str(event.get("id", "")))]}
    return syslog.format_message(
        timestamp=str(event.get("time", "")), message=message, facility=facility,
        severity=SYSLOG_SEVERITY.get(_outcome(event), "notice"),
        hostname=_part(event, "source").get("host"), app_name=app_name,
        msgid=str(event.get("action", "")) or None, sd=sd)


# -- the registry and the streaming writer ---------------------------------------------------

ExportEntry = tuple[int, Mapping[str, Any], bytes]
"""``(index, event, leaf hash)``: one stored entry, its event decrypted as far as the keys allow."""


OPEN_SEALED_DETAIL: Final = "open_sealed"
"""The key of the ``audit.export`` record's details that says whether sealed values were
opened: ``details={..., OPEN_SEALED_DETAIL: open_sealed}`` (True or False, always present)."""


def export_entries(selection: Iterable[tuple[Entry, Mapping[str, Any]]], *,
                   open_sealed: bool = False) -> Iterator[ExportEntry]:
    """The entries to export, from ``(entry, event as read)`` pairs (e.g. ``search(...)``).

    By default sealed personal fields stay sealed: each event is the one *stored* in the entry
    (``entry.event()``), whatever the reader could open, with its personal fields absent from
    their places and the ``sealed`` map (``ct``: key id and ciphertext, ``fields``: the sealed
    paths) carried as is. ``open_sealed=True`` exports the events as read, sealed fields
    opened where the keyring allows (erased ones listed under ``erased``); the caller records
    that choice in its ``audit.export`` record (:data:`OPEN_SEALED_DETAIL`). Entries retired by
    retention (no body left) are skipped. Lazy: one pair is drawn per entry yielded.
    """
    for entry, event in selection:
        if entry.retired:
            continue
        yield entry.index, (event if open_sealed else entry.event()), _leaf_hash(entry.leaf)


@dataclass(frozen=True, slots=True)
class ExportFormat:
    """One export format: how to write one entry, and what comes before the first."""

    name: str
    media_type: str
    suffix: str
    header: bytes
    record: Callable[[int, Mapping[str, Any], bytes, str], bytes]
    """One entry as bytes, terminator included."""


def _line(render: Callable[..., Any], terminator: bytes = b"\n"
          ) -> Callable[[int, Mapping[str, Any], bytes, str], bytes]:
    def record(index: int, event: Mapping[str, Any], leaf_hash: bytes, log: str) -> bytes:
        out = render(index, event, leaf_hash, log=log)
        if isinstance(out, dict):
            out = encode_json(out)
        elif isinstance(out, str):
            out = out.encode("utf-8")
        return bytes(out) + terminator
    return record


def _csv_record(index: int, event: Mapping[str, Any], leaf_hash: bytes, log: str) -> bytes:
    return _csv_line(to_csv_row(index, event, leaf_hash, log=log)).encode("utf-8")


FORMATS: Final[Mapping[str, ExportFormat]] = MappingProxyType({
    "ocsf": ExportFormat("ocsf", "application/x-ndjson", ".ocsf.jsonl", b"", _line(to_ocsf)),
    "cef": ExportFormat("cef", "text/plain", ".cef", b"", _line(to_cef)),
    "ecs": ExportFormat("ecs", "application/x-ndjson", ".ecs.jsonl", b"", _line(to_ecs)),
    "csv": ExportFormat("csv", "text/csv", ".csv", _csv_line(CSV_COLUMNS).encode("ascii"),
                        _csv_record),
    "jsonl": ExportFormat("jsonl", "application/x-ndjson", ".jsonl", b"", _line(to_jsonl)),
    "syslog": ExportFormat("syslog", "text/plain", ".log", b"", _line(to_syslog)),
})


def export_format(fmt: str) -> ExportFormat:
    """The registered format named ``fmt``; a ValidationError on ``fmt`` names the choices."""
    try:
        return FORMATS[fmt]
    except (KeyError, TypeError) as exc:
        raise ValidationError("fmt", f"unknown export format {fmt!r}; one of "
                                     f"{', '.join(FORMATS)}") from exc


def iter_export(fmt: str, entries: Iterable[ExportEntry], *, log: str) -> Iterator[bytes]:
    """The export as a stream of byte chunks: the header (if any), then one per entry.

    The format is checked before the first chunk is asked for, so a bad ``fmt`` fails at the
    call, not at the first ``next``.
    """
    spec = export_format(fmt)

    def chunks() -> Iterator[bytes]:
        if spec.header:
            yield spec.header
        for index, event, leaf_hash in entries:
            yield spec.record(index, event, leaf_hash, log)

    return chunks()


def write_export(fmt: str, entries: Iterable[ExportEntry], out: BinaryIO | TextIO, *,
                 log: str) -> int:
    """Write ``entries`` to ``out`` in format ``fmt``, one record at a time; return the count.

    ``out`` is a binary stream, or a text stream (an :class:`io.TextIOBase`: ``open(..., "w")``,
    ``io.StringIO``, ``sys.stdout``), which gets the same text decoded from UTF-8.
    """
    spec = export_format(fmt)
    write: Callable[[bytes], object]
    if isinstance(out, io.TextIOBase):
        text_out = out
        write = lambda chunk: text_out.write(chunk.decode("utf-8"))  # noqa: E731
    else:
        write = cast(BinaryIO, out).write

    if spec.header:
        write(spec.header)
    count = 0
    for index, event, leaf_hash in entries:
        write(spec.record(index, event, leaf_hash, log))
        count += 1
    return count


# -- the forwarder (I/O) -------------------------------------------------------------------------

def _send_datagrams(sock: socket.socket, messages: Iterable[bytes]) -> int:
    """One message per datagram (RFC 5426 §3.1); a message too large for UDP is refused."""
    count = 0
    for message in messages:
        if len(message) > _UDP_MAX:
            raise ValidationError("messages", f"message {count} is {len(message)} bytes; UDP "
                                              f"carries at most {_UDP_MAX}: use tcp or tls")
        sock.send(message)
        count += 1
    return count


def _send_framed(sock: socket.socket, messages: Iterable[bytes]) -> int:
    """Octet-counted frames (RFC 5425 §4.3), written in batches of about 64 KiB."""
    count, batch = 0, bytearray()
    for message in messages:
        batch += syslog.frame(message)
        count += 1
        if len(batch) >= 65536:
            sock.sendall(batch)
            batch.clear()
    if batch:
        sock.sendall(batch)
    return count


Transport = Literal["udp", "tcp", "tls"]


class SyslogForwarder:
    """Sends RFC 5424 messages to a syslog receiver over UDP, TCP or TLS.

    UDP sends one message per datagram (RFC 5426); TCP and TLS use octet-counted framing
    (RFC 5425 §4.3, RFC 6587 §3.4.1) over one connection, opened at the first ``send`` and kept
    until :meth:`close` (or the end of a ``with`` block). A failed send closes the connection and
    raises the ``OSError`` (``ssl.SSLError`` included); the next ``send`` connects again.
    """

    def __init__(self, host: str, port: int, transport: Transport = "tcp", *,
                 ssl_context: ssl.SSLContext | None = None, timeout: float = 10.0) -> None:
        if transport not in ("udp", "tcp", "tls"):
            raise ConfigError(f"transport: {transport!r} is not udp, tcp or tls")
        if not 0 < port < 65536:
            raise ConfigError(f"port: {port} is not in 1-65535")
        if ssl_context is not None and transport != "tls":
            raise ConfigError("ssl_context: only the tls transport uses one")
        self.host, self.port, self.transport, self.timeout = host, port, transport, timeout
        self._ssl_context = ssl_context
        self._sock: socket.socket | None = None

    def __repr__(self) -> str:
        return f"SyslogForwarder({self.host!r}, {self.port}, {self.transport!r})"

    def _connect(self) -> socket.socket:
        if self._sock is not None:
            return self._sock
        if self.transport == "udp":
            family, kind, proto, _, addr = socket.getaddrinfo(
                self.host, self.port, type=socket.SOCK_DGRAM)[0]
            sock = socket.socket(family, kind, proto)
            try:
                sock.settimeout(self.timeout)
                sock.connect(addr)
            except OSError:
                sock.close()
                raise
        else:
            sock = socket.create_connection((self.host, self.port), timeout=self.timeout)
            if self.transport == "tls":
                context = self._ssl_context or ssl.create_default_context()
                try:
                    sock = context.wrap_socket(sock, server_hostname=self.host)
                except BaseException:
                    sock.close()
                    raise
        self._sock = sock
        return sock

    def send(self, messages: Iterable[bytes]) -> int:
        """Send each message (from :func:`to_syslog`); return how many were sent."""
        try:
            sock = self._connect()
            if self.transport == "udp":
                return _send_datagrams(sock, messages)
            return _send_framed(sock, messages)
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        """Close the connection (idempotent).

        Over TLS a close_notify is sent first (RFC 5425 §4.4: the sender MUST send it, and MAY
        close without waiting for the receiver's): the socket is made non-blocking so that
        ``unwrap`` writes the alert and returns instead of waiting for the reply.
        """
        sock, self._sock = self._sock, None
        if sock is None:
            return
        try:
            if isinstance(sock, ssl.SSLSocket):
                sock.setblocking(False)
                sock.unwrap()
        except (OSError, ValueError):
            pass  # no reply yet (SSLWantReadError), or the peer is gone: closing is what is left
        finally:
            sock.close()

    def __enter__(self) -> SyslogForwarder:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
