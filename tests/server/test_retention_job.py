"""The service's scheduled retention: archive and purge by the log's policy, time injected."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from sealtrail import AuditLog
from sealtrail.log.retention import RetentionPolicy, set_policy
from sealtrail.server.logs import Logs
from sealtrail.server.retention_job import RetentionJob


def test_scheduled_run_archives_and_purges(tmp_path: Path) -> None:
    now = [datetime(2025, 1, 1, tzinfo=UTC)]
    alog = AuditLog.open(tmp_path, "shop", clock=lambda: now[0])
    for d in range(10):
        now[0] = datetime(2025, 1, 1, tzinfo=UTC) + timedelta(days=30 * d)
        alog.append_many([{"action": "doc.read", "actor": {"id": f"u{i}"},
                           "outcome": "success", "category": "data_access"}
                          for i in range(5)])
    set_policy(alog, RetentionPolicy.parse({"name": "t", "default": {
        "min": "100d", "max": "200d", "online": "100d"}}), actor={"id": "ops"})
    alog.close()
    logs = Logs(tmp_path, None, lambda: now[0])
    job = RetentionJob(logs, lambda: now[0], delay=0, interval=0)
    job.run_all()
    run = job.results["shop"]
    assert run.ok, run.problem
    # Received on days 0..270 (every 30), now day 270: > 200 d purged (days 0..60: 15 events),
    # 100..200 d archived (days 90..150: 15 events).
    assert run.purged == 15
    assert run.archived == 15
    now[0] += timedelta(days=1)
    job.run_all()
    reopened = logs.get("shop")
    assert reopened.verify().retired == 30
    logs.close()
