"""Detection rules: the model, the native YAML form, and the compiled event conditions.

A rule is parsed once into a frozen :class:`Rule` whose condition is compiled into plain
closures over the event dict: no YAML or dict interpretation happens per event. The rule
kinds and their parameters are documented in docs/rules.md; every validation error is a
:class:`RuleError` naming the rule id and the field (``rule 'x': window: ...``).

Each compiled :class:`Condition` also carries *index keys*: a necessary condition on the
event's action prefix (its first dotted segment) or category, so the engine evaluates a rule
only against events that could possibly match it (PCI DSS 10.4.1.1: automated review has to
keep up with the log).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from sealtrail.core.canonical import compact_json
from sealtrail.core.errors import SealtrailError
from sealtrail.core.event import CATEGORIES
from sealtrail.core.skew import MAX_SKEW_MINUTES

__all__ = [
    "DEFAULT_MAX_SKEW",
    "KINDS",
    "SEVERITIES",
    "Absence",
    "ClockSkew",
    "Condition",
    "Detection",
    "FirstSeen",
    "Predicate",
    "RateAnomaly",
    "Rule",
    "RuleError",
    "Single",
    "Step",
    "StepSequence",
    "Threshold",
    "TimeOfDay",
    "compile_match",
    "field_getter",
    "parse_duration",
    "parse_rule",
    "parse_rules",
    "value_text",
]

Severity = Literal["low", "medium", "high", "critical"]
SEVERITIES: Final = ("low", "medium", "high", "critical")
KINDS: Final = ("match", "threshold", "sequence", "first_seen", "time_of_day", "rate_anomaly",
                "absence", "clock_skew")
MAX_EVIDENCE: Final = 100
US: Final = 1_000_000

Predicate = Callable[[Mapping[str, Any]], bool]
Getter = Callable[[Mapping[str, Any]], Any]


class RuleError(SealtrailError):
    """A rule (native or Sigma) is invalid or uses something unsupported.

    ``rule`` is the rule's id (or title, or file) and ``field`` the offending field or construct.
    """

    def __init__(self, rule: str, field: str, message: str) -> None:
        self.rule = rule
        self.field = field
        self.message = message
        super().__init__(f"rule {rule!r}: {field}: {message}")


class RulesError(RuleError):
    """Several rules are refused, each for its own reason (``errors``, in file order). A rule
    author fixing a directory wants every problem at once, not one per run; and as with one
    bad rule, none of the set is used: rules that load while their neighbours do not would
    leave a monitor quietly running half of what was deployed. The text puts each error on a
    line of its own; ``summary`` is its first line."""

    def __init__(self, errors: Sequence[RuleError], what: str = "rules") -> None:
        self.errors = tuple(errors)
        self.summary = (f"{len(self.errors)} {what} refused (none of the rules is used "
                        "until every one loads):")
        text = "\n".join([self.summary, *(f"  {' '.join(str(e).split())}"
                                           for e in self.errors)])
        super().__init__(", ".join(e.rule for e in self.errors), "rules", text)
        self.args = (text,)


def raise_all(errors: Sequence[RuleError], what: str = "rules") -> None:
    """Raise the one error, or all of them as :class:`RulesError` (nothing for none)."""
    if len(errors) == 1:
        raise errors[0]
    if errors:
        raise RulesError(errors, what)


@dataclass(frozen=True, slots=True)
class Detection:
    """One finding: which rule fired, for which key, on which log entries (the evidence)."""

    rule: str
    title: str
    severity: Severity
    key: str
    entries: list[int]
    time: str
    clauses: tuple[str, ...]
    message: str

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-compatible values."""
        return {"rule": self.rule, "title": self.title, "severity": self.severity,
                "key": self.key, "entries": list(self.entries), "time": self.time,
                "clauses": list(self.clauses), "message": self.message}


@dataclass(frozen=True, slots=True)
class Condition:
    """A compiled event condition.

    ``keys`` is ``None`` (any event may match) or a set of index keys of which the event's
    own must be one for ``test`` to be true: ``a:<first action segment>`` or
    ``c:<category>``, lower-cased, all of one sort.
    """

    test: Predicate
    keys: frozenset[str] | None


