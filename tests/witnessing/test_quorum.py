"""k-of-n policies and catch-up: three real witnesses over HTTP, a quorum of two; witnesses
going down and coming back; a log whose record of a witness's size was lost (a crash between
the witness's answer and the log's save) catching it up with the proof the witness asks for."""

from __future__ import annotations

import json
import sqlite3
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
    Recorder,
    ThreadWitness,
    check_cosigned,
    thread_witnesses,
    witnessing_doc,
    write_meta,
)

ACTOR = {"id": "test-operator", "type": "os_user"}
ORIGIN = "example.org/quorum-log"


def events(n: int, tag: str) -> list[dict[str, object]]:
    return [{"actor": {"id": f"{tag}-{i}"}, "action": "doc.write", "outcome": "success"}
            for i in range(n)]


@pytest.fixture
def three(tmp_path: Path) -> Iterator[tuple[AuditLog, list[ThreadWitness]]]:
    with AuditLog.open(tmp_path / "log", origin=ORIGIN) as alog, \
            thread_witnesses(tmp_path, "example.org/w0", "example.org/w1",
                             "example.org/w2") as ws:
        alog.append_many(events(4, "seed"))
        for w in ws:
            w.state.add_log(alog.vkey())
            witnesses.add(alog, w.url, w.vkey, actor=ACTOR)
        witnesses.set_quorum(alog, 2, actor=ACTOR)
        yield alog, ws


def test_two_of_three(three: tuple[AuditLog, list[ThreadWitness]]) -> None:
    alog, ws = three
    vkeys = [w.vkey for w in ws]
    names = tuple(w.name for w in ws)
    now = datetime.now(UTC)
    with httpx.Client(timeout=5) as client:
        post = witnesses.httpx_post(client)
        policy = witnesses.load(alog)
        assert policy is not None
        assert policy.quorum == 2
        assert len(policy.witnesses) == 3

        # All up: all three cosign.
        r = witnesses.run_round(alog, policy, now, post)
        assert (r.met, r.cosigned, r.problems) == (True, names, {})
        assert check_cosigned(witnesses.served_note(alog, timedelta(seconds=10), now),
                              vkeys).keys() == set(names)

        # One down: still witnessed, by the other two.
        ws[2].stop()
        alog.append_many(events(3, "one-down"))
        now += timedelta(seconds=2)
        r = witnesses.run_round(alog, policy, now, post)
        assert (r.met, r.cosigned) == (True, names[:2]), r
        assert set(r.problems) == {names[2]}
        assert "unreachable" in r.problems[names[2]]
        note = witnesses.served_note(alog, timedelta(seconds=10), now)
        assert check_cosigned(note, vkeys).keys() == set(names[:2])
        status = witnesses.status(alog, now)
        assert status["witnessed_size"] == alog.size
        assert status["pending_since"] is None

        # Two down: not witnessed; the status says which witnesses fail and since when.
        ws[1].stop()
        alog.append_many(events(5, "two-down"))
        witnessed_before = alog.size - 5
        now += timedelta(seconds=120)   # past every backoff
        r = witnesses.run_round(alog, policy, now, post)
        assert (r.met, r.cosigned) == (False, names[:1]), r
        assert set(r.problems) == {names[1], names[2]}
        assert r.pending_since, r
        note = witnesses.served_note(alog, timedelta(seconds=10), now)
        assert check_cosigned(note, vkeys).keys() == {names[0]}
        status = witnesses.status(alog, now)
        rows = {row["name"]: row for row in status["witnesses"]}
        assert [rows[n]["ok"] for n in names] == [True, False, False]
        assert rows[names[1]]["problem"]
        assert rows[names[2]]["problem"]
        assert status["witnessed_size"] == witnessed_before < alog.size
        assert status["pending_since"] == r.pending_since
        later = witnesses.run_round(alog, policy, now + timedelta(seconds=90), post)
        assert not later.met
        assert later.unmet_for >= 90

        # Both back: the next round catches them up (from the sizes they hold) and cosigns.
        ws[1].start()
        ws[2].start()
        alog.append_many(events(2, "back"))
        now += timedelta(seconds=300)
        r = witnesses.run_round(alog, policy, now, post)
        assert (r.met, r.cosigned, r.problems, r.refusals) == (True, names, {}, ()), r
        assert r.unmet_for == 0
        assert r.pending_since == ""
        note = witnesses.served_note(alog, timedelta(seconds=10), now)
        assert check_cosigned(note, vkeys).keys() == set(names)
        assert all(w.size(ORIGIN) == alog.size for w in ws)
        status = witnesses.status(alog, now)
        assert status["witnessed_size"] == alog.size
        assert status["pending_since"] is None
        assert all(row["ok"] and row["cosigned_latest"] for row in status["witnesses"])


