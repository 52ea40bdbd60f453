"""``sealtrail serve --workers N``: several processes serve one data directory, one leads.

Real console commands in subprocesses, real HTTP on loopback. A kept-alive connection stays
with the worker that accepted it, so a client learns which worker serves it from /healthz
(``pid``) and then ingests through that very worker on the same connection. The leader lock
and the config's pickling are checked in this process too.
"""

from __future__ import annotations

import functools
import json
import os
import pickle
import signal
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from sealtrail.cli.monitorconf import monitor_config
from sealtrail.core.uuid7 import make_uuid7
from sealtrail.log.auditlog import AuditLog
from sealtrail.monitor.sinks import verify_signature
from sealtrail.server.config import ServiceConfig
from sealtrail.server.leader import LOCK_NAME, POLL_INTERVAL, Leadership
from tests.monitor.receivers import WebhookReceiver, wait_until
from tests.ports import free_port
from tests.server.conftest import seed_event
from tests.server.test_serve_cli import SEALTRAIL, create_key, run

SECRET = "whsec-workers-test-0123456789"
START_TIMEOUT = 60.0  # seconds for every worker to answer (two interpreters on a busy machine)


@dataclass
class Workers:
    """A running ``sealtrail serve --workers N``: the parent process and where it answers."""

    proc: subprocess.Popen[bytes]
    base_url: str
    out: Path

    def healthz(self) -> dict[str, object]:
        """/healthz on a new connection (so any worker may answer)."""
        with httpx.Client(base_url=self.base_url, timeout=10) as client:
            answer: dict[str, object] = client.get("/healthz").json()
            return answer

    def sample(self, count: int) -> list[tuple[int, bool]]:
        """``(pid, leader)`` from ``count`` /healthz answers, each on a new connection."""
        seen = []
        for _ in range(count):
            answer = self.healthz()
            pid, leader = answer["pid"], answer["leader"]
            assert isinstance(pid, int), answer
            assert isinstance(leader, bool), answer
            seen.append((pid, leader))
        return seen


def children(pid: int) -> set[int]:
    """Every live descendant of ``pid`` (from /proc)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        if fields[0] != "Z":
            parents[int(entry.name)] = int(fields[1])
    found: set[int] = set()
    frontier = {pid}
    while frontier:
        frontier = {c for c, p in parents.items() if p in frontier} - found
        found |= frontier
    return found


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie counts as gone)."""
    try:
        return (Path("/proc") / str(pid) / "stat").read_text().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


@contextmanager
def workers(data: Path, tmp: Path, count: int = 2, *args: str) -> Iterator[Workers]:
    """Start ``sealtrail serve --workers COUNT``; wait until ``count`` pids answer /healthz;
    SIGTERM it afterwards if the test did not stop it."""
    port = free_port()
    out = tmp / f"serve-{port}.log"
    with out.open("wb") as sink:
        proc = subprocess.Popen([*SEALTRAIL, "--data", str(data), "serve", "--port", str(port),
                                 "--workers", str(count), *args],
                                stdin=subprocess.DEVNULL, stdout=sink, stderr=subprocess.STDOUT)
    served = Workers(proc, f"http://127.0.0.1:{port}", out)
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while len(children_serving(served)) < count:
            if proc.poll() is not None:
                pytest.fail(f"serve exited {proc.returncode}: {out.read_text()}")
            if time.monotonic() > deadline:
                pytest.fail(f"{count} workers did not answer in {START_TIMEOUT} s: "
                            f"{out.read_text()}")
            time.sleep(0.2)
        yield served
    finally:
        if proc.poll() is None:
            proc.terminate()
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:  # pragma: no cover - a hung shutdown
            proc.kill()
            proc.wait()
            raise


def children_serving(served: Workers) -> set[int]:
    """The pids that answered a few /healthz requests (nothing while none answers)."""
    try:
        return {pid for pid, _ in served.sample(8)}
    except httpx.TransportError:
        return set()


def new_id() -> str:
    """A fresh UUIDv7 text for an event the client names itself."""
    return str(make_uuid7(int(time.time() * 1000), os.urandom(10)))


def logged_ids(data: Path) -> Counter[str]:
    """How often each event id is in the ``default`` log."""
    with AuditLog.open(data, create=False) as alog:
        return Counter(str(alog.entry(i).event()["id"]) for i in range(alog.size))


@pytest.fixture
def data(tmp_path: Path) -> Path:
    """A data directory with an initialised ``default`` log."""
    d = tmp_path / "data"
    res = run(d, "init")
    assert res.returncode == 0, res.stderr
    return d


# -- in this process: the lock and the config -------------------------------------------------