ALWAYS: Final = Condition(lambda ev: True, None)


# -- durations -----------------------------------------------------------------------------

_DURATION = re.compile(r"^\s*(\d+)\s*(ms|s|m|h|d|w)\s*\Z")
_UNIT_US: Final = {"ms": 1000, "s": US, "m": 60 * US, "h": 3600 * US, "d": 86400 * US,
                   "w": 7 * 86400 * US}


def parse_duration(text: object, rule: str = "?", where: str = "window") -> int:
    """``"5m"``, ``"1h"``, ``"30s"``, ``"7d"`` (or a number of seconds) as microseconds (> 0)."""
    if isinstance(text, bool):
        raise RuleError(rule, where, "expected a duration such as 5m, 1h, 30s")
    if isinstance(text, int | float):
        us = int(text * US)
    else:
        m = _DURATION.match(str(text))
        if not m:
            raise RuleError(rule, where, f"{text!r} is not a duration such as 5m, 1h, 30s")
        us = int(m.group(1)) * _UNIT_US[m.group(2)]
    if us <= 0:
        raise RuleError(rule, where, "must be greater than zero")
    return us


# -- field paths ---------------------------------------------------------------------------

def field_getter(path: str) -> Getter:
    """A function reading a dotted path (``actor.id``, ``metadata.a.b``); ``None`` if absent."""
    parts = path.split(".")
    if len(parts) == 1:
        (k,) = parts
        return lambda ev: ev.get(k)
    if len(parts) == 2:
        a, b = parts

        def get2(ev: Mapping[str, Any]) -> Any:
            x = ev.get(a)
            return x.get(b) if type(x) is dict else None
        return get2

    def get_n(ev: Mapping[str, Any]) -> Any:
        x: Any = ev
        for p in parts:
            if type(x) is not dict:
                return None
            x = x.get(p)
        return x
    return get_n


def value_text(value: Any) -> str:
    """The text of a grouped value: a text as it is, any other JSON value its JSON with keys
    sorted (single-field group keys, and what sealed values' pseudonyms are keyed over)."""
    return value if type(value) is str else json.dumps(value, sort_keys=True)


def group_key(getters: Sequence[Getter]) -> Callable[[Mapping[str, Any]], str]:
    """The grouping value of an event: one field's text, or several joined by ``|``."""
    if not getters:
        return lambda ev: ""
    if len(getters) == 1:
        (g,) = getters

        def one(ev: Mapping[str, Any]) -> str:
            v = g(ev)
            return "" if v is None else value_text(v)
        return one

    def many(ev: Mapping[str, Any]) -> str:
        out = []
        for g in getters:
            v = g(ev)
            out.append("" if v is None else v if type(v) is str else json.dumps(v))
        return "|".join(out)
    return many


# -- native match conditions ---------------------------------------------------------------

_NUM_OPS: Final = ("gt", "gte", "lt", "lte")
_VALUE_OPS: Final = (*_NUM_OPS, "not", "exists", "eq", "in")


def _is_num(x: object) -> bool:
    return type(x) is int or type(x) is float


def _on_scalar_or_list(pred: Callable[[Any], bool], get: Getter) -> Predicate:
    """Apply ``pred`` to the field's value; a list value matches when any element does."""
    def test(ev: Mapping[str, Any]) -> bool:
        x = get(ev)
        if type(x) is list:
            return any(pred(e) for e in x)
        return pred(x)
    return test


def _glob(pattern: str) -> Callable[[Any], bool]:
    """A string test for ``pattern`` where ``*`` is any run of characters (case-sensitive)."""
    body = pattern.strip("*")
    if "*" not in body:
        if pattern.startswith("*") and pattern.endswith("*") and len(pattern) > 1:
            return lambda x: type(x) is str and body in x
        if pattern.endswith("*"):
            return lambda x: type(x) is str and x.startswith(body)
        if pattern.startswith("*"):
            return lambda x: type(x) is str and x.endswith(body)
    rx = re.compile(".*".join(re.escape(p) for p in pattern.split("*")), re.DOTALL)
    return lambda x: type(x) is str and rx.fullmatch(x) is not None


