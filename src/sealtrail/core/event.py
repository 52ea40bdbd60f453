"""The audit event model (v1): who did what, to what, when, from where, with what outcome.

An :class:`Event` is a frozen value object. It is validated when it is built from untrusted
input (:func:`parse_event` for JSON text, :func:`validate_event` for Python mappings); every
error names the field (``actor.id``, ``metadata.a.b``). Limits (documented in docs/events.md):

- a JSON event is at most ``MAX_EVENT_BYTES`` bytes, before and after normalisation;
- identifiers (``actor.id``, ``target.id``, ``request_id``...) at most 256 characters, other
  strings at most 1024 except ``reason`` and ``purpose`` (4096);
- ``metadata`` and ``changes`` nest at most ``MAX_DEPTH`` levels, keys at most 128 characters,
  integers within ±(2**53 - 1) (I-JSON), floats finite.

Control characters, CR and LF are allowed inside strings: they are data and are always
JSON-escaped in the leaf and in every output, so they can never start a second record.
The core never reads the clock: ``received_at`` (and ``time`` when absent) are given by the log.
"""

from __future__ import annotations

import functools
import ipaddress
import math
import re
import uuid
from collections.abc import Mapping
from typing import Annotated, Any, Final, Literal

import msgspec

from sealtrail.core.errors import ValidationError
from sealtrail.core.timefmt import normalize_time

MAX_EVENT_BYTES: Final = 32 * 1024
MAX_DEPTH: Final = 8
MAX_KEY_CHARS: Final = 128
MAX_INT: Final = 2**53 - 1

CATEGORIES: Final = ("authentication", "authorization", "data_access", "data_change",
                     "configuration", "admin", "system", "audit_access")
OUTCOMES: Final = ("success", "failure", "denied", "error")

Category = Literal["authentication", "authorization", "data_access", "data_change",
                   "configuration", "admin", "system", "audit_access"]
Outcome = Literal["success", "failure", "denied", "error"]

