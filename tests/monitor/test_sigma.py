"""Sigma rules: detection semantics, correlations mapped onto the engine, and every refusal."""

from __future__ import annotations

import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from sealtrail.monitor.engine import evaluate_events
from sealtrail.monitor.rules import Rule, RuleError
from sealtrail.monitor.sigma import FIELD_ALIASES, load_sigma, map_field

BASE = datetime(2026, 11, 28, 10, 0, tzinfo=UTC)


def ts(seconds: float) -> str:
    return (BASE + timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def ev(at: float = 0, **fields: Any) -> dict[str, Any]:
    event: dict[str, Any] = {
        "action": "user.login", "outcome": "failure", "category": "authentication",
        "actor": {"id": "alice", "ip": "10.1.2.3", "name": "Alice Smith", "type": "user"},
        "source": {"host": "web-1", "service": "shop"}, "reason": "Password Expired",
        "metadata": {"count": 12, "role": "reader", "tags": ["a", "b"]},
        "time": ts(at), "received_at": ts(at)}
    event.update(fields)
    return event


def sigma(detection: str, **extra: str) -> str:
    """A Sigma rule for sealtrail with the given detection block."""
    head = {"title": "Test rule", "name": "test_rule", "level": "high",
            "logsource": "\n  product: sealtrail", **extra}
    lines = [f"{k}: {v}" for k, v in head.items()]
    return "\n".join(lines) + "\ndetection:\n" + textwrap.indent(textwrap.dedent(detection), "  ")


def matches(detection: str, event: dict[str, Any]) -> bool:
    (rule,) = load_sigma(sigma(detection))
    return rule.condition.test(event)


# -- detection semantics --------------------------------------------------------------------

@pytest.mark.parametrize(("detection", "expected"), [
    ("sel:\n  action: user.login\ncondition: sel", True),
    ("sel:\n  action: USER.LOGIN\ncondition: sel", True),              # case-insensitive
    ("sel:\n  action|cased: USER.LOGIN\ncondition: sel", False),
    ("sel:\n  outcome: [success, failure]\ncondition: sel", True),
    ("sel:\n  action|startswith: user.\ncondition: sel", True),
    ("sel:\n  action|endswith: .logout\ncondition: sel", False),
    ("sel:\n  reason|contains: expired\ncondition: sel", True),
    ("sel:\n  reason|contains|all: [password, expired]\ncondition: sel", True),
    ("sel:\n  reason|contains|all: [password, locked]\ncondition: sel", False),
    ("sel:\n  actor.name: 'Al*Sm?th'\ncondition: sel", True),
    ("sel:\n  reason|re: '^Pass.*d$'\ncondition: sel", True),
    ("sel:\n  reason|re: '^pass'\ncondition: sel", False),
    ("sel:\n  reason|re|i: '^pass'\ncondition: sel", True),
    ("sel:\n  actor.ip|cidr: 10.0.0.0/8\ncondition: sel", True),
    ("sel:\n  actor.ip|cidr: 192.168.0.0/16\ncondition: sel", False),
    ("sel:\n  metadata.role|exists: true\ncondition: sel", True),
    ("sel:\n  target.id|exists: true\ncondition: sel", False),
    ("sel:\n  metadata.count|gt: 11\ncondition: sel", True),
    ("sel:\n  metadata.count|gte: 13\ncondition: sel", False),
    ("sel:\n  metadata.count|lt: 13\ncondition: sel", True),
    ("sel:\n  metadata.count|lte: 11\ncondition: sel", False),
    ("sel:\n  metadata.count: 12\ncondition: sel", True),
    ("sel:\n  metadata.count: '12'\ncondition: sel", True),         # text of a number
    ("sel:\n  metadata.tags: b\ncondition: sel", True),             # any list element
    ("sel:\n  target.id: null\ncondition: sel", True),
    ("sel:\n  outcome|neq: failure\ncondition: sel", False),
    ("sel:\n  User: alice\n  SourceIp|cidr: 10.1.0.0/16\ncondition: sel", True),
    ("sel:\n  - outcome: success\n  - actor.id: alice\ncondition: sel", True),  # list = OR
    ("a:\n  outcome: failure\nb:\n  actor.id: bob\ncondition: a and b", False),
    ("a:\n  outcome: failure\nb:\n  actor.id: bob\ncondition: a or b", True),
    ("a:\n  outcome: failure\nb:\n  actor.id: alice\ncondition: a and not b", False),
    ("a:\n  outcome: failure\nb:\n  actor.id: bob\ncondition: a and not b", True),
    ("sel_1:\n  actor.id: bob\nsel_2:\n  outcome: failure\ncondition: 1 of sel_*", True),
    ("sel_1:\n  actor.id: bob\nsel_2:\n  outcome: failure\ncondition: all of sel_*", False),
    ("s1:\n  outcome: failure\ns2:\n  actor.id: alice\ncondition: all of them", True),
    ("a:\n  actor.id: bob\nb:\n  outcome: failure\nc:\n  actor.id: alice\n"
     "condition: (a or b) and c", True),
    ("a:\n  actor.id: bob\nb:\n  outcome: failure\nc:\n  actor.id: carol\n"
     "condition: (a or b) and c", False),
    # keywords: found in any string value of the event (docs/rules.md)
    ("kw:\n  - expired\ncondition: kw", True),
    ("kw:\n  - mimikatz\n  - '*web-?'\ncondition: kw", True),
    ("kw:\n  - mimikatz\ncondition: kw", False),
    ("kw:\n  '|all':\n    - expired\n    - web-1\ncondition: kw", True),
    ("kw:\n  '|all':\n    - expired\n    - web-2\ncondition: kw", False),
    ("kw:\n  '|re': 'Pass\\w+ Exp'\ncondition: kw", True),
    ("kw:\n  '|cased':\n    - expired\ncondition: kw", False),
    ("kw:\n  '|cased':\n    - Expi*d\ncondition: kw", True),
    ("kw:\n  - 'pass*web'\ncondition: kw", False),            # a wildcard stays in one value
    ("kw:\n  - 12\ncondition: kw", True),                     # numbers as their text
    # fieldref: two fields of the event compared
    ("sel:\n  actor.name|fieldref|startswith: actor.id\ncondition: sel", True),
    ("sel:\n  actor.name|fieldref: actor.id\ncondition: sel", False),
    ("sel:\n  actor.id|fieldref: target.id\ncondition: sel", False),       # absent
])
def test_detection_semantics(detection: str, expected: bool) -> None:
    """Modifiers, lists, null, aliases and conditions decide as Sigma specifies."""
    assert matches(detection, ev()) is expected


def test_logsource_category_and_service_narrow_the_rule() -> None:
    """``logsource.category`` must equal the event category, ``service`` the source.service."""
    text = sigma("sel:\n  outcome: failure\ncondition: sel",
                 logsource="\n  product: sealtrail\n  category: authentication\n  service: shop")
    (rule,) = load_sigma(text)
    assert rule.condition.test(ev())
    assert not rule.condition.test(ev(category="data_access"))
    assert not rule.condition.test(ev(source={"service": "api"}))
    assert rule.condition.keys == frozenset({"c:authentication"})


def test_rule_metadata() -> None:
    """Name becomes the id, level the severity; ``clauses`` is carried over."""
    text = sigma("sel:\n  outcome: failure\ncondition: sel", level="informational",
                 clauses="['PCI DSS 10.2.1.4']")
    (rule,) = load_sigma(text)
    assert (rule.id, rule.title, rule.severity, rule.kind, rule.clauses, rule.origin) == (
        "test_rule", "Test rule", "low", "match", ("PCI DSS 10.2.1.4",), "sigma")


def test_field_mapping() -> None:
    """Event paths map to themselves, aliases to event paths, case-insensitively."""
    assert map_field("actor.id") == "actor.id"
    assert map_field("metadata.anything.deep") == "metadata.anything.deep"
    assert map_field("source.ip") == "source.ip"   # the event's own path wins
    assert map_field("username") == "actor.id"
    assert map_field("SOURCEIP") == "actor.ip"
    assert all(map_field(v) == v for v in FIELD_ALIASES.values())


def test_load_from_file_and_directory(tmp_path: Path) -> None:
    """Sigma rules load from text, a file, or a directory, and correlations span files."""
    (tmp_path / "base.yml").write_text(sigma("sel:\n  outcome: failure\ncondition: sel"))
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "corr.yml").write_text(CORRELATION.format(
        type="event_count", extra="", condition="gte: 2").replace("[failed]", "[test_rule]"))
    assert [r.id for r in load_sigma(tmp_path / "base.yml")] == ["test_rule"]
    assert [r.id for r in load_sigma(tmp_path)] == ["corr"]


