"""Native rules: parsing and validation, the match language, and each rule kind firing or not."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from sealtrail.core.errors import SealtrailError
from sealtrail.monitor.engine import Engine, evaluate_events
from sealtrail.monitor.rules import (
    Detection,
    RuleError,
    compile_match,
    parse_duration,
    parse_rule,
)

BASE = datetime(2026, 11, 28, 10, 0, tzinfo=UTC)  # a Saturday


def ts(seconds: float) -> str:
    return (BASE + timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def ev(at: float = 0, **fields: Any) -> dict[str, Any]:
    """A stored event ``at`` seconds after BASE; keyword arguments replace fields."""
    event: dict[str, Any] = {
        "action": "user.login", "outcome": "failure", "category": "authentication",
        "actor": {"id": "alice", "ip": "10.0.0.5", "type": "user"},
        "source": {"host": "web-1", "service": "shop"},
        "time": ts(at), "received_at": ts(at)}
    event.update(fields)
    return event


def rule(**fields: Any) -> dict[str, Any]:
    return {"id": "t.rule", "title": "Test rule", "severity": "high", **fields}


def fired(definition: dict[str, Any], events: list[dict[str, Any]]) -> list[int]:
    """Indexes of the events on which the rule fired."""
    return [i for i, _ in evaluate_events([parse_rule(definition)], events)]


# -- the match language ---------------------------------------------------------------------

@pytest.mark.parametrize(("spec", "event", "expected"), [
    ({"outcome": "failure"}, ev(), True),
    ({"outcome": "success"}, ev(), False),
    ({"outcome": ["success", "failure"]}, ev(), True),
    ({"actor.id": "ali*"}, ev(), True),
    ({"actor.id": "*ice"}, ev(), True),
    ({"actor.id": "*lic*"}, ev(), True),
    ({"actor.id": "a*e"}, ev(), True),
    ({"actor.id": "b*"}, ev(), False),
    ({"actor.id": {"not": "alice"}}, ev(), False),
    ({"actor.id": {"not": ["bob", "carol"]}}, ev(), True),
    ({"metadata.role": {"not": "auditor"}}, ev(), True),  # absent satisfies every `not`
    ({"metadata.role": "auditor"}, ev(), False),
    ({"metadata.count": {"gte": 1000}}, ev(metadata={"count": 1000}), True),
    ({"metadata.count": {"gt": 1000}}, ev(metadata={"count": 1000}), False),
    ({"metadata.count": {"lt": 5, "gte": 1}}, ev(metadata={"count": 3}), True),
    ({"metadata.count": {"lte": 5}}, ev(metadata={"count": "3"}), False),  # text is no number
    ({"metadata.ok": True}, ev(metadata={"ok": True}), True),
    ({"metadata.ok": True}, ev(metadata={"ok": 1}), False),
    ({"metadata.n": 1}, ev(metadata={"n": 1.0}), True),
    ({"changes": {"exists": True}}, ev(changes={"before": 1}), True),
    ({"changes": {"exists": False}}, ev(), True),
    ({"metadata.a.b.c": "x"}, ev(metadata={"a": {"b": {"c": "x"}}}), True),
    ({"metadata.a.b.c": "x"}, ev(metadata={"a": "flat"}), False),
    ({"subjects": "s-2"}, ev(subjects=["s-1", "s-2"]), True),
    ({"not": {"outcome": "failure"}}, ev(), False),
    ({"any": [{"outcome": "success"}, {"actor.id": "alice"}]}, ev(), True),
    ({"all": [{"outcome": "failure"}, {"actor.id": "bob"}]}, ev(), False),
    ({"action": ["*role*", "*grant*"]}, ev(action="admin.grant.add"), True),
    ({"action": ["*role*", "*grant*"]}, ev(action="user.login"), False),
    ({"outcome": None}, ev(), False),
    ({}, ev(), True),
])
def test_match_language(spec: dict[str, Any], event: dict[str, Any], expected: bool) -> None:
    """Each form of the match language decides as documented in docs/rules.md."""
    assert compile_match(spec).test(event) is expected


def test_native_strings_are_case_sensitive() -> None:
    """Native rules compare text exactly (Sigma rules are the case-insensitive ones)."""
    assert not compile_match({"actor.id": "Alice"}).test(ev())


@pytest.mark.parametrize(("spec", "keys"), [
    ({"action": "user.login"}, {"a:user"}),
    ({"action": ["keys.*", "log.create"]}, {"a:keys", "a:log"}),
    ({"category": "authentication", "outcome": "failure"}, {"c:authentication"}),
    ({"category": "authentication", "action": "User.Login"}, {"a:user"}),
    ({"action": "*export*"}, None),
    ({"action": "user*"}, None),
    ({"outcome": "failure"}, None),
    ({"any": [{"action": "a.b"}, {"action": "c.d"}]}, {"a:a", "a:c"}),
    ({"any": [{"action": "a.b"}, {"category": "system"}]}, None),
])
def test_index_keys_are_a_necessary_condition(spec: dict[str, Any],
                                              keys: set[str] | None) -> None:
    """Rules are indexed by action segment or category only when that is implied."""
    got = compile_match(spec).keys
    assert (None if got is None else set(got)) == keys


def test_index_never_hides_a_match() -> None:
    """An engine with indexed rules finds what an unindexed evaluation of the same rules finds."""
    defs = [rule(id=f"r{i}", kind="match", match=m) for i, m in enumerate([
        {"action": "user.login"}, {"action": "keys.*"}, {"category": "system"},
        {"action": ["*role*"]}, {"any": [{"action": "a.b"}, {"action": "c.*"}]}])]
    rules = [parse_rule(d) for d in defs]
    events = [ev(i, action=a, category=c) for i, (a, c) in enumerate([
        ("user.login", "authentication"), ("keys.rotate", "admin"), ("x.y", "system"),
        ("admin.role.grant", "admin"), ("a.b", "admin"), ("c.x.y", "data_access"),
        ("USER.login", "authentication"), ("noseg", "system")])]
    got = sorted((i, d.rule) for i, d in evaluate_events(rules, events))
    expected = sorted((i, r.id) for i, e in enumerate(events) for r in rules
                      if r.condition.test(e))
    assert got == expected


# -- validation ------------------------------------------------------------------------------

@pytest.mark.parametrize(("definition", "field"), [
    ({"kind": "match"}, "id"),
    (rule(id="bad id!", kind="match"), "id"),
    (rule(kind="nope"), "kind"),
    (rule(kind="match", severity="urgent"), "severity"),
    (rule(kind="match", clauses="PCI"), "clauses"),
    (rule(kind="match", enabled="yes"), "enabled"),
    (rule(kind="match", window="5m"), "window"),
    (rule(kind="threshold", count=5), "window"),
    (rule(kind="threshold", window="5m"), "count"),
    (rule(kind="threshold", window="5m", count=0), "count"),
    (rule(kind="threshold", window="soon", count=3), "window"),
    (rule(kind="threshold", window="5m", count=3, op="ne"), "op"),
    (rule(kind="match", match={"outcome": {"like": "x"}}), "match.outcome.like"),
    (rule(kind="match", match={"category": "authn"}), "match.category"),
    (rule(kind="match", match={"metadata.n": {"gt": "5"}}), "match.metadata.n.gt"),
    (rule(kind="match", match={"outcome": []}), "match.outcome"),
    (rule(kind="match", match={"any": {}}), "match.any"),
    (rule(kind="match", match=["outcome"]), "match"),
    (rule(kind="match", match={"a..b": 1}), "match.a..b"),
    (rule(kind="sequence", window="5m", steps=[{"match": {}}]), "steps"),
    (rule(kind="sequence", window="5m", steps=[{"match": {}}, {"count": 2}]), "steps[1]"),
    (rule(kind="sequence", window="5m", steps=[{"match": {}}, {"match": {}}], min_steps=1),
     "min_steps"),
    (rule(kind="first_seen"), "field"),
    (rule(kind="time_of_day", hours="8-18"), "hours"),
    (rule(kind="time_of_day", hours="08:00-25:00"), "hours"),
    (rule(kind="time_of_day", days=["someday"]), "days"),
    (rule(kind="time_of_day", timezone="Mars/Olympus"), "timezone"),
    (rule(kind="rate_anomaly", alpha=2), "alpha"),
    (rule(kind="absence", interval="1h"), "group_by"),
    (rule(kind="absence", interval="1h", group_by=[1]), "group_by"),
    (rule(kind="clock_skew", max_skew="-5m"), "max_skew"),
])
def test_invalid_rules_name_the_rule_and_field(definition: dict[str, Any], field: str) -> None:
    """Every validation error is a RuleError naming the rule id and the offending field."""
    with pytest.raises(RuleError) as info:
        parse_rule(definition)
    assert info.value.field == field
    assert isinstance(info.value, SealtrailError)
    if isinstance(definition.get("id"), str):
        assert repr(definition["id"]) in str(info.value)


@pytest.mark.parametrize(("text", "us"), [("5m", 300_000_000), ("1h", 3_600_000_000),
                                          ("30s", 30_000_000), ("2d", 172_800_000_000),
                                          ("250ms", 250_000), (90, 90_000_000)])
def test_durations(text: str | int, us: int) -> None:
    """Durations are a count and a unit (or seconds as a number)."""
    assert parse_duration(text) == us


def test_duplicate_ids_are_refused() -> None:
    """Two rules with one id cannot run together: detections would be ambiguous."""
    r = parse_rule(rule(kind="match"))
    with pytest.raises(RuleError, match="defined twice"):
        Engine([r, r])


def test_digest_ignores_presentation() -> None:
    """Changing a title or severity keeps the digest (and so the state); a window does not."""
    a = parse_rule(rule(kind="threshold", count=3, window="5m"))
    b = parse_rule(rule(kind="threshold", count=3, window="5m", title="Other", severity="low"))
    c = parse_rule(rule(kind="threshold", count=3, window="6m"))
    assert a.digest == b.digest != c.digest


def test_detection_to_dict() -> None:
    """A detection is plain data for alert sinks and the API."""
    d = Detection("r", "T", "high", "alice", [1, 2], ts(0), ("PCI DSS 10.2.1.4",), "m")
    assert d.to_dict() == {"rule": "r", "title": "T", "severity": "high", "key": "alice",
                           "entries": [1, 2], "time": ts(0), "clauses": ["PCI DSS 10.2.1.4"],
                           "message": "m"}


def test_disabled_rules_do_not_run() -> None:
    """``enabled: false`` keeps a rule loaded but silent."""
    assert fired(rule(kind="match", enabled=False), [ev()]) == []


def test_custom_message_template() -> None:
    """``message`` may use {key}, {title} and {count}; unknown placeholders stay as they are."""
    r = parse_rule(rule(kind="match", group_by="actor.id", message="{title}: {key} {other}"))
    (_, d), = evaluate_events([r], [ev()])
    assert d.message == "Test rule: alice {other}"


# -- kinds: match ----------------------------------------------------------------------------

def test_match_fires_on_every_matching_event() -> None:
    """Kind ``match`` without dedup fires once per matching event, evidence = that event."""
    definition = rule(kind="match", match={"outcome": "failure"})
    assert fired(definition, [ev(0), ev(1, outcome="success"), ev(2)]) == [0, 2]


def test_match_dedup_per_key() -> None:
    """With ``dedup`` a key fires once per period; other keys are independent."""
    definition = rule(kind="match", group_by="actor.id", dedup="1h")
    events = [ev(0), ev(60), ev(120, actor={"id": "bob"}), ev(3600), ev(3700)]
    assert fired(definition, events) == [0, 2, 3]


# -- kinds: threshold ------------------------------------------------------------------------

THRESHOLD = rule(kind="threshold", match={"outcome": "failure"}, group_by="actor.id",
                 count=3, window="5m")


def test_threshold_fires_once_when_reached() -> None:
    """N matching events of one key within the window fire once, with all N as evidence."""
    events = [ev(0), ev(10), ev(20), ev(30)]
    result = evaluate_events([parse_rule(THRESHOLD)], events)
    assert [(i, d.entries, d.key) for i, d in result] == [(2, [0, 1, 2], "alice")]


def test_threshold_not_reached_outside_window() -> None:
    """Events spread wider than the window never add up."""
    assert fired(THRESHOLD, [ev(0), ev(200), ev(400), ev(600)]) == []


def test_threshold_keys_are_separate() -> None:
    """Counts are per group key."""
    events = [ev(0), ev(1, actor={"id": "bob"}), ev(2), ev(3, actor={"id": "bob"})]
    assert fired(THRESHOLD, events) == []


def test_threshold_dedup_one_per_window() -> None:
    """After firing, the key is quiet for a window, then fires again on a new burst."""
    events = [ev(i * 10) for i in range(9)] + [ev(400 + i) for i in range(3)]
    assert fired(THRESHOLD, events) == [2, 11]


def test_threshold_distinct_values() -> None:
    """``distinct`` counts different values of a field (password spraying: many users)."""
    definition = rule(kind="threshold", group_by="actor.ip", distinct="actor.id", count=3,
                      window="5m")
    same = [ev(i) for i in range(5)]
    spray = [ev(i, actor={"id": f"u{i}", "ip": "10.0.0.5"}) for i in range(3)]
    assert fired(definition, same) == []
    assert fired(definition, spray) == [2]


def test_threshold_multi_field_key() -> None:
    """``group_by`` with several fields joins their values with ``|``."""
    r = parse_rule({**THRESHOLD, "group_by": ["actor.id", "actor.ip"]})
    (_, d), = evaluate_events([r], [ev(0), ev(1), ev(2)])
    assert d.key == "alice|10.0.0.5"


@pytest.mark.parametrize(("op", "count", "n_events", "fires"), [
    ("lt", 3, 2, True), ("lt", 3, 3, False), ("lte", 3, 3, True), ("eq", 2, 2, True),
    ("eq", 2, 3, False)])
def test_threshold_closing_window_ops(op: str, count: int, n_events: int, fires: bool) -> None:
    """lt/lte/eq are judged when the key's window closes (at a later event or a tick)."""
    definition = rule(kind="threshold", op=op, count=count, window="5m", group_by="actor.id")
    events = [ev(i) for i in range(n_events)]
    found = evaluate_events([parse_rule(definition)], events, now=BASE + timedelta(minutes=6))
    assert bool(found) is fires
    if found:
        assert found[0][1].time == ts(300)