Ident = Annotated[str, msgspec.Meta(min_length=1, max_length=256)]
Text = Annotated[str, msgspec.Meta(max_length=1024)]
LongText = Annotated[str, msgspec.Meta(max_length=4096)]
Action = Annotated[str, msgspec.Meta(
    min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_:\-]+(\.[A-Za-z0-9_:\-]+)*\Z")]
IP = Annotated[str, msgspec.Meta(min_length=2, max_length=64)]
MAX_SUBJECTS: Final = 16
Subjects = Annotated[list[Ident], msgspec.Meta(min_length=1, max_length=MAX_SUBJECTS)]


_IPV4 = re.compile(r"^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}\Z")


@functools.lru_cache(maxsize=4096)
def _is_ipv6(value: str) -> bool:
    try:
        ipaddress.IPv6Address(value)
    except ValueError:
        return False
    return True


def _check_ip(value: str | None, field: str) -> None:
    """IPv4 by pattern (the hot path), IPv6 by the standard library (cached: addresses recur)."""
    if value is None or _IPV4.match(value):
        return
    if ":" in value and _is_ipv6(value):
        return
    raise ValueError(f"`{field}` is not an IP address")


class _Part(msgspec.Struct, frozen=True, gc=False, forbid_unknown_fields=True,
            omit_defaults=True, kw_only=True):
    """Base of the event's parts.

    Fields are declared in sorted order, so msgspec's ``deterministic`` order (definition
    order for fields, sorted dict keys) is the canonical sorted order, without sorting per
    encode; ``canonical`` checks this at import.
    """


class Actor(_Part, frozen=True, gc=False, forbid_unknown_fields=True, omit_defaults=True,
        kw_only=True):
    """Who acted: a user, service or system, possibly on behalf of another principal."""

    id: Ident
    ip: IP | None = None
    name: Text | None = None
    on_behalf_of: Ident | None = None
    type: Text | None = None
    user_agent: Text | None = None

    def __post_init__(self) -> None:
        _check_ip(self.ip, "ip")


class Target(_Part, frozen=True, gc=False, forbid_unknown_fields=True, omit_defaults=True,
        kw_only=True):
    """What was acted on."""

    id: Ident | None = None
    name: Text | None = None
    type: Text | None = None


class Source(_Part, frozen=True, gc=False, forbid_unknown_fields=True, omit_defaults=True,
        kw_only=True):
    """Where the event was produced."""

    host: Text | None = None
    ip: IP | None = None
    service: Text | None = None

    def __post_init__(self) -> None:
        _check_ip(self.ip, "ip")


class Changes(_Part, frozen=True, gc=False, forbid_unknown_fields=True, omit_defaults=True,
        kw_only=True):
    """A data change: the values before and after (any JSON, within the nesting limits)."""

    after: Any = None
    before: Any = None


class Sealed(_Part, frozen=True, gc=False, forbid_unknown_fields=True, omit_defaults=True,
             kw_only=True):
    """An event's personal fields, sealed together: which fields, and one AES-GCM token.

    ``ct`` is ``<key id>:<base64(nonce || ciphertext || tag)>`` of the fields' values (a JSON
    array, in the order of ``fields``); see :mod:`sealtrail.core.envelope`.
    """

    ct: str
    fields: list[str]


class Event(_Part, frozen=True, gc=False, forbid_unknown_fields=True, omit_defaults=True,
        kw_only=True):
    """One audit event. Required: ``actor.id``, ``action``, ``outcome``.

    ``subjects`` names the data subjects the event is about (GDPR): their personal fields are
    sealed under each subject's own key, so erasing a subject is destroying a key. ``sealed``
    holds the sealed fields of a stored event (written by the log, never accepted as input).
    """

    action: Action
    actor: Actor
    category: Category | None = None
    changes: Changes | None = None
    id: str | None = None
    metadata: dict[str, Any] | None = None
    outcome: Outcome
    purpose: LongText | None = None
    reason: LongText | None = None
    received_at: str | None = None
    request_id: Ident | None = None
    sealed: Sealed | None = None
    source: Source | None = None
    subjects: Subjects | None = None
    target: Target | None = None
    time: str | None = None
    trace_id: Ident | None = None

    def to_dict(self) -> dict[str, Any]:
        """The event as plain JSON-compatible values (absent fields left out)."""
        out: dict[str, Any] = msgspec.to_builtins(self)
        return out


def _field_path(msg: str) -> tuple[str, str]:
    """Split msgspec's ``"<message> - at `$.a.b`"`` into ("a.b", message)."""
    text, sep, where = msg.rpartition(" - at `")
    if not sep:
        text, where = msg, "$"
    path = where.rstrip("`")
    path = path[2:] if path.startswith("$.") else path.lstrip("$")
    # Missing and unknown fields are named in the message: make them the path.
    for marker in ("missing required field `", "unknown field `"):
        if marker in text:
            name = text[text.index(marker) + len(marker):].split("`", 1)[0]
            return (f"{path}.{name}" if path else name), text
    path = path or "event"
    # Messages raised in __post_init__ name the sub-field in backticks; append it to the path.
    if text.startswith("`") and "` is not" in text:
        sub = text[1:text.index("`", 1)]
        path = f"{path}.{sub}"
    return path, text


_ACTION_RULE: Final = ("an action is one or more words of letters, digits, '_', ':' or '-', "
                       "joined by single dots (no spaces, no leading or trailing dot), "
                       "e.g. invoice.read or user.password_reset")
_ALLOWED: Final = {"outcome": OUTCOMES, "category": CATEGORIES}


def _explain(field: str, msg: str) -> str:
    """msgspec's message in the user's words: enum errors list the allowed values, the
    action pattern is said in words instead of as a regex."""
    if field in _ALLOWED and msg.startswith("Invalid enum value"):
        return f"{msg}; use one of {', '.join(_ALLOWED[field])}"
    if field == "action" and "regex" in msg:
        return f"not a valid action: {_ACTION_RULE}"
    return msg


def _validation_error(exc: msgspec.ValidationError) -> ValidationError:
    field, msg = _field_path(str(exc))
    return ValidationError(field, _explain(field, msg))


def _walk(value: Any, path: str, depth: int) -> None:
    """Check free-form JSON (metadata, changes) against the nesting and number limits.

    ``depth`` counts containers: the metadata object itself is level 1, and objects or arrays
    may nest down to level ``MAX_DEPTH`` (their scalar members are fine at any level).
    """
    if depth > MAX_DEPTH and isinstance(value, dict | list):
        raise ValidationError(path, f"nested deeper than {MAX_DEPTH} levels")
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise ValidationError(path, "object keys must be strings")
            if len(key) > MAX_KEY_CHARS:
                raise ValidationError(f"{path}.{key[:32]}…", f"key longer than {MAX_KEY_CHARS}")
            _walk(item, f"{path}.{key}", depth + 1)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            _walk(item, f"{path}[{i}]", depth + 1)
    elif isinstance(value, bool) or value is None or isinstance(value, str):
        return
    elif isinstance(value, int):
        if not -MAX_INT <= value <= MAX_INT:
            raise ValidationError(path, "integer outside ±(2**53 - 1); send it as a string")
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise ValidationError(path, "number must be finite")
    else:
        raise ValidationError(path, f"unsupported value of type {type(value).__name__}")


def _json_ok(value: Any, depth: int) -> bool:
    """Fast check of the limits ``_walk`` enforces; ``_walk`` runs only to name a failure."""
    t = type(value)
    if t is str or t is bool or value is None:
        return True
    if t is int:
        return bool(-MAX_INT <= value <= MAX_INT)
    if t is float:
        return math.isfinite(value)
    if depth > MAX_DEPTH:
        return False
    if t is dict:
        for key, item in value.items():
            if type(key) is not str or len(key) > MAX_KEY_CHARS or not _json_ok(item, depth + 1):
                return False
        return True
    if t is list:
        return all(_json_ok(item, depth + 1) for item in value)
    return False


def _check_json(value: Any, path: str) -> None:
    if not _json_ok(value, 1):
        _walk(value, path, 1)
        raise ValidationError(path, "unsupported value")  # pragma: no cover - _walk raised


def _check(ev: Event) -> Event:
    """Checks msgspec's declarative constraints cannot express; returns the normalised event."""
    changes: dict[str, Any] = {}
    if ev.id is not None:
        try:
            canon = str(uuid.UUID(ev.id))
        except ValueError as exc:
            raise ValidationError("id", "not a UUID (use UUIDv7, or leave it out)") from exc
        if canon != ev.id:
            changes["id"] = canon
    if ev.time is not None:
        try:
            t = normalize_time(ev.time)
        except ValueError as exc:
            raise ValidationError("time", str(exc)) from exc
        if t != ev.time:
            changes["time"] = t
    if ev.received_at is not None:
        raise ValidationError("received_at", "is assigned by the log; leave it out")
    if ev.sealed is not None:
        raise ValidationError("sealed", "is written by the log (encrypted fields); leave it out")
    if ev.metadata is not None:
        _check_json(ev.metadata, "metadata")
    if ev.changes is not None:
        _check_json(ev.changes.before, "changes.before")
        _check_json(ev.changes.after, "changes.after")
    return msgspec.structs.replace(ev, **changes) if changes else ev


_decoder = msgspec.json.Decoder(Event)


def parse_event(data: bytes | str) -> Event:
    """Decode and validate one JSON event; raise ValidationError naming the field."""
    if len(data) > MAX_EVENT_BYTES:
        raise ValidationError("event", f"larger than {MAX_EVENT_BYTES} bytes")
    try:
        ev = _decoder.decode(data)
    except msgspec.ValidationError as exc:
        raise _validation_error(exc) from exc
    except msgspec.DecodeError as exc:
        raise ValidationError("event", f"malformed JSON: {exc}") from exc
    except UnicodeError as exc:  # msgspec raises it bare for invalid UTF-8 inside a string
        raise ValidationError("event", "not valid UTF-8") from exc
    except RecursionError as exc:
        raise ValidationError("event", "nested too deeply") from exc
    return _check(ev)


def validate_event(obj: Event | Mapping[str, Any]) -> Event:
    """Validate an Event built in Python, or a mapping of its fields."""
    if type(obj) is dict:
        pass
    elif isinstance(obj, Event):
        obj = obj.to_dict()
    elif not isinstance(obj, Mapping):
        raise ValidationError("event", f"must be an object, not {type(obj).__name__}")
    try:
        ev = msgspec.convert(obj, Event)
    except msgspec.ValidationError as exc:
        raise _validation_error(exc) from exc
    except RecursionError as exc:
        raise ValidationError("event", "nested too deeply") from exc
    return _check(ev)