# -- correlations ---------------------------------------------------------------------------

BASES = """
title: Failed login
name: failed
logsource:
  product: sealtrail
detection:
  sel:
    category: authentication
    outcome: failure
  condition: sel
---
title: Good login
name: good
logsource:
  product: sealtrail
detection:
  sel:
    category: authentication
    outcome: success
  condition: sel
"""

CORRELATION = """
title: Correlated
name: corr
level: critical
correlation:
  type: {type}
  rules: [failed{extra}]
  group-by: [User]
  timespan: 5m
  condition:
    {condition}
"""


def correlated(type_: str, condition: str, *, extra: str = "",
               generate: bool = False) -> list[Rule]:
    text = BASES + "---" + CORRELATION.format(type=type_, extra=extra, condition=condition)
    if generate:
        text += "  generate: true\n"
    return load_sigma(text)


def fires(rules: list[Rule], events: list[dict[str, Any]], *,
          now: datetime | None = None) -> list[tuple[int, str]]:
    return [(i, d.rule) for i, d in evaluate_events(rules, events, now=now)]


def test_event_count_fires_at_the_count() -> None:
    """event_count gte N is a threshold per group-by key within the timespan."""
    rules = correlated("event_count", "gte: 3")
    _good, corr = rules  # `good` is not referenced: it fires on its own
    assert (corr.kind, corr.group_by, corr.severity) == ("threshold", ("actor.id",), "critical")
    assert fires(rules, [ev(0), ev(10), ev(20)]) == [(2, "corr")]


