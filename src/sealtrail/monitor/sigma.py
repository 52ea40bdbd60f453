"""Sigma rules over sealtrail events: pySigma parses, this module compiles to engine rules.

Only rules with ``logsource: product: sealtrail`` are accepted. A detection rule becomes a
``match`` rule whose condition is compiled from pySigma's condition tree into closures over the
event dict; a correlation rule (Sigma correlations 2.0: ``event_count``, ``value_count``,
``temporal``, ``temporal_ordered``) becomes a ``threshold`` / distinct-count ``threshold`` /
``sequence`` rule over the rules it references. Field names are event paths (``actor.id``) or
the aliases of :data:`FIELD_ALIASES`; see docs/rules.md for the table and for what is not
supported. Everything unsupported is refused with a :class:`RuleError` naming the rule and the
construct, never silently approximated.

Value semantics follow Sigma: strings compare case-insensitively (``|cased`` makes them
case-sensitive), ``*`` and ``?`` are wildcards, lists are any-of unless ``|all``; a field holding
a list matches when one of its elements does; numbers and booleans in the event are compared as
their text when the rule gives a string.
"""

from __future__ import annotations

import functools
import ipaddress
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Final

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
    SigmaNull,
    SigmaNumber,
    SigmaRegularExpression,
    SigmaRegularExpressionFlag,
    SigmaString,
    SigmaType,
    SpecialChars,
)

from sealtrail.core.event import CATEGORIES
from sealtrail.monitor.rules import (
    Condition,
    Predicate,
    Rule,
    RuleError,
    Severity,
    Single,
    Step,
    StepSequence,
    Threshold,
    check_unique,
    digest_of,
    field_getter,
)

__all__ = ["EVENT_FIELDS", "FIELD_ALIASES", "SUPPORTED_MODIFIERS", "compile_documents",
           "load_sigma", "map_field"]

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
    "s", "dotall", "cidr", "exists", "gt", "gte", "lt", "lte", "cased", "neq",
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
    """An event value as text for string comparison (numbers and booleans included)."""
    t = type(x)
    if t is str:
        return x  # type: ignore[no-any-return]
    if t is bool:
        return "true" if x else "false"
    if t is int or t is float:
        return str(x)
    return None


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
    rx = "".join(re.escape(p) if isinstance(p, str) else ".*" if p == star else "."
                 for p in parts)
    pattern = re.compile(rx, re.DOTALL | (0 if cased else re.IGNORECASE))
    return lambda x: (s := _text(x)) is not None and pattern.fullmatch(s) is not None


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


def _on_field(path: str, vt: Callable[[Any], bool]) -> Predicate:
    """Test a field's value; a list value matches when one of its elements does."""
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


def _compile_node(node: Any, rule: str) -> Condition:
    if isinstance(node, ConditionAND):
        subs = [_compile_node(a, rule) for a in node.args]
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
        subs = [_compile_node(a, rule) for a in node.args]
        return Condition(_or([s.test for s in subs]), _merge([s.keys for s in subs]))
    if isinstance(node, ConditionNOT):
        inner = _compile_node(node.args[0], rule).test
        return Condition(lambda ev: not inner(ev), None)
    if isinstance(node, ConditionFieldEqualsValueExpression):
        path = map_field(node.field, rule)
        return Condition(_on_field(path, _value_test(node.value, rule, node.field)),
                         _index(path, node.value))
    if isinstance(node, ConditionValueExpression):
        raise RuleError(rule, "keywords", "keyword (field-less) detections are not supported")
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


def _check_items(detection: SigmaDetection, rule: str) -> None:
    """Refuse keywords, unknown fields and unsupported modifiers, naming them."""
    for item in detection.detection_items:
        if isinstance(item, SigmaDetection):
            _check_items(item, rule)
            continue
        if not isinstance(item, SigmaDetectionItem) or item.field is None:
            raise RuleError(rule, "keywords", "keyword (field-less) detections are not supported")
        map_field(item.field, rule)
        for mod in item.modifiers:
            name = reverse_modifier_mapping.get(mod.__name__, mod.__name__)
            if name not in SUPPORTED_MODIFIERS:
                raise RuleError(rule, f"{item.field}|{name}", f"modifier {name!r} is not "
                                "supported")


def _rule_name(r: SigmaRule | SigmaCorrelationRule) -> str:
    return r.name or (str(r.id) if r.id else "") or r.title or "untitled"


def _where(r: SigmaRule | SigmaCorrelationRule) -> str:
    src = r.source
    return f" ({src.path})" if src is not None and src.path is not None else ""


def _detection_condition(r: SigmaRule) -> Condition:
    name = _rule_name(r)
    product = (r.logsource.product or "").lower()
    if product != "sealtrail":
        raise RuleError(name, "logsource.product", f"{r.logsource.product!r} is not "
                        f"'sealtrail': only sealtrail events are evaluated{_where(r)}")
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
        return cond
    parts = [*extra, cond]
    tests = [p.test for p in parts]
    keys = cond.keys or next((p.keys for p in extra if p.keys is not None), None)
    return Condition(lambda ev: all(t(ev) for t in tests), keys)


def _severity(r: SigmaRule | SigmaCorrelationRule) -> Severity:
    level = r.level.name.lower() if r.level is not None else "medium"
    return _LEVELS.get(level, "medium")


def _clauses(r: SigmaRule | SigmaCorrelationRule) -> tuple[str, ...]:
    raw = r.custom_attributes.get("clauses", [])
    if not isinstance(raw, list) or not all(isinstance(c, str) for c in raw):
        raise RuleError(_rule_name(r), "clauses", "expected a list of strings")
    return tuple(raw)