def _scalar_test(value: Any, rule: str, where: str) -> Callable[[Any], bool]:
    if value is None:
        return lambda x: x is None
    if isinstance(value, bool):
        return lambda x: x is value
    if _is_num(value):
        return lambda x: _is_num(x) and x == value
    if isinstance(value, str):
        if "*" in value:
            return _glob(value)
        return lambda x: x == value
    raise RuleError(rule, where, f"unsupported value {value!r} (use a string, number, "
                    "boolean, null, a list of them, or an operator mapping)")


def _value_test(spec: Any, rule: str, where: str) -> Callable[[Any], bool]:
    """A test on one field value; lists are any-of, mappings hold operators."""
    if isinstance(spec, list):
        if not spec:
            raise RuleError(rule, where, "an empty list matches nothing")
        if all(isinstance(v, str) and "*" not in v for v in spec):
            allowed = frozenset(spec)
            return lambda x: type(x) is str and x in allowed
        if all(isinstance(v, str) for v in spec):
            # several patterns: one regular expression, one C-level match per value
            rx = re.compile("|".join(
                ".*".join(re.escape(p) for p in v.split("*")) for v in spec), re.DOTALL)
            return lambda x: type(x) is str and rx.fullmatch(x) is not None
        tests = [_scalar_test(v, rule, where) for v in spec]
        return lambda x: any(t(x) for t in tests)
    if isinstance(spec, Mapping):
        if not spec:
            raise RuleError(rule, where, "an empty operator mapping")
        tests = []
        for op, arg in spec.items():
            at = f"{where}.{op}"
            if op in _NUM_OPS:
                if not _is_num(arg):
                    raise RuleError(rule, at, f"expected a number, got {arg!r}")
                tests.append(_compare(op, arg))
            elif op == "not":
                tests.append(_negate(_value_test(arg, rule, at)))
            elif op == "exists":
                if not isinstance(arg, bool):
                    raise RuleError(rule, at, "expected true or false")
                tests.append((lambda x: x is not None) if arg else (lambda x: x is None))
            elif op in ("eq", "in"):
                tests.append(_value_test(arg, rule, at))
            else:
                raise RuleError(rule, at, f"unknown operator (known: {', '.join(_VALUE_OPS)})")
        if len(tests) == 1:
            return tests[0]
        return lambda x: all(t(x) for t in tests)
    return _scalar_test(spec, rule, where)


def _negate(f: Callable[[Any], bool]) -> Callable[[Any], bool]:
    return lambda x: not f(x)


def _any_of(fns: Sequence[Callable[[Any], bool]]) -> Callable[[Any], bool]:
    return lambda x: any(f(x) for f in fns)


def _all_of(fns: Sequence[Callable[[Any], bool]]) -> Callable[[Any], bool]:
    return lambda x: all(f(x) for f in fns)


def _compare(op: str, n: float) -> Callable[[Any], bool]:
    if op == "gt":
        return lambda x: _is_num(x) and x > n
    if op == "gte":
        return lambda x: _is_num(x) and x >= n
    if op == "lt":
        return lambda x: _is_num(x) and x < n
    return lambda x: _is_num(x) and x <= n


def _index_keys(name: str, spec: Any) -> frozenset[str] | None:
    """Index keys implied by a top-level ``action`` or ``category`` condition, if any."""
    values = spec if isinstance(spec, list) else [spec]
    if not values or not all(isinstance(v, str) for v in values):
        return None
    keys = set()
    for v in values:
        if name == "category":
            if "*" in v:
                return None
            keys.add(f"c:{v.lower()}")
        else:
            seg, dot, _ = v.partition(".")
            if "*" in seg or (not dot and v.endswith("*")):
                return None
            keys.add(f"a:{seg.lower()}")
    return frozenset(keys)


def _check_categories(spec: Any, rule: str, where: str) -> None:
    """Catch typos: a literal category must be one of the event model's."""
    values = spec if isinstance(spec, list) else [spec] if isinstance(spec, str) else []
    for v in values:
        if isinstance(v, str) and "*" not in v and v not in CATEGORIES:
            raise RuleError(rule, where, f"{v!r} is not a category ({', '.join(CATEGORIES)})")