def test_event_count_does_not_fire() -> None:
    """Too few, too spread out, or split over keys: no detection."""
    rules = correlated("event_count", "gt: 3")
    assert fires(rules, [ev(0), ev(10), ev(20)]) == []
    assert fires(rules, [ev(0), ev(200), ev(400), ev(600)]) == []
    assert fires(rules, [ev(0), ev(1, actor={"id": "bob"}), ev(2), ev(3)]) == []
    assert fires(rules, [ev(0), ev(1), ev(2), ev(3)]) == [(3, "corr")]


def test_event_count_lt_is_judged_at_window_close() -> None:
    """event_count lt N fires when a key's window closes with fewer events."""
    rules = correlated("event_count", "lt: 3")
    assert fires(rules, [ev(0), ev(10)], now=BASE + timedelta(minutes=6)) == [(1, "corr")]
    assert fires(rules, [ev(0), ev(10), ev(20)], now=BASE + timedelta(minutes=6)) == []


def test_value_count_counts_distinct_values() -> None:
    """value_count fires on N distinct values of the field per key."""
    rules = correlated("value_count", "gte: 3\n    field: SourceIp")
    assert rules[-1].kind == "threshold"
    spread = [ev(i, actor={"id": "alice", "ip": f"10.0.0.{i}"}) for i in range(3)]
    same = [ev(i) for i in range(5)]
    assert fires(rules, spread) == [(2, "corr")]
    assert fires(rules, same) == []


def test_temporal_ordered_fires_in_order_only() -> None:
    """temporal_ordered: the referenced rules' events in the listed order, per key."""
    rules = correlated("temporal_ordered", "gte: 2", extra=", good")
    assert rules[0].kind == "sequence"
    assert fires(rules, [ev(0), ev(10, outcome="success")]) == [(1, "corr")]
    assert fires(rules, [ev(0, outcome="success"), ev(10)]) == []
    assert fires(rules, [ev(0), ev(400, outcome="success")]) == []


def test_temporal_fires_in_any_order() -> None:
    """temporal: all referenced rules seen within the timespan, in any order."""
    rules = correlated("temporal", "gte: 2", extra=", good")
    assert fires(rules, [ev(0, outcome="success"), ev(10)]) == [(1, "corr")]
    assert fires(rules, [ev(0), ev(10)]) == []
    assert fires(rules, [ev(0), ev(10, outcome="success", actor={"id": "bob"})]) == []


def test_temporal_default_condition() -> None:
    """Without a condition, temporal correlations need every referenced rule."""
    text = BASES + "---" + CORRELATION.format(type="temporal", extra=", good", condition="")
    text = text.replace("  condition:\n", "")
    (rule,) = load_sigma(text)
    assert fires([rule], [ev(0), ev(1, outcome="success")]) == [(1, "corr")]


def test_referenced_rules_fire_only_with_generate() -> None:
    """Rules used by a correlation are silent unless the correlation says ``generate``."""
    assert [r.id for r in correlated("event_count", "gte: 2")] == ["good", "corr"]
    assert [r.id for r in correlated("temporal", "gte: 2", extra=", good")] == ["corr"]
    assert [r.id for r in correlated("event_count", "gte: 2", generate=True)] == [
        "failed", "good", "corr"]


