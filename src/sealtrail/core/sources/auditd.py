"""Linux audit (auditd) logs: the raw text of ``/var/log/audit/audit.log`` (or ``ausearch
--raw``), one sealtrail event per line.

A line is one audit record::

    [node=<host> ]type=<TYPE> msg=audit(<seconds>.<ms>:<serial>): <field>=<value> ...

and the records sharing ``<seconds>.<ms>:<serial>`` are one kernel event (a ``SYSCALL`` with
its ``EXECVE``, ``CWD``, ``PATH``... records). Each line is its own event because SigmaHQ's
auditd rules (log source ``linux/auditd``) are written per record: ``type: EXECVE`` with
``a0``/``a1``, ``type: SYSCALL`` with ``exe``, ``type: PATH`` with ``name``.

The record kept at ``metadata.original`` is the line parsed into one map: ``node`` (when the
line has it), ``type``, ``timestamp`` (``"1364481363.243"``), ``serial``, then the fields, in
order. Values in double quotes are unquoted. Values auditd hex-encodes (an unquoted hex string
for a value holding a space, a quote, a control or a non-ASCII character: ``proctitle``,
``name``, ``cwd``, ``comm``, ``exe``, ``path``, ``cmd``, ``acct``, ``key``, ``data``... and
``a0``..``aN``/``aN[i]`` of ``EXECVE``) are decoded to text -- ``proctitle``'s NUL separators
become spaces -- so rules match what was run, not its hex; a value whose bytes are not UTF-8
stays in hex (lossless), and one that is not valid hex, or that decodes to text auditd would
have quoted instead, is kept as written. The single-quoted ``msg='...'`` of user-space records
(``USER_AUTH``, ``USER_LOGIN``...) is parsed into the same map; a field named twice keeps its
first value (the header's ``type`` can never be overwritten). Words that are not fields (the
``avc:  denied  { read }  for`` of SELinux records) are kept, in order, in ``words``.
``log_format=ENRICHED`` lines carry the interpreted fields (``AUID="alice"``, ``UID="root"``,
``SYSCALL=openat``) after a 0x1D separator: they are fields like any other.

Lines are split on LF only (``sealtrail.core.jsonlines``); ausearch's ``----`` separators are
skipped; a line that is not a record, or that ends inside a quoted value (a truncated line),
is refused, naming the line.

Mapping (record field -> event field):

- id: auditd has no id per record: ``node``, ``timestamp`` and ``serial`` name the kernel
  event, and its records are told apart by their content (``type``, a PATH's ``item``, the
  argument numbers of a split EXECVE...). So the id is a hash of the whole parsed record,
  not of the line's position in its event: the same line in two files (overlapping exports,
  a log rotated in the middle of an event) is one event, where a position would shift and
  store it twice. A line repeated word for word within one kernel event in one input is kept
  apart by a ``repeat`` field (2, 3...) added to its record (so one input holding the same
  lines twice stores them twice). Parsing is part of the id: a change to it (a field added to
  the decoded ones) changes the ids of the lines it touches.
- time: the header's timestamp (Unix seconds with milliseconds).
- action: ``linux.auditd.<TYPE>`` (``linux.auditd.SYSCALL``, ``linux.auditd.USER_AUTH``).
- outcome: ``success=no`` is failure -- denied when ``exit`` is ``-13`` (EACCES) or ``-1``
  (EPERM); ``res=failed``/``res=0`` is failure; an SELinux/AppArmor denial that was enforced
  (``denied`` without ``permissive=1``) is denied; anything else is success.
- actor.id: the login user (``AUID`` name, else ``auid`` as ``uid:<n>``; unset, 4294967295,
  is skipped), then for user-space records the account acted on (``acct``: a failed ssh login
  of ``alice`` is alice's, not sshd's), then the ``UID`` name or ``uid`` as ``uid:<n>``, else
  ``unknown`` -- the records after a SYSCALL (EXECVE, PATH, CWD, PROCTITLE) carry no identity:
  their SYSCALL has it and shares their request_id. An id starting ``key:`` (sealtrail's API
  keys) is kept as ``auditd:key:...``. actor.ip: ``addr`` when it is an address.
- target: PATH ``name`` (file), CWD ``cwd`` (directory), EXECVE ``a0`` with the command line
  as its name, PROCTITLE the command line, USER_CMD ``cmd``, CONFIG_CHANGE ``key`` (audit
  rule), for user-space records the account (``acct``, else ``id`` as ``uid:<n>``), for
  SELinux denials the object (``path`` or ``name``, typed by ``tclass``), else ``exe``
  (executable, ``comm`` as its name).
- source: ``{"service": "auditd", "host": node}`` (``hostname`` is not used: in user-space
  records it names the remote peer, not the host that logged); request_id:
  ``[<node>:]<timestamp>:<serial>``, shared by the records of one kernel event.
- category: logins and credentials (``USER_AUTH``, ``USER_LOGIN``, ``USER_START``,
  ``USER_END``, ``USER_LOGOUT``, ``USER_ERR``, ``LOGIN``, ``CRED_*``, ``ANOM_LOGIN_*``)
  authentication; ``USER_ACCT`` (may this account log in) and MAC decisions (``AVC``,
  ``USER_AVC``, ``SELINUX_ERR``, ``APPARMOR_*``) authorization; user and group management
  (``ADD_USER``, ``DEL_USER``, ``ADD_GROUP``, ``DEL_GROUP``, ``USER_MGMT``, ``GRP_MGMT``,
  ``USER_CHAUTHTOK``, ``ACCT_LOCK``...) and ``USER_CMD`` (sudo) admin; audit and policy
  configuration (``CONFIG_CHANGE``, ``DAEMON_CONFIG``, ``MAC_POLICY_LOAD``, ``NETFILTER_CFG``...)
  configuration; everything else (``SYSCALL``, ``EXECVE``, ``PATH``, daemon and service
  records...) system.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from sealtrail.core.errors import ValidationError
from sealtrail.core.jsonlines import numbered_lines
from sealtrail.core.sources.base import (
    LogSource,
    Record,
    Source,
    Where,
    action_of,
    ident,
    imported,
    ip,
    safe_actor_id,
    text,
)

LOG_SOURCE: Final = LogSource("linux", "auditd")

_SEP: Final = " \t\x1d"  # 0x1D precedes the interpreted fields of log_format=ENRICHED
_HEADER: Final = re.compile(
    r"[ \t]*(?:node=(?P<node>[^ \t\x1d]+)[ \t]+)?type=(?P<type>[^ \t\x1d]+)[ \t]+"
    r"msg=audit\((?P<sec>\d{1,11})\.(?P<frac>\d{1,9}):(?P<serial>\d{1,20})\):?")
_TOKEN: Final = re.compile(
    rf"(?P<key>[^{_SEP}=]+)=(?:\"(?P<dq>[^\"]*)\"|'(?P<sq>[^']*)'|(?P<bare>[^{_SEP}]*))"
    rf"|(?P<word>[^{_SEP}]+)")
_HEX: Final = re.compile(r"(?:[0-9A-Fa-f]{2})+\Z")
_ARG: Final = re.compile(r"a\d+(?:\[\d+\])?\Z")
_STAMP: Final = re.compile(r"(\d{1,11})\.(\d{1,9})\Z")
# Fields auditd writes with audit_log_untrustedstring/audit_encode_value: quoted, or hex.
_ENCODED: Final = frozenset({
    "proctitle", "name", "cwd", "comm", "exe", "path", "cmd", "acct", "key", "data", "ocomm",
    "watch", "dir", "old-disk", "new-disk", "old-fs", "new-fs", "old-chardev", "new-chardev",
    "old-rng", "new-rng", "root_dir", "vm", "vm-ctx", "img-ctx", "device", "file", "grp",
    "new_group", "sw", "old_vcpu", "new_vcpu", "cgroup", "fs"})
_UNSET: Final = frozenset({"4294967295", "-1", "unset", "?", "(unknown)", "(none)", "(null)"})
_DENIED_EXITS: Final = frozenset({"-13", "-1"})  # EACCES, EPERM
_MAX_GROUPS: Final = 4096  # kernel events remembered for repeated lines (they interleave)

_AUTHENTICATION: Final = frozenset({
    "USER_AUTH", "USER_LOGIN", "USER_LOGOUT", "USER_START", "USER_END", "USER_ERR", "LOGIN",
    "GRP_AUTH"})
_AUTHORIZATION: Final = frozenset({
    "USER_ACCT", "AVC", "USER_AVC", "SELINUX_ERR", "USER_SELINUX_ERR", "APPARMOR_DENIED",
    "APPARMOR_ALLOWED", "APPARMOR_AUDIT"})
_ADMIN: Final = frozenset({
    "ADD_USER", "DEL_USER", "ADD_GROUP", "DEL_GROUP", "USER_MGMT", "GRP_MGMT",
    "USER_CHAUTHTOK", "GRP_CHAUTHTOK", "ACCT_LOCK", "ACCT_UNLOCK", "ROLE_ASSIGN",
    "ROLE_REMOVE", "ROLE_MODIFY", "USER_ROLE_CHANGE", "USER_CMD"})
_CONFIGURATION: Final = frozenset({
    "CONFIG_CHANGE", "DAEMON_CONFIG", "MAC_POLICY_LOAD", "USER_MAC_POLICY_LOAD", "MAC_STATUS",
    "MAC_CONFIG_CHANGE", "NETFILTER_CFG", "FEATURE_CHANGE", "MAC_UNLBL_ALLOW",
    "USER_MAC_CONFIG_CHANGE"})
# User-space records (libaudit's acct messages) name the account acted on in ``acct``.
_USER_SPACE: Final = ("USER_", "CRED_", "LOGIN", "GRP_", "ADD_", "DEL_", "ACCT_", "ROLE_",
                      "ANOM_LOGIN")


# -- reading lines ---------------------------------------------------------------------------

def _decode(key: str, value: str, rec_type: str) -> str:
    """A hex-encoded value as text; any other value as written."""
    if not (key in _ENCODED or (rec_type == "EXECVE" and _ARG.match(key))):
        return value
    if not _HEX.match(value):
        return value
    raw = bytes.fromhex(value)
    # auditd encodes only values holding a quote, a space, a control or a non-ASCII byte;
    # anything else it would have quoted, so this value was not encoded.
    if not any(b == 0x22 or b < 0x21 or b > 0x7E for b in raw):
        return value
    if key == "proctitle":
        raw = raw.rstrip(b"\0").replace(b"\0", b" ")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return value


def _parse_fields(body: str, rec_type: str, out: dict[str, Any], words: list[str],
                  where: str) -> None:
    for m in _TOKEN.finditer(body):
        key = m.group("key")
        if key is None:
            words.append(m.group("word"))
            continue
        sq, dq, bare = m.group("sq"), m.group("dq"), m.group("bare")
        if sq is not None and key == "msg":
            if "=" in sq:
                _parse_fields(sq, rec_type, out, words, where)
            else:
                out.setdefault(key, sq)
            continue
        if bare is not None and bare[:1] in ("\"", "'"):
            raise ValidationError(where, f"{key}: a quoted value is not closed (a truncated "
                                  "line?)")
        if dq is not None:
            value = dq
        elif sq is not None:
            value = sq
        else:
            value = _decode(key, bare or "", rec_type)
        out.setdefault(key, value)


def parse_line(line: str, where: str = "line") -> Record:
    """One audit record as a map (see the module docstring); ValidationError naming
    ``where`` when the line is not one."""
    m = _HEADER.match(line)
    if m is None:
        raise ValidationError(where, "not an audit record: expected "
                              "'type=<TYPE> msg=audit(<seconds>.<ms>:<serial>): ...'")
    out: dict[str, Any] = {}
    if m.group("node") is not None:
        out["node"] = m.group("node")
    rec_type = m.group("type")
    out["type"] = rec_type
    out["timestamp"] = f"{m.group('sec')}.{m.group('frac')}"
    out["serial"] = m.group("serial")
    words: list[str] = []
    _parse_fields(line[m.end():], rec_type, out, words, where)
    if words:
        out.setdefault("words", " ".join(words))
    # The header's values win over body fields of the same name (a hostile or odd record's
    # ``serial=x`` must not replace the serial its header gives).
    if m.group("node") is not None:
        out["node"] = m.group("node")
    out.update(type=rec_type, timestamp=f"{m.group('sec')}.{m.group('frac')}",
               serial=m.group("serial"))
    return out


def records(data: str) -> Iterator[tuple[Where, Record]]:
    """The records of an audit log, one per line (LF only), errors naming the line."""
    groups: dict[tuple[Any, ...], Counter[str]] = {}
    for n, line in numbered_lines(data.lstrip("\ufeff")):
        if not line.strip(" \t-"):
            continue  # ausearch's "----" between events
        where = f"line {n}"
        rec = parse_line(line, where)
        group = (rec.get("node"), rec["timestamp"], rec["serial"])
        seen = groups.pop(group, None) or Counter()
        groups[group] = seen  # most recent last: the oldest is forgotten first
        if len(groups) > _MAX_GROUPS:
            del groups[next(iter(groups))]
        content = json.dumps(rec, sort_keys=True, ensure_ascii=False)
        seen[content] += 1
        if seen[content] > 1:
            rec["repeat"] = seen[content]
        yield where, rec


# -- mapping ---------------------------------------------------------------------------------

def _field(record: Record, key: str) -> str | None:
    """A field's value when it is set (text, not ``?``, ``unset``, 4294967295...)."""
    value = record.get(key)
    if isinstance(value, bool) or not isinstance(value, str | int):
        return None
    out = str(value).strip()
    return out if out and out not in _UNSET else None