def test_one_leadership_of_two_leads_and_the_other_follows_when_it_goes(tmp_path: Path) -> None:
    """Two Leadership objects on one directory: the first leads (its jobs started once), the
    second waits; when the first releases the lock, the second leads within a few polls."""
    started: list[str] = []
    first = Leadership(tmp_path, lambda: started.append("first"))
    second = Leadership(tmp_path, lambda: started.append("second"))
    first.start()
    second.start()
    try:
        assert (first.leader, second.leader) == (True, False)
        assert (tmp_path / LOCK_NAME).stat().st_mode & 0o777 == 0o600
        time.sleep(3 * POLL_INTERVAL)
        assert started == ["first"]
        first.stop()
        first.release()
        deadline = time.monotonic() + 10 * POLL_INTERVAL
        while not second.leader and time.monotonic() < deadline:
            time.sleep(0.05)
        assert second.leader
        assert started == ["first", "second"]
    finally:
        first.release()
        second.release()


def test_the_service_config_pickles_with_its_passphrase_and_remade_rules(tmp_path: Path) -> None:
    """A config with a monitor source crosses to a worker: the passphrase and clock survive,
    the rules (which do not pickle) are made again from the source."""
    source = functools.partial(monitor_config, [], None, None, None)
    config = ServiceConfig(tmp_path, passphrase="phrase", monitor=source(), workers=2,
                           monitor_source=source)
    again = pickle.loads(pickle.dumps(config))
    assert (again.passphrase, again.clock, again.workers) == ("phrase", config.clock, 2)
    assert again.monitor is not None
    assert config.monitor is not None
    assert [r.id for r in again.monitor.rules] == [r.id for r in config.monitor.rules]


# -- real processes ---------------------------------------------------------------------------

@pytest.mark.slow
def test_two_workers_answer_one_leads_and_ingest_through_both_lands_in_one_log(
        data: Path, tmp_path: Path) -> None:
    """``--workers 2``: /healthz answers come from two pids, exactly one of which says it
    leads (sampled many times: never both); events ingested through each worker land in the
    one log, which ``sealtrail verify`` passes."""
    token = create_key(data, "--role", "ingest", "--log", "default", "--name", "workers")
    auth = {"Authorization": f"Bearer {token}"}
    with workers(data, tmp_path) as served:
        seen = served.sample(150)
        pids = {pid for pid, _ in seen}
        assert len(pids) == 2, seen
        leaders = {pid for pid, leader in seen if leader}
        assert len(leaders) == 1, seen
        sent: dict[int, list[str]] = {}
        deadline = time.monotonic() + 30
        while len(sent) < 2 or min(len(v) for v in sent.values()) < 3:
            assert time.monotonic() < deadline, sent
            with httpx.Client(base_url=served.base_url, timeout=30) as client:
                pid = client.get("/healthz").json()["pid"]  # this connection's worker
                ids = [new_id() for _ in range(5)]
                answer = client.post("/v1/logs/default/events", headers=auth,
                                     json=[{**seed_event(n), "id": i} for n, i in enumerate(ids)])
                assert answer.status_code == 201, answer.text
                sent.setdefault(pid, []).extend(ids)
        assert set(sent) == pids
        served.proc.terminate()
        assert served.proc.wait(60) == 0, served.out.read_text()
    logged = logged_ids(data)
    for ids in sent.values():
        assert all(logged[i] == 1 for i in ids)
    res = run(data, "verify")
    assert res.returncode == 0, res.stdout + res.stderr


