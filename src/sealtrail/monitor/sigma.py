"""Sigma rules over sealtrail events: pySigma parses, this module compiles to engine rules.

A rule's ``logsource`` chooses what it runs on:

- ``product: sealtrail``: sealtrail's own events. Field names are event paths (``actor.id``)
  or the aliases of :data:`FIELD_ALIASES`; ``category`` and ``service`` narrow the rule to
  the event's ``category`` and ``source.service``.
- the log sources ``sealtrail import`` reads (:data:`sigma_pipelines.LOG_SOURCES`: AWS
  CloudTrail, Okta, GitHub, GCP audit, Azure activity/sign-in/audit logs, Kubernetes audit,
  Linux auditd): the rule runs only on events whose ``metadata.log_source`` is its product
  (and service, when it names one), and its field names are the source record's, mapped by
  that log source's pySigma processing pipeline onto ``metadata.original.*`` (see
  monitor/sigma_pipelines.py). Lookups below ``metadata.original`` forgive case and
  underscores and read through lists, so SigmaHQ's rules run unchanged.

A detection rule becomes a ``match`` rule whose condition is compiled from pySigma's condition
tree into closures over the event dict; a correlation rule (Sigma correlations 2.0:
``event_count``, ``value_count``, ``temporal``, ``temporal_ordered``) becomes a ``threshold`` /
distinct-count ``threshold`` / ``sequence`` rule over the rules it references. Everything
unsupported is refused with a :class:`RuleError` naming the rule and the construct, never
silently approximated; a set of documents with several bad rules is refused as a whole with
one :class:`SigmaRulesError` naming every one of them.

Value semantics follow Sigma: strings compare case-insensitively (``|cased`` makes them
case-sensitive), ``*`` and ``?`` are wildcards, lists are any-of unless ``|all``; a field holding
a list matches when one of its elements does; numbers and booleans in the event are compared as
their text when the rule gives a string, objects as their JSON text. Keyword (field-less)
detections match when a string value anywhere in the record (the imported record, or the whole
sealtrail event) contains them; ``field|fieldref: other`` compares two fields of the event.
See docs/rules.md for the tables.
"""

from __future__ import annotations

import functools
import ipaddress
import json
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Final

import msgspec
from sigma.collection import SigmaCollection
from sigma.conditions import (
    ConditionAND,
    ConditionFieldEqualsValueExpression,
    ConditionNOT,
    ConditionOR,
    ConditionValueExpression,
)
from sigma.correlations import (
    SigmaCorrelationCondition,
    SigmaCorrelationRule,
    SigmaCorrelationType,
)
from sigma.exceptions import SigmaError, SigmaRuleLocation
from sigma.modifiers import reverse_modifier_mapping
from sigma.rule import SigmaDetection, SigmaDetectionItem, SigmaRule
from sigma.types import (
    CompareOperators,
    SigmaBool,
    SigmaCasedString,
    SigmaCIDRExpression,
    SigmaCompareExpression,
    SigmaExists,
    SigmaFieldReference,
    SigmaNull,
    SigmaNumber,
    SigmaRegularExpression,
    SigmaRegularExpressionFlag,
    SigmaString,
    SigmaType,
    SpecialChars,
)

from sealtrail.core.event import CATEGORIES, MAX_DEPTH
from sealtrail.monitor import sigma_pipelines
from sealtrail.monitor.rules import (
    Condition,
    Getter,
    Predicate,
    Rule,
    RuleError,
    RulesError,
    Severity,
    Single,
    Step,
    StepSequence,
    Threshold,
    check_unique,
    digest_of,
    field_getter,
)

__all__ = ["EVENT_FIELDS", "FIELD_ALIASES", "SUPPORTED_MODIFIERS", "SigmaRulesError",
           "compile_documents", "load_sigma", "map_field", "supported_log_sources"]

#: Sigma field names (and common SIEM/ECS spellings) -> event paths. The event's own dotted
#: paths always win: ``source.ip`` is the producing host's address, as in the event model.
FIELD_ALIASES: Final[dict[str, str]] = {
    "user": "actor.id", "User": "actor.id", "user.name": "actor.id", "UserName": "actor.id",
    "username": "actor.id", "user.id": "actor.id", "SubjectUserName": "actor.id",
    "SourceIp": "actor.ip", "src_ip": "actor.ip", "client.ip": "actor.ip",
    "ClientIP": "actor.ip", "IpAddress": "actor.ip",
    "UserAgent": "actor.user_agent", "user_agent": "actor.user_agent",
    "user_agent.original": "actor.user_agent",
    "event.action": "action", "EventName": "action", "eventName": "action",
    "event.outcome": "outcome", "event.category": "category",
    "TargetUserName": "target.id", "ObjectName": "target.name", "ObjectType": "target.type",
    "Hostname": "source.host", "ComputerName": "source.host", "Computer": "source.host",
    "host.name": "source.host", "service.name": "source.service", "Service": "source.service",
    "Application": "source.service",
}

#: The event paths a rule may name; below ``metadata.`` and ``changes.`` any path is allowed.
EVENT_FIELDS: Final = frozenset({
    "id", "action", "outcome", "category", "time", "received_at", "reason", "purpose",
    "request_id", "trace_id", "subjects",
    "actor.id", "actor.ip", "actor.name", "actor.type", "actor.user_agent", "actor.on_behalf_of",
    "target.id", "target.name", "target.type",
    "source.host", "source.ip", "source.service",
    "changes", "changes.before", "changes.after", "metadata",
})

SUPPORTED_MODIFIERS: Final = frozenset({
    "contains", "startswith", "endswith", "all", "re", "i", "ignorecase", "m", "multiline",
    "s", "dotall", "cidr", "exists", "gt", "gte", "lt", "lte", "cased", "neq", "fieldref",
})

_LEVELS: Final[dict[str, Severity]] = {"informational": "low", "low": "low", "medium": "medium",
                                       "high": "high", "critical": "critical"}
_LOWER_ALIASES: Final = {k.lower(): v for k, v in FIELD_ALIASES.items()}


