"""Two ``serve --store postgresql://...`` nodes: the leader's monitor sees both nodes' events.

The producer (ingest on either node) and the consumer (the rules, running on whichever node
leads, in its monitor child process) meet only in the database: events posted to both nodes
raise one alert, readable on both; when the leader is killed the other node leads, starts
the rules and raises the next alert from where the first left off.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.monitor.receivers import wait_until
from tests.ports import free_port
from tests.server.test_serve_cli import SEALTRAIL

pytestmark = [pytest.mark.postgres, pytest.mark.slow]


def cli(data: Path, store: str, *args: str) -> str:
    """Run the CLI against the store; its standard output."""
    done = subprocess.run([*SEALTRAIL, "--data", str(data), "--store", store, *args],
                          capture_output=True, text=True, check=False, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


@contextmanager
def node(data: Path, store: str, port: int) -> Iterator[subprocess.Popen[bytes]]:
    """A node serving on ``port`` until the block ends (killed if still running)."""
    with (data.parent / f"{data.name}.out").open("wb") as out:
        proc = subprocess.Popen([*SEALTRAIL, "--data", str(data), "--store", store, "serve",
                                 "--port", str(port), "--workers", "1"],
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(30)


def healthz(port: int) -> dict[str, Any] | None:
    """/healthz of the node on ``port``; None while it does not answer."""
    try:
        answer: dict[str, Any] = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).json()
    except httpx.HTTPError:
        return None
    return answer


def failed_logins(port: int, token: str, actor: str, count: int) -> None:
    """``count`` failed logins of ``actor``, posted to the node on ``port``."""
    events = [{"actor": {"id": actor}, "action": "user.login", "outcome": "failure",
               "category": "authentication", "source": {"ip": "203.0.113.9"}}] * count
    answer = httpx.post(f"http://127.0.0.1:{port}/v1/logs/default/events", json=events,
                        headers={"Authorization": f"Bearer {token}"}, timeout=30)
    assert answer.status_code == 201, answer.text


def alerts_of(port: int, token: str, actor: str) -> list[dict[str, Any]]:
    """The brute-force alerts keyed on ``actor``, as the node on ``port`` lists them."""
    try:
        answer = httpx.get(f"http://127.0.0.1:{port}/v1/logs/default/alerts",
                           headers={"Authorization": f"Bearer {token}"}, timeout=5)
    except httpx.HTTPError:
        return []
    return [a for a in answer.json()["alerts"]
            if a["rule"] == "builtin.brute_force" and a["key"] == actor]


def test_the_leaders_rules_see_every_nodes_events_and_move_with_the_lead(
        tmp_path: Path, pg_store: str) -> None:
    """Failed logins posted half to each node raise one alert, listed by both nodes; after
    the leader is killed the other node leads and raises the next actor's alert."""
    first, second = tmp_path / "n1", tmp_path / "n2"
    cli(first, pg_store, "init")
    (second / "default").mkdir(parents=True, mode=0o700)
    for name in ("signing.key", "verifier.vkey"):
        shutil.copy2(first / "default" / name, second / "default" / name)
    ingest = cli(first, pg_store, "keys", "create", "--role", "ingest",
                 "--name", "app").strip().splitlines()[-1]
    auditor = cli(first, pg_store, "keys", "create", "--role", "auditor",
                  "--name", "aud").strip().splitlines()[-1]
    ports = {first: free_port(), second: free_port()}
    with ExitStack() as stack:
        procs = {d: stack.enter_context(node(d, pg_store, p)) for d, p in ports.items()}
        assert wait_until(lambda: all(healthz(p) for p in ports.values()), 60)
        assert wait_until(lambda: sum(bool((healthz(p) or {}).get("leader"))
                                      for p in ports.values()) == 1, 10)
        failed_logins(ports[first], ingest, "mallory", 3)
        failed_logins(ports[second], ingest, "mallory", 3)
        assert wait_until(lambda: len(alerts_of(ports[second], auditor, "mallory")) == 1, 60)
        assert len(alerts_of(ports[first], auditor, "mallory")) == 1

        leader = next(d for d, p in ports.items() if (healthz(p) or {}).get("leader"))
        other = second if leader == first else first
        os.killpg(procs[leader].pid, signal.SIGKILL)  # the node and its monitor child
        assert wait_until(lambda: bool((healthz(ports[other]) or {}).get("leader")), 10)
        failed_logins(ports[other], ingest, "trudy", 6)
        assert wait_until(lambda: len(alerts_of(ports[other], auditor, "trudy")) == 1, 60)
        assert len(alerts_of(ports[other], auditor, "mallory")) == 1  # not raised again
    assert "OK:" in cli(first, pg_store, "verify")
