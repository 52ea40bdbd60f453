"""Audit records of other systems as sealtrail events: the contract every source follows.

A security team wants the audit logs of its cloud, identity provider, code host, cluster and
hosts in the same tamper-evident trail as its own applications', and the detection rules the
community writes for those logs (SigmaHQ) running on them unchanged. So an imported record
becomes an event in two layers:

- the **sealtrail fields** (``actor``, ``action``, ``outcome``, ``target``, ``source``, ``time``)
  mapped from the record, so search, reports and sealtrail's own rules understand it;
- the **record itself**, intact, at ``metadata.original``, and its Sigma log source at
  ``metadata.log_source`` (``{"product": "aws", "service": "cloudtrail"}``): Sigma rules
  are chosen by that log source and read the record's own field names (monitor/sigma.py maps
  them there with pySigma processing pipelines).

``metadata`` is sealed at rest on an encrypting log (the default policy), so the record's
personal fields (addresses, e-mail addresses, user agents) are encrypted with the rest.

Exactly-once: the event id is a UUIDv7 whose time is the record's and whose other 74 bits are
a hash of the source's own record id (CloudTrail ``eventID``, Okta ``uuid``, ...), so
importing the same file twice, or two overlapping exports, stores each record once.

Limits the event model sets (docs/import.md): objects nested deeper than an event allows are
kept as their JSON text at the deepest level allowed; a record larger than an event may be is
refused, naming it; texts longer than a field allows are cut in the mapped fields only (the
record keeps them whole).

This module is pure (no I/O): the CLI and the service read files and bodies and append.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import zlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

import msgspec

from sealtrail.core.canonical import compact_json
from sealtrail.core.errors import ValidationError
from sealtrail.core.event import (
    MAX_DEPTH,
    MAX_EVENT_BYTES,
    MAX_INT,
    MAX_KEY_CHARS,
    Event,
    validate_event,
)
from sealtrail.core.jsonlines import numbered_lines
from sealtrail.core.reserved import KEY_ACTOR_PREFIX, OWN_SERVICE, reserved_field
from sealtrail.core.timefmt import format_time, parse_time
from sealtrail.core.uuid7 import make_uuid7

#: Where an imported event keeps the source's record and its Sigma log source.
ORIGINAL: Final = "original"
LOG_SOURCE: Final = "log_source"

_ACTION_CHARS: Final = re.compile(r"[^A-Za-z0-9_:\-]+")
_MAX_ACTION: Final = 128
_MAX_IDENT: Final = 256
_MAX_TEXT: Final = 1024


@dataclass(frozen=True, slots=True)
class LogSource:
    """A Sigma ``logsource``: the product and service whose rules apply to a source."""

    product: str
    service: str

    def as_dict(self) -> dict[str, str]:
        return {"product": self.product, "service": self.service}


Where = str  # "line 12" or "record 3": how an error names a record of the input
Record = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Source:
    """One importable source: its name on the command line, its Sigma log source, how its
    files are split into records, and how one record becomes an event.

    ``log_source_of`` picks the log source of one record where a source has several (Azure's
    activity, sign-in and audit logs); by default every record has ``log_source``.
    """

    name: str
    title: str
    log_source: LogSource
    records: Callable[[str], Iterator[tuple[Where, Record]]]
    event: Callable[[Record], dict[str, Any]]
    formats: str = ""  # what files it reads, for --help and errors
    log_source_of: Callable[[Record], LogSource] | None = None

    def source_of(self, record: Record) -> LogSource:
        return self.log_source if self.log_source_of is None else self.log_source_of(record)


# -- reading files ---------------------------------------------------------------------------

def json_records(text: str, containers: tuple[str, ...] = ()) -> Iterator[tuple[Where, Record]]:
    """The records of a JSON export: an object holding the list under one of ``containers``
    (``{"Records": [...]}``), a JSON array, one object, or JSON Lines (one record per line,
    split on LF only). Every record must be an object; errors name the line or record."""
    body = text.lstrip("\ufeff \t\r\n")
    if not body:
        return
    whole: Any = None
    if body[0] in "[{":
        try:
            whole = json.loads(body)
        except json.JSONDecodeError:
            whole = None  # JSON Lines (several texts), or broken: read line by line
        except (ValueError, RecursionError) as exc:  # nested too deep, a number too long
            raise ValidationError("input", f"not readable JSON ({_why(exc)})") from None
    if isinstance(whole, list):
        yield from _listed(whole, "record")
        return
    if isinstance(whole, dict):
        for key in containers:
            if isinstance(whole.get(key), list):
                yield from _listed(whole[key], "record")
                return
        yield "record 1", whole
        return
    for n, line in numbered_lines(body):
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ValidationError(f"line {n}", f"not JSON ({exc.msg} at column {exc.colno})"
                                  ) from None
        except (ValueError, RecursionError) as exc:
            raise ValidationError(f"line {n}", f"not readable JSON ({_why(exc)})") from None
        if not isinstance(rec, dict):
            raise ValidationError(f"line {n}", "expected a JSON object (one record per line)")
        yield f"line {n}", rec


def _why(exc: BaseException) -> str:
    return ("nested too deeply" if isinstance(exc, RecursionError)
            else str(exc).split(";")[0][:120])


def _listed(items: list[Any], noun: str) -> Iterator[tuple[Where, Record]]:
    for n, rec in enumerate(items, 1):
        if not isinstance(rec, dict):
            raise ValidationError(f"{noun} {n}", "expected a JSON object")
        yield f"{noun} {n}", rec


# -- building events -------------------------------------------------------------------------

def record_time(value: Any, field: str) -> datetime:
    """A record's time: RFC 3339 text, or Unix seconds/milliseconds as a number."""
    if isinstance(value, bool) or value is None:
        raise ValidationError(field, "missing: the record's time is required")
    if isinstance(value, int | float):
        seconds = value / 1000 if value > 1e11 else value
        try:
            at = datetime.fromtimestamp(seconds, UTC)
        except (OverflowError, OSError, ValueError):
            raise ValidationError(field, f"{value!r} is not a time") from None
    elif isinstance(value, str):
        try:
            at = parse_time(value)
        except ValueError as exc:
            raise ValidationError(field, f"{value!r}: {exc}") from None
    else:
        raise ValidationError(field, f"expected a time, got {type(value).__name__}")
    if at.year < 1970:  # a UUIDv7 holds Unix milliseconds from 1970 on
        raise ValidationError(field, f"{value!r} is before 1970")
    return at


