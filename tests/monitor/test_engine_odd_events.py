"""An event no rule expected (a hostile record posted with an ingest key) must not stop the
monitor: a condition that raises counts as no match, is counted, and every other rule runs."""

from __future__ import annotations

from sealtrail.monitor.builtin import builtin_rules
from sealtrail.monitor.engine import Engine
from sealtrail.monitor.sigma import load_sigma

RULE = """title: SSH open to the world
id: 5a1b2c3d-0000-4000-8000-0000000000aa
logsource: {product: aws, service: cloudtrail}
detection:
  sel: {requestParameters.ipPermissions.items.ipRanges.items.cidrIp: 0.0.0.0/0}
  condition: sel
"""


def _poison() -> dict[str, object]:
    deep: object = "[" * 15_000  # kept as JSON text past the depth an event holds
    for key in ("cidrIp", "items", "ipRanges", "items", "ipPermissions"):
        deep = {key: deep}
    return {"action": "aws.ec2.AuthorizeSecurityGroupIngress", "outcome": "success",
            "actor": {"id": "x"}, "time": "2026-12-01T00:00:00.000000Z",
            "received_at": "2026-12-01T00:00:00.000000Z",
            "metadata": {"log_source": {"product": "aws", "service": "cloudtrail"},
                         "original": {"requestParameters": deep}}}


def test_a_poisoned_event_does_not_stop_the_other_rules() -> None:
    engine = Engine([*load_sigma(RULE), *builtin_rules()])
    assert engine.process(0, _poison()) == []
    fired = []
    for i in range(1, 8):
        fired += engine.process(i, {
            "action": "user.login", "outcome": "failure", "category": "authentication",
            "actor": {"id": "mallory"}, "time": f"2026-12-01T00:00:0{i}.000000Z",
            "received_at": f"2026-12-01T00:00:0{i}.000000Z"})
    assert "builtin.brute_force" in {d.rule for d in fired}
    assert engine.condition_errors <= 1  # counted when a condition raised, never fatal