def map_field(name: str, rule: str = "?") -> str:
    """The event path for a Sigma field name; :class:`RuleError` if it names nothing known."""
    if name in EVENT_FIELDS or name.startswith(("metadata.", "changes.before.",
                                                "changes.after.")):
        return name
    mapped = FIELD_ALIASES.get(name) or _LOWER_ALIASES.get(name.lower())
    if mapped is None:
        raise RuleError(rule, f"field {name!r}", "unknown field (use an event path such as "
                        "actor.id or metadata.<name>, or an alias listed in docs/rules.md)")
    return mapped


# -- values --------------------------------------------------------------------------------

def _text(x: Any) -> str | None:
    """An event value as text for string comparison: numbers and booleans as their text,
    objects as their compact JSON (as a SIEM compares a dynamic column with text: Azure rules
    say ``InitiatedBy|contains: alice@example.com`` of an object)."""
    t = type(x)
    if t is str:
        return x  # type: ignore[no-any-return]
    if t is bool:
        return "true" if x else "false"
    if t is int or t is float:
        return str(x)
    if t is dict or t is list:
        try:
            return _json_encode(x).decode()
        except (TypeError, msgspec.EncodeError):
            return json.dumps(x, ensure_ascii=False, separators=(",", ":"), default=str)
    return None


_json_encode: Final = msgspec.json.Encoder().encode


@functools.lru_cache(maxsize=65536)
def _ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def _one_of(values: frozenset[str], cased: bool) -> Callable[[Any], bool]:
    """Equality with any of ``values`` (already lower-cased unless ``cased``)."""
    if cased:
        return lambda x: (s := _text(x)) is not None and s in values

    def test(x: Any) -> bool:
        if type(x) is str:
            return x.lower() in values
        s = _text(x)
        return s is not None and s.lower() in values
    return test


def _plain(value: SigmaType) -> str | None:
    """The text of a wildcard-free, case-insensitive Sigma string, else ``None``."""
    if type(value) is SigmaString and all(isinstance(p, str) for p in value.s):
        return "".join(p for p in value.s if isinstance(p, str)).lower()
    return None


def _glob(parts: Sequence[str | SpecialChars], cased: bool, *, anchored: bool = True
          ) -> Callable[[str], bool]:
    """A matcher for a Sigma wildcard string that never backtracks: the pattern is cut at
    each ``*`` into fixed-length segments (literals and ``?``), and the segments are found in
    order, each at its leftmost place after the one before (which is always a right choice),
    so a value is read a few times at most, whatever the pattern. A regular expression of
    ``.*`` pieces took cubic time on long values (an audit.log line of 25 kB: 40 s).
    ``anchored``: the whole value must match; else the pattern is found in it."""
    star, one = SpecialChars.WILDCARD_MULTI, SpecialChars.WILDCARD_SINGLE
    fold: Callable[[str], str] = (lambda t: t) if cased else str.lower
    segments: list[list[str | SpecialChars]] = [[]]
    for p in parts:
        if p == star:
            segments.append([])
        else:
            segments[-1].append(fold(p) if isinstance(p, str) else p)
    # A segment: (literal text or None, compiled fixed-length expression or None, length).
    compiled: list[tuple[str | None, re.Pattern[str] | None, int]] = []
    for seg in segments:
        if all(isinstance(x, str) for x in seg):
            text = "".join(x for x in seg if isinstance(x, str))
            compiled.append((text, None, len(text)))
        else:
            rx = "".join(re.escape(x) if isinstance(x, str) else "." for x in seg if x != star
                         and (isinstance(x, str) or x == one))
            compiled.append((None, re.compile(rx, re.DOTALL),
                             sum(len(x) if isinstance(x, str) else 1 for x in seg)))
    head_anchor = anchored and parts[:1] != [star]
    tail_anchor = anchored and parts[-1:] != [star] and len(segments) > 1

    def find(s: str, seg: tuple[str | None, re.Pattern[str] | None, int], pos: int) -> int:
        text, rx, _ = seg
        if text is not None:
            at = s.find(text, pos)
            return -1 if at < 0 else at + len(text)
        assert rx is not None
        m = rx.search(s, pos)
        return -1 if m is None else m.end()

    def at(s: str, seg: tuple[str | None, re.Pattern[str] | None, int], pos: int) -> bool:
        text, rx, _ = seg
        if text is not None:
            return s.startswith(text, pos)
        assert rx is not None
        return rx.match(s, pos) is not None

    def match(value: str) -> bool:
        s = fold(value)
        if len(compiled) == 1:  # no star: one fixed-length segment
            seg = compiled[0]
            if anchored:
                return len(s) == seg[2] and at(s, seg, 0)
            return find(s, seg, 0) >= 0
        first, *middle, last = compiled
        pos = 0
        if head_anchor:
            if not at(s, first, 0):
                return False
            pos = first[2]
        else:
            middle = [first, *middle]
        for seg in middle:
            pos = find(s, seg, pos)
            if pos < 0:
                return False
        if tail_anchor:
            start = len(s) - last[2]
            return start >= pos and at(s, last, start)
        return find(s, last, pos) >= 0

    return match


def _string_test(value: SigmaString, rule: str, fld: str) -> Callable[[Any], bool]:
    cased = isinstance(value, SigmaCasedString)
    parts = list(value.s)
    for p in parts:
        if not isinstance(p, str | SpecialChars):
            raise RuleError(rule, f"{fld}: placeholder", "placeholders (|expand) are not "
                            "supported")
    star = SpecialChars.WILDCARD_MULTI
    plain = [p for p in parts if isinstance(p, str)]
    body = "".join(plain)
    fold: Callable[[str], str] = (lambda s: s) if cased else str.lower
    b = fold(body)
    if not any(isinstance(p, SpecialChars) for p in parts):
        return _one_of(frozenset({b}), cased)
    mid = parts[1:-1]
    if len(plain) == 1 and all(isinstance(p, str) for p in mid):
        lead, trail = parts[0] == star, parts[-1] == star
        if lead and trail and len(parts) == 3:
            return lambda x: (s := _text(x)) is not None and b in fold(s)
        if trail and not lead and len(parts) == 2:
            return lambda x: (s := _text(x)) is not None and fold(s).startswith(b)
        if lead and not trail and len(parts) == 2:
            return lambda x: (s := _text(x)) is not None and fold(s).endswith(b)
    glob = _glob([p for p in parts if isinstance(p, str | SpecialChars)], cased)
    return lambda x: (s := _text(x)) is not None and glob(s)