def compile_match(spec: Any, rule: str = "?", where: str = "match") -> Condition:
    """Compile a native ``match`` mapping into a :class:`Condition`.

    Keys are field paths (AND-ed); ``not`` (a mapping), ``any`` and ``all`` (lists of
    mappings) combine sub-conditions. Values: a scalar (``*`` is a wildcard in strings), a
    list (any of), or operators ``not``, ``gt``/``gte``/``lt``/``lte``, ``exists``, ``in``.
    An absent field is ``null``: it equals nothing but ``null`` and satisfies every ``not``.
    """
    if spec is None:
        return ALWAYS
    if not isinstance(spec, Mapping):
        raise RuleError(rule, where, "expected a mapping of field paths to values")
    tests: list[Predicate] = []
    index: frozenset[str] | None = None
    for name, value in spec.items():
        at = f"{where}.{name}"
        if not isinstance(name, str) or not name:
            raise RuleError(rule, where, f"field names must be non-empty strings: {name!r}")
        if name == "not":
            tests.append(_negate(compile_match(value, rule, at).test))
        elif name in ("any", "all"):
            if not isinstance(value, list) or not value:
                raise RuleError(rule, at, "expected a non-empty list of conditions")
            subs = [compile_match(v, rule, f"{at}[{i}]") for i, v in enumerate(value)]
            fns = [s.test for s in subs]
            if name == "any":
                tests.append(_any_of(fns))
                sub_keys = [s.keys for s in subs]
                if index is None and all(k is not None for k in sub_keys):
                    merged = frozenset().union(*(k for k in sub_keys if k is not None))
                    if len({k[:2] for k in merged}) == 1:
                        index = merged
            else:
                tests.append(_all_of(fns))
                for s in subs:
                    if index is None and s.keys is not None:
                        index = s.keys
        else:
            if name.startswith(".") or name.endswith(".") or ".." in name:
                raise RuleError(rule, at, "not a dotted field path")
            if name == "category":
                _check_categories(value, rule, at)
            vt = _value_test(value, rule, at)
            tests.append(_on_scalar_or_list(vt, field_getter(name)))
            if name in ("action", "category") and (index is None or name == "action"):
                index = _index_keys(name, value) or index
    if not tests:
        return ALWAYS
    if len(tests) == 1:
        return Condition(tests[0], index)
    if len(tests) == 2:
        t1, t2 = tests
        return Condition(lambda ev: t1(ev) and t2(ev), index)
    if len(tests) == 3:
        u1, u2, u3 = tests
        return Condition(lambda ev: u1(ev) and u2(ev) and u3(ev), index)
    return Condition(lambda ev: all(t(ev) for t in tests), index)


# -- kinds ---------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Single:
    """Every matching event fires; with ``dedup``, once per key per ``dedup`` period."""

    dedup_us: int = 0


@dataclass(frozen=True, slots=True)
class Threshold:
    """``count`` matching events (or distinct values of ``distinct``) per key in ``window``.

    ``op`` ``gte`` (and ``gt``, stored as ``gte count+1``) fires as soon as reached, once per
    key per window; ``lt``/``lte``/``eq`` are judged when a key's window closes.
    """

    count: int
    window_us: int
    op: Literal["gte", "lt", "lte", "eq"] = "gte"
    distinct: str | None = None


@dataclass(frozen=True, slots=True)
class Step:
    """One step of a sequence: a condition and how many events of it are needed."""

    name: str
    condition: Condition
    count: int = 1


@dataclass(frozen=True, slots=True)
class StepSequence:
    """Steps by the same key within ``window``: in order (``ordered``) or in any order.

    Unordered sequences fire when ``min_steps`` (default: all) of the steps were seen.
    """

    steps: tuple[Step, ...]
    window_us: int
    ordered: bool = True
    min_steps: int = 0


@dataclass(frozen=True, slots=True)
class FirstSeen:
    """A value of ``field`` never seen before for the key, once the key has been learnt.

    A key is learnt after ``learn_events`` events *and* ``learn_us`` since its first event;
    until then its values are only recorded. At most ``max_values`` values are kept per key.
    """

    field: str
    learn_events: int = 10
    learn_us: int = 0
    max_values: int = 256


