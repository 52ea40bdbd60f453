"""The demo's sample data: its own events once, and CloudTrail records imported at every start
(stored once, by their ids)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import httpx
from tests.ports import free_port

from sealtrail import AuditLog
from sealtrail.cli.demo import DEMO_PASSPHRASE, _demo_witness, prepare
from sealtrail.log import witnesses


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


def test_the_demo_witness_cosigns_the_sample_log(tmp_path: Path) -> None:
    """The demo's own witness (a thread on port+1) is the log's witness; a round gets the
    sample's checkpoint cosigned by it."""
    prepare(tmp_path, DEMO_PASSPHRASE)
    url = _demo_witness(tmp_path, free_port(), DEMO_PASSPHRASE)
    assert url is not None
    with AuditLog.open(tmp_path, passphrase=DEMO_PASSPHRASE, create=False) as log, \
            httpx.Client(timeout=5) as client:
        policy = witnesses.load(log)
        assert policy is not None
        assert [w.url for w in policy.witnesses] == [url]
        result = witnesses.run_round(log, policy, datetime.now(UTC), witnesses.httpx_post(client))
        assert result.met, result.problems
        assert "\n\u2014 sealtrail.demo/witness " in witnesses.State.load(log).note
