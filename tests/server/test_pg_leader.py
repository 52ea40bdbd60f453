"""Leader election on PostgreSQL (server/pg_leader.py): real server, real processes.

Each test uses a leadership name of its own, so its advisory lock key is its own. The
timing bounds are the module's (kill -9: interval; pause: lease + interval; a terminated
lock session: interval) plus a generous margin: the machine may be small and shared.
"""

from __future__ import annotations

import contextlib
import os
import queue
import secrets
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from sealtrail.server.pg_leader import LEASE, POLL_INTERVAL, PgLeadership, lock_key
from tests.contract.adapters import POSTGRES_URL, _postgres_unavailable

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.skipif(_postgres_unavailable() is not None,
                       reason=str(_postgres_unavailable())),
]

CHILD = Path(__file__).with_name("pg_leader_child.py")


class Node:
    """A child process running one PgLeadership; its stdout lines, time-stamped."""

    def __init__(self, name: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(CHILD), url_of(name), name], stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, text=True)
        self.events: queue.Queue[tuple[float, str]] = queue.Queue()
        self.seen: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        with self.proc.stdout:
            for line in self.proc.stdout:
                self.events.put((time.monotonic(), line.strip()))

    def wait_for(self, word: str, timeout: float) -> float | None:
        """When ``word`` was printed (waiting up to ``timeout``); None if it was not."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                at, got = self.events.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                return None
            self.seen.append(got)
            if got == word:
                return at

    def ask(self, command: str, answers: tuple[str, ...], timeout: float = 10.0) -> str:
        assert self.proc.stdin is not None
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            _, got = self.events.get(timeout=max(0.0, deadline - time.monotonic()))
            self.seen.append(got)
            if got in answers:
                return got
        raise AssertionError(f"no answer to {command!r}")

    def state(self) -> str:
        return self.ask("state", ("leader", "follower"))

    def end(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGCONT)
            self.proc.kill()
        self.proc.wait(10)
        if self.proc.stdin is not None:
            with contextlib.suppress(OSError):
                self.proc.stdin.close()
        self._reader.join(10)


@pytest.fixture
def name() -> str:
    return f"test-{secrets.token_hex(6)}"


def url_of(name: str) -> str:
    """The test database, the lock sessions named after the test's leadership (the URL's
    ``application_name`` wins over the module's): a test ends only its own sessions."""
    return f"{POSTGRES_URL}?application_name=sealtrail-leader-{name}"


@pytest.fixture
def nodes(name: str) -> Iterator[list[Node]]:
    made = [Node(name), Node(name)]
    try:
        for node in made:
            assert node.wait_for("started", 30.0) is not None, node.seen
        yield made
    finally:
        for node in made:
            node.end()


def leader_of(nodes: list[Node]) -> tuple[Node, Node]:
    """(the leader, the follower), each asked."""
    states = [n.state() for n in nodes]
    assert sorted(states) == ["follower", "leader"], states
    first, second = nodes
    return (first, second) if states[0] == "leader" else (second, first)


def lock_holder(name: str) -> int | None:
    """The backend pid whose session holds the leadership's advisory lock."""
    key = lock_key(name)
    with psycopg.connect(POSTGRES_URL, autocommit=True) as db:
        row = db.execute("SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted "
                         "AND objsubid = 1 AND classid::bigint = %s AND objid::bigint = %s",
                         ((key >> 32) & 0xFFFFFFFF, key & 0xFFFFFFFF)).fetchone()
    return None if row is None else int(row[0])


def terminate(pid: int) -> None:
    with psycopg.connect(POSTGRES_URL, autocommit=True) as db:
        db.execute("SELECT pg_terminate_backend(%s)", (pid,))


def test_lock_key_is_stable_and_signed() -> None:
    assert lock_key("default") == lock_key("default")
    assert lock_key("default") != lock_key("other")
    keys = [lock_key(str(n)) for n in range(64)]
    assert all(-(1 << 63) <= k < (1 << 63) for k in keys)
    assert any(k < 0 for k in keys)


def test_exactly_one_of_two_processes_leads(nodes: list[Node], name: str) -> None:
    leader, follower = leader_of(nodes)
    assert lock_holder(name) is not None
    time.sleep(LEASE + 1.0)  # heartbeats keep the session alive past the lease
    assert leader_of(nodes) == (leader, follower)
    assert leader.seen.count("acquired") == 1
    assert "lost" not in leader.seen
    assert "acquired" not in follower.seen
    assert "lost" not in follower.seen