def _value_test(value: SigmaType, rule: str, fld: str) -> Callable[[Any], bool]:
    if isinstance(value, SigmaString):
        return _string_test(value, rule, fld)
    if isinstance(value, SigmaBool):
        flag = bool(value)
        return lambda x: x is flag
    if isinstance(value, SigmaCompareExpression):
        n = value.number.number
        op = value.op
        if op == CompareOperators.GT:
            return lambda x: (type(x) is int or type(x) is float) and x > n
        if op == CompareOperators.GTE:
            return lambda x: (type(x) is int or type(x) is float) and x >= n
        if op == CompareOperators.LT:
            return lambda x: (type(x) is int or type(x) is float) and x < n
        if op == CompareOperators.LTE:
            return lambda x: (type(x) is int or type(x) is float) and x <= n
        raise RuleError(rule, f"{fld}: comparison {op.name.lower()}", "not supported")
    if isinstance(value, SigmaNumber) and type(value) is SigmaNumber:
        num = value.number
        as_text = str(num)
        return lambda x: ((type(x) is int or type(x) is float) and x == num) or (
            type(x) is str and x == as_text)
    if isinstance(value, SigmaNull):
        return lambda x: x is None
    if isinstance(value, SigmaExists):
        exists = bool(value)
        return lambda x: (x is not None) is exists
    if isinstance(value, SigmaRegularExpression):
        flags = 0
        for f in value.flags:
            flags |= {SigmaRegularExpressionFlag.IGNORECASE: re.IGNORECASE,
                      SigmaRegularExpressionFlag.MULTILINE: re.MULTILINE,
                      SigmaRegularExpressionFlag.DOTALL: re.DOTALL}[f]
        rx = re.compile(str(value.regexp), flags)
        return lambda x: (s := _text(x)) is not None and rx.search(s) is not None
    if isinstance(value, SigmaCIDRExpression):
        net = value.network
        return lambda x: type(x) is str and (a := _ip(x)) is not None and a in net
    raise RuleError(rule, f"{fld}: value {type(value).__name__}", "not supported")


# -- reading imported records -----------------------------------------------------------------

_ORIGINAL: Final = sigma_pipelines.ORIGINAL_PREFIX
_MISSING: Final[Any] = object()


@functools.lru_cache(maxsize=1024)
def _decoded(text: str) -> Any:
    """A part of a record the importer kept as JSON text (nested deeper than an event may
    hold), as the object it was; the text itself when it is not JSON."""
    try:
        return json.loads(text)
    except (ValueError, RecursionError):  # not JSON, or nested past what Python parses
        return text


class _Keys:
    """A record object's keys by lower-cased spelling, and by lower-cased spelling without
    ``_``: what the forgiving lookups need, built once per object rather than by a scan of
    its keys per rule and field (every imported rule reads the same few objects of an event,
    and a field a rule names is often absent: a filter on a field the record lacks)."""

    __slots__ = ("dotted", "flat", "low", "obj", "size")

    def __init__(self, obj: dict[str, Any]) -> None:
        self.obj = obj
        self.size = len(obj)
        self.low: dict[str, str] = {}
        self.flat: dict[str, str] = {}
        self.dotted = False
        for k in obj:
            if type(k) is str:
                lk = k.lower()
                self.low.setdefault(lk, k)
                self.flat.setdefault(lk.replace("_", ""), k)
                self.dotted = self.dotted or "." in k


# Objects indexed lately, by id: an entry is used only for that very object (identity is
# checked, and the entry's reference keeps the id from being reused) of unchanged size;
# events are not changed while rules run on them. Bounded (the references keep the objects
# of the last few dozen events alive, events being at most 32 KiB): cleared when full.
_KEYS: dict[int, _Keys] = {}
_KEYS_MAX: Final = 256


def _keys_of(obj: dict[str, Any]) -> _Keys:
    found = _KEYS.get(id(obj))
    if found is not None and found.obj is obj and found.size == len(obj):
        return found
    if len(_KEYS) >= _KEYS_MAX:
        _KEYS.clear()
    found = _KEYS[id(obj)] = _Keys(obj)
    return found


def _fallback(d: dict[str, Any], path: _Path, i: int) -> tuple[Any, int]:
    """``path.parts[i]`` (absent as written) looked up case-insensitively, then ignoring
    ``_``, then as a literal dotted key of several parts; (value, parts used) or
    (_MISSING, 0)."""
    keys = _keys_of(d)
    k = keys.low.get(path.low[i]) or keys.flat.get(path.flat[i])
    if k is not None:
        return d[k], 1
    if keys.dotted:
        for j in range(i + 2, len(path.parts) + 1):
            k = keys.low.get(".".join(path.low[i:j]))
            if k is not None:
                return d[k], j - i
    return _MISSING, 0


class _Path:
    """A dotted path below ``metadata.original``, with the spellings the fallbacks need."""

    __slots__ = ("flat", "low", "parts")

    def __init__(self, rest: str) -> None:
        self.parts = rest.split(".")
        self.low = [p.lower() for p in self.parts]
        self.flat = [p.replace("_", "") for p in self.low]


def _walk(x: Any, path: _Path, i: int, depth: int) -> Any:
    """The value at ``path.parts[i:]`` below ``x`` (at nesting ``depth`` of the event),
    ``None`` when absent. A list on the way is searched element by element and the values
    found are returned as one list (any of which may match, as with any list value)."""
    parts = path.parts
    n = len(parts)
    while True:
        t = type(x)
        if t is str and depth > MAX_DEPTH and x[:1] in ("{", "["):
            x = _decoded(x)
            t = type(x)
        if i == n:
            return x
        if t is dict:
            v = x.get(parts[i], _MISSING)
            if v is _MISSING:
                v, used = _fallback(x, path, i)
                if v is _MISSING:
                    return None
                i += used
            else:
                i += 1
            x = v
            depth += 1
        elif t is list:
            out: list[Any] = []
            for e in x:
                found = _walk(e, path, i, depth + 1)
                if found is None:
                    continue
                if type(found) is list:
                    out.extend(found)
                else:
                    out.append(found)
            return out or None
        else:
            return None


