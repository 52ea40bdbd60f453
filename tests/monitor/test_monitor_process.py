"""``sealtrail serve`` with the monitor in its child process, as an operator runs it.

The real console command, a real webhook receiver: failed logins sent over HTTP come back as a
signed alert; the monitor child killed with -9 is restarted and its death is itself alerted. The
log and its key are made beforehand in-process (``tests/clirun.py``).
"""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import httpx
import psutil
import pytest

from sealtrail.monitor.alerts import AlertStore, monitor_db_path
from sealtrail.monitor.sinks import verify_signature
from tests.clirun import Ran, sealtrail
from tests.monitor.receivers import WebhookReceiver, wait_until
from tests.server.test_serve_cli import serving

SECRET = "whsec-process-test"


def run(data: Path, *args: str) -> Ran[str]:
    """``sealtrail --data DATA ARGS`` in-process."""
    return sealtrail("--data", data, *args, text=True)


def create_key(data: Path, *args: str) -> str:
    """``keys create ARGS``; the token is the last line of stdout."""
    res = run(data, "keys", "create", *args)
    assert res.returncode == 0, res.stderr
    return res.stdout.strip().split("\n")[-1]


def _monitor_children(pid: int) -> list[psutil.Process]:
    """The live ``sealtrail monitor`` processes under ``pid`` (with ``serve --workers N`` the
    leading worker starts it: a grandchild of the command)."""
    out = []
    for child in psutil.Process(pid).children(recursive=True):
        try:
            if child.status() != psutil.STATUS_ZOMBIE and "monitor" in " ".join(
                    child.cmdline()):
                out.append(child)
        except psutil.Error:
            continue  # gone between listing and asking
    return out


@pytest.mark.slow
def test_serve_runs_the_monitor_as_a_child_and_restarts_it(tmp_path: Path) -> None:
    data = tmp_path / "data"
    assert run(data, "init").returncode == 0
    ingest = create_key(data, "--role", "ingest")
    secret_file = tmp_path / "secret"
    secret_file.write_text(SECRET)
    secret_file.chmod(0o600)
    with WebhookReceiver() as receiver, serving(
            data, tmp_path, "--alert-webhook", receiver.url,
            "--alert-webhook-secret-file", str(secret_file)) as served:
        children = _monitor_children(served.proc.pid)
        assert len(children) == 1
        events = [{"action": "user.login", "actor": {"id": "mallory"}, "outcome": "failure",
                   "category": "authentication"} for _ in range(6)]
        r = httpx.post(f"{served.base_url}/v1/logs/default/events", json=events,
                       headers={"Authorization": f"Bearer {ingest}"}, timeout=30)
        assert r.status_code == 201, r.text

        def rules() -> set[str]:
            out = set()
            for req in list(receiver.requests):
                assert verify_signature(SECRET, req.headers["sealtrail-signature"], req.body,
                                        time.time())
                doc = json.loads(req.body)
                if doc.get("type") != "sealtrail.checkpoint":  # published (issue 11)
                    out.add(doc["rule"])
            return out

        assert wait_until(lambda: "builtin.brute_force" in rules(), 30)
        os.kill(children[0].pid, signal.SIGKILL)

        def restarted() -> bool:
            # One listing: between two, the killed child may turn into a zombie (then unlisted).
            now = _monitor_children(served.proc.pid)
            return len(now) == 1 and now[0].pid != children[0].pid

        assert wait_until(restarted, 30)
        assert wait_until(lambda: "builtin.monitor_down" in rules(), 30)
    store = AlertStore(monitor_db_path(data))
    try:
        assert {a.rule for a in store.list(None)} >= {"builtin.brute_force",
                                                      "builtin.monitor_down"}
    finally:
        store.close()


@pytest.mark.slow
def test_the_monitor_child_does_not_outlive_a_killed_service(tmp_path: Path) -> None:
    data = tmp_path / "data"
    assert run(data, "init").returncode == 0
    with serving(data, tmp_path) as served:
        (child,) = _monitor_children(served.proc.pid)
        os.kill(served.proc.pid, signal.SIGKILL)
        served.proc.wait(10)
        # Its stdin pipe closed with the service: it stops by itself, releasing its lock.
        assert wait_until(lambda: not child.is_running() or child.status() ==
                          psutil.STATUS_ZOMBIE, 15)


def test_one_monitor_loop_per_data_directory(tmp_path: Path) -> None:
    from datetime import UTC, datetime

    from sealtrail.core.errors import ConfigError
    from sealtrail.monitor.runner import Monitor

    def loop() -> Monitor:
        return Monitor(tmp_path, lambda: [], [], AlertStore(monitor_db_path(tmp_path)),
                       clock=lambda: datetime.now(UTC))

    first, second = loop(), loop()
    first.start()
    try:
        with pytest.raises(ConfigError, match="another monitor already runs"):
            second.start()
    finally:
        first.stop()
        first.store.close()
    second.start()  # free again once the first stopped
    second.stop()
    second.store.close()
