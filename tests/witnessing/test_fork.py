"""Forks and split views: an attacker holding a log's signing key signs a second history of
the same origin. A witness that cosigned the first refuses the second, the log's round names
the refusal, the service's witnessing job raises ``builtin.witness_refused`` through a real
monitor (recorded in the log as ``alert.open``), and two clients shown different checkpoints
of one size find out once both have gone to the same witness."""

from __future__ import annotations

import base64
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from sealtrail.log import witnesses
from sealtrail.log.auditlog import AuditLog
from sealtrail.monitor.alerts import AlertStore, monitor_db_path
from sealtrail.monitor.runner import Monitor
from sealtrail.server.logs import Logs
from sealtrail.server.witnessing_job import REFUSED_RULE, UNMET_RULE, WitnessingJob
from tests.witnessing.support import (
    ThreadWitness,
    check_cosigned,
    note_root,
    note_size,
    request_body,
)

ACTOR = {"id": "test-operator", "type": "os_user"}
ORIGIN = "example.org/forked-log"


def events(n: int, tag: str) -> list[dict[str, object]]:
    return [{"actor": {"id": f"{tag}-{i}"}, "action": "doc.write", "outcome": "success"}
            for i in range(n)]


def grow_to(alog: AuditLog, size: int, tag: str) -> None:
    assert alog.size <= size
    if alog.size < size:
        alog.append_many(events(size - alog.size, tag))
    assert alog.size == size


def fork_of(data: Path, into: Path) -> AuditLog:
    """A second log with the SAME signing key and origin as ``data``'s (the key files copied,
    mode kept): what an attacker holding the host's key can sign."""
    (into / "default").mkdir(parents=True, mode=0o700)
    for name in ("signing.key", "verifier.vkey"):
        shutil.copy2(data / "default" / name, into / "default" / name)
    return AuditLog.open(into, origin=ORIGIN)


@pytest.fixture
def witness(tmp_path: Path) -> Iterator[ThreadWitness]:
    w = ThreadWitness(tmp_path / "witness", "example.org/the-witness")
    w.start()
    try:
        yield w
    finally:
        w.stop()


@pytest.mark.parametrize("shape", ["shorter", "same-size", "longer"])
def test_a_fork_is_refused_and_named(tmp_path: Path, witness: ThreadWitness,
                                     shape: str) -> None:
    real_dir, fork_dir = tmp_path / "real", tmp_path / "fork"
    now = datetime.now(UTC)
    with AuditLog.open(real_dir, origin=ORIGIN) as real, httpx.Client(timeout=5) as client:
        post = witnesses.httpx_post(client)
        witness.state.add_log(real.vkey())
        witnesses.add(real, witness.url, witness.vkey, actor=ACTOR)
        grow_to(real, 20, "real")
        r = witnesses.run_round(real, witnesses.load(real), now, post)
        assert r.met
        assert witness.size(ORIGIN) == 20
        real_note = real.checkpoint().note
        with fork_of(real_dir, fork_dir) as fork:
            assert fork.vkey() == real.vkey()
            witnesses.add(fork, witness.url, witness.vkey, actor=ACTOR)
            grow_to(fork, {"shorter": 12, "same-size": 20, "longer": 31}[shape], "fork")
            assert note_root(fork.checkpoint().note) != note_root(real_note) or shape != \
                "same-size"
            r = witnesses.run_round(fork, witnesses.load(fork), now, post)
            assert not r.met
            assert r.cosigned == ()
            assert len(r.refusals) == 1, r
            refusal = r.refusals[0]
            assert refusal.witness == witness.name
            assert refusal.size == 20
            assert refusal.problem
            served = witnesses.served_note(fork, timedelta(seconds=10), now)
            assert check_cosigned(served, [witness.vkey]) == {}
        # The witness kept the real history: size 20, the real root; the real log goes on.
        stored = witness.state.latest(ORIGIN)
        assert stored is not None
        assert (stored.size, base64.b64encode(stored.root).decode()) == (
            20, note_root(real_note))
        grow_to(real, 25, "real-more")
        r = witnesses.run_round(real, witnesses.load(real), now + timedelta(seconds=2), post)
        assert (r.met, r.refusals) == (True, ())
        assert check_cosigned(witnesses.served_note(real, timedelta(seconds=10),
                                                    now + timedelta(seconds=2)),
                              [witness.vkey]).keys() == {witness.name}


