"""``sealtrail review ...`` end to end on a data directory: the monitor's real alert, the steps
recorded in the log with the named reviewer, and the errors a person would make."""

from __future__ import annotations

import getpass
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sealtrail.log.auditlog import AuditLog
from sealtrail.monitor.alerts import AlertStore, monitor_db_path
from sealtrail.monitor.builtin import builtin_rules
from sealtrail.monitor.runner import Monitor
from tests.clirun import sealtrail
from tests.review_workflow.conftest import Clock, activity, failures

YESTERDAY = (datetime.now(UTC) - timedelta(days=1)).date()
Y = YESTERDAY.isoformat()


def _data(tmp_path: Path) -> Path:
    """A log whose yesterday holds a brute force the monitor raised an alert for."""
    clock = Clock(datetime.combine(YESTERDAY, datetime.min.time(), tzinfo=UTC)
                  + timedelta(hours=10))
    with AuditLog.open(tmp_path, clock=clock) as alog:
        alog.append_many(activity())
        alog.append_many(failures(6))
        monitor = Monitor(tmp_path, lambda: [("default", alog)], builtin_rules(),
                          AlertStore(monitor_db_path(tmp_path)), clock=clock)
        monitor.step()
        monitor.store.close()
    return tmp_path


def _review_check(data: Path) -> str:
    """The review check's status in ``sealtrail report`` over yesterday (PCI DSS 10.4.1)."""
    ran = sealtrail("report", "--standard", "pci-dss", "--format", "json", "--since", Y,
                    "--until", datetime.now(UTC).date().isoformat(), "--no-verify",
                    "--data", str(data), text=True)
    report = json.loads(ran.stdout)
    (check,) = [c for c in report["checks"] if c["id"] == "review"]
    return str(check["status"])


def test_review_on_the_command_line(tmp_path: Path) -> None:
    """list, show, a refused sign-off, assign, benign, close, sign-off; the state read back."""
    data = _data(tmp_path)

    def run(*args: str, env: dict[str, str | None] | None = None) -> tuple[int, str, str]:
        ran = sealtrail("review", *args, "--data", str(data), env=env, text=True)
        return ran.returncode, ran.stdout, ran.stderr

    code, out, _ = run("list", "--since", Y, "--format", "json")
    assert code == 0
    (row, *_rest) = [json.loads(line) for line in out.split("\n")
                     if line and json.loads(line)["period"] == Y]
    assert row["status"] == "pending"
    assert row["exceptions"]["total"] == 2

    code, out, _ = run("show", Y, "--format", "json", "--reviewer", "ann")
    assert code == 0, out
    item = json.loads(out)
    alert_exc, auth_exc = item["exception_list"]

    assert _review_check(data) == "fail"  # the report judges the open period, as the API's

    code, _, err = run("sign-off", Y, "--note", "done", "--reviewer", "ann")
    assert code == 2
    assert "no disposition" in err

    code, out, err = run("assign", Y, alert_exc["id"], "--to", "netops", "--note",
                         "block the address", "--reviewer", "ann")
    assert code == 0, err
    code, out, err = run("benign", Y, auth_exc["id"], "--note", "the same incident",
                         env={"USER": "bob"})
    assert code == 0, err
    code, out, _ = run("show", Y, "--format", "json", "--reviewer", "ann")
    (asg,) = json.loads(out)["assignments"]
    code, out, err = run("close", Y, asg["id"], "--note", "blocked", "--reviewer", "ann")
    assert code == 0, err
    code, out, err = run("sign-off", Y, "--note", "reviewed", "--reviewer", "ann")
    assert code == 0, err
    assert json.loads(out)["status"] == "signed_off"
    assert _review_check(data) == "pass"

    code, out, _ = run("list", "--since", Y, "--until", Y)
    assert code == 0
    assert f"{Y}  signed_off" in out
    assert "signed off by user:ann" in out
    code, out, _ = run("show", Y, "--reviewer", "ann")
    assert "signed off by user:ann" in out
    assert f"exception {auth_exc['id']}" in out

    with AuditLog.open(data, create=False) as alog:
        steps = [ev for ev in (alog.read(e) for e in alog.entries(0))
                 if str(ev.get("action", "")).startswith("sealtrail.review.")]
    assert [(s["action"], s["actor"]["id"]) for s in steps] == [
        ("sealtrail.review.assign", "user:ann"),
        ("sealtrail.review.exception.benign", "user:bob"),
        ("sealtrail.review.close", "user:ann"), ("sealtrail.review.sign_off", "user:ann")]


def test_cli_steps_say_they_came_from_the_cli_and_who_ran_it(tmp_path: Path) -> None:
    """``--reviewer`` names anyone: each CLI step records ``via: cli`` and the operating
    system user who ran it, and ``review show`` prints both, so a CLI sign-off is never
    mistaken for a console user's."""
    data = _data(tmp_path)
    os_user = getpass.getuser()
    ran = sealtrail("review", "show", Y, "--format", "json", "--reviewer", "ann",
                    "--data", str(data), text=True)
    alert_exc, auth_exc = json.loads(ran.stdout)["exception_list"]
    for exc in (alert_exc, auth_exc):
        ran = sealtrail("review", "benign", Y, exc["id"], "--note", "fine", "--reviewer",
                        "audrey", "--data", str(data), text=True)
        assert ran.returncode == 0, ran.stderr
    ran = sealtrail("review", "sign-off", Y, "--note", "ok", "--reviewer", "audrey",
                    "--data", str(data), text=True)
    assert ran.returncode == 0, ran.stderr
    with AuditLog.open(data, create=False) as alog:
        steps = [ev for ev in (alog.read(e) for e in alog.entries(0))
                 if str(ev.get("action", "")).startswith("sealtrail.review.")]
    assert len(steps) == 3
    assert {(s["metadata"]["via"], s["metadata"]["os_user"]) for s in steps} == {
        ("cli", os_user)}
    ran = sealtrail("review", "show", Y, "--reviewer", "audrey", "--data", str(data),
                    text=True)
    assert f"signed off by user:audrey via cli (os user {os_user})" in ran.stdout
    assert f"decided by user:audrey via cli (os user {os_user})" in ran.stdout


def test_cli_errors_name_what_is_wrong(tmp_path: Path) -> None:
    """A bad period, a bad exception id, an unknown exception, a missing note: exit 2."""
    data = _data(tmp_path)
    ran = sealtrail("review", "show", "2026-13-01", "--data", str(data), text=True)
    assert ran.returncode == 2
    assert "PERIOD" in ran.stderr
    ran = sealtrail("review", "benign", Y, "nope", "--note", "x", "--reviewer", "ann",
                    "--data", str(data), text=True)
    assert ran.returncode == 2
    assert "exception_id" in ran.stderr
    ran = sealtrail("review", "benign", Y, "auth-" + "0" * 16, "--note", "x", "--reviewer",
                    "ann", "--data", str(data), text=True)
    assert ran.returncode == 2
    assert "no exception" in ran.stderr
    ran = sealtrail("review", "sign-off", Y, "--reviewer", "ann", "--data", str(data),
                    text=True)
    assert ran.returncode == 2
    assert "--note" in ran.stderr
    ran = sealtrail("review", "list", "--format", "xml", "--data", str(data), text=True)
    assert ran.returncode == 2