@pytest.mark.slow
def test_killing_the_leader_during_ingest_loses_nothing_and_another_leads(
        data: Path, tmp_path: Path) -> None:
    """SIGKILL of the leading worker while two clients ingest events with their own ids and
    retry what was not acknowledged: another worker leads within a few seconds, the
    supervisor starts a new worker, every acknowledged event is in the log exactly once, and
    the log verifies."""
    token = create_key(data, "--role", "ingest", "--log", "default", "--name", "crash")
    auth = {"Authorization": f"Bearer {token}"}
    acknowledged: list[str] = []
    attempted: list[str] = []
    stop = threading.Event()
    failures: list[BaseException] = []

    def client(base_url: str) -> None:
        try:
            while not stop.is_set():
                ids = [new_id() for _ in range(5)]
                attempted.extend(ids)
                batch = [{**seed_event(n), "id": i} for n, i in enumerate(ids)]
                for _ in range(200):  # retried until acknowledged, as the SDK's spool does
                    try:
                        with httpx.Client(base_url=base_url, timeout=10) as http:
                            answer = http.post("/v1/logs/default/events", headers=auth,
                                               json=batch)
                        if answer.status_code == 201:
                            acknowledged.extend(ids)
                            break
                        assert answer.status_code >= 500 or answer.status_code == 429, (
                            answer.text)
                    except httpx.TransportError:
                        pass
                    time.sleep(0.05)
                else:
                    pytest.fail("a batch was never acknowledged")
        except BaseException as exc:  # reported by the main thread
            failures.append(exc)

    with workers(data, tmp_path) as served:
        leader = next(pid for pid, is_leader in served.sample(40) if is_leader)
        before = children(served.proc.pid)
        threads = [threading.Thread(target=client, args=(served.base_url,)) for _ in range(2)]
        for thread in threads:
            thread.start()
        try:
            time.sleep(1.5)
            count = len(acknowledged)
            os.kill(leader, signal.SIGKILL)
            killed_at = time.monotonic()
            new_leader = None
            while time.monotonic() - killed_at < 15:
                try:
                    answers = served.sample(4)
                except httpx.TransportError:
                    continue
                new_leader = next((pid for pid, is_leader in answers if is_leader), None)
                if new_leader is not None:
                    break
                time.sleep(0.1)
            assert new_leader is not None, served.out.read_text()
            assert new_leader != leader
            assert time.monotonic() - killed_at < 10
            deadline = time.monotonic() + 30
            while not (children(served.proc.pid) - before):
                assert time.monotonic() < deadline, served.out.read_text()
                time.sleep(0.1)
            time.sleep(1.0)  # ingest goes on with the new worker
        finally:
            stop.set()
            for thread in threads:
                thread.join(60)
        assert not failures, failures
        assert len(acknowledged) > count
        assert "restarting" in served.out.read_text()
        served.proc.terminate()
        assert served.proc.wait(60) == 0, served.out.read_text()
    logged = logged_ids(data)
    assert all(logged[i] == 1 for i in acknowledged)
    assert all(logged[i] <= 1 for i in attempted)
    res = run(data, "verify")
    assert res.returncode == 0, res.stdout + res.stderr


@pytest.mark.slow
def test_sigterm_to_the_parent_stops_every_worker_and_exits_0(
        data: Path, tmp_path: Path) -> None:
    """SIGTERM to ``serve --workers 2``: exit 0, and no worker, monitor child or helper
    process of it is left running."""
    with workers(data, tmp_path) as served:
        descendants = children(served.proc.pid)
        assert len(descendants) >= 3  # two workers and the leader's monitor child
        served.proc.send_signal(signal.SIGTERM)
        assert served.proc.wait(60) == 0, served.out.read_text()
    deadline = time.monotonic() + 10
    while any(alive(pid) for pid in descendants) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [pid for pid in descendants if alive(pid)]
    text = served.out.read_text()
    assert text.count("sealtrail serving") == 1
    assert "with 2 worker processes" in " ".join(text.split())
    assert "Traceback" not in text, text


@pytest.mark.slow
@pytest.mark.parametrize("monitor", [[], ["--monitor-in-process"]],
                         ids=["monitor-child", "monitor-in-process"])
def test_with_two_workers_the_rules_run_once_and_each_alert_is_delivered_once(
        data: Path, tmp_path: Path, monitor: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """Brute-force logins ingested through ``--workers 2`` (the monitor in the leader's child
    process, or on a thread of the leader) raise one alert, delivered to the webhook once: no
    second rule engine or sink dispatcher runs in the other worker."""
    monkeypatch.setenv("SEALTRAIL_WEBHOOK_SECRET", SECRET)
    token = create_key(data, "--role", "ingest", "--log", "default", "--name", "rules")
    logins = [{"action": "user.login", "actor": {"id": "mallory", "ip": "203.0.113.9"},
               "outcome": "failure", "category": "authentication",
               "target": {"type": "account", "id": "mallory"}} for _ in range(6)]
    with WebhookReceiver() as receiver, workers(
            data, tmp_path, 2, "--alert-webhook", receiver.url, *monitor) as served:

        def brute_force() -> list[str]:
            found = []
            for req in list(receiver.requests):
                assert verify_signature(SECRET, req.headers["sealtrail-signature"], req.body,
                                        time.time())
                doc = json.loads(req.body)
                if doc.get("rule") == "builtin.brute_force":
                    found.append(str(doc["id"]))
            return found

        for _ in range(2):  # on two connections: likely through both workers
            with httpx.Client(base_url=served.base_url, timeout=30) as client:
                answer = client.post("/v1/logs/default/events", json=logins[:3],
                                     headers={"Authorization": f"Bearer {token}"})
                assert answer.status_code == 201, answer.text
        assert wait_until(lambda: bool(brute_force()), 30), served.out.read_text()
        time.sleep(3.0)  # a second engine or dispatcher would have delivered by now
        assert len(brute_force()) == 1, brute_force()