@dataclass(frozen=True, slots=True)
class TimeOfDay:
    """Matching events outside the allowed hours (``start``-``end`` minutes) and days."""

    start_min: int
    end_min: int
    days: frozenset[int]
    timezone: str = "UTC"
    dedup_us: int = 0


@dataclass(frozen=True, slots=True)
class RateAnomaly:
    """Count per key per bucket above ``max(min_count, factor x EWMA baseline)``."""

    bucket_us: int
    factor: float = 3.0
    min_count: int = 10
    alpha: float = 0.3
    warmup: int = 1


@dataclass(frozen=True, slots=True)
class Absence:
    """A key seen before and then silent for longer than ``interval`` (judged on ``tick``)."""

    interval_us: int


@dataclass(frozen=True, slots=True)
class ClockSkew:
    """``|received_at - time|`` above ``max_skew``; once per key per ``dedup`` period."""

    max_skew_us: int
    dedup_us: int


Params = (Single | Threshold | StepSequence | FirstSeen | TimeOfDay | RateAnomaly | Absence
          | ClockSkew)


@dataclass(frozen=True, slots=True)
class Rule:
    """A validated, compiled detection rule.

    ``digest`` identifies the rule's behaviour (kind, condition, parameters, grouping): the
    engine keeps a rule's state across a restart only if its digest is unchanged.
    """

    id: str
    title: str
    severity: Severity
    kind: str
    condition: Condition = field(repr=False, compare=False)
    params: Params
    group_by: tuple[str, ...] = ()
    clauses: tuple[str, ...] = ()
    enabled: bool = True
    description: str = ""
    message: str = ""
    digest: str = ""
    origin: str = "native"


# -- parsing -------------------------------------------------------------------------------

_COMMON: Final = {"id", "title", "severity", "kind", "match", "clauses", "enabled",
                  "description", "message", "group_by"}
_KIND_FIELDS: Final[dict[str, set[str]]] = {
    "match": {"dedup"},
    "threshold": {"count", "window", "distinct", "op"},
    "sequence": {"steps", "window", "ordered", "min_steps"},
    "first_seen": {"field", "learn_events", "learn_period", "max_values"},
    "time_of_day": {"hours", "days", "timezone", "dedup"},
    "rate_anomaly": {"bucket", "factor", "min_count", "alpha", "warmup"},
    "absence": {"interval"},
    "clock_skew": {"max_skew", "dedup"},
}
# The bound on |received_at - time| the compliance report checks too (core/skew.py).
DEFAULT_MAX_SKEW: Final = f"{MAX_SKEW_MINUTES}m"
DAYS: Final = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_HOURS = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*\Z")