def _digest(r: SigmaRule | SigmaCorrelationRule) -> str:
    return digest_of({"sigma": r.to_dict()})


def _correlation(c: SigmaCorrelationRule, compiled: Mapping[int, tuple[SigmaRule, Condition]]
                 ) -> Rule:
    name = _rule_name(c)
    if isinstance(c.condition, SigmaCorrelationCondition):
        cond = c.condition
    else:
        raise RuleError(name, "correlation.condition", "extended (boolean) correlation "
                        "conditions are not supported")
    if len(c.aliases):
        raise RuleError(name, "correlation.aliases", "field aliases are not supported")
    refs: list[tuple[SigmaRule, Condition]] = []
    for ref in c.referenced_rules:
        target = ref.rule
        if isinstance(target, SigmaCorrelationRule):
            raise RuleError(name, "correlation.rules", f"{ref.reference!r} is a correlation: "
                            "nested correlations are not supported")
        refs.append(compiled[id(target)])
    group_by = tuple(map_field(g, name) for g in (c.group_by or []))
    window = c.timespan.seconds * 1_000_000
    op = cond.op.name.lower()
    if not isinstance(cond.count, int):
        raise RuleError(name, "correlation.condition", "the count must be an integer")
    count = cond.count
    digest = digest_of({"correlation": c.to_dict(),
                        "rules": [_digest(r) for r, _ in refs]})
    union = Condition(_or([cd.test for _, cd in refs]), _merge([cd.keys for _, cd in refs]))
    ctype = c.type
    params: Threshold | StepSequence
    if ctype in (SigmaCorrelationType.EVENT_COUNT, SigmaCorrelationType.VALUE_COUNT):
        kind = "threshold"
        distinct = None
        if ctype == SigmaCorrelationType.VALUE_COUNT:
            if not isinstance(cond.fieldref, str):
                raise RuleError(name, "correlation.condition.field", "expected one field")
            distinct = map_field(cond.fieldref, name)
        if op == "neq":
            raise RuleError(name, "correlation.condition", "neq is not supported")
        if op == "gt":
            op, count = "gte", count + 1
        if op == "gte" and count < 1:
            count = 1
        params = Threshold(count, window, op, distinct)  # type: ignore[arg-type]
    elif ctype in (SigmaCorrelationType.TEMPORAL, SigmaCorrelationType.TEMPORAL_ORDERED):
        kind = "sequence"
        steps = tuple(Step(_rule_name(r), cd) for r, cd in refs)
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


def compile_documents(docs: Sequence[tuple[Path | None, Mapping[str, Any]]]) -> list[Rule]:
    """Compile parsed Sigma YAML documents (with the file each came from) into rules.

    Detection rules referenced by a correlation (without ``generate: true``) do not fire on
    their own. The order of the result follows the documents.
    """
    collections = []
    for path, doc in docs:
        try:
            collections.append(SigmaCollection.from_dicts(
                [dict(doc)], source=SigmaRuleLocation(path) if path else None,
                resolve_references=False))
        except SigmaError as exc:
            title = str(doc.get("name") or doc.get("title") or doc.get("id") or path)
            raise RuleError(title, "sigma", f"{exc}") from exc
    merged = SigmaCollection.merge(collections, resolve_references=False)
    try:
        merged.resolve_rule_references()
    except SigmaError as exc:
        raise RuleError("sigma", "correlation.rules", str(exc)) from exc
    order = {id(r): n for n, r in enumerate(r for c in collections for r in c.rules)}
    quiet: set[int] = set()
    for r in merged.rules:
        if isinstance(r, SigmaCorrelationRule) and not r.generate:
            quiet.update(id(ref.rule) for ref in r.referenced_rules)
    compiled: dict[int, tuple[SigmaRule, Condition]] = {}
    rules: list[tuple[int, Rule]] = []
    for r in merged.rules:  # referenced rules come first
        if isinstance(r, SigmaCorrelationRule):
            rules.append((order[id(r)], _correlation(r, compiled)))
            continue
        try:
            cond = _detection_condition(r)
        except SigmaError as exc:
            raise RuleError(_rule_name(r), "detection", f"{exc}{_where(r)}") from exc
        compiled[id(r)] = (r, cond)
        if id(r) not in quiet:
            rules.append((order[id(r)], Rule(
                _rule_name(r), r.title or _rule_name(r), _severity(r), "match", cond,
                Single(), (), _clauses(r), True, r.description or "", "", _digest(r),
                "sigma")))
    out = [rule for _, rule in sorted(rules, key=lambda p: p[0])]
    check_unique(out)
    return out


def load_sigma(source: str | Path) -> list[Rule]:
    """Sigma rules from YAML text, a file, or a directory of ``*.yml``/``*.yaml`` files."""
    import yaml  # noqa: PLC0415 - pySigma imports it anyway; kept local for clarity

    if isinstance(source, Path):
        files = sorted(p for p in source.rglob("*") if p.suffix in (".yml", ".yaml")) \
            if source.is_dir() else [source]
        texts: list[tuple[Path | None, str]] = [(f, f.read_text(encoding="utf-8"))
                                                for f in files]
    else:
        texts = [(None, source)]
    docs: list[tuple[Path | None, Mapping[str, Any]]] = []
    for path, text in texts:
        try:
            loaded = list(yaml.safe_load_all(text))
        except yaml.YAMLError as exc:
            raise RuleError(str(path or "<text>"), "yaml", str(exc)) from exc
        for n, doc in enumerate(loaded, 1):
            if doc is None:
                continue
            if not isinstance(doc, dict):
                raise RuleError(str(path or "<text>"), f"document {n}", "expected a mapping")
            docs.append((path, doc))
    return compile_documents(docs)
