"""kill -9 mid-round, of the witness and of the log's service.

- The witness (a real ``sealtrail witness serve`` process) is SIGKILLed while the log runs
  rounds back to back and keeps ingesting: ingest never stops, the rounds report it
  unreachable (no refusal), and once it is restarted on the same directory the next rounds
  catch it up (the size it committed before dying may be newer than the log's record of it)
  and cosign. A sampler reading the witness's database shows its size never went backwards.
- The log's ``sealtrail serve`` is SIGKILLed while its witnessing job runs; restarted on the
  same data directory it goes on: the served checkpoint is cosigned again at the new size,
  no witness refuses, no ``builtin.witness_refused`` alert.
- A real ``serve`` over a forked log (same key, other history) raises that alert, readable
  at ``GET /v1/logs/{log}/alerts``.
"""

from __future__ import annotations

import itertools
import shutil
import socket
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from sealtrail.log import witnesses
from sealtrail.log.apikeys import ApiKeys
from sealtrail.log.auditlog import AuditLog
from sealtrail.log.witness import WitnessState
from tests.ports import free_port
from tests.server.conftest import seed_event
from tests.witnessing.support import (
    Proc,
    Recorder,
    ThreadWitness,
    check_cosigned,
    note_size,
    request_body,
    start_serve,
    start_witness,
    witness_db_size,
)

ACTOR = {"id": "test-operator", "type": "os_user"}
ORIGIN = "example.org/crash-log"


def events(n: int, tag: str) -> list[dict[str, object]]:
    return [{"actor": {"id": f"{tag}-{i}"}, "action": "doc.write", "outcome": "success"}
            for i in range(n)]


class Sampler(threading.Thread):
    """Reads a size every few milliseconds until stopped; keeps every distinct value seen."""

    def __init__(self, read: Callable[[], int]) -> None:
        super().__init__(daemon=True)
        self._read = read
        self.seen: list[int] = []
        self.stopping = threading.Event()
        self.errors: list[str] = []

    def run(self) -> None:
        while not self.stopping.is_set():
            try:
                size = self._read()
            except Exception as exc:  # a failed read is kept, judged later
                self.errors.append(repr(exc))
            else:
                if not self.seen or self.seen[-1] != size:
                    self.seen.append(size)
            time.sleep(0.005)

    def finish(self) -> list[int]:
        self.stopping.set()
        self.join(10)
        return self.seen


def submit_and_lose(alog: AuditLog, url: str, wdir: Path) -> int:
    """Submit the log's latest checkpoint to the witness as a round would, and drop the
    answer (a log that crashed before saving it): the witness holds a size the log's state
    does not know. Returns that size."""
    with httpx.Client(timeout=5) as client:
        for _ in range(20):
            signed = alog.checkpoint()
            size, old = signed.checkpoint.size, witness_db_size(wdir, ORIGIN)
            proof = list(alog.prove_consistency(old, size).consistency) if 0 < old < size \
                else []
            answer = client.post(f"{url}/add-checkpoint",
                                 content=request_body(old, proof, signed.note))
            if answer.status_code == 200:
                return size
            assert answer.status_code == 409, answer.text   # a round got there first
        raise AssertionError("the witness never took the checkpoint")


def monotonic(seen: list[int]) -> bool:
    return all(a <= b for a, b in itertools.pairwise(seen))