def import_id(source: str, uid: str, at: datetime) -> str:
    """The event id of a record: UUIDv7 at the record's time, the rest a hash of the source
    name and the source's own id for the record (the same record gives the same id)."""
    key = f"sealtrail-import\0{source}\0{uid}".encode("utf-8", "surrogatepass")
    digest = hashlib.sha256(key).digest()[:10]
    return str(make_uuid7(int(at.timestamp() * 1000), digest))


def record_digest(record: Mapping[str, Any]) -> str:
    """A digest of a whole record (its canonical JSON), for sources whose own record id a
    client can choose: two different records under one such id must not share an event id,
    or the second would be taken for a retry of the first and silently not stored."""
    text = compact_json(record, lenient=True)
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def action_of(*parts: str) -> str:
    """An event action from the source's own names, joined by dots: in each part, runs of
    characters an action may not hold (dots included) become one ``_``
    (``Microsoft.Storage/x/write`` -> ``Microsoft_Storage_x_write``); at most 128 characters.
    A source whose names are dotted words (``user.session.start``) splits them into parts
    first."""
    clean = [p for p in (_ACTION_CHARS.sub("_", part).strip("._") for part in parts) if p]
    text = ".".join(clean) or "unknown"
    return text[:_MAX_ACTION].rstrip(".")


def ident(value: Any) -> str | None:
    """An id field (at most 256 characters), or None for a missing or empty value."""
    if value is None or isinstance(value, dict | list):
        return None
    text = str(value).strip()
    return text[:_MAX_IDENT] if text else None


def obj(value: Any) -> dict[str, Any]:
    """A nested object of a record, or an empty one for anything else: records are untrusted,
    so a field that should hold an object may hold anything (a string, a list, null)."""
    return value if isinstance(value, dict) else {}


