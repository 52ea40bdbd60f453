"""Two sealtrail logs witnessing each other, and a third-party-format checkpoint on the same
witness: each log's data directory also hosts a witness that trusts the other log; after
rounds, each log's served checkpoint carries the other's cosignature, checked here by the
independent cosignature/v1 implementation of tests/witnessing/support.py."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from sealtrail.log import witnesses
from sealtrail.log.apikeys import ApiKeys
from sealtrail.log.auditlog import AuditLog
from sealtrail.server.logs import Logs
from tests.ports import free_port
from tests.server.conftest import seed_event
from tests.witness.test_witness import OtherLog
from tests.witnessing.support import (
    Proc,
    ThreadWitness,
    check_cosigned,
    last_line,
    note_root,
    note_size,
    request_body,
    run,
    split_note,
    start_serve,
    start_witness,
    witness_db_size,
)

ACTOR = {"id": "test-operator", "type": "os_user"}


def ok(result: Any) -> str:
    assert result.returncode == 0, (result.args, result.stdout, result.stderr)
    out: str = result.stdout
    return out


def events(n: int, tag: str) -> list[dict[str, object]]:
    return [{"actor": {"id": f"{tag}-{i}"}, "action": "doc.write", "outcome": "success",
             "target": {"type": "doc", "id": f"{tag}-{i}"}} for i in range(n)]


def test_two_logs_witness_each_other(tmp_path: Path) -> None:
    da, db = tmp_path / "a", tmp_path / "b"
    with AuditLog.open(da, origin="example.org/log-a") as a, \
            AuditLog.open(db, origin="example.org/log-b") as b:
        a.append_many(events(3, "a"))
        b.append_many(events(5, "b"))
        # Each data directory also hosts a witness (``_witness/``) trusting the other log.
        wa = ThreadWitness(da, "example.org/witness-a")
        wb = ThreadWitness(db, "example.org/witness-b")
        wa.state.add_log(b.vkey())
        wb.state.add_log(a.vkey())
        wa.start()
        wb.start()
        try:
            witnesses.add(a, wb.url, wb.vkey, actor=ACTOR)
            witnesses.add(b, wa.url, wa.vkey, actor=ACTOR)
            now = datetime.now(UTC)
            with httpx.Client(timeout=5) as client:
                post = witnesses.httpx_post(client)
                for step in range(3):
                    a.append_many(events(2 + step, f"a{step}"))
                    b.append_many(events(7 * step + 1, f"b{step}"))
                    now += timedelta(seconds=2)
                    ra = witnesses.run_round(a, witnesses.load(a), now, post)
                    rb = witnesses.run_round(b, witnesses.load(b), now, post)
                    assert (ra.met, ra.cosigned, ra.refusals) == (
                        True, ("example.org/witness-b",), ()), ra
                    assert (rb.met, rb.cosigned, rb.refusals) == (
                        True, ("example.org/witness-a",), ()), rb
                    for alog, witness in ((a, wb), (b, wa)):
                        served = witnesses.served_note(alog, timedelta(seconds=10), now)
                        latest = alog.checkpoint().note
                        # The served note is the log's latest checkpoint (same body, its own
                        # signature first) with the witness's line appended.
                        assert split_note(served)[0] == split_note(latest)[0]
                        assert served.startswith(latest)
                        assert note_size(served) == alog.size
                        found = check_cosigned(served, [witness.vkey])
                        assert set(found) == {witness.name}
                        assert abs(found[witness.name] - datetime.now(UTC).timestamp()) < 120
                        # The other log's witness does not sign for this one.
                        assert check_cosigned(served, [(wa if witness is wb else wb).vkey]) \
                            == {}
                        # The witness holds exactly what it cosigned: this log's size.
                        assert witness.size(alog.origin) == alog.size
            # The witness directory inside a log's data directory is not taken for a log.
            assert Logs(da).names() == ["default"]
            assert Logs(db).names() == ["default"]
        finally:
            wa.stop()
            wb.stop()


def test_the_same_witness_cosigns_a_log_of_another_implementation(tmp_path: Path) -> None:
    """A witness hosted in a sealtrail log's data directory also cosigns a checkpoint of a
    log in Go's checksum-database note format, over HTTP."""
    with AuditLog.open(tmp_path / "a", origin="example.org/log-a") as a:
        a.append_many(events(2, "a"))
        w = ThreadWitness(tmp_path / "a", "example.org/witness-a")
        other = OtherLog("example.net/other-impl")
        w.state.add_log(other.signer.verifier().format())
        w.start()
        try:
            other.append(7)
            first = other.checkpoint()
            answer = httpx.post(f"{w.url}/add-checkpoint", content=request_body(0, [], first))
            assert answer.status_code == 200, answer.text
            assert check_cosigned(first + answer.text, [w.vkey]).keys() == {w.name}
            other.append(30)
            grown = other.checkpoint()
            answer = httpx.post(f"{w.url}/add-checkpoint",
                                content=request_body(7, other.proof(7, 37), grown))
            assert answer.status_code == 200, answer.text
            assert check_cosigned(grown + answer.text, [w.vkey]).keys() == {w.name}
            # A checkpoint that is not a prefix-consistent extension: refused (422).
            fork = other.checkpoint(size=40, root=bytes(32))
            answer = httpx.post(f"{w.url}/add-checkpoint",
                                content=request_body(37, other.proof(37, 37), fork))
            assert answer.status_code == 422, (answer.status_code, answer.text)
            assert w.size("example.net/other-impl") == 37
            assert note_root(grown) != note_root(fork)
        finally:
            w.stop()