@pytest.mark.slow
def test_kill_9_of_the_witness_mid_round(tmp_path: Path) -> None:
    wdir = tmp_path / "witness"
    vkey = WitnessState(wdir).init("example.org/crash-witness").format()
    port = free_port()
    with AuditLog.open(tmp_path / "log", origin=ORIGIN) as alog, \
            httpx.Client(timeout=2) as client:
        WitnessState(wdir).add_log(alog.vkey())
        witness: Proc = start_witness(wdir, port, tmp_path / "witness.out")
        try:
            witnesses.add(alog, witness.url, vkey, actor=ACTOR)
            policy = witnesses.load(alog)
            post = Recorder(client)
            clock = [datetime.now(UTC)]
            refusals: list[object] = []
            rounds: list[witnesses.Round] = []
            stop = threading.Event()

            def ingest() -> None:
                n = 0
                while not stop.is_set():
                    alog.append_many(events(3, f"i{n}"))
                    n += 1
                    time.sleep(0.002)

            def round_loop() -> None:
                while not stop.is_set():
                    clock[0] += timedelta(seconds=10)   # past any backoff at once
                    r = witnesses.run_round(alog, policy, clock[0], post)
                    rounds.append(r)
                    refusals.extend(r.refusals)

            sampler = Sampler(lambda: witness_db_size(wdir, ORIGIN))
            sampler.start()
            workers = [threading.Thread(target=ingest, daemon=True),
                       threading.Thread(target=round_loop, daemon=True)]
            for t in workers:
                t.start()
            try:
                for cycle in range(3):
                    time.sleep(0.4 + 0.15 * cycle)
                    assert any(r.met for r in rounds), "no round met the quorum before the kill"
                    # The witness commits a checkpoint whose answer never reaches the log, then
                    # dies: after the restart the log must catch it up from that size (409).
                    lost = submit_and_lose(alog, witness.url, wdir)
                    held_before = witness_db_size(wdir, ORIGIN)
                    assert held_before >= lost
                    witness.kill9()
                    down_at, size_at_kill = len(rounds), alog.size
                    time.sleep(0.5)
                    # Ingest went on while the witness was dead; rounds saw it unreachable.
                    assert alog.size > size_at_kill
                    down = rounds[down_at + 1:]
                    assert (bool(down), any(r.met for r in down[1:])) == (True, False), down
                    assert any("unreachable" in p for r in down for p in r.problems.values())
                    # Restarted on the same directory: it holds at least what it held.
                    assert witness_db_size(wdir, ORIGIN) >= held_before
                    witness = start_witness(wdir, port, tmp_path / "witness.out")
                    deadline = time.monotonic() + 15
                    back_from = len(rounds)
                    while not any(r.met for r in rounds[back_from:]):
                        assert time.monotonic() < deadline, rounds[-3:]
                        time.sleep(0.05)
            finally:
                stop.set()
                for t in workers:
                    t.join(20)
                seen = sampler.finish()
            assert refusals == []
            statuses = [status for _, _, status in post.calls]
            assert {409, 200} <= set(statuses), statuses[-20:]
            # A last round at rest: cosigned at the log's size, verified independently.
            clock[0] += timedelta(seconds=10)
            final = witnesses.run_round(alog, policy, clock[0], post)
            assert (final.met, final.refusals) == (True, ())
            note = witnesses.served_note(alog, timedelta(seconds=10), clock[0])
            assert note_size(note) == alog.size
            assert check_cosigned(note, [vkey]).keys() == {"example.org/crash-witness"}
        finally:
            witness.stop()   # the latest one started (a killed one: reaped)
    assert witness_db_size(wdir, ORIGIN) == note_size(note)
    assert (len(seen) >= 4, monotonic(seen)) == (True, True), seen


def _keys(data: Path) -> dict[str, str]:
    keys = ApiKeys(data)
    try:
        now = datetime.now(UTC)
        return {role: keys.create(role, log="default", name=f"t-{role}", now=now)
                for role in ("ingest", "reader")}
    finally:
        keys.close()


def _wait_cosigned(url: str, headers: dict[str, str], vkey: str, at_least: int) -> str:
    deadline = time.monotonic() + 30
    name = vkey.split("+", 1)[0]
    with httpx.Client(base_url=url, timeout=5) as client:
        while True:
            note = client.get("/tlog/default/checkpoint", headers=headers).text
            if note_size(note) >= at_least and name in check_cosigned(note, [vkey]):
                return note
            assert time.monotonic() < deadline, note
            time.sleep(0.1)