def _time(record: Record) -> tuple[str, datetime]:
    stamp = record.get("timestamp")
    m = _STAMP.match(stamp) if isinstance(stamp, str) else None
    if m is None or not isinstance(stamp, str):
        raise ValidationError("timestamp", "missing or not '<seconds>.<ms>' (the header's "
                              "msg=audit(<seconds>.<ms>:<serial>))")
    try:
        at = datetime.fromtimestamp(int(m.group(1)), UTC) + timedelta(
            microseconds=int(m.group(2).ljust(6, "0")[:6]))
    except (OverflowError, OSError, ValueError):
        raise ValidationError("timestamp", f"{stamp!r} is not a time") from None
    return stamp, at


def _outcome(record: Record) -> str:
    success = (_field(record, "success") or "").lower()
    if success == "no":
        return "denied" if record.get("exit") in _DENIED_EXITS else "failure"
    res = (_field(record, "res") or "").lower()
    if res in ("failed", "fail", "failure", "0"):
        return "failure"
    words = record.get("words")
    if (isinstance(words, str) and "denied" in words.split()
            and _field(record, "permissive") != "1"):
        return "denied"
    return "success"


def _uid(record: Record, key: str) -> str | None:
    """A numeric id field as ``uid:<n>``; the interpreted name fields are used as they are."""
    value = _field(record, key)
    return f"uid:{value}" if value is not None and value.isdigit() else value


