"""One clock-skew bound (core/skew.py), read by the monitor's rule and the report's check.

An event whose time is exactly the bound away from its receipt is within it for both; one
microsecond more is skewed for both. The built-in rule's definition, and so its digest (kept
with the engine's state across restarts), is what it was when the bound was written "5m" in it.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta

import msgspec

from sealtrail.compliance.checks import TITLES, Context, Scan, check_skew
from sealtrail.core.canonical import decode_leaf, encode_leaf
from sealtrail.core.event import validate_event
from sealtrail.core.skew import MAX_SKEW, MAX_SKEW_MINUTES
from sealtrail.core.timefmt import format_time
from sealtrail.monitor.builtin import builtin_definitions, builtin_rules
from sealtrail.monitor.engine import evaluate_events
from sealtrail.monitor.rules import ClockSkew, digest_of, parse_rule

RECEIVED = datetime(2026, 3, 1, 12, tzinfo=UTC)


def _event(n: int, off: timedelta) -> dict[str, object]:
    return {"id": f"0190a000-0000-7000-8000-{n:012d}", "action": "user.login",
            "outcome": "success", "category": "authentication", "actor": {"id": "alice"},
            "source": {"service": "web", "host": "h1"},
            "time": format_time(RECEIVED - off), "received_at": format_time(RECEIVED)}


def _builtin_skew_fires(off: timedelta) -> bool:
    rules = [r for r in builtin_rules() if r.id == "builtin.clock_skew"]
    return bool(evaluate_events(rules, [_event(1, off)]))


def _report_counts_skewed(off: timedelta) -> bool:
    doc = _event(1, off)
    received = doc.pop("received_at")
    ev = validate_event(doc)
    scan = Scan()
    scan.feed(0, decode_leaf(encode_leaf(msgspec.structs.replace(ev, received_at=received))))
    return scan.skew["web"].skewed == 1


def test_monitor_and_report_share_the_boundary() -> None:
    """At the bound both are quiet; a microsecond past it both count the event as skewed."""
    over = MAX_SKEW + timedelta(microseconds=1)
    assert not _builtin_skew_fires(MAX_SKEW)
    assert not _report_counts_skewed(MAX_SKEW)
    assert _builtin_skew_fires(over)
    assert _report_counts_skewed(over)


def test_rules_default_to_the_bound() -> None:
    """A clock_skew rule without max_skew, and the built-in one, use MAX_SKEW."""
    rule = parse_rule({"id": "s", "kind": "clock_skew", "title": "t", "severity": "low"})
    (builtin,) = [r for r in builtin_rules() if r.id == "builtin.clock_skew"]
    for r in (rule, builtin):
        assert isinstance(r.params, ClockSkew)
        assert r.params.max_skew_us == MAX_SKEW // timedelta(microseconds=1)


def test_report_names_the_bound() -> None:
    """The check's title and evidence say the same bound."""
    assert f"<= {MAX_SKEW_MINUTES} min" in TITLES["clock-skew"]
    result = check_skew(Scan(), Context(now=RECEIVED))
    assert result.evidence["limit_seconds"] == MAX_SKEW.total_seconds()


def test_builtin_definition_and_digest_are_unchanged() -> None:
    """The definition still says "5m", so the digest is the one computed before."""
    (definition,) = [d for d in builtin_definitions() if d["id"] == "builtin.clock_skew"]
    assert definition["max_skew"] == "5m"
    text = json.dumps(definition, sort_keys=True, separators=(",", ":"), default=str)
    assert digest_of(definition) == hashlib.sha256(text.encode()).hexdigest()[:16]