def test_the_job_raises_a_refusal_alert(tmp_path: Path, witness: ThreadWitness) -> None:
    """Through :class:`WitnessingJob` and a real :class:`Monitor`: ``builtin.witness_refused``
    (high), recorded in the forked log as ``alert.open``; one alert per witness and size; and
    ``builtin.witness_unmet`` (medium) once the quorum has waited ``alert_after``."""
    real_dir, fork_dir = tmp_path / "real", tmp_path / "fork"
    with AuditLog.open(real_dir, origin=ORIGIN) as real, httpx.Client(timeout=5) as client:
        witness.state.add_log(real.vkey())
        witnesses.add(real, witness.url, witness.vkey, actor=ACTOR)
        grow_to(real, 10, "real")
        assert witnesses.run_round(real, witnesses.load(real), datetime.now(UTC),
                                   witnesses.httpx_post(client)).met
    with fork_of(real_dir, fork_dir) as fork:
        witnesses.add(fork, witness.url, witness.vkey, actor=ACTOR)
        grow_to(fork, 10, "fork")
    clock = [datetime.now(UTC)]
    logs = Logs(fork_dir)
    store = AlertStore(monitor_db_path(fork_dir))
    monitor = Monitor(fork_dir, lambda: [(n, logs.get(n)) for n in logs.names()], [], store,
                      clock=lambda: clock[0])
    job = WitnessingJob(logs, monitor, lambda: clock[0], delay=0, interval=0, alert_after=30)
    try:
        first = job.run_one("default")
        assert first is not None
        assert len(first.refusals) == 1
        alerts = store.list("default", rule=REFUSED_RULE)
        assert len(alerts) == 1, alerts
        alert = alerts[0]
        assert (alert.severity, alert.status, alert.key) == (
            "high", "open", f"{witness.name}/10")
        assert witness.name in alert.message
        assert alert.opened_index is not None
        recorded = logs.get("default").entry(alert.opened_index).event()
        assert recorded["action"] == "alert.open"
        assert recorded["target"] == {"type": "alert", "id": alert.id}
        # Later rounds: the same refusal folds into the same alert; past alert_after the
        # unmet quorum is an alert of its own.
        for _ in range(3):
            clock[0] += timedelta(seconds=20)
            job.run_one("default")
        refused = store.list("default", rule=REFUSED_RULE)
        assert [a.id for a in refused] == [alert.id]
        assert refused[0].count >= 2
        unmet = store.list("default", rule=UNMET_RULE)
        assert [a.severity for a in unmet] == ["medium"], unmet
        assert witness.name in unmet[0].message
    finally:
        job.close()
        store.close()
        logs.close()


def test_a_split_view_is_caught_by_the_witness(tmp_path: Path, witness: ThreadWitness) -> None:
    """The attacker shows checkpoint X (size n) to client 1 and a forked Y (same size, same
    key) to client 2. Each client hands what it was shown to the same witness (the tlog-witness
    protocol, written out here): the first is cosigned, the second refused, and client 2, told
    the witness's size, finds the witness holds another root at its very size."""
    real_dir, fork_dir = tmp_path / "real", tmp_path / "fork"
    with AuditLog.open(real_dir, origin=ORIGIN) as real:
        witness.state.add_log(real.vkey())
        grow_to(real, 17, "x")
        x = real.checkpoint().note
    with fork_of(real_dir, fork_dir) as fork:
        grow_to(fork, 17, "y")
        y = fork.checkpoint().note
    assert note_size(x) == note_size(y) == 17
    assert note_root(x) != note_root(y)
    with httpx.Client(timeout=5) as client:
        # Client 1 (never saw anything before): old 0, the witness cosigns X.
        one = client.post(f"{witness.url}/add-checkpoint", content=request_body(0, [], x))
        assert one.status_code == 200, one.text
        assert check_cosigned(x + one.text, [witness.vkey]).keys() == {witness.name}
        # Client 2: old 0 -> 409 with the witness's size; retried from it -> 409 again: the
        # witness holds another root at 17. Y is never cosigned.
        two = client.post(f"{witness.url}/add-checkpoint", content=request_body(0, [], y))
        assert (two.status_code, two.headers["content-type"], two.text) == (
            409, "text/x.tlog.size", "17\n")
        again = client.post(f"{witness.url}/add-checkpoint", content=request_body(17, [], y))
        assert again.status_code == 409, again.text
        assert again.text == "17\n"
        # The honest view is still accepted (a retry), the forked one still not.
        assert client.post(f"{witness.url}/add-checkpoint",
                           content=request_body(17, [], x)).status_code == 200
    stored = witness.state.latest(ORIGIN)
    assert stored is not None
    assert base64.b64encode(stored.root).decode() == note_root(x)


def test_misconfigured_witnesses_are_problems_not_refusals(tmp_path: Path) -> None:
    """A witness that does not know the log (404), one that trusts another key for its origin
    (403), and an impostor answering at a witness's URL with another key of the same name:
    none is counted (the impostor's line fails the configured key and is not kept), none is a
    refusal, and each problem says what is wrong."""
    ws = [ThreadWitness(tmp_path / f"w{i}", f"example.org/w{i}") for i in range(3)]
    impostor = ThreadWitness(tmp_path / "impostor", "example.org/w2")   # same name, other key
    with AuditLog.open(tmp_path / "log", origin=ORIGIN) as alog, \
            AuditLog.open(tmp_path / "other", origin=ORIGIN) as other, \
            httpx.Client(timeout=5) as client:
        alog.append_many(events(6, "e"))
        ws[1].state.add_log(other.vkey())   # the right origin, another log's key
        impostor.state.add_log(alog.vkey())
        for w in (*ws, impostor):
            w.start()
        try:
            witnesses.add(alog, ws[0].url, ws[0].vkey, actor=ACTOR)
            witnesses.add(alog, ws[1].url, ws[1].vkey, actor=ACTOR)
            witnesses.add(alog, impostor.url, ws[2].vkey, actor=ACTOR)  # w2's key, its URL
            r = witnesses.run_round(alog, witnesses.load(alog), datetime.now(UTC),
                                    witnesses.httpx_post(client))
            assert (r.met, r.cosigned, r.refusals) == (False, (), ()), r
            assert "add-log" in r.problems["example.org/w0"]
            assert "trust" in r.problems["example.org/w1"]
            assert "cosignature" in r.problems["example.org/w2"]
            # The impostor did cosign (with its own key): that line is not served.
            assert impostor.size(ORIGIN) == alog.size
            served = witnesses.served_note(alog, timedelta(seconds=10), datetime.now(UTC))
            assert served == alog.checkpoint().note
            assert check_cosigned(served, [impostor.vkey, *(w.vkey for w in ws)]) == {}
        finally:
            for w in (*ws, impostor):
                w.stop()