def _actor_id(record: Record, rec_type: str) -> str:
    found = _field(record, "AUID") or _uid(record, "auid")
    if found is None and rec_type.startswith(_USER_SPACE):
        found = _field(record, "acct")
    if found is None:
        found = _field(record, "UID") or _uid(record, "uid")
    return safe_actor_id("auditd", ident(found) or "unknown")


def _arguments(record: Record) -> list[str]:
    args: list[str] = []
    while isinstance(value := record.get(f"a{len(args)}"), str):
        args.append(value)
    return args


def _target(record: Record, rec_type: str) -> dict[str, Any] | None:
    if rec_type == "PATH" and (name := _field(record, "name")):
        return {"id": ident(name), "type": "file"}
    if rec_type == "CWD" and (cwd := _field(record, "cwd")):
        return {"id": ident(cwd), "type": "directory"}
    if rec_type == "EXECVE" and (args := _arguments(record)):
        return {"id": ident(args[0]), "name": text(" ".join(args)), "type": "command"}
    if rec_type == "PROCTITLE" and (title := _field(record, "proctitle")):
        return {"name": text(title), "type": "command"}
    if rec_type == "USER_CMD" and (cmd := _field(record, "cmd")):
        return {"id": ident(cmd), "name": text(cmd), "type": "command"}
    if rec_type == "CONFIG_CHANGE" and (key := _field(record, "key")):
        return {"id": ident(key), "type": "audit_rule"}
    if rec_type.startswith(_USER_SPACE) and (
            account := _field(record, "acct") or _field(record, "ID") or _uid(record, "id")):
        return {"id": ident(account), "type": "account"}
    if rec_type in ("AVC", "USER_AVC") and (obj := _field(record, "path")
                                            or _field(record, "name")):
        return {"id": ident(obj), "type": text(_field(record, "tclass"))}
    if exe := _field(record, "exe"):
        return {"id": ident(exe), "name": text(_field(record, "comm")), "type": "executable"}
    return None