def _original_getter(rest: str) -> Getter:
    """A reader of ``metadata.original.<rest>`` (see :func:`_walk`): the exact path first,
    the forgiving lookups only when it is absent."""
    path = _Path(rest)
    if len(path.parts) == 1:
        (k,) = path.parts

        def get1(ev: Mapping[str, Any]) -> Any:
            m = ev.get("metadata")
            o = m.get("original") if type(m) is dict else None
            if type(o) is not dict:
                return None
            v = o.get(k, _MISSING)
            return _walk(o, path, 0, 2) if v is _MISSING else v
        return get1

    def get(ev: Mapping[str, Any]) -> Any:
        m = ev.get("metadata")
        o = m.get("original") if type(m) is dict else None
        return _walk(o, path, 0, 2) if type(o) is dict else None
    return get


def _getter(path: str) -> Getter:
    if path.startswith(_ORIGINAL) and len(path) > len(_ORIGINAL):
        return _original_getter(path[len(_ORIGINAL):])
    return field_getter(path)


def _on_field(path: str, vt: Callable[[Any], bool]) -> Predicate:
    """Test a field's value; a list value matches when one of its elements does."""
    if path.startswith(_ORIGINAL):
        get_original = _getter(path)

        def test_original(ev: Mapping[str, Any]) -> bool:
            x = get_original(ev)
            return any(vt(e) for e in x) if type(x) is list else vt(x)
        return test_original
    parts = path.split(".")
    if len(parts) == 1:
        (k,) = parts

        def test1(ev: Mapping[str, Any]) -> bool:
            x = ev.get(k)
            return any(vt(e) for e in x) if type(x) is list else vt(x)
        return test1
    if len(parts) == 2:
        a, b = parts

        def test2(ev: Mapping[str, Any]) -> bool:
            x = ev.get(a)
            x = x.get(b) if type(x) is dict else None
            return any(vt(e) for e in x) if type(x) is list else vt(x)
        return test2
    get = field_getter(path)

    def test(ev: Mapping[str, Any]) -> bool:
        x = get(ev)
        return any(vt(e) for e in x) if type(x) is list else vt(x)
    return test


# -- conditions ----------------------------------------------------------------------------

def _index(path: str, value: SigmaType) -> frozenset[str] | None:
    """Index keys implied by ``action`` or ``category`` equal to (or starting with) a text."""
    if path not in ("action", "category") or not isinstance(value, SigmaString):
        return None
    parts = list(value.s)
    head = parts[0] if parts else ""
    if not isinstance(head, str):
        return None
    if path == "category":
        return frozenset({f"c:{head.lower()}"}) if len(parts) == 1 else None
    seg, dot, _ = head.partition(".")
    if not dot and len(parts) > 1:
        return None
    return frozenset({f"a:{seg.lower()}"})


# -- keywords and field references ----------------------------------------------------------

_REGEX_FLAGS: Final = {SigmaRegularExpressionFlag.IGNORECASE: "i",
                       SigmaRegularExpressionFlag.MULTILINE: "m",
                       SigmaRegularExpressionFlag.DOTALL: "s"}


class _KeywordSearch:
    """Keywords sorted by how they are searched in the record's text (its values joined by
    NUL): literal words with ``in`` on the lower-cased text (Python's case-insensitive regex
    alternations are an order of magnitude slower), wildcard words with one expression on the
    lower-cased text, ``|cased`` words and ``|re`` expressions with one on the text as is."""

    def __init__(self, values: Sequence[SigmaType], rule: str) -> None:
        self.words: list[str] = []          # found in text.lower()
        self.cased_words: list[str] = []    # found in text
        folded: list[str] = []              # expressions on text.lower()
        exact: list[str] = []               # expressions on text
        self.globs: list[Callable[[str], bool]] = []  # wildcard words, tried on each value
        for value in values:
            if isinstance(value, SigmaString):
                parts = list(value.s)
                while parts and parts[0] == SpecialChars.WILDCARD_MULTI:  # unanchored search:
                    parts.pop(0)                                       # `*x*` is `x`
                while parts and parts[-1] == SpecialChars.WILDCARD_MULTI:
                    parts.pop()
                cased = isinstance(value, SigmaCasedString)
                if all(isinstance(p, str) for p in parts):
                    word = "".join(p for p in parts if isinstance(p, str))
                    (self.cased_words if cased else self.words).append(
                        word if cased else word.lower())
                    continue
                wild = (SpecialChars.WILDCARD_MULTI, SpecialChars.WILDCARD_SINGLE)
                if not all(isinstance(p, str) or p in wild for p in parts):
                    raise RuleError(rule, "keywords: placeholder", "placeholders (|expand) "
                                    "are not supported")
                # Within one value, without backtracking (see _glob).
                self.globs.append(_glob([p for p in parts if isinstance(p, str | SpecialChars)],
                                        cased, anchored=False))
            elif isinstance(value, SigmaNumber) and type(value) is SigmaNumber:
                self.cased_words.append(str(value.number))
            elif isinstance(value, SigmaRegularExpression):
                flags = "".join(sorted(_REGEX_FLAGS[f] for f in value.flags))
                exact.append(f"(?{flags}:{value.regexp})" if flags else f"(?:{value.regexp})")
            else:
                raise RuleError(rule, f"keywords: value {type(value).__name__}", "keywords are "
                                "strings, numbers or regular expressions")
        try:
            self.folded = re.compile("|".join(folded), re.DOTALL) if folded else None
            self.exact = re.compile("|".join(exact), re.DOTALL) if exact else None
        except re.error as exc:
            raise RuleError(rule, "keywords", f"not a regular expression: {exc}") from exc

    def found(self, text: str) -> bool:
        if self.globs:
            values = text.split("\x00")
            if any(glob(v) for glob in self.globs for v in values):
                return True
        if self.words or self.folded is not None:
            low = text.lower()
            if any(w in low for w in self.words):
                return True
            if self.folded is not None and self.folded.search(low) is not None:
                return True
        if any(w in text for w in self.cased_words):
            return True
        return self.exact is not None and self.exact.search(text) is not None