def safe_actor_id(product: str, actor_id: str) -> str:
    """An actor id that cannot be mistaken for one of sealtrail's API keys: sealtrail names
    its keys ``key:<id>`` in its own records, so an imported id starting ``key:`` is prefixed
    with the source's product (``aws:key:...``), cut to the 256 characters an id may hold;
    any other id is returned unchanged."""
    if actor_id.startswith(KEY_ACTOR_PREFIX):
        return f"{product}:{actor_id}"[:_MAX_IDENT]
    return actor_id


def safe_service(product: str, service: str) -> str:
    """A ``source.service`` that cannot be mistaken for sealtrail's own: a record's service
    named exactly ``sealtrail`` becomes ``<product>:sealtrail``; any other is unchanged."""
    return f"{product}:{service}" if service == OWN_SERVICE else service


def text(value: Any) -> str | None:
    """A text field (at most 1024 characters), or None."""
    if value is None or isinstance(value, dict | list):
        return None
    out = str(value)
    return out[:_MAX_TEXT] if out else None


def ip(value: Any) -> str | None:
    """An address the event model accepts (IPv4 or IPv6, no port, no zone), else None: a
    source's "address" is sometimes a host name or an AWS service name."""
    import ipaddress  # noqa: PLC0415 - pure, small; kept next to its one use

    if not isinstance(value, str):
        return None
    try:
        return str(ipaddress.ip_address(value.strip().strip("[]")))
    except ValueError:
        return None


