"""``rules test --source`` sees what ``import`` stores: secrets redacted (the default mask), so
a rule on a secret's value cannot fire there and stay silent on the stored event."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from sealtrail import AuditLog
from sealtrail.cli.app import app
from sealtrail.core.sources import get_source
from sealtrail.core.sources.base import convert
from sealtrail.monitor.engine import evaluate_events
from sealtrail.monitor.sigma import load_sigma

RECORD = {"eventID": "7f1e2d3c-0000-4000-8000-00000000abcd", "eventTime": "2026-11-30T10:00:00Z",
          "eventSource": "sts.amazonaws.com", "eventName": "GetCallerIdentity",
          "sourceIPAddress": "198.51.100.4",
          "userIdentity": {"type": "AssumedRole", "arn": "arn:aws:sts::1:assumed-role/x/y",
                           "accessKeyId": "ASIA" + "Q" * 16}}
RULES = """title: temporary key used
id: 9b0c1d2e-1111-4aaa-8bbb-000000000001
logsource: {product: aws, service: cloudtrail}
detection:
  sel: {userIdentity.accessKeyId|startswith: ASIA}
  condition: sel
---
title: caller identity asked
id: 9b0c1d2e-1111-4aaa-8bbb-000000000002
logsource: {product: aws, service: cloudtrail}
detection:
  sel: {eventName: GetCallerIdentity}
  condition: sel
"""


def test_rules_test_and_the_stored_event_agree(tmp_path: Path) -> None:
    trail = tmp_path / "trail.json"
    trail.write_text(json.dumps({"Records": [RECORD]}))
    rules = tmp_path / "rules.yml"
    rules.write_text(RULES)
    res = CliRunner().invoke(app, ["rules", "test", str(rules), "--events", str(trail),
                                   "--source", "cloudtrail"])
    assert res.exit_code == 0, res.output
    assert "9b0c1d2e-1111-4aaa-8bbb-000000000002" in res.output
    assert "9b0c1d2e-1111-4aaa-8bbb-000000000001" not in res.output
    with AuditLog.open(tmp_path / "data", encryption=False) as log:  # redaction mask: default
        log.append_validated(convert(get_source("cloudtrail"), trail.read_text()).events)
        stored = [log.read(e) for e in log.entries(0)]
    fired = {d.rule for _, d in evaluate_events(load_sigma(RULES), stored)}
    assert fired == {"9b0c1d2e-1111-4aaa-8bbb-000000000002"}
    assert stored[0]["metadata"]["original"]["userIdentity"]["accessKeyId"].startswith(
        "[redacted:")