# -- refusals -------------------------------------------------------------------------------

@pytest.mark.parametrize(("text", "construct"), [
    (sigma("sel:\n  outcome: failure\ncondition: sel",
           logsource="\n  product: windows"), "logsource.product"),
    (sigma("sel:\n  outcome: failure\ncondition: sel", logsource="\n  category: x"),
     "logsource.product"),
    (sigma("sel:\n  outcome: failure\ncondition: sel",
           logsource="\n  product: sealtrail\n  category: process_creation"),
     "logsource.category"),
    (sigma("sel:\n  CommandLine: whoami\ncondition: sel"), "field 'CommandLine'"),
    (sigma("sel:\n  reason|base64: x\ncondition: sel"), "reason|base64"),
    (sigma("sel:\n  reason|windash|contains: -x\ncondition: sel"), "reason|windash"),
    (sigma("sel:\n  reason|expand: '%x%'\ncondition: sel"), "reason|expand"),
    (sigma("sel:\n  outcome: failure\ncondition: sel | count() > 5"), "detection"),
    (sigma("sel:\n  outcome: failure\ncondition: sel and missing"), "detection"),
])
def test_unsupported_detection_is_refused(text: str, construct: str) -> None:
    """Each unsupported construct is a RuleError naming the rule and the construct."""
    with pytest.raises(RuleError) as info:
        load_sigma(text)
    assert info.value.field == construct
    assert "test_rule" in str(info.value)


@pytest.mark.parametrize(("type_", "condition", "extra", "construct"), [
    ("value_sum", "gte: 3\n    field: metadata.count", "", "correlation.type"),
    ("event_count", "neq: 3", "", "correlation.condition"),
    ("temporal_ordered", "gte: 1", ", good", "correlation.condition"),
    ("value_count", "gte: 3\n    field: Nonsense", "", "field 'Nonsense'"),
])
def test_unsupported_correlation_is_refused(type_: str, condition: str, extra: str,
                                            construct: str) -> None:
    """Unsupported correlation types and conditions are refused, naming the rule."""
    with pytest.raises(RuleError) as info:
        correlated(type_, condition, extra=extra)
    assert info.value.field == construct
    assert info.value.rule == "corr"


def test_extended_correlation_condition_is_refused() -> None:
    """Boolean (extended) temporal conditions are not supported."""
    text = BASES + "---" + CORRELATION.format(
        type="temporal", extra=", good", condition="").replace(
        "  condition:\n    \n", "  condition: failed and good\n")
    with pytest.raises(RuleError, match="extended"):
        load_sigma(text)


def test_correlation_aliases_are_refused() -> None:
    """Correlation field aliases are not supported."""
    text = BASES + "---" + CORRELATION.format(type="event_count", extra="",
                                              condition="gte: 2") + (
        "  aliases:\n    who:\n      failed: actor.id\n")
    with pytest.raises(RuleError, match="aliases"):
        load_sigma(text)


def test_nested_correlation_is_refused() -> None:
    """A correlation over a correlation is not supported."""
    text = BASES + "---" + CORRELATION.format(type="event_count", extra="",
                                              condition="gte: 2") + "---" + (
        CORRELATION.replace("name: corr", "name: outer").format(
            type="event_count", extra="", condition="gte: 2").replace("[failed]", "[corr]"))
    with pytest.raises(RuleError, match="nested"):
        load_sigma(text)


def test_unknown_reference_is_refused() -> None:
    """A correlation naming a rule that is not loaded is an error."""
    with pytest.raises(RuleError, match="'nothere' not found"):
        load_sigma(BASES + "---" + CORRELATION.format(type="event_count", extra=", nothere",
                                                      condition="gte: 2"))


def test_bad_yaml_names_the_file(tmp_path: Path) -> None:
    """Unparseable YAML is a RuleError naming the file."""
    bad = tmp_path / "bad.yml"
    bad.write_text("title: [unclosed\n")
    with pytest.raises(RuleError, match=r"bad\.yml"):
        load_sigma(bad)


def test_error_names_the_file(tmp_path: Path) -> None:
    """A refused rule loaded from a file names the file."""
    f = tmp_path / "win.yml"
    f.write_text(sigma("sel:\n  outcome: failure\ncondition: sel",
                       logsource="\n  product: windows"))
    with pytest.raises(RuleError, match=r"win\.yml"):
        load_sigma(f)
