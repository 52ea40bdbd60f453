"""The demo's sample data: its own events once, and CloudTrail records imported at every start
(stored once, by their ids)."""

from __future__ import annotations

from pathlib import Path

from sealtrail import AuditLog
from sealtrail.cli.demo import DEMO_PASSPHRASE, prepare


def test_the_demo_imports_its_cloudtrail_sample_once(tmp_path: Path) -> None:
    prepare(tmp_path, DEMO_PASSPHRASE)
    with AuditLog.open(tmp_path, passphrase=DEMO_PASSPHRASE, create=False) as log:
        size = log.size
        actions = [log.read(e)["action"] for e in log.entries(0)]
    assert [a for a in actions if a.startswith("aws.")] == [
        "aws.signin.ConsoleLogin", "aws.iam.CreateAccessKey", "aws.cloudtrail.StopLogging"]
    prepare(tmp_path, DEMO_PASSPHRASE)  # a second start
    with AuditLog.open(tmp_path, passphrase=DEMO_PASSPHRASE, create=False) as log:
        assert log.size == size
        first = log.read(log.entry(actions.index("aws.signin.ConsoleLogin")))
        log.verify()
    assert first["outcome"] == "failure"
    assert first["metadata"]["log_source"] == {"product": "aws", "service": "cloudtrail"}