@pytest.mark.slow
def test_kill_9_of_the_log_service_mid_round(tmp_path: Path) -> None:
    data = tmp_path / "data"
    w = ThreadWitness(tmp_path / "witness", "example.org/steady-witness")
    with AuditLog.open(data, origin=ORIGIN) as alog:
        alog.append_many(events(3, "seed"))
        w.state.add_log(alog.vkey())
        witnesses.add(alog, w.url, w.vkey, actor=ACTOR)
    tokens = _keys(data)
    ingest = {"Authorization": f"Bearer {tokens['ingest']}"}
    reader = {"Authorization": f"Bearer {tokens['reader']}"}
    w.start()
    sampler = Sampler(lambda: w.size(ORIGIN))
    sampler.start()
    served: Proc | None = None
    try:
        for cycle in range(3):
            served = start_serve(data, free_port(), tmp_path / f"serve-{cycle}.out")
            stop = threading.Event()
            acked: list[int] = []

            def send(url: str = served.url, stop: threading.Event = stop,
                     acked: list[int] = acked) -> None:
                with httpx.Client(base_url=url, timeout=5) as client:
                    n = 0
                    while not stop.is_set():
                        try:
                            answer = client.post("/v1/logs/default/events", headers=ingest,
                                                 json=[seed_event(n + i) for i in range(5)])
                        except httpx.TransportError:
                            return   # the service was killed
                        if answer.status_code == 201:
                            acked.append(max(r["index"] for r in answer.json()["receipts"]))
                        n += 5

            sender = threading.Thread(target=send, daemon=True)
            sender.start()
            time.sleep(0.3)
            # The job keeps the served checkpoint cosigned while ingest goes on.
            _wait_cosigned(served.url, reader, w.vkey, (acked[-1] + 1) if acked else 1)
            time.sleep(0.4 + 0.3 * cycle)   # rounds keep running: kill one mid-way
            served.kill9()
            served = None
            stop.set()
            sender.join(20)
            assert acked, "nothing was ingested"
        # Restarted once more: what was acknowledged is there, and gets cosigned.
        served = start_serve(data, free_port(), tmp_path / "serve-last.out")
        with httpx.Client(base_url=served.url, timeout=10) as client:
            sent = client.post("/v1/logs/default/events", headers=ingest,
                               json=[seed_event(1000 + i) for i in range(3)])
            assert sent.status_code == 201, sent.text
            size = max(r["index"] for r in sent.json()["receipts"]) + 1
            note = _wait_cosigned(served.url, reader, w.vkey, size)
            status = client.get("/v1/logs/default/witnessing", headers=reader).json()
            (row,) = status["witnesses"]
            assert (row["ok"], row["problem"]) == (True, ""), row
            assert status["witnessed_size"] >= size
            alerts = client.get("/v1/logs/default/alerts", headers=reader,
                                params={"rule": "builtin.witness_refused"})
            assert alerts.status_code == 200, alerts.text
            assert alerts.json()["alerts"] == []
        assert w.size(ORIGIN) >= note_size(note)
    finally:
        if served is not None:
            served.stop()
        seen = sampler.finish()
        w.stop()
    assert monotonic(seen), seen


@pytest.mark.slow
def test_a_serve_over_a_forked_log_raises_the_alert(tmp_path: Path) -> None:
    """The attacker serves a second history with the stolen key: the witness that holds the
    real one refuses, and ``builtin.witness_refused`` (high) is listed by the service."""
    real_dir, fork_dir = tmp_path / "real", tmp_path / "fork"
    w = ThreadWitness(tmp_path / "witness", "example.org/fork-witness")
    w.start()
    served: Proc | None = None
    try:
        with AuditLog.open(real_dir, origin=ORIGIN) as real, httpx.Client(timeout=5) as client:
            real.append_many(events(12, "real"))
            w.state.add_log(real.vkey())
            witnesses.add(real, w.url, w.vkey, actor=ACTOR)
            assert witnesses.run_round(real, witnesses.load(real), datetime.now(UTC),
                                       witnesses.httpx_post(client)).met
            held = w.size(ORIGIN)
        (fork_dir / "default").mkdir(parents=True, mode=0o700)
        for name in ("signing.key", "verifier.vkey"):
            shutil.copy2(real_dir / "default" / name, fork_dir / "default" / name)
        with AuditLog.open(fork_dir, origin=ORIGIN) as fork:
            fork.append_many(events(20, "fork"))
            witnesses.add(fork, w.url, w.vkey, actor=ACTOR)
        reader = {"Authorization": f"Bearer {_keys(fork_dir)['reader']}"}
        served = start_serve(fork_dir, free_port(), tmp_path / "serve.out")
        deadline = time.monotonic() + 30
        with httpx.Client(base_url=served.url, timeout=5) as client:
            while True:
                found = client.get("/v1/logs/default/alerts", headers=reader,
                                   params={"rule": "builtin.witness_refused"}).json()["alerts"]
                if found:
                    break
                assert time.monotonic() < deadline, "no builtin.witness_refused alert"
                time.sleep(0.2)
            (alert,) = found
            assert alert["severity"] == "high"
            assert alert["key"] == f"{w.name}/{held}"
            note = client.get("/tlog/default/checkpoint", headers=reader).text
            assert check_cosigned(note, [w.vkey]) == {}
            status = client.get("/v1/logs/default/witnessing", headers=reader).json()
            assert status["witnessed_size"] is None
            assert not status["witnesses"][0]["ok"]
        stored = w.state.latest(ORIGIN)
        assert stored is not None
        assert stored.size == held
    finally:
        if served is not None:
            served.stop()
        w.stop()