# -- kinds: sequence -------------------------------------------------------------------------

SEQUENCE = rule(kind="sequence", group_by="actor.id", window="10m", steps=[
    {"match": {"outcome": "failure"}, "count": 3},
    {"match": {"outcome": "success"}}])


def test_sequence_fires_in_order() -> None:
    """Three failures then a success of the same key fire, with all four as evidence."""
    events = [ev(0), ev(1), ev(2), ev(3, outcome="success")]
    result = evaluate_events([parse_rule(SEQUENCE)], events)
    assert [(i, d.entries) for i, d in result] == [(3, [0, 1, 2, 3])]


@pytest.mark.parametrize("events", [
    [ev(0), ev(1), ev(3, outcome="success")],                           # too few failures
    [ev(0, outcome="success"), ev(1), ev(2), ev(3)],                    # wrong order
    [ev(0), ev(1), ev(2), ev(900, outcome="success")],                  # outside the window
    [ev(0), ev(1), ev(2), ev(3, outcome="success", actor={"id": "bob"})],  # other key
])
def test_sequence_does_not_fire(events: list[dict[str, Any]]) -> None:
    """Order, count, window and key all matter."""
    assert fired(SEQUENCE, events) == []


def test_sequence_resets_after_firing() -> None:
    """The same failures do not fire twice."""
    events = [ev(0), ev(1), ev(2), ev(3, outcome="success"), ev(4, outcome="success")]
    assert fired(SEQUENCE, events) == [3]