def _keywords(values: Sequence[SigmaType], rule: str, imported: bool) -> Predicate:
    """True when one of ``values`` is found in a string (or number) anywhere in the imported
    record (``imported``) or in the whole event: Sigma's wildcards, case-insensitive unless
    ``|cased``, and unanchored -- a keyword is found *in* a value, as full-text search (and
    pySigma, when it maps keywords to a field) treats it.

    The values are gathered in one walk and searched as one text, NUL-separated (a wildcard
    does not cross a NUL, so a keyword is found within one value); the walk is only done for
    rules with keywords.
    """
    search = _KeywordSearch(values, rule).found

    def test(ev: Mapping[str, Any]) -> bool:
        root: Any = ev
        if imported:
            m = ev.get("metadata")
            root = m.get("original") if type(m) is dict else None
            if root is None:
                return False
        if type(root) is str:
            return search(root)
        found: list[str] = []
        add = found.append
        stack: list[Any] = [root] if type(root) is dict or type(root) is list else []
        push, pop = stack.append, stack.pop
        while stack:
            x = pop()
            for v in (x.values() if type(x) is dict else x):
                t = type(v)
                if t is str:
                    add(v)
                elif t is dict or t is list:
                    push(v)
                elif t is int or t is float:
                    add(str(v))
        return search("\x00".join(found))
    return test


def _fieldref(path: str, ref: SigmaFieldReference, rule: str) -> Predicate:
    """``path|fieldref: other``: the two fields of one event are equal (with ``|startswith``,
    ``|endswith``, ``|contains``: the first starts with, ends with or contains the second),
    compared as text, case-insensitively as Sigma compares strings; an absent field equals
    nothing; with lists, any element against any element."""
    left, right = _getter(path), _getter(map_field(ref.field, rule))
    starts, ends = ref.starts_with, ref.ends_with
    if starts and ends:
        def cmp(a: str, b: str) -> bool:
            return b in a
    elif starts:
        def cmp(a: str, b: str) -> bool:
            return a.startswith(b)
    elif ends:
        def cmp(a: str, b: str) -> bool:
            return a.endswith(b)
    else:
        def cmp(a: str, b: str) -> bool:
            return a == b

    def texts(x: Any) -> list[str]:
        items = x if type(x) is list else (x,)
        return [t.lower() for t in map(_text, items) if t is not None]

    def test(ev: Mapping[str, Any]) -> bool:
        a = left(ev)
        if a is None:
            return False
        b = right(ev)
        if b is None:
            return False
        bs = texts(b)
        return any(cmp(x, y) for x in texts(a) for y in bs)
    return test


# -- conditions ------------------------------------------------------------------------------

def _cost(node: Any) -> int:
    """A rough rank of what a condition costs, cheapest first, so that an AND stops on the
    cheap tests: equality of one field, other tests of one field, field references and
    combinations, keywords (a walk of the whole record)."""
    if isinstance(node, ConditionFieldEqualsValueExpression):
        if isinstance(node.value, SigmaFieldReference):
            return 2
        return 0 if _plain(node.value) is not None else 1
    if isinstance(node, ConditionValueExpression):
        return 4
    if isinstance(node, ConditionNOT | ConditionAND | ConditionOR):
        return max((_cost(a) for a in node.args), default=0) + 1
    return 3


def _compile_node(node: Any, rule: str, imported: bool = False) -> Condition:
    if isinstance(node, ConditionAND):
        # the order of an AND's operands does not change its value (no side effects)
        ordered = sorted(node.args, key=_cost)
        subs = [_compile_node(a, rule, imported) for a in ordered]
        fns = [s.test for s in subs]
        keys = next((s.keys for s in subs if s.keys is not None), None)
        if len(fns) == 2:
            f1, f2 = fns
            return Condition(lambda ev: f1(ev) and f2(ev), keys)
        if len(fns) == 3:
            g1, g2, g3 = fns
            return Condition(lambda ev: g1(ev) and g2(ev) and g3(ev), keys)
        return Condition(lambda ev: all(f(ev) for f in fns), keys)
    if isinstance(node, ConditionOR):
        args = node.args
        words = [a.value for a in args if isinstance(a, ConditionValueExpression)]
        if len(words) == len(args):
            # keywords: [a, b, c] -> one walk of the record with one alternation
            return Condition(_keywords(words, rule, imported), None)
        fields = {a.field for a in args if isinstance(a, ConditionFieldEqualsValueExpression)}
        texts = [_plain(a.value) for a in args
                 if isinstance(a, ConditionFieldEqualsValueExpression)]
        if len(fields) == 1 and len(texts) == len(args) and None not in texts:
            # field: [a, b, c] -> one set lookup instead of an OR of equalities
            (fld,) = fields
            path = map_field(fld, rule)
            keys = _merge([_index(path, a.value) for a in args
                           if isinstance(a, ConditionFieldEqualsValueExpression)])
            return Condition(_on_field(path, _one_of(frozenset(t for t in texts if t is not None),
                                                     cased=False)), keys)
        subs = [_compile_node(a, rule, imported) for a in node.args]
        return Condition(_or([s.test for s in subs]), _merge([s.keys for s in subs]))
    if isinstance(node, ConditionNOT):
        inner = _compile_node(node.args[0], rule, imported).test
        return Condition(lambda ev: not inner(ev), None)
    if isinstance(node, ConditionFieldEqualsValueExpression):
        path = map_field(node.field, rule)
        if isinstance(node.value, SigmaFieldReference):
            return Condition(_fieldref(path, node.value, rule), None)
        return Condition(_on_field(path, _value_test(node.value, rule, node.field)),
                         _index(path, node.value))
    if isinstance(node, ConditionValueExpression):
        return Condition(_keywords([node.value], rule, imported), None)
    raise RuleError(rule, "condition", f"unsupported construct {type(node).__name__}")


def _or(fns: Sequence[Predicate]) -> Predicate:
    if len(fns) == 2:
        f1, f2 = fns
        return lambda ev: f1(ev) or f2(ev)
    return lambda ev: any(f(ev) for f in fns)


