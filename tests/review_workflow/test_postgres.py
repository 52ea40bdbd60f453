"""The review on a log kept in PostgreSQL (``--store``), with the monitor's alerts there too:
the CLI's steps land in that log and the state reads back from it."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from sealtrail.log.auditlog import AuditLog
from sealtrail.log.datadir import open_alert_rows
from sealtrail.monitor.alerts import AlertStore, monitor_db_path
from sealtrail.monitor.builtin import builtin_rules
from sealtrail.monitor.runner import Monitor
from tests.clirun import sealtrail
from tests.review_workflow.conftest import Clock, activity, failures

pytestmark = pytest.mark.postgres

YESTERDAY = (datetime.now(UTC) - timedelta(days=1)).date()
Y = YESTERDAY.isoformat()


def test_review_in_a_postgresql_store(tmp_path: Path, pg_store: str) -> None:
    """Exceptions from the PostgreSQL alert rows; assign, benign, close, sign off by CLI."""
    clock = Clock(datetime.combine(YESTERDAY, datetime.min.time(), tzinfo=UTC)
                  + timedelta(hours=10))
    with AuditLog.open(tmp_path, "default", clock=clock, store=pg_store) as alog:
        alog.append_many(activity())
        alog.append_many(failures(6))
        path = monitor_db_path(tmp_path)
        monitor = Monitor(tmp_path, lambda: [("default", alog)], builtin_rules(),
                          AlertStore(path, rows=open_alert_rows(path, pg_store)), clock=clock)
        monitor.step()
        monitor.store.close()

    def run(*args: str) -> dict[str, object]:
        who = () if args[0] == "list" else ("--reviewer", "ann")
        ran = sealtrail("--store", pg_store, "review", *args, "--data", str(tmp_path), *who,
                        text=True)
        assert ran.returncode == 0, ran.stderr
        doc: dict[str, object] = json.loads(ran.stdout.split("\n")[0])
        return doc

    item = run("show", Y, "--format", "json")
    exceptions = item["exception_list"]
    assert isinstance(exceptions, list)
    alert_exc, auth_exc = exceptions
    assert alert_exc["kind"] == "alert"
    run("assign", Y, alert_exc["id"], "--to", "netops", "--note", "block it")
    run("benign", Y, auth_exc["id"], "--note", "same incident")
    assignments = run("show", Y, "--format", "json")["assignments"]
    assert isinstance(assignments, list)
    run("close", Y, assignments[0]["id"], "--note", "blocked")
    assert run("sign-off", Y, "--note", "reviewed")["status"] == "signed_off"
    row = run("list", "--since", Y, "--until", Y, "--format", "json")
    assert row["exceptions"] == {"total": 2, "open": 0, "addressed": 2, "undecided": 0}