def test_unordered_sequence() -> None:
    """``ordered: false`` fires when every step was seen, in any order."""
    definition = {**SEQUENCE, "ordered": False}
    events = [ev(0, outcome="success"), ev(1), ev(2), ev(3)]
    assert fired(definition, events) == [3]


# -- kinds: first_seen -----------------------------------------------------------------------

FIRST_SEEN = rule(kind="first_seen", group_by="actor.id", field="actor.ip", learn_events=3)


def ip_event(at: float, ip: str, actor: str = "alice") -> dict[str, Any]:
    return ev(at, actor={"id": actor, "ip": ip})


def test_first_seen_after_learning() -> None:
    """A new value for a learnt key fires; known values do not."""
    events = [ip_event(0, "10.0.0.1"), ip_event(1, "10.0.0.2"), ip_event(2, "10.0.0.1"),
              ip_event(3, "10.0.0.2"), ip_event(4, "192.0.2.7")]
    assert fired(FIRST_SEEN, events) == [4]


def test_first_seen_learning_keeps_new_keys_quiet() -> None:
    """The first events of every key only teach: a new actor does not fire."""
    events = [ip_event(i, f"10.0.0.{i}", actor=f"u{i}") for i in range(10)]
    assert fired(FIRST_SEEN, events) == []