@pytest.mark.parametrize("loss", ["size-zeroed", "state-deleted", "state-rolled-back"])
def test_a_lost_witness_size_is_caught_up(three: tuple[AuditLog, list[ThreadWitness]],
                                          tmp_path: Path, loss: str) -> None:
    """The log forgets what the witness holds (its ``witnessing`` row edited as a crash or a
    restore of the log's meta would leave it): the witness answers 409 with its size, the log
    sends the proof from that size, and the witness cosigns; nothing is called a refusal."""
    alog, ws = three
    vkeys = [w.vkey for w in ws]
    data = tmp_path / "log"
    now = datetime.now(UTC)
    with httpx.Client(timeout=5) as client:
        post = Recorder(client)
        policy = witnesses.load(alog)
        alog.append_many(events(6, "first"))
        assert witnesses.run_round(alog, policy, now, post).met
        held = alog.size
        saved = json.dumps(witnessing_doc(data))
        alog.append_many(events(9, "second"))
        assert witnesses.run_round(alog, policy, now + timedelta(seconds=2), post).met
        assert all(w.size(ORIGIN) == alog.size for w in ws)
        alog.append_many(events(11, "third"))
        if loss == "size-zeroed":
            doc = witnessing_doc(data)
            for status in doc["witnesses"].values():
                status["size"] = 0
            write_meta(data, "witnessing", json.dumps(doc))
        elif loss == "state-deleted":
            write_meta(data, "witnessing", None)
        else:   # the row as it was two rounds ago: the log thinks the witnesses hold ``held``
            write_meta(data, "witnessing", saved)
        post.calls.clear()
        r = witnesses.run_round(alog, policy, now + timedelta(seconds=4), post)
        assert (r.met, r.refusals, r.problems) == (True, (), {}), r
        assert len(r.cosigned) == 3
        for w in ws:
            calls = [(old, status) for url, old, status in post.calls if url == w.url]
            want_old = 0 if loss != "state-rolled-back" else held
            # First the stale size and a 409, then the size the witness named and a 200.
            assert calls == [(want_old, 409), (held + 9, 200)], calls
            assert w.size(ORIGIN) == alog.size
        note = witnesses.served_note(alog, timedelta(seconds=10), now + timedelta(seconds=4))
        assert check_cosigned(note, vkeys).keys() == {w.name for w in ws}
        assert {n: s["size"] for n, s in witnessing_doc(data)["witnesses"].items()} == {
            w.name: alog.size for w in ws}