class TricklingWitness:
    """A hostile or broken witness: it accepts the request, sends a 200 head, then one byte of
    body every half second, forever (each read is well within any per-read timeout)."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        self.sock.settimeout(0.2)
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            threading.Thread(target=self._answer, args=(conn,), daemon=True).start()

    def _answer(self, conn: Any) -> None:
        with conn:
            conn.settimeout(5)
            try:
                conn.recv(65536)
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                             b"Transfer-Encoding: chunked\r\n\r\n")
                while not self.stop.wait(0.5):
                    conn.sendall(b"1\r\n-\r\n")
            except OSError:
                return

    def close(self) -> None:
        self.stop.set()
        self.sock.close()
        self.thread.join(5)


@pytest.mark.slow
def test_a_trickling_witness_does_not_hold_the_round(tmp_path: Path) -> None:
    slow = TricklingWitness()
    good = ThreadWitness(tmp_path / "good", "example.org/good-witness")
    bad_vkey = WitnessState(tmp_path / "bad").init("example.org/slow-witness").format()
    good.start()
    done = threading.Event()
    results: list[witnesses.Round] = []
    try:
        with AuditLog.open(tmp_path / "log", origin=ORIGIN) as alog, \
                httpx.Client(timeout=witnesses.TIMEOUT_S) as client:
            alog.append_many(events(4, "e"))
            good.state.add_log(alog.vkey())
            witnesses.add(alog, good.url, good.vkey, actor=ACTOR)
            witnesses.add(alog, slow.url, bad_vkey, actor=ACTOR)

            def one_round() -> None:
                results.append(witnesses.run_round(alog, witnesses.load(alog),
                                                   datetime.now(UTC),
                                                   witnesses.httpx_post(client)))
                done.set()

            threading.Thread(target=one_round, daemon=True).start()
            # Bounded by a few per-request timeouts (or twice a round deadline, if any).
            finished = done.wait(max(3 * witnesses.TIMEOUT_S,
                                     2 * float(getattr(witnesses, "DEADLINE_S", 0))))
            slow.close()          # lets a stuck round end, so the log can close
            done.wait(30)
            assert finished, "the round was still waiting on the trickling witness"
            (r,) = results
            assert r.met
            assert "example.org/slow-witness" in r.problems
    finally:
        slow.close()
        good.stop()


@pytest.mark.slow
def test_every_worker_serves_the_cosigned_checkpoint(tmp_path: Path) -> None:
    """``serve --workers 3``: one leader runs the rounds, but whichever worker answers
    ``/tlog/{log}/checkpoint`` serves the round's cosigned note (the state is in the store,
    not in the leader's memory)."""
    data = tmp_path / "data"
    w = ThreadWitness(tmp_path / "witness", "example.org/worker-witness")
    with AuditLog.open(data, origin=ORIGIN) as alog:
        alog.append_many(events(5, "seed"))
        w.state.add_log(alog.vkey())
        witnesses.add(alog, w.url, w.vkey, actor=ACTOR)
    w.start()
    served: Proc | None = None
    try:
        served = start_serve(data, free_port(), tmp_path / "serve.out", "--public-tlog",
                             workers=3)
        _wait_cosigned(served.url, {}, w.vkey, 1)
        answered = 0
        for _ in range(40):
            # A new connection each time: the kernel spreads them over the workers.
            with httpx.Client(base_url=served.url, timeout=5) as client:
                note = client.get("/tlog/default/checkpoint").text
            assert w.name in check_cosigned(note, [w.vkey]), note
            answered += 1
        assert answered == 40
    finally:
        if served is not None:
            served.stop()
        w.stop()