def test_first_seen_learning_period() -> None:
    """``learn_period`` also has to pass since the key's first event."""
    definition = {**FIRST_SEEN, "learn_events": 0, "learn_period": "1h"}
    events = [ip_event(0, "10.0.0.1"), ip_event(60, "10.0.0.2"), ip_event(3601, "10.0.0.3")]
    assert fired(definition, events) == [2]


# -- kinds: time_of_day ----------------------------------------------------------------------

OFFICE = rule(kind="time_of_day", hours="08:00-18:00", days=["mon", "tue", "wed", "thu", "fri"],
              timezone="Europe/Berlin")


def at_utc(text: str) -> dict[str, Any]:
    return ev(time=text, received_at=text)


def test_time_of_day_outside_hours_fires() -> None:
    """Saturday, or a weekday evening in the rule's time zone, is outside."""
    events = [at_utc("2026-11-28T10:00:00.000000Z"),   # Saturday
              at_utc("2026-11-30T17:30:00.000000Z"),   # Monday 18:30 in Berlin
              at_utc("2026-11-30T06:59:00.000000Z")]   # Monday 07:59 in Berlin
    assert fired(OFFICE, events) == [0, 1, 2]


def test_time_of_day_inside_hours_is_quiet() -> None:
    """Monday 08:00 and 17:59 Berlin time are inside."""
    events = [at_utc("2026-11-30T07:00:00.000000Z"), at_utc("2026-11-30T16:59:00.000000Z")]
    assert fired(OFFICE, events) == []