def _merge(keys: Sequence[frozenset[str] | None]) -> frozenset[str] | None:
    if not keys or any(k is None for k in keys):
        return None
    merged = frozenset().union(*(k for k in keys if k is not None))
    return merged if len({k[:2] for k in merged}) == 1 else None


def _check_items(detection: SigmaDetection, rule: str, fields: bool = True) -> None:
    """Refuse unknown fields (``fields``: sealtrail's own events; the records of imported log
    sources have whatever fields they have) and unsupported modifiers, naming them."""
    for item in detection.detection_items:
        if isinstance(item, SigmaDetection):
            _check_items(item, rule, fields)
            continue
        if not isinstance(item, SigmaDetectionItem):
            raise RuleError(rule, "detection", f"unsupported item {type(item).__name__}")
        if item.field is not None and fields:
            map_field(item.field, rule)
        for mod in item.modifiers:
            name = reverse_modifier_mapping.get(mod.__name__, mod.__name__)
            if name not in SUPPORTED_MODIFIERS:
                where = item.field if item.field is not None else "keywords"
                raise RuleError(rule, f"{where}|{name}", f"modifier {name!r} is not "
                                "supported")


def _rule_name(r: SigmaRule | SigmaCorrelationRule) -> str:
    return r.name or (str(r.id) if r.id else "") or r.title or "untitled"


def _where(r: SigmaRule | SigmaCorrelationRule) -> str:
    src = r.source
    return f" ({src.path})" if src is not None and src.path is not None else ""


def supported_log_sources() -> str:
    """``sealtrail, aws/cloudtrail, okta/okta, ...``: what ``logsource`` may say."""
    return ", ".join(["sealtrail", *(ls.key for ls in sigma_pipelines.LOG_SOURCES)])


ImportedSources = tuple[sigma_pipelines.ImportedLogSource, ...]


def _detection_condition(r: SigmaRule) -> tuple[Condition, ImportedSources]:
    """The rule's compiled condition, and the imported log sources it runs on (none: it runs
    on sealtrail's own events)."""
    name = _rule_name(r)
    product = r.logsource.product
    if product is None:
        raise RuleError(name, "logsource.product", "missing: a rule runs on sealtrail's own "
                        f"events or on an imported log ({supported_log_sources()}){_where(r)}")
    if product.lower() != "sealtrail":
        return _imported_condition(r, name, product)
    for det in r.detection.detections.values():
        _check_items(det, name)
    conds = [_compile_node(c.parsed, name) for c in r.detection.parsed_condition]
    cond = conds[0] if len(conds) == 1 else Condition(_or([c.test for c in conds]),
                                                      _merge([c.keys for c in conds]))
    extra: list[Condition] = []
    category = r.logsource.category
    if category is not None:
        if category.lower() not in CATEGORIES:
            raise RuleError(name, "logsource.category", f"{category!r} is not an event "
                            f"category ({', '.join(CATEGORIES)})")
        cat = category.lower()
        extra.append(Condition(lambda ev: ev.get("category") == cat,
                               frozenset({f"c:{cat}"})))
    service = r.logsource.service
    if service is not None:
        svc_test = _string_test(SigmaString(service), name, "logsource.service")
        extra.append(Condition(_on_field("source.service", svc_test), None))
    if not extra:
        return cond, ()
    parts = [*extra, cond]
    tests = [p.test for p in parts]
    keys = cond.keys or next((p.keys for p in extra if p.keys is not None), None)
    return Condition(lambda ev: all(t(ev) for t in tests), keys), ()


def _imported_condition(r: SigmaRule, name: str, product: str
                        ) -> tuple[Condition, ImportedSources]:
    """A rule for an imported log source: its pipeline applied for each log source it names
    (a rule naming only ``product: azure`` runs on all three Azure logs, each read through its
    own mapping), chosen per event by ``metadata.log_source``."""
    service = r.logsource.service
    sources = tuple(sigma_pipelines.log_sources_of(product, service))
    if not sources:
        known = [ls for ls in sigma_pipelines.LOG_SOURCES if ls.product == product.lower()]
        if known:
            raise RuleError(name, "logsource.service", f"{service!r} is not a log of "
                            f"{product!r} that sealtrail imports (services: "
                            f"{', '.join(ls.service for ls in known)}){_where(r)}")
        raise RuleError(name, "logsource.product", f"{product!r} cannot be evaluated: "
                        "sealtrail evaluates its own events and the logs it imports "
                        f"({supported_log_sources()}){_where(r)}")
    for det in r.detection.detections.values():
        _check_items(det, name, fields=False)
    extra: Predicate | None = None
    category = r.logsource.category
    if category is not None and not all(category.lower() in ls.categories for ls in sources):
        if category.lower() not in CATEGORIES:
            said = sorted({c for ls in sources for c in ls.categories})
            raise RuleError(name, "logsource.category", f"{category!r} cannot be evaluated "
                            f"on {product}/{service or '*'} records (accepted: "
                            f"{', '.join(said) + ', ' if said else ''}or an event category "
                            f"the importer sets: {', '.join(CATEGORIES)}){_where(r)}")
        extra = _category_is(category.lower())
    by_source: dict[tuple[str, str], Predicate] = {}
    for ls in sources:
        try:
            mapped = sigma_pipelines.apply(ls, r)
        except sigma_pipelines.UnsupportedValueError as exc:
            raise RuleError(name, exc.construct, f"{exc}{_where(r)}") from exc
        except SigmaError as exc:
            raise RuleError(name, f"pipeline {ls.key}", f"{exc}{_where(r)}") from exc
        conds = [_compile_node(c.parsed, name, imported=True)
                 for c in mapped.detection.parsed_condition]
        test = conds[0].test if len(conds) == 1 else _or([c.test for c in conds])
        by_source[(ls.product, ls.service)] = test if extra is None else _and(extra, test)
    keys = frozenset(f"a:{ls.action_segment}" for ls in sources)
    return Condition(_by_log_source(by_source), keys), sources


def _category_is(cat: str) -> Predicate:
    return lambda ev: ev.get("category") == cat


def _and(f1: Predicate, f2: Predicate) -> Predicate:
    return lambda ev: f1(ev) and f2(ev)


