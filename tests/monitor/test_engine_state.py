"""Engine state across restarts: a snapshot restored continues exactly like one long run."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sealtrail.core.errors import ConfigError
from sealtrail.monitor.builtin import builtin_rules
from sealtrail.monitor.engine import Engine
from sealtrail.monitor.rules import Detection, Rule, parse_rule

BASE = datetime(2026, 11, 28, 10, 0, tzinfo=UTC)


def ts(seconds: float) -> str:
    return (BASE + timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


FAIL = {"category": "authentication", "outcome": "failure"}
OK = {"category": "authentication", "outcome": "success"}

RULE_DEFS: list[dict[str, Any]] = [
    {"id": "thr", "kind": "threshold", "match": FAIL, "group_by": "actor.id", "count": 3,
     "window": "60s"},
    {"id": "distinct", "kind": "threshold", "group_by": "actor.ip", "distinct": "actor.id",
     "count": 2, "window": "90s"},
    {"id": "few", "kind": "threshold", "op": "lt", "count": 2, "match": OK,
     "group_by": "actor.id", "window": "45s"},
    {"id": "seq", "kind": "sequence", "group_by": "actor.id", "window": "120s",
     "steps": [{"match": FAIL, "count": 2}, {"match": OK}]},
    {"id": "any_order", "kind": "sequence", "group_by": "actor.id", "window": "50s",
     "ordered": False, "steps": [{"match": {"action": "doc.read"}},
                                 {"match": {"action": "doc.export"}}]},
    {"id": "new_ip", "kind": "first_seen", "group_by": "actor.id", "field": "actor.ip",
     "learn_events": 2},
    {"id": "night", "kind": "time_of_day", "hours": "10:00-10:02", "group_by": "actor.id",
     "dedup": "30s"},
    {"id": "rate", "kind": "rate_anomaly", "group_by": "actor.id", "bucket": "10s",
     "min_count": 2, "factor": 1.5, "warmup": 0},
    {"id": "silent", "kind": "absence", "group_by": "source.service", "interval": "40s"},
    {"id": "skew", "kind": "clock_skew", "group_by": "source.service", "max_skew": "20s",
     "dedup": "30s"},
    {"id": "once", "kind": "match", "match": {"action": "doc.export"}, "group_by": "actor.id",
     "dedup": "25s"},
]


def all_rules() -> list[Rule]:
    return [parse_rule(d) for d in RULE_DEFS] + builtin_rules()


@st.composite
def streams(draw: st.DrawFn) -> list[tuple[str, Any]]:
    """Events (mostly in time order, some late, some skewed) interleaved with ticks."""
    ops: list[tuple[str, Any]] = []
    clock = 0.0
    for _ in range(draw(st.integers(1, 60))):
        clock += draw(st.sampled_from([0.5, 1, 3, 7, 20, 45]))
        if draw(st.integers(0, 9)) == 0:
            ops.append(("tick", clock + draw(st.sampled_from([0, 30, 90]))))
            continue
        lag = draw(st.sampled_from([0, 0, 0, 0.2, 30, 200]))     # late delivery
        ahead = draw(st.sampled_from([0, 0, 0, 25]))             # producer clock ahead
        outcome, category, action = draw(st.sampled_from([
            ("failure", "authentication", "user.login"), ("success", "authentication",
                                                         "user.login"),
            ("success", "data_access", "doc.read"), ("success", "data_access", "doc.export"),
            ("success", "admin", "keys.rotate")]))
        ops.append(("event", {
            "action": action, "outcome": outcome, "category": category,
            "actor": {"id": draw(st.sampled_from(["a", "b", "c"])),
                      "ip": draw(st.sampled_from(["10.0.0.1", "10.0.0.2", "10.0.0.3"]))},
            "source": {"service": draw(st.sampled_from(["s1", "s2"]))},
            "time": ts(clock - lag + ahead), "received_at": ts(clock)}))
    return ops


def run(engine: Engine, ops: list[tuple[str, Any]], start: int) -> list[tuple[int, Detection]]:
    out: list[tuple[int, Detection]] = []
    for pos, (what, arg) in enumerate(ops):
        if what == "event":
            out.extend((start + pos, d) for d in engine.process(start + pos, arg))
        else:
            out.extend((start + pos, d) for d in engine.tick(BASE + timedelta(seconds=arg)))
    return out


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=streams(), data=st.data())
def test_split_run_equals_uninterrupted_run(ops: list[tuple[str, Any]],
                                            data: st.DataObject) -> None:
    """Snapshot at any point, through JSON, restored: the same detections as one long run."""
    rules = all_rules()
    whole = run(Engine(rules), ops, 0)
    cut = data.draw(st.integers(0, len(ops)))
    first = Engine(rules)
    part1 = run(first, ops[:cut], 0)
    state = json.loads(json.dumps(first.snapshot()))
    second = Engine(rules, state=state)
    part2 = run(second, ops[cut:], cut)
    assert part1 + part2 == whole


def event(at: float, actor: str = "a", **kw: Any) -> dict[str, Any]:
    return {"action": "user.login", "outcome": "failure", "category": "authentication",
            "actor": {"id": actor}, "time": ts(at), "received_at": ts(at), **kw}


def test_snapshot_records_progress_and_fingerprint() -> None:
    """The snapshot names the last processed index and the rule set it belongs to."""
    engine = Engine(all_rules())
    engine.process(7, event(0))
    snap = engine.snapshot()
    assert snap["last_index"] == 7
    assert snap["fingerprint"] == engine.fingerprint
    assert set(snap["rules"]) == {r.id for r in all_rules()}
    restored = Engine(all_rules(), state=snap)
    assert restored.process(7, event(1)) == []  # already processed


def test_changed_rule_loses_its_state_only() -> None:
    """A rule whose definition changed starts afresh; unchanged rules keep their state."""
    thr = parse_rule(RULE_DEFS[0])
    other = parse_rule({**RULE_DEFS[0], "id": "thr2"})
    engine = Engine([thr, other])
    for i in range(2):
        engine.process(i, event(i))
    snap = engine.snapshot()
    changed = parse_rule({**RULE_DEFS[0], "count": 4})
    restored = Engine([changed, other], state=snap)
    assert restored.fingerprint != snap["fingerprint"]
    assert [d.rule for d in restored.process(2, event(2))] == ["thr2"]


def test_snapshot_prunes_expired_windows() -> None:
    """Keys whose window has passed (in log time) are not carried in the snapshot."""
    engine = Engine([parse_rule(RULE_DEFS[0])])
    engine.process(0, event(0, actor="old"))
    engine.process(1, event(500, actor="new"))
    assert list(engine.snapshot()["rules"]["thr"]["state"]) == ["new"]


def test_keys_per_rule_are_bounded() -> None:
    """At most ``max_keys`` keys per rule are kept; the least recently used go first."""
    engine = Engine([parse_rule(RULE_DEFS[0]), parse_rule(RULE_DEFS[5])], max_keys=10)
    for i in range(50):
        engine.process(i, event(i, actor=f"u{i}", **{}))
    snap = engine.snapshot()
    for rid in ("thr", "new_ip"):
        assert len(snap["rules"][rid]["state"]) <= 10
    assert "u49" in snap["rules"]["thr"]["state"]


def test_snapshot_size_is_bounded_under_attack() -> None:
    """A flood from one key keeps a bounded number of entries per key."""
    engine = Engine([parse_rule(RULE_DEFS[0]), *builtin_rules()])
    for i in range(2000):
        engine.process(i, event(i / 100))
    assert len(json.dumps(engine.snapshot())) < 20_000


@pytest.mark.parametrize("state", [
    {"version": 99, "last_index": 0, "watermark": 0, "rules": {}},
    {"version": 1, "rules": {}},
    {"version": 1, "last_index": "x", "watermark": 0, "rules": {}},
    {"version": 1, "last_index": 0, "watermark": 0, "rules": []},
])
def test_malformed_state_is_a_config_error(state: dict[str, Any]) -> None:
    """A damaged snapshot is refused with a ConfigError, not a crash of another type."""
    with pytest.raises(ConfigError):
        Engine(all_rules(), state=state)


def test_tick_needs_an_aware_time() -> None:
    """The engine never guesses a time zone."""
    with pytest.raises(ValueError, match="timezone"):
        Engine([]).tick(datetime(2026, 1, 1))