def test_time_of_day_overnight_range() -> None:
    """A range across midnight (night shift) belongs to the day it starts on."""
    night = rule(kind="time_of_day", hours="22:00-06:00", days=["fri"])
    events = [at_utc("2026-11-27T23:00:00.000000Z"),   # Friday 23:00: allowed
              at_utc("2026-11-28T05:00:00.000000Z"),   # Saturday 05:00, Friday's shift
              at_utc("2026-11-28T23:00:00.000000Z")]   # Saturday 23:00: outside
    assert fired(night, events) == [2]


# -- kinds: rate_anomaly ---------------------------------------------------------------------

RATE = rule(kind="rate_anomaly", group_by="actor.id", bucket="1m", factor=3, min_count=5)


def test_rate_anomaly_fires_above_baseline() -> None:
    """A bucket above max(min_count, factor x baseline) fires once in that bucket."""
    steady = [ev(m * 60 + s) for m in range(5) for s in range(4)]   # 4 per minute
    burst = [ev(300 + s) for s in range(20)]                        # 20 in the 6th minute
    result = fired(RATE, steady + burst)
    assert result == [len(steady) + 12]  # the 13th event of the burst exceeds 3 x 4


def test_rate_anomaly_steady_rate_is_quiet() -> None:
    """A steady rate never exceeds its own baseline."""
    steady = [ev(m * 60 + s) for m in range(10) for s in range(8)]
    assert fired(RATE, steady) == []