def _by_log_source(by_source: Mapping[tuple[str, str], Predicate]) -> Predicate:
    """Run the predicate of the event's ``metadata.log_source`` (product and service compared
    case-insensitively); an event of any other source, or of none, does not match."""
    if len(by_source) == 1:
        ((product, service), only), = by_source.items()

        def test1(ev: Mapping[str, Any]) -> bool:
            m = ev.get("metadata")
            src = m.get("log_source") if type(m) is dict else None
            if type(src) is not dict:
                return False
            p, s = src.get("product"), src.get("service")
            if type(p) is not str or type(s) is not str:
                return False
            if (p != product and p.lower() != product) or (s != service
                                                           and s.lower() != service):
                return False
            return only(ev)
        return test1
    table = dict(by_source)

    def test(ev: Mapping[str, Any]) -> bool:
        m = ev.get("metadata")
        src = m.get("log_source") if type(m) is dict else None
        if type(src) is not dict:
            return False
        p, s = src.get("product"), src.get("service")
        if type(p) is not str or type(s) is not str:
            return False
        found = table.get((p, s)) or table.get((p.lower(), s.lower()))
        return found is not None and found(ev)
    return test


def _severity(r: SigmaRule | SigmaCorrelationRule) -> Severity:
    level = r.level.name.lower() if r.level is not None else "medium"
    return _LEVELS.get(level, "medium")


def _clauses(r: SigmaRule | SigmaCorrelationRule) -> tuple[str, ...]:
    raw = r.custom_attributes.get("clauses", [])
    if not isinstance(raw, list) or not all(isinstance(c, str) for c in raw):
        raise RuleError(_rule_name(r), "clauses", "expected a list of strings")
    return tuple(raw)


def _digest(r: SigmaRule | SigmaCorrelationRule, imported: bool = False) -> str:
    if imported:  # the mappings are part of what the rule does
        return digest_of({"sigma": r.to_dict(),
                          "pipelines": sigma_pipelines.PIPELINES_VERSION})
    return digest_of({"sigma": r.to_dict()})


Compiled = tuple[SigmaRule, Condition, ImportedSources]


def _correlation_field(name: str, field: str, refs: Sequence[Compiled]) -> str:
    """The event path of a correlation's ``group-by`` or ``value_count`` field: through the
    pipelines of the imported log sources its rules run on (the same name must land on the
    same path for all of them), as an event path for rules over sealtrail's events."""
    paths: set[str] = set()
    for _, _, sources in refs:
        if not sources:
            paths.add(map_field(field, name))
            continue
        for ls in sources:
            try:
                mapped = sigma_pipelines.map_field_name(ls.key, field)
            except SigmaError as exc:
                raise RuleError(name, f"correlation field {field!r}", str(exc)) from exc
            if len(mapped) != 1:
                raise RuleError(name, f"correlation field {field!r}", f"names several fields "
                                f"of {ls.key} records ({', '.join(mapped)}): not supported "
                                "for grouping")
            paths.add(mapped[0])
    if len(paths) != 1:
        raise RuleError(name, f"correlation field {field!r}", "names different fields in the "
                        f"referenced rules' logs ({', '.join(sorted(paths))}): not supported")
    return paths.pop()


def _correlation(c: SigmaCorrelationRule, compiled: Mapping[int, Compiled],
                 refused: Mapping[int, str]) -> Rule:
    name = _rule_name(c)
    bad = [refused[id(ref.rule)] for ref in c.referenced_rules if id(ref.rule) in refused]
    if bad:
        raise RuleError(name, "correlation.rules", f"references {', '.join(map(repr, bad))}, "
                        "refused")
    if isinstance(c.condition, SigmaCorrelationCondition):
        cond = c.condition
    else:
        raise RuleError(name, "correlation.condition", "extended (boolean) correlation "
                        "conditions are not supported")
    if len(c.aliases):
        raise RuleError(name, "correlation.aliases", "field aliases are not supported")
    refs: list[Compiled] = []
    for ref in c.referenced_rules:
        target = ref.rule
        if isinstance(target, SigmaCorrelationRule):
            raise RuleError(name, "correlation.rules", f"{ref.reference!r} is a correlation: "
                            "nested correlations are not supported")
        refs.append(compiled[id(target)])
    group_by = tuple(_correlation_field(name, g, refs) for g in (c.group_by or []))
    window = c.timespan.seconds * 1_000_000
    op = cond.op.name.lower()
    if not isinstance(cond.count, int):
        raise RuleError(name, "correlation.condition", "the count must be an integer")
    count = cond.count
    imported = any(sources for _, _, sources in refs)
    digest = digest_of({"correlation": c.to_dict(),
                        "rules": [_digest(r, bool(src)) for r, _, src in refs]}
                       | ({"pipelines": sigma_pipelines.PIPELINES_VERSION} if imported else {}))
    union = Condition(_or([cd.test for _, cd, _ in refs]), _merge([cd.keys for _, cd, _ in refs]))
    ctype = c.type
    params: Threshold | StepSequence
    if ctype in (SigmaCorrelationType.EVENT_COUNT, SigmaCorrelationType.VALUE_COUNT):
        kind = "threshold"
        distinct = None
        if ctype == SigmaCorrelationType.VALUE_COUNT:
            if not isinstance(cond.fieldref, str):
                raise RuleError(name, "correlation.condition.field", "expected one field")
            distinct = _correlation_field(name, cond.fieldref, refs)
        if op == "neq":
            raise RuleError(name, "correlation.condition", "neq is not supported")
        if op == "gt":
            op, count = "gte", count + 1
        if op == "gte" and count < 1:
            count = 1
        params = Threshold(count, window, op, distinct)  # type: ignore[arg-type]
    elif ctype in (SigmaCorrelationType.TEMPORAL, SigmaCorrelationType.TEMPORAL_ORDERED):
        kind = "sequence"
        steps = tuple(Step(_rule_name(r), cd) for r, cd, _ in refs)
        ordered = ctype == SigmaCorrelationType.TEMPORAL_ORDERED
        if op == "gt":
            op, count = "gte", count + 1
        if op != "gte" or not 1 <= count <= len(steps) or (ordered and count != len(steps)):
            raise RuleError(name, "correlation.condition", f"{op} {cond.count} is not supported "
                            "for temporal correlations (use gte with the number of rules"
                            f"{'' if ordered else ', or fewer'})")
        params = StepSequence(steps, window, ordered, count)
    else:
        raise RuleError(name, "correlation.type", f"{ctype.name.lower()} is not supported")
    return Rule(name, c.title or name, _severity(c), kind, union, params, group_by, _clauses(c),
                True, c.description or "", "", digest, "sigma")