def test_kill_9_of_the_leader_hands_over_within_the_interval(nodes: list[Node]) -> None:
    leader, follower = leader_of(nodes)
    killed = time.monotonic()
    leader.proc.kill()
    took = follower.wait_for("acquired", 10.0)
    assert took is not None, follower.seen
    assert took - killed <= POLL_INTERVAL + 1.0
    assert follower.state() == "leader"


def test_a_paused_leader_loses_the_lock_after_the_lease(nodes: list[Node], name: str) -> None:
    leader, follower = leader_of(nodes)
    paused = time.monotonic()
    os.kill(leader.proc.pid, signal.SIGSTOP)
    try:
        took = follower.wait_for("acquired", 20.0)
        assert took is not None, follower.seen
        assert took - paused <= LEASE + 2.0
        assert took - paused >= LEASE - 1.0  # not before its session could have ended
    finally:
        os.kill(leader.proc.pid, signal.SIGCONT)
    assert leader.wait_for("lost", 10.0) is not None, leader.seen
    assert leader.state() == "follower"
    assert follower.state() == "leader"
    time.sleep(2 * POLL_INTERVAL)  # the old leader keeps following
    assert leader.state() == "follower"
    holder = lock_holder(name)
    assert holder is not None


def test_a_terminated_lock_session_calls_on_lose(nodes: list[Node], name: str) -> None:
    leader, _follower = leader_of(nodes)
    pid = lock_holder(name)
    assert pid is not None
    ended = time.monotonic()
    terminate(pid)
    lost = leader.wait_for("lost", 10.0)
    assert lost is not None, leader.seen
    assert lost - ended <= POLL_INTERVAL + 1.0
    # Someone leads again (either node), within 2 s.
    deadline = ended + 2.0 + 1.0
    while time.monotonic() < deadline:
        holder = lock_holder(name)
        if holder is not None and holder != pid:
            break
        time.sleep(0.05)
    else:
        raise AssertionError("nobody leads again")
    assert sorted(n.state() for n in nodes) == ["follower", "leader"]


def test_release_hands_over_and_stop_keeps_the_lock(name: str) -> None:
    events: list[str] = []
    first = PgLeadership(url_of(name), name, lambda: events.append("a+"),
                         lambda: events.append("a-"))
    second = PgLeadership(url_of(name), name, lambda: events.append("b+"),
                          lambda: events.append("b-"))
    try:
        first.start()
        second.start()
        assert first.leader
        assert not second.leader
        first.stop()
        time.sleep(LEASE + 1.0)  # stopped, it still heartbeats: the lock stays
        assert first.leader
        assert not second.leader
        first.release()
        deadline = time.monotonic() + 5.0
        while not second.leader and time.monotonic() < deadline:
            time.sleep(0.05)
        assert second.leader
        assert not first.leader
        assert events == ["a+", "b+"]  # release is not a loss
    finally:
        first.release()
        second.release()


def test_a_failing_on_acquire_fails_start_and_gives_the_lock_back(name: str) -> None:
    lost: list[bool] = []

    def broken() -> None:
        raise RuntimeError("job start failed")

    failing = PgLeadership(url_of(name), name, broken, lambda: lost.append(True))
    with pytest.raises(RuntimeError, match="job start failed"):
        failing.start()
    assert not failing.leader
    assert lost == [True]
    other = PgLeadership(url_of(name), name, lambda: None, lambda: None)
    try:
        other.start()
        assert other.leader
    finally:
        other.release()
        failing.release()


def test_a_slow_on_acquire_does_not_cost_the_lock(name: str) -> None:
    """The jobs may take longer than the lease to start: heartbeats go on meanwhile."""
    events: list[str] = []

    def slow() -> None:
        time.sleep(LEASE + 1.5)
        events.append("started")

    first = PgLeadership(url_of(name), name, slow, lambda: events.append("lost"))
    second = PgLeadership(url_of(name), name, lambda: events.append("second"), lambda: None)
    try:
        first.start()  # on_acquire runs here, in the caller's thread
        second.start()
        time.sleep(LEASE)
        assert first.leader
        assert not second.leader
        assert events == ["started"]
    finally:
        first.release()
        second.release()