def _fit(value: Any, depth: int) -> Any:
    """The record as an event may hold it, everything else kept: an object nested deeper than
    an event allows, or with a key longer than an event's keys may be, becomes its JSON text;
    an integer past what JSON numbers hold exactly (±2**53) and a NaN or infinity become their
    decimal text."""
    if isinstance(value, dict):
        if depth > MAX_DEPTH or any(len(str(k)) > MAX_KEY_CHARS for k in value):
            return compact_json(value, lenient=True)
        return {str(k): _fit(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list):
        if depth > MAX_DEPTH:
            return compact_json(value, lenient=True)
        return [_fit(v, depth + 1) for v in value]
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > MAX_INT:
        return str(value)
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


def imported(source: Source, record: Mapping[str, Any], *, uid: str, at: datetime,
             action: str, outcome: str, actor: Mapping[str, Any],
             target: Mapping[str, Any] | None = None,
             origin: Mapping[str, Any] | None = None,
             category: str | None = None) -> dict[str, Any]:
    """The event for one record: the mapped fields (``None`` values dropped), the id from
    ``uid``, and the record at ``metadata.original`` with its log source beside it."""
    def clean(part: Mapping[str, Any] | None) -> dict[str, Any] | None:
        out = {k: v for k, v in (part or {}).items() if v is not None}
        return out or None

    actor_part = clean(actor) or {"id": "unknown"}
    actor_part.setdefault("id", "unknown")
    event: dict[str, Any] = {
        "id": import_id(source.name, uid, at),
        "time": format_time(at),
        "action": action,
        "outcome": outcome,
        "actor": actor_part,
        # metadata is level 1, the record level 2: its own objects nest from level 3.
        "metadata": {LOG_SOURCE: source.source_of(dict(record)).as_dict(),
                     ORIGINAL: _fit(dict(record), 2)},
    }
    for key, part in (("target", clean(target)), ("source", clean(origin))):
        if part is not None:
            event[key] = part
    if category is not None:
        event["category"] = category
    return event


def log_source_of(event: Mapping[str, Any]) -> LogSource | None:
    """The log source an event was imported from, if it was."""
    meta = event.get("metadata")
    found = meta.get(LOG_SOURCE) if isinstance(meta, dict) else None
    if (isinstance(found, dict) and isinstance(found.get("product"), str)
            and isinstance(found.get("service"), str)):
        return LogSource(found["product"], found["service"])
    return None


# -- whole inputs ----------------------------------------------------------------------------

_GZIP_MAGIC: Final = b"\x1f\x8b"


def _gunzip(data: bytes, limit: int, what: str) -> bytes:
    """Every gzip member of ``data`` inflated, refusing a truncated or corrupt stream and
    stopping as soon as the output passes ``limit``."""
    out = bytearray()
    rest = data
    while rest:
        inflater = zlib.decompressobj(wbits=31)
        try:
            out += inflater.decompress(rest, limit + 1 - len(out))
        except zlib.error as exc:
            raise ValidationError(what, f"not a readable gzip file ({exc})") from None
        if len(out) > limit or inflater.unconsumed_tail:
            raise ValidationError(what, f"larger than {limit} bytes once unzipped")
        if not inflater.eof:
            raise ValidationError(what, "not a readable gzip file (it ends early)")
        rest = inflater.unused_data
    return bytes(out)


def input_text(data: bytes, limit: int, what: str) -> str:
    """The text of an input file or body: gunzipped if it is gzip (CloudTrail delivers
    ``.json.gz``), at most ``limit`` bytes once unzipped (a small file must not expand
    without bound), UTF-8."""
    if data.startswith(_GZIP_MAGIC):
        data = _gunzip(data, limit, what)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValidationError(what, f"not UTF-8 text (byte {exc.start})") from None


@dataclass(frozen=True, slots=True)
class Converted:
    """A source's input as events ready to append, and the records left out (with why; the
    first :data:`MAX_SKIPPED_KEPT`, ``skipped_count`` counts them all)."""

    events: list[Event]
    skipped: list[tuple[Where, str]]
    records: int
    skipped_count: int = 0
    wheres: tuple[Where, ...] = ()  # where each event's record was in the input


MAX_SKIPPED_KEPT: Final = 1000


class TooManyRecordsError(ValidationError):
    """The input holds more records than the caller takes at once (the service's limit)."""


def checked_event(source: Source, record: Record, not_after: datetime | None = None) -> Event:
    """One record as a validated event that the engine will take (ValidationError if not):
    ``not_after`` is the latest time the log takes, when known."""
    event = validate_event(source.event(record))
    if not_after is not None and event.time is not None \
            and event.time > format_time(not_after):
        raise ValidationError("time", f"{event.time} is later than the log takes (its clock "
                              f"allows up to {format_time(not_after)})")
    try:
        encoded = msgspec.json.encode(event)
    except UnicodeEncodeError:
        raise ValidationError("event", "holds text that is not valid Unicode (a lone "
                              "surrogate, as JSON's \\ud800 escapes allow)") from None
    if len(encoded) > MAX_EVENT_BYTES:
        raise ValidationError("event", f"larger than {MAX_EVENT_BYTES} bytes: the record is "
                              "too large for one event")
    refused = reserved_field(event.action, event.source.service if event.source else None,
                             event.actor.id)
    if refused is not None:
        raise ValidationError(*refused)
    return event


def convert(source: Source, text: str, *, skip_invalid: bool = False,
            max_records: int | None = None, not_after: datetime | None = None) -> Converted:
    """Every record of ``text`` as a validated event, in input order.

    A record that cannot be mapped, or whose event the model refuses (too large, a reserved
    name), raises ValidationError naming the record (``line 12: eventTime: ...``) before
    anything is appended; with ``skip_invalid`` it is left out and listed instead. Input that
    cannot be read on (a line that is not JSON) always raises. Records are checked as the
    engine will check them, so an import that starts does not stop half way: ``not_after`` is
    the latest time the log takes (its clock plus the few minutes it allows ids ahead).
    """
    events: list[Event] = []
    wheres: list[Where] = []
    skipped: list[tuple[Where, str]] = []
    count = skipped_count = 0
    for where, record in source.records(text):
        count += 1
        if max_records is not None and count > max_records:  # stop before doing the work
            raise TooManyRecordsError("input", f"more than {max_records} records: split the file")
        try:
            events.append(checked_event(source, record, not_after))
            wheres.append(where)
        except ValidationError as exc:
            if not skip_invalid:
                raise ValidationError(f"{where}: {exc.field}", exc.message) from None
            skipped_count += 1
            if len(skipped) < MAX_SKIPPED_KEPT:
                skipped.append((where, f"{exc.field}: {exc.message}"))
    return Converted(events, skipped, count, skipped_count, tuple(wheres))