class SigmaRulesError(RulesError):
    """Several Sigma rules are refused (:class:`RulesError`, for Sigma sets)."""

    def __init__(self, errors: Sequence[RuleError]) -> None:
        super().__init__(errors, "Sigma rules")


def _raise(errors: Sequence[tuple[str, RuleError]]) -> None:
    """Raise the one error, or all of them (sorted by file, stable within a file)."""
    if len(errors) == 1:
        raise errors[0][1]
    if errors:
        raise SigmaRulesError([e for _, e in sorted(errors, key=lambda p: p[0])])


def _located(exc: RuleError, path: Path | None) -> tuple[str, RuleError]:
    """The error, naming the file it came from when it does not already (and the file, to
    sort by)."""
    if path is None or str(path) in exc.message:
        return str(path or ""), exc
    located = RuleError(exc.rule, exc.field, f"{exc.message} ({path})")
    located.__cause__ = exc
    return str(path), located


def _compile(docs: Sequence[tuple[Path | None, Mapping[str, Any]]]
             ) -> tuple[list[Rule], list[tuple[str, RuleError]]]:
    """The rules of ``docs`` and the errors of those refused (every one, not the first),
    each with its file."""
    errors: list[tuple[str, RuleError]] = []
    collections = []
    for path, doc in docs:
        try:
            collections.append(SigmaCollection.from_dicts(
                [dict(doc)], source=SigmaRuleLocation(path) if path else None,
                resolve_references=False))
        except SigmaError as exc:
            title = str(doc.get("name") or doc.get("title") or doc.get("id") or path)
            errors.append(_located(RuleError(title, "sigma", f"{exc}"), path))
    merged = SigmaCollection.merge(collections, resolve_references=False)
    for r in list(merged.rules):
        if isinstance(r, SigmaCorrelationRule):
            try:
                r.resolve_rule_references(merged)
            except SigmaError as exc:
                errors.append(_located(RuleError(_rule_name(r), "correlation.rules", str(exc)),
                                       r.source.path if r.source else None))
                merged.rules.remove(r)
    try:
        merged.resolve_rule_references()
    except SigmaError as exc:
        errors.append(("", RuleError("sigma", "correlation.rules", str(exc))))
        return [], errors
    order = {id(r): n for n, r in enumerate(r for c in collections for r in c.rules)}
    quiet: set[int] = set()
    for r in merged.rules:
        if isinstance(r, SigmaCorrelationRule) and not r.generate:
            quiet.update(id(ref.rule) for ref in r.referenced_rules)
    compiled: dict[int, Compiled] = {}
    refused: dict[int, str] = {}
    rules: list[tuple[int, Rule]] = []
    for r in merged.rules:  # referenced rules come first
        path = r.source.path if r.source is not None else None
        try:
            if isinstance(r, SigmaCorrelationRule):
                rules.append((order[id(r)], _correlation(r, compiled, refused)))
                continue
            try:
                cond, sources = _detection_condition(r)
            except SigmaError as exc:
                said = str(exc)
                raise RuleError(_rule_name(r), "detection", said if path is not None and str(
                    path) in said else f"{said}{_where(r)}") from exc
        except RuleError as exc:
            refused[id(r)] = _rule_name(r)
            errors.append(_located(exc, path))
            continue
        compiled[id(r)] = (r, cond, sources)
        if id(r) not in quiet:
            rules.append((order[id(r)], Rule(
                _rule_name(r), r.title or _rule_name(r), _severity(r), "match", cond,
                Single(), (), _clauses(r), True, r.description or "", "",
                _digest(r, bool(sources)), "sigma")))
    out = [rule for _, rule in sorted(rules, key=lambda p: p[0])]
    seen: set[str] = set()
    for rule in out:
        if rule.id in seen:
            errors.append(("", RuleError(rule.id, "id", "defined twice")))
        seen.add(rule.id)
    return out, errors


def compile_documents(docs: Sequence[tuple[Path | None, Mapping[str, Any]]]) -> list[Rule]:
    """Compile parsed Sigma YAML documents (with the file each came from) into rules.

    Detection rules referenced by a correlation (without ``generate: true``) do not fire on
    their own. The order of the result follows the documents. Errors: one bad rule raises
    its :class:`RuleError`; several raise one :class:`SigmaRulesError` naming each.
    """
    rules, errors = _compile(docs)
    _raise(errors)
    check_unique(rules)
    return rules


def load_sigma(source: str | Path) -> list[Rule]:
    """Sigma rules from YAML text, a file, or a directory of ``*.yml``/``*.yaml`` files (all
    of them or none: every refused rule and unreadable file is named in one error)."""
    import yaml  # noqa: PLC0415 - pySigma imports it anyway; kept local for clarity

    if isinstance(source, Path):
        files = sorted(p for p in source.rglob("*") if p.suffix in (".yml", ".yaml")) \
            if source.is_dir() else [source]
        texts: list[tuple[Path | None, str]] = [(f, f.read_text(encoding="utf-8"))
                                                for f in files]
    else:
        texts = [(None, source)]
    errors: list[tuple[str, RuleError]] = []
    docs: list[tuple[Path | None, Mapping[str, Any]]] = []
    for path, text in texts:
        where = str(path or "<text>")
        try:
            loaded = list(yaml.safe_load_all(text))
        except yaml.YAMLError as exc:
            errors.append((where, RuleError(where, "yaml", str(exc))))
            continue
        for n, doc in enumerate(loaded, 1):
            if doc is None:
                continue
            if not isinstance(doc, dict):
                errors.append((where, RuleError(where, f"document {n}", "expected a mapping")))
                continue
            docs.append((path, doc))
    rules, more = _compile(docs)
    _raise(errors + more)
    check_unique(rules)
    return rules