# -- kinds: absence and clock_skew ----------------------------------------------------------

ABSENCE = rule(kind="absence", group_by="source.service", interval="1h")


def test_absence_fires_once_per_silence() -> None:
    """A key silent for longer than the interval fires on tick, once, and re-arms when seen."""
    engine = Engine([parse_rule(ABSENCE)])
    engine.process(0, ev(0))
    assert engine.tick(BASE + timedelta(minutes=59)) == []
    (d,) = engine.tick(BASE + timedelta(minutes=61))
    assert (d.key, d.entries, d.time) == ("shop", [0], ts(3660))
    assert engine.tick(BASE + timedelta(minutes=120)) == []
    engine.process(1, ev(7300))
    assert len(engine.tick(BASE + timedelta(seconds=7300 + 3601))) == 1


def test_absence_never_seen_key_is_quiet() -> None:
    """Keys the engine has never seen cannot go silent; events without the key are ignored."""
    engine = Engine([parse_rule(ABSENCE)])
    engine.process(0, ev(0, source={"host": "h"}))
    assert engine.tick(BASE + timedelta(days=1)) == []


SKEW = rule(kind="clock_skew", group_by="source.service", max_skew="5m")


def test_clock_skew_fires_once_per_key() -> None:
    """A time off by more than the bound fires, deduplicated per key for an hour."""
    events = [ev(0, time=ts(-600), received_at=ts(0)), ev(1, time=ts(-600), received_at=ts(1)),
              ev(2, time=ts(400), received_at=ts(2), source={"service": "api"})]
    result = evaluate_events([parse_rule(SKEW)], events)
    assert [(i, d.key) for i, d in result] == [(0, "shop"), (2, "api")]
    assert "behind" in result[0][1].message
    assert "ahead" in result[1][1].message


def test_clock_skew_within_bound_is_quiet() -> None:
    """Normal delivery delay does not fire."""
    assert fired(SKEW, [ev(0, time=ts(-30), received_at=ts(0))]) == []


# -- time -----------------------------------------------------------------------------------

def test_event_time_is_clamped_to_received_at() -> None:
    """A producer's clock ahead of the log cannot stretch a window: time <= received_at."""
    events = [ev(0), ev(1), ev(2, time=ts(10_000), received_at=ts(2))]
    assert fired(THRESHOLD, events) == [2]


def test_late_burst_is_judged_on_its_own_timeline() -> None:
    """Events delivered late (a spool flushed after an outage) still add up in their window."""
    events = [ev(3600, actor={"id": "bob"})] + [
        ev(i, received_at=ts(3601 + i)) for i in range(3)]
    assert fired(THRESHOLD, events) == [3]


def test_replayed_indexes_are_skipped() -> None:
    """An index at or below the last processed one is ignored (safe replay after restart)."""
    engine = Engine([parse_rule(rule(kind="match"))])
    assert len(engine.process(5, ev())) == 1
    assert engine.process(5, ev()) == []
    assert engine.process(3, ev()) == []