@pytest.mark.parametrize("restore", ["emptied", "older-backup"])
def test_a_witness_restored_from_a_backup_is_caught_up(
        three: tuple[AuditLog, list[ThreadWitness]], tmp_path: Path, restore: str) -> None:
    """The witness loses state (its database emptied, or put back from an older backup): it
    answers 409 with the size it now holds, and the log catches it up from there, with no
    refusal; its stored size then equals the log's again."""
    alog, ws = three
    w = ws[0]
    db = w.state.dir / "witness.db"
    now = datetime.now(UTC)
    with httpx.Client(timeout=5) as client:
        post = Recorder(client)
        policy = witnesses.load(alog)
        assert witnesses.run_round(alog, policy, now, post).met
        backup = tmp_path / "backup.db"
        src = sqlite3.connect(db)
        dst = sqlite3.connect(backup)
        with dst:
            src.backup(dst)
        src.close()
        dst.close()
        old = w.size(ORIGIN)
        alog.append_many(events(8, "more"))
        assert witnesses.run_round(alog, policy, now + timedelta(seconds=2), post).met
        assert w.size(ORIGIN) == alog.size > old
        w.stop()
        if restore == "emptied":
            conn = sqlite3.connect(db)
            with conn:
                conn.execute("DELETE FROM latest")
            conn.close()
            held = 0
        else:
            src = sqlite3.connect(backup)
            dst = sqlite3.connect(db)
            with dst:
                src.backup(dst)
            src.close()
            dst.close()
            held = old
        assert w.size(ORIGIN) == (-1 if restore == "emptied" else old)
        w.start()
        alog.append_many(events(3, "after"))
        post.calls.clear()
        r = witnesses.run_round(alog, policy, now + timedelta(seconds=4), post)
        assert (r.met, r.refusals, r.problems) == (True, (), {}), r
        assert len(r.cosigned) == 3
        calls = [(o, status) for url, o, status in post.calls if url == w.url]
        assert calls == [(alog.size - 3, 409), (held, 200)], calls
        assert w.size(ORIGIN) == alog.size
        note = witnesses.served_note(alog, timedelta(seconds=10), now + timedelta(seconds=4))
        assert w.name in check_cosigned(note, [w.vkey])


def test_the_job_alerts_once_per_unmet_episode(tmp_path: Path) -> None:
    """Through :class:`WitnessingJob` and a real :class:`Monitor`: no alert while the quorum
    has waited less than ``alert_after``; one ``builtin.witness_unmet`` (medium) per episode
    after that, however many rounds; none for a witness merely down; a new episode after a
    recovery is a new alert."""
    data = tmp_path / "log"
    with thread_witnesses(tmp_path, "example.org/job-w") as (w,):
        with AuditLog.open(data, origin=ORIGIN) as alog:
            alog.append_many(events(3, "seed"))
            w.state.add_log(alog.vkey())
            witnesses.add(alog, w.url, w.vkey, actor=ACTOR)
        clock = [datetime.now(UTC)]
        logs = Logs(data)
        store = AlertStore(monitor_db_path(data))
        monitor = Monitor(data, lambda: [(n, logs.get(n)) for n in logs.names()], [], store,
                          clock=lambda: clock[0])
        job = WitnessingJob(logs, monitor, lambda: clock[0], delay=0, interval=0,
                            alert_after=60)

        def step(seconds: float, grow: int = 0) -> witnesses.Round:
            if grow:
                logs.get("default").append_many(events(grow, f"g{clock[0].timestamp()}"))
            clock[0] += timedelta(seconds=seconds)
            result = job.run_one("default")
            assert result is not None
            assert result.refusals == ()
            return result

        def unmet() -> list[str]:
            return [a.key for a in store.list("default", rule=UNMET_RULE)]

        try:
            assert step(0).met
            w.stop()
            for seconds in (10, 30, 15):
                assert not step(seconds, grow=2).met
            # The wait counts from the first round that missed the quorum (10 s in).
            assert step(10).unmet_for == 55
            assert unmet() == []                  # 55 s: not yet
            first = step(10)                      # 65 s
            assert first.unmet_for == 65
            assert not first.met
            assert unmet() == [first.pending_since]
            for _ in range(3):
                step(20, grow=1)
            alerts = store.list("default", rule=UNMET_RULE)
            assert [(a.key, a.severity) for a in alerts] == [(first.pending_since, "medium")]
            assert alerts[0].count >= 2
            assert "example.org/job-w" in alerts[0].message
            w.start()
            assert step(120).met                  # recovered: caught up, no new alert
            assert len(unmet()) == 1
            w.stop()
            second = step(5, grow=4)
            assert not second.met
            assert second.pending_since != first.pending_since
            step(70)
            assert sorted(unmet()) == sorted([first.pending_since, second.pending_since])
            assert store.list("default", rule=REFUSED_RULE) == []
        finally:
            job.close()
            store.close()
            logs.close()