def _category(rec_type: str) -> str:
    if rec_type in _AUTHENTICATION or rec_type.startswith(("CRED_", "ANOM_LOGIN")):
        return "authentication"
    if rec_type in _AUTHORIZATION or rec_type.startswith("APPARMOR_"):
        return "authorization"
    if rec_type in _ADMIN:
        return "admin"
    if rec_type in _CONFIGURATION:
        return "configuration"
    return "system"


def event(record: Record) -> dict[str, Any]:
    """The sealtrail event for one parsed audit record (see the module docstring)."""
    rec_type = _field(record, "type")
    if rec_type is None:
        raise ValidationError("type", "missing: every audit record has a type")
    serial = record.get("serial")  # not _field: 4294967295 is a serial, not "unset"
    if not isinstance(serial, str) or not serial.isascii() or not serial.isdigit():
        raise ValidationError("serial", "missing or not a number (the header's "
                              "msg=audit(<seconds>.<ms>:<serial>))")
    stamp, at = _time(record)
    node = _field(record, "node")
    try:
        uid = json.dumps(record, sort_keys=True, ensure_ascii=False, default=str)
    except (TypeError, ValueError):
        raise ValidationError("record", "not a parsed audit record (keys must be text)"
                              ) from None
    out = imported(
        SOURCE, record, uid=uid, at=at, action=action_of("linux", "auditd", rec_type),
        outcome=_outcome(record),
        actor={"id": _actor_id(record, rec_type), "ip": ip(record.get("addr"))},
        target=_target(record, rec_type),
        origin={"service": "auditd", "host": text(node)},
        category=_category(rec_type))
    request_id = ident(f"{node}:{stamp}:{serial}" if node else f"{stamp}:{serial}")
    if request_id is not None:
        out["request_id"] = request_id
    return out


SOURCE: Final = Source(
    name="auditd",
    title="Linux audit log (auditd, raw format)",
    log_source=LOG_SOURCE,
    records=records,
    event=event,
    formats="the raw text of /var/log/audit/audit.log (or ausearch --raw), one record a line",
)