def digest_of(definition: Mapping[str, Any]) -> str:
    """A short stable hash of a rule definition (JSON, sorted keys)."""
    text = compact_json(definition, ascii=True, lenient=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _int(d: Mapping[str, Any], name: str, rule: str, default: int | None = None,
         minimum: int = 1) -> int:
    v = d.get(name, default)
    if v is None:
        raise RuleError(rule, name, "is required")
    if isinstance(v, bool) or not isinstance(v, int) or v < minimum:
        raise RuleError(rule, name, f"expected an integer >= {minimum}, got {v!r}")
    return v


def _num(d: Mapping[str, Any], name: str, rule: str, default: float) -> float:
    v = d.get(name, default)
    if isinstance(v, bool) or not isinstance(v, int | float) or v < 0:
        raise RuleError(rule, name, f"expected a non-negative number, got {v!r}")
    return float(v)


def _paths(value: Any, rule: str, name: str) -> tuple[str, ...]:
    if value is None:
        return ()
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not all(isinstance(p, str) and p for p in items):
        raise RuleError(rule, name, "expected a field path or a list of field paths")
    return tuple(items)


def _dedup(d: Mapping[str, Any], rule: str, default: int = 0) -> int:
    v = d.get("dedup")
    return default if v is None else parse_duration(v, rule, "dedup")


def _parse_params(kind: str, d: Mapping[str, Any], rule: str) -> Params:
    if kind == "match":
        return Single(_dedup(d, rule))
    if kind == "threshold":
        op = d.get("op", "gte")
        if op not in ("gte", "gt", "lt", "lte", "eq"):
            raise RuleError(rule, "op", "expected one of gte, gt, lt, lte, eq")
        count = _int(d, "count", rule, minimum=0 if op in ("lt", "lte", "eq") else 1)
        if op == "gt":
            op, count = "gte", count + 1
        distinct = d.get("distinct")
        if distinct is not None and (not isinstance(distinct, str) or not distinct):
            raise RuleError(rule, "distinct", "expected a field path")
        return Threshold(count, parse_duration(d.get("window"), rule), op, distinct)
    if kind == "sequence":
        steps_raw = d.get("steps")
        if not isinstance(steps_raw, list) or len(steps_raw) < 2:
            raise RuleError(rule, "steps", "expected a list of at least two steps")
        steps = []
        for i, s in enumerate(steps_raw):
            if not isinstance(s, Mapping) or "match" not in s:
                raise RuleError(rule, f"steps[{i}]", "expected a mapping with `match`")
            extra = set(s) - {"match", "count", "name"}
            if extra:
                raise RuleError(rule, f"steps[{i}]", f"unknown field(s) {sorted(extra)}")
            cond = compile_match(s["match"], rule, f"steps[{i}].match")
            steps.append(Step(str(s.get("name", i)), cond,
                              _int(s, "count", rule, default=1)))
        ordered = d.get("ordered", True)
        if not isinstance(ordered, bool):
            raise RuleError(rule, "ordered", "expected true or false")
        min_steps = _int(d, "min_steps", rule, default=len(steps))
        if min_steps > len(steps):
            raise RuleError(rule, "min_steps", "more than the number of steps")
        if ordered and min_steps != len(steps):
            raise RuleError(rule, "min_steps", "only for unordered sequences")
        return StepSequence(tuple(steps), parse_duration(d.get("window"), rule), ordered,
                         min_steps)
    if kind == "first_seen":
        fld = d.get("field")
        if not isinstance(fld, str) or not fld:
            raise RuleError(rule, "field", "expected the field path whose new values fire")
        learn = d.get("learn_period")
        return FirstSeen(fld, _int(d, "learn_events", rule, default=10, minimum=0),
                         0 if learn is None else parse_duration(learn, rule, "learn_period"),
                         _int(d, "max_values", rule, default=256))
    if kind == "time_of_day":
        return _parse_time_of_day(d, rule)
    if kind == "rate_anomaly":
        alpha = _num(d, "alpha", rule, 0.3)
        if not 0 < alpha <= 1:
            raise RuleError(rule, "alpha", "expected a number in (0, 1]")
        return RateAnomaly(parse_duration(d.get("bucket", "1m"), rule, "bucket"),
                           _num(d, "factor", rule, 3.0), _int(d, "min_count", rule, default=10),
                           alpha, _int(d, "warmup", rule, default=1, minimum=0))
    if kind == "absence":
        return Absence(parse_duration(d.get("interval"), rule, "interval"))
    # clock_skew
    return ClockSkew(parse_duration(d.get("max_skew", DEFAULT_MAX_SKEW), rule, "max_skew"),
                     _dedup(d, rule, 3600 * US))


def _parse_time_of_day(d: Mapping[str, Any], rule: str) -> TimeOfDay:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError  # noqa: PLC0415 - only this kind

    hours = d.get("hours", "00:00-24:00")
    m = _HOURS.match(str(hours))
    if not m:
        raise RuleError(rule, "hours", f"{hours!r} is not like 08:00-18:00")
    h1, m1, h2, m2 = (int(g) for g in m.groups())
    if h1 > 24 or h2 > 24 or m1 > 59 or m2 > 59 or h1 * 60 + m1 > 1440 or h2 * 60 + m2 > 1440:
        raise RuleError(rule, "hours", f"{hours!r} is not a time range within a day")
    days_raw = d.get("days", list(DAYS))
    if not isinstance(days_raw, list) or not days_raw:
        raise RuleError(rule, "days", "expected a list such as [mon, tue, wed, thu, fri]")
    days = set()
    for day in days_raw:
        name = str(day).lower()[:3]
        if name not in DAYS:
            raise RuleError(rule, "days", f"{day!r} is not a day (mon..sun)")
        days.add(DAYS.index(name))
    tz = d.get("timezone", "UTC")
    try:
        ZoneInfo(str(tz))
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise RuleError(rule, "timezone", f"unknown time zone {tz!r}") from exc
    return TimeOfDay(h1 * 60 + m1, h2 * 60 + m2, frozenset(days), str(tz), _dedup(d, rule))


def parse_rule(d: Mapping[str, Any], *, origin: str = "native") -> Rule:
    """Validate a native rule definition (a mapping, as loaded from YAML) into a :class:`Rule`."""
    if not isinstance(d, Mapping):
        raise RuleError("?", "rule", "expected a mapping")
    rid = d.get("id")
    if not isinstance(rid, str) or not re.fullmatch(r"[A-Za-z0-9_.:\-]{1,128}", rid):
        raise RuleError(str(rid), "id", "expected 1-128 characters of A-Z a-z 0-9 _ . : -")
    kind = d.get("kind")
    if kind not in KINDS:
        raise RuleError(rid, "kind", f"expected one of {', '.join(KINDS)}, got {kind!r}")
    unknown = set(d) - _COMMON - _KIND_FIELDS[kind]
    if unknown:
        raise RuleError(rid, sorted(unknown)[0], f"unknown field for a {kind} rule")
    title = d.get("title", rid)
    if not isinstance(title, str) or not title:
        raise RuleError(rid, "title", "expected a non-empty string")
    severity = d.get("severity", "medium")
    if severity not in SEVERITIES:
        raise RuleError(rid, "severity", f"expected one of {', '.join(SEVERITIES)}")
    clauses = d.get("clauses", [])
    if not isinstance(clauses, list) or not all(isinstance(c, str) for c in clauses):
        raise RuleError(rid, "clauses", "expected a list of strings")
    enabled = d.get("enabled", True)
    if not isinstance(enabled, bool):
        raise RuleError(rid, "enabled", "expected true or false")
    for text_field in ("description", "message"):
        if not isinstance(d.get(text_field, ""), str):
            raise RuleError(rid, text_field, "expected a string")
    params = _parse_params(kind, d, rid)
    group_by = _paths(d.get("group_by"), rid, "group_by")
    if kind == "absence" and not group_by:
        raise RuleError(rid, "group_by", "an absence rule needs the field whose keys go silent")
    condition = compile_match(d.get("match"), rid)
    if kind == "sequence" and d.get("match") is None:
        condition = _union([s.condition for s in params.steps])  # type: ignore[union-attr]
    definition = {k: v for k, v in d.items()
                  if k not in ("title", "severity", "clauses", "enabled", "description",
                               "message")}
    return Rule(rid, title, severity, kind, condition, params, group_by, tuple(clauses),
                enabled, str(d.get("description", "")), str(d.get("message", "")),
                digest_of(definition), origin)


def _union(conds: Iterable[Condition]) -> Condition:
    """Any of several conditions (for a sequence's steps when no common ``match`` is set)."""
    cs = list(conds)
    keys: frozenset[str] | None = None
    if all(c.keys is not None for c in cs):
        merged = frozenset().union(*(c.keys for c in cs if c.keys is not None))
        if len({k[:2] for k in merged}) == 1:
            keys = merged
    return Condition(_any_of([c.test for c in cs]), keys)


def parse_rules(docs: Iterable[Mapping[str, Any]], *, origin: str = "native") -> list[Rule]:
    """Parse several definitions; rule ids must be unique."""
    rules = [parse_rule(d, origin=origin) for d in docs]
    check_unique(rules)
    return rules


def check_unique(rules: Sequence[Rule]) -> None:
    """Raise :class:`RuleError` when two rules share an id."""
    seen: set[str] = set()
    for r in rules:
        if r.id in seen:
            raise RuleError(r.id, "id", "defined twice")
        seen.add(r.id)