@pytest.mark.slow
def test_two_served_logs_witness_each_other(tmp_path: Path) -> None:
    """The same, as an operator runs it: two data directories, each with a log (``serve
    --public-tlog``) and a witness (``witness serve``, in that data directory) trusting the
    other log; every command a real subprocess."""
    dirs = {"a": tmp_path / "a", "b": tmp_path / "b"}
    vkeys, wkeys = {}, {}
    for side, d in dirs.items():
        vkeys[side] = last_line(ok(run(d, "init", "--origin", f"example.org/log-{side}")))
        wkeys[side] = last_line(ok(run(d, "witness", "init", "--name",
                                       f"example.org/witness-{side}")))
    procs: list[Proc] = []
    try:
        ports = {side: free_port() for side in dirs}
        for side, other in (("a", "b"), ("b", "a")):
            ok(run(dirs[side], "witness", "add-log", vkeys[other]))
            procs.append(start_witness(dirs[side], ports[side], tmp_path / f"w{side}.out"))
        for side, other in (("a", "b"), ("b", "a")):
            ok(run(dirs[side], "witnesses", "add", f"http://127.0.0.1:{ports[other]}",
                   "--vkey", wkeys[other]))
        tokens = {}
        for side, d in dirs.items():
            keys = ApiKeys(d)
            try:
                tokens[side] = keys.create("ingest", log="default", name="t",
                                           now=datetime.now(UTC))
            finally:
                keys.close()
        served: dict[str, Proc] = {}
        for side, d in dirs.items():
            served[side] = start_serve(d, free_port(), tmp_path / f"serve-{side}.out",
                                       "--public-tlog")
            procs.append(served[side])
        for side, other in (("a", "b"), ("b", "a")):
            with httpx.Client(base_url=served[side].url, timeout=10) as client:
                sent = client.post("/v1/logs/default/events",
                                   headers={"Authorization": f"Bearer {tokens[side]}"},
                                   json=[seed_event(i) for i in range(4)])
                assert sent.status_code == 201, sent.text
                size = max(r["index"] for r in sent.json()["receipts"]) + 1
                deadline = time.monotonic() + 30
                while True:
                    note = client.get("/tlog/default/checkpoint").text
                    found = check_cosigned(note, [wkeys[other], wkeys[side]])
                    if note_size(note) >= size and found:
                        break
                    assert time.monotonic() < deadline, note
                    time.sleep(0.2)
                # Cosigned by the other side's witness only (this side's does not trust it).
                assert set(found) == {f"example.org/witness-{other}"}
                assert note.startswith(f"example.org/log-{side}\n")
                assert witness_db_size(dirs[other], f"example.org/log-{side}") >= size
    finally:
        for proc in reversed(procs):
            proc.stop()
