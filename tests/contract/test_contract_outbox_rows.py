"""``OutboxRows``: the monitor's delivery outbox as every adapter must keep it (queue once per
(alert, status, sink), the next row per sink, finish, expire, reschedule, pending counts,
prune, rewrite, the delivered rows), :class:`Dispatcher` over each adapter, and the SQLite
adapter's file: the one an older sealtrail made still delivers, and a new one is the same file.

The adapters are listed here (:data:`OUTBOX_ROWS`): the suite's ``Store`` adapters
(``tests/contract/adapters.py``) hold a log's data, not the monitor's.
"""

from __future__ import annotations

import json
import sqlite3
import stat
import threading
import time
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any, Final

import psycopg
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from psycopg import sql

from sealtrail.core.errors import StorageError
from sealtrail.log.datadir import open_outbox_rows
from sealtrail.monitor.dispatch import Dispatcher, RetryPolicy, delivered_of_rule
from sealtrail.monitor.sinks import SinkError
from sealtrail.store.memory_outbox import MemoryOutboxRows
from sealtrail.store.outbox import DeliveredRow, OutboxRow, OutboxRows
from sealtrail.store.postgres_outbox import PostgresOutboxRows
from sealtrail.store.sqlite_outbox import SQLiteOutboxRows
from tests.contract.pg_rows import (
    POSTGRES_URL,
    lose_connection,
    new_schema,
    pg_row_fixtures,
    postgres_rows,
)
from tests.contract.rowstores import row_fixtures

# One more adapter is one more entry: a name and how to make an empty store in a directory.
OUTBOX_ROWS: Final[dict[str, Callable[[Path], OutboxRows]]] = {
    "sqlite": lambda d: SQLiteOutboxRows(d / "_monitor" / "outbox.db"),
    "memory": lambda _: MemoryOutboxRows(),
    "postgres": postgres_rows(PostgresOutboxRows),
}

Fresh = Callable[[], AbstractContextManager[OutboxRows]]


_, rows, fresh_rows = row_fixtures(OUTBOX_ROWS, "outbox")
# make_rows marks the postgres adapter (skipped when unreachable); its schemas are dropped.
make_rows, drop_pg_schemas = pg_row_fixtures(OUTBOX_ROWS)


def body(n: int, rule: str = "r") -> bytes:
    return json.dumps({"id": f"a{n}", "rule": rule, "n": n}).encode()


def test_enqueue_adds_one_row_per_sink_once(rows: OutboxRows) -> None:
    """Queueing an alert adds a pending row per sink, due at once; the same (alert, status,
    sink) again adds nothing (whatever the body), a new status or sink is a new row."""
    assert rows.enqueue("a1", "open", body(1), ["s1", "s2"], 10.0) == 2
    assert rows.enqueue("a1", "open", b"other", ["s1", "s2"], 11.0) == 0
    assert rows.enqueue("a1", "resolved", body(1), ["s1"], 12.0) == 1
    assert rows.enqueue("a1", "open", body(1), ["s1", "s3"], 13.0) == 1
    assert rows.enqueue("a2", "open", body(2), [], 13.0) == 0
    assert rows.pending() == {"s1": 2, "s2": 1, "s3": 1}
    first = rows.next_row("s2")
    assert first is not None
    assert (first.alert_id, first.body, first.attempts, first.created, first.next_at) == (
        "a1", body(1), 0, 10.0, 10.0)
    assert type(first) is OutboxRow
    assert type(first.body) is bytes
    assert rows.next_row("nobody") is None
    assert rows.sinks() == {"s1", "s2", "s3"}


def test_any_body_bytes_survive(rows: OutboxRows) -> None:
    """The body is kept as opaque bytes."""
    for n, raw in enumerate((b"", b"\x00\xff", "ünïcode".encode(), b"x" * 100_000)):
        rows.enqueue(f"a{n}", "open", raw, [f"s{n}"], 1.0)
        found = rows.next_row(f"s{n}")
        assert found is not None
        assert found.body == raw


def test_rows_of_a_sink_come_in_queue_order(rows: OutboxRows) -> None:
    """A sink's rows come oldest first (queue order breaks ties of time); finishing one
    brings the next; another sink's rows are its own."""
    for n in range(5):
        rows.enqueue(f"a{n}", "open", body(n), ["s1", "s2"], 100.0 + (n // 2))
    seen = []
    while (row := rows.next_row("s1")) is not None:
        seen.append(row.alert_id)
        rows.finish(row.seq, "delivered", 200.0, None)
    assert seen == [f"a{n}" for n in range(5)]
    assert rows.pending() == {"s2": 5}
    row = rows.next_row("s2")
    assert row is not None
    assert row.alert_id == "a0"


def test_seq_grows_in_queue_order(rows: OutboxRows) -> None:
    """Rows queued later have larger ``seq``s."""
    seqs = []
    for n in range(4):
        rows.enqueue(f"a{n}", "open", body(n), [f"s{n}"], 1.0)
        row = rows.next_row(f"s{n}")
        assert row is not None
        seqs.append(row.seq)
    assert seqs == sorted(seqs)
    assert len(set(seqs)) == 4


def test_a_retried_row_comes_back_after_its_time(rows: OutboxRows) -> None:
    """``reschedule`` keeps the row pending with one more attempt, due at its new time: rows
    due sooner come first, then it comes back (with its body and creation time)."""
    rows.enqueue("a1", "open", body(1), ["s"], 10.0)
    rows.enqueue("a2", "open", body(2), ["s"], 11.0)
    first = rows.next_row("s")
    assert first is not None
    assert first.alert_id == "a1"
    rows.reschedule(first.seq, 50.0, "down")
    second = rows.next_row("s")
    assert second is not None
    assert second.alert_id == "a2"
    rows.finish(second.seq, "delivered", 12.0, None)
    again = rows.next_row("s")
    assert again == OutboxRow(first.seq, "a1", body(1), 1, 10.0, 50.0)
    rows.reschedule(first.seq, 20.0, "down again")
    assert rows.next_row("s") == OutboxRow(first.seq, "a1", body(1), 2, 10.0, 20.0)
    assert rows.pending() == {"s": 1}


def test_finish_and_expire_end_a_row(rows: OutboxRows) -> None:
    """A row finished as delivered or failed, or expired, is no longer pending; only the
    delivered one is listed as delivered, with its time."""
    rows.enqueue("a1", "open", body(1), ["s1", "s2", "s3"], 1.0)
    for sink, end in (("s1", "delivered"), ("s2", "failed"), ("s3", "expire")):
        row = rows.next_row(sink)
        assert row is not None
        if end == "expire":
            rows.expire(row.seq, 5.0, "too old")
        elif end == "delivered":
            rows.finish(row.seq, "delivered", 3.0, None)
        else:
            rows.finish(row.seq, "failed", 4.0, "refused")
        assert rows.next_row(sink) is None
    assert rows.pending() == {}
    assert rows.delivered() == [DeliveredRow("s1", body(1), 3.0)]
    assert rows.sinks() == {"s1", "s2", "s3"}
    assert rows.enqueue("a1", "open", body(1), ["s1", "s2", "s3"], 9.0) == 0


def test_an_unknown_seq_changes_nothing(rows: OutboxRows) -> None:
    """finish, expire and reschedule of a seq never given change nothing."""
    rows.enqueue("a1", "open", body(1), ["s"], 1.0)
    row = rows.next_row("s")
    assert row is not None
    rows.finish(row.seq + 1000, "delivered", 2.0, None)
    rows.expire(row.seq + 1000, 2.0, "x")
    rows.reschedule(row.seq + 1000, 9.0, "x")
    assert rows.next_row("s") == row
    assert rows.delivered() == []


def test_prune_drops_old_finished_rows_only(rows: OutboxRows) -> None:
    """Finished rows finished before the bound go (so their alert can be queued again, with
    a new, larger seq); newer finished rows and pending rows of any age stay."""
    rows.enqueue("old", "open", body(1), ["s"], 1.0)
    rows.enqueue("new", "open", body(2), ["s"], 2.0)
    rows.enqueue("waiting", "open", body(3), ["s"], 0.0)
    waiting = rows.next_row("s")
    assert waiting is not None
    assert waiting.alert_id == "waiting"
    rows.reschedule(waiting.seq, 1000.0, "down")
    old, new = rows.next_row("s"), None
    assert old is not None
    rows.finish(old.seq, "delivered", 10.0, None)
    new = rows.next_row("s")
    assert new is not None
    rows.finish(new.seq, "failed", 20.0, "no")
    rows.prune(20.0)
    assert rows.delivered() == []
    assert rows.pending() == {"s": 1}
    assert rows.enqueue("new", "open", body(2), ["s"], 30.0) == 0
    assert rows.enqueue("old", "open", body(1), ["s"], 30.0) == 1
    again = rows.next_row("s")
    assert again is not None
    assert again.alert_id == "old"
    assert again.seq > max(old.seq, new.seq, waiting.seq)
    rows.prune(1e12)
    assert rows.pending() == {"s": 2}


def test_rewrite_replaces_every_body_of_an_alert(rows: OutboxRows) -> None:
    """``rewrite`` hands every body of the alert (any status, sink, state) to the change and
    stores its answer; None keeps the body; other alerts are untouched; after
    ``purge_deleted`` the rows read the same."""
    rows.enqueue("a1", "open", b'{"k":"alice"}', ["s1", "s2"], 1.0)
    rows.enqueue("a1", "resolved", b"not json", ["s1"], 2.0)
    rows.enqueue("a2", "open", b'{"k":"alice"}', ["s1"], 3.0)
    first = rows.next_row("s2")
    assert first is not None
    rows.finish(first.seq, "delivered", 4.0, None)
    seen: list[bytes] = []

    def change(old: bytes) -> bytes | None:
        seen.append(old)
        return old.replace(b"alice", b"[erased]") if old.startswith(b"{") else None

    assert rows.rewrite("a1", change) == 2
    assert sorted(seen) == sorted([b'{"k":"alice"}', b'{"k":"alice"}', b"not json"])
    assert rows.rewrite("nobody", change) == 0
    rows.purge_deleted()
    assert rows.delivered() == [DeliveredRow("s2", b'{"k":"[erased]"}', 4.0)]
    bodies = []
    while (row := rows.next_row("s1")) is not None:
        bodies.append((row.alert_id, row.body))
        rows.finish(row.seq, "delivered", 5.0, None)
    assert bodies == [("a1", b'{"k":"[erased]"}'), ("a1", b"not json"),
                      ("a2", b'{"k":"alice"}')]


def test_delivered_lists_in_queue_order(rows: OutboxRows) -> None:
    """``delivered`` lists every delivered row in queue order, across sinks."""
    for n in range(4):
        rows.enqueue(f"a{n}", "open", body(n), ["x", "y"], float(n))
    for sink in ("y", "x"):
        while (row := rows.next_row(sink)) is not None:
            rows.finish(row.seq, "delivered", 100.0 + row.seq, None)
    listed = rows.delivered()
    assert [(d.sink, d.body) for d in listed] == [
        (s, body(n)) for n in range(4) for s in ("x", "y")]
    assert all(type(d) is DeliveredRow for d in listed)


def test_threads_queue_and_deliver_at_once(rows: OutboxRows) -> None:
    """Several threads queueing and finishing at once lose nothing and finish nothing
    twice."""
    errors: list[BaseException] = []
    finished: list[int] = []
    lock = threading.Lock()

    def work(t: int) -> None:
        try:
            for n in range(20):
                rows.enqueue(f"a{t}-{n}", "open", body(n), [f"s{t}", "shared"], float(n))
                row = rows.next_row(f"s{t}")
                assert row is not None
                rows.finish(row.seq, "delivered", 1.0, None)
                with lock:
                    finished.append(row.seq)
        except BaseException as exc:  # handed to the main thread
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(set(finished)) == 80
    assert rows.pending() == {"shared": 80}
    assert len(rows.delivered()) == 80


def test_closing_twice_is_harmless(make_rows: Callable[[Path], OutboxRows],
                                   tmp_path: Path) -> None:
    """``close`` may be called again."""
    made = make_rows(tmp_path)
    made.close()
    made.close()


class _Reference:
    """The contract in a few lines: rows in a list, scanned."""

    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []
        self.seq = 0

    def enqueue(self, alert: str, sink: str, now: float) -> int:
        if any((r["alert"], r["sink"]) == (alert, sink) for r in self.rows):
            return 0
        self.seq += 1
        self.rows.append({"seq": self.seq, "alert": alert, "sink": sink, "state": "pending",
                          "attempts": 0, "next_at": now, "finished": None})
        return 1

    def next_row(self, sink: str) -> dict[str, Any] | None:
        due = [r for r in self.rows if r["sink"] == sink and r["state"] == "pending"]
        return min(due, key=lambda r: (r["next_at"], r["seq"])) if due else None


_ops = st.lists(st.tuples(st.sampled_from(["enqueue", "deliver", "retry", "expire", "prune"]),
                          st.integers(0, 4), st.sampled_from(["s1", "s2"]),
                          st.integers(0, 20)), max_size=30)


@settings(max_examples=40, deadline=None)
@given(_ops)
def test_any_sequence_answers_as_the_reference(fresh_rows: Fresh,
                                               ops: list[tuple[str, int, str, int]]) -> None:
    """After any sequence of queueing, delivering, retrying, expiring and pruning, each
    sink's next row, the pending counts and the delivered rows match a plain list's."""
    ref = _Reference()
    with fresh_rows() as store:
        for op, n, sink, t in ops:
            now = float(t)
            if op == "enqueue":
                added = ref.enqueue(f"a{n}", sink, now)
                assert store.enqueue(f"a{n}", "open", body(n), [sink], now) == added
            elif op == "prune":
                ref.rows = [r for r in ref.rows if r["state"] == "pending"
                            or r["finished"] >= now]
                store.prune(now)
            else:
                mine, got = ref.next_row(sink), store.next_row(sink)
                if mine is None or got is None:
                    assert (mine, got) == (None, None)
                    continue
                assert got.alert_id == mine["alert"]
                if op == "deliver":
                    mine.update(state="delivered", finished=now, attempts=mine["attempts"] + 1)
                    store.finish(got.seq, "delivered", now, None)
                elif op == "expire":
                    mine.update(state="failed", finished=now)
                    store.expire(got.seq, now, "old")
                else:
                    mine.update(next_at=now + n, attempts=mine["attempts"] + 1)
                    store.reschedule(got.seq, now + n, "down")
            for s in ("s1", "s2"):
                want, found = ref.next_row(s), store.next_row(s)
                assert (None if want is None else
                        (want["alert"], want["attempts"], want["next_at"])) == (
                    None if found is None else (found.alert_id, found.attempts, found.next_at))
            counts: dict[str, int] = {}
            for r in ref.rows:
                if r["state"] == "pending":
                    counts[r["sink"]] = counts.get(r["sink"], 0) + 1
            assert store.pending() == counts
            assert [(d.sink, d.body, d.finished) for d in store.delivered()] == [
                (r["sink"], body(int(r["alert"][1:])), r["finished"]) for r in ref.rows
                if r["state"] == "delivered"]


# The Dispatcher decides; the rows only keep. Its behaviour is the same over every adapter.

FAST = RetryPolicy(base=0.005, cap=0.05, failure_threshold=3)


class Flaky:
    """A sink that fails its first ``failures`` sends, and every send while ``up`` is not
    set (retryable), keeping what arrives and when."""

    def __init__(self, name: str, failures: int = 0, up: threading.Event | None = None
                 ) -> None:
        self.name = name
        self.failures = failures
        self.up = up or threading.Event()
        if up is None:
            self.up.set()
        self.sent: list[tuple[float, Mapping[str, Any]]] = []
        self.tries: list[float] = []

    def send(self, alert: Mapping[str, Any]) -> None:
        self.tries.append(time.monotonic())
        if not self.up.is_set():
            raise SinkError("down")
        if self.failures > 0:
            self.failures -= 1
            raise SinkError("down", retry_after=0.2 if self.failures == 0 else None)
        self.sent.append((time.monotonic(), alert))

    def close(self) -> None:
        """Nothing to close."""


def _alert(n: int, **extra: Any) -> dict[str, Any]:
    return {"id": f"0191f0c2-0000-7000-8000-{n:012d}", "rule": "r", "status": "open", **extra}


def test_the_dispatcher_delivers_over_every_adapter(rows: OutboxRows) -> None:
    """Over any adapter, each sink gets every alert once: a sink that never fails in the
    order submitted; one that fails first gets them all after retrying, its retry no sooner
    than the Retry-After; a resubmitted alert is not queued again."""
    steady, flaky = Flaky("steady"), Flaky("flaky", failures=2)
    dispatcher = Dispatcher([steady, flaky], rows=rows, policy=FAST)
    try:
        for n in range(5):
            assert dispatcher.submit(_alert(n)) == 2
        assert dispatcher.flush(10)
        assert dispatcher.submit(_alert(0)) == 0
        stats = dispatcher.stats()
    finally:
        dispatcher.close()
    ids = [_alert(n)["id"] for n in range(5)]
    assert [a["id"] for _, a in steady.sent] == ids
    assert sorted(a["id"] for _, a in flaky.sent) == ids
    assert flaky.tries[2] - flaky.tries[1] >= 0.2
    assert (stats["flaky"].delivered, stats["flaky"].pending, stats["steady"].failed) == (
        5, 0, 0)


def test_the_dispatcher_rewrites_over_every_adapter(rows: OutboxRows) -> None:
    """``Dispatcher.rewrite`` changes the stored bodies of the named alerts in any adapter;
    the pending delivery then sends the rewritten body."""
    down = Flaky("down", up=threading.Event())
    dispatcher = Dispatcher([down], rows=rows, policy=FAST)
    try:
        dispatcher.submit(_alert(1, key="alice"))
        dispatcher.submit(_alert(2, key="alice"))
        assert dispatcher.rewrite([_alert(1)["id"]],
                                  lambda doc: {**doc, "key": "[erased]"}) == 1
        down.up.set()
        assert dispatcher.flush(10)
    finally:
        dispatcher.close()
    assert {a["id"]: a["key"] for _, a in down.sent} == {_alert(1)["id"]: "[erased]",
                                                         _alert(2)["id"]: "alice"}


def test_the_dispatcher_takes_a_path_or_rows() -> None:
    """``Dispatcher`` is given exactly one of an outbox path and a rows store."""
    with pytest.raises(TypeError):
        Dispatcher([])
    with pytest.raises(TypeError):
        Dispatcher([], Path("outbox.db"), rows=MemoryOutboxRows())


# The SQLite adapter's file: the one older sealtrail versions made, and the one it makes now.

OLD_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS deliveries(
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    alert_id TEXT NOT NULL,
    status TEXT NOT NULL,
    sink TEXT NOT NULL,
    body BLOB NOT NULL,
    state TEXT NOT NULL DEFAULT 'pending'
        CHECK (state IN ('pending', 'delivered', 'failed')),
    attempts INTEGER NOT NULL DEFAULT 0,
    created REAL NOT NULL,
    next_at REAL NOT NULL,
    finished REAL,
    last_error TEXT,
    UNIQUE(alert_id, status, sink));
CREATE INDEX IF NOT EXISTS deliveries_due ON deliveries(sink, state, next_at);
"""


def _old_body(alert: Mapping[str, Any]) -> bytes:
    return json.dumps(alert, separators=(",", ":"), sort_keys=True).encode()


def _old_insert(db: sqlite3.Connection, alert: Mapping[str, Any], sink: str, now: float
                ) -> None:
    db.execute("INSERT INTO deliveries(alert_id, status, sink, body, created, next_at) "
               "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(alert_id, status, sink) DO NOTHING",
               (alert["id"], alert["status"], sink, _old_body(alert), now, now))


def _old_outbox(path: Path, now: float) -> None:
    """An outbox as the old dispatcher left it: a delivered test alert, a failed one, a
    pending alert already tried twice, all written with the old SQL."""
    path.parent.mkdir(mode=0o700)
    db = sqlite3.connect(path, isolation_level=None)
    try:
        db.execute("PRAGMA journal_mode=WAL")
        db.executescript(OLD_SCHEMA)
        tested = _alert(1, rule="builtin.alert_test")
        _old_insert(db, tested, "hook", now - 30)
        _old_insert(db, tested, "gone", now - 30)
        _old_insert(db, _alert(2), "hook", now - 20)
        _old_insert(db, _alert(3), "hook", now - 10)
        db.execute("UPDATE deliveries SET state = ?, finished = ?, last_error = ?, "
                   "attempts = attempts + 1 WHERE alert_id = ? AND sink = 'hook'",
                   ("delivered", now - 25, None, tested["id"]))
        db.execute("UPDATE deliveries SET state = 'failed', finished = ?, last_error = ? "
                   "WHERE alert_id = ? AND sink = 'gone'", (now - 24, "refused", tested["id"]))
        db.execute("UPDATE deliveries SET state = 'failed', finished = ?, last_error = ?, "
                   "attempts = attempts + 1 WHERE alert_id = ?", (now - 15, "no", _alert(2)["id"]))
        db.execute("UPDATE deliveries SET next_at = ?, last_error = ?, attempts = attempts + 2 "
                   "WHERE alert_id = ?", (now - 5, "down", _alert(3)["id"]))
    finally:
        db.close()
    path.chmod(0o600)


def _tables(db: sqlite3.Connection) -> list[tuple[str, str, str]]:
    return db.execute("SELECT type, name, sql FROM sqlite_master ORDER BY name").fetchall()


def _tables_of(schema: str) -> list[tuple[str, str, str]]:
    db = sqlite3.connect(":memory:")
    try:
        db.executescript(schema)
        return _tables(db)
    finally:
        db.close()


def test_an_outbox_made_by_the_old_code_still_works(tmp_path: Path) -> None:
    """An ``outbox.db`` the old dispatcher wrote: compliance reads its delivered test alert,
    a new dispatcher delivers its pending alert once (after its retry time), does not send
    the delivered or failed ones again, and keeps the file's schema."""
    now = time.time()
    path = tmp_path / "_monitor" / "outbox.db"
    _old_outbox(path, now)
    assert delivered_of_rule(path, "builtin.alert_test") == ({"hook"}, now - 25,
                                                              {"hook", "gone"})
    reader = open_outbox_rows(path, readonly=True)
    try:
        assert reader.pending() == {"hook": 1}
        assert reader.next_row("hook") == OutboxRow(
            4, _alert(3)["id"], _old_body(_alert(3)), 2, now - 10, now - 5)
    finally:
        reader.close()
    hook = Flaky("hook")
    dispatcher = Dispatcher([hook], path, policy=FAST)
    try:
        assert dispatcher.flush(10)
        assert dispatcher.submit(_alert(1, rule="builtin.alert_test")) == 0
        assert dispatcher.submit(_alert(2)) == 0
        assert dispatcher.submit(_alert(4)) == 1
        assert dispatcher.flush(10)
    finally:
        dispatcher.close()
    assert [a["id"] for _, a in hook.sent] == [_alert(3)["id"], _alert(4)["id"]]
    db = sqlite3.connect(path)
    try:
        assert _tables(db) == _tables_of(OLD_SCHEMA)
        assert db.execute("SELECT attempts, state FROM deliveries WHERE alert_id = ?",
                          (_alert(3)["id"],)).fetchone() == (3, "delivered")
    finally:
        db.close()
    tested, last, known = delivered_of_rule(path, "r")
    assert (tested, known) == ({"hook"}, {"hook", "gone"})
    assert last is not None
    assert last >= now


def test_the_sqlite_file_is_the_one_the_old_code_made(tmp_path: Path) -> None:
    """A new outbox is ``outbox.db`` (0600) in a new 0700 directory, in WAL mode, with the old
    table and index exactly; its rows persist across reopening."""
    path = tmp_path / "_monitor" / "outbox.db"
    rows = open_outbox_rows(path)
    rows.enqueue("a1", "open", body(1), ["s"], 1.0)
    rows.close()
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    db = sqlite3.connect(path)
    try:
        assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        assert _tables(db) == _tables_of(OLD_SCHEMA)
    finally:
        db.close()
    again = open_outbox_rows(path)
    try:
        found = again.next_row("s")
        assert found is not None
        assert found.body == body(1)
    finally:
        again.close()


def test_a_read_only_outbox_reads_and_refuses_writes(tmp_path: Path) -> None:
    """Opened read-only, the SQLite outbox answers the reads and refuses every write with
    StorageError, leaving the file as it was; a missing outbox reads as empty for
    compliance; a file that is not a database is a StorageError."""
    path = tmp_path / "_monitor" / "outbox.db"
    assert delivered_of_rule(path, "r") == (set(), None, set())
    writer = open_outbox_rows(path)
    writer.enqueue("a1", "open", body(1), ["s"], 1.0)
    row = writer.next_row("s")
    assert row is not None
    writer.finish(row.seq, "delivered", 2.0, None)
    writer.close()
    before = path.read_bytes()
    reader = open_outbox_rows(path, readonly=True)
    try:
        assert reader.delivered() == [DeliveredRow("s", body(1), 2.0)]
        assert reader.sinks() == {"s"}
        assert reader.pending() == {}
        for write in (lambda: reader.enqueue("a2", "open", body(2), ["s"], 3.0),
                      lambda: reader.finish(row.seq, "failed", 3.0, "x"),
                      lambda: reader.expire(row.seq, 3.0, "x"),
                      lambda: reader.reschedule(row.seq, 3.0, "x"),
                      lambda: reader.prune(1e12),
                      lambda: reader.rewrite("a1", lambda _: b"{}"),
                      reader.purge_deleted):
            with pytest.raises(StorageError, match="read-only"):
                write()
    finally:
        reader.close()
    assert path.read_bytes() == before
    broken = tmp_path / "broken.db"
    broken.write_bytes(b"not a database, not at all" * 100)
    with pytest.raises(StorageError, match="cannot read the alert outbox"):
        delivered_of_rule(broken, "r")
    with pytest.raises(StorageError, match="cannot open the alert outbox"):
        open_outbox_rows(broken)


def test_a_rewritten_body_leaves_no_copy_in_the_files(tmp_path: Path) -> None:
    """After ``rewrite`` and ``purge_deleted`` the old body is in neither the database file
    nor its write-ahead log."""
    path = tmp_path / "_monitor" / "outbox.db"
    rows = open_outbox_rows(path)
    try:
        secret = b"pseudonym-4f1c2e9a7b"
        rows.enqueue("a1", "open", b'{"k":"' + secret + b'"}', ["s1", "s2"], 1.0)
        assert rows.rewrite("a1", lambda old: old.replace(secret, b"[erased]")) == 2
        rows.purge_deleted()
        for file in path.parent.iterdir():
            assert secret not in file.read_bytes(), file.name
    finally:
        rows.close()


def test_a_failed_commit_leaves_the_outbox_writable(tmp_path: Path) -> None:
    """An enqueue whose COMMIT fails (the file locked by another process) raises and stores
    nothing, and leaves no transaction open: the next enqueue goes through."""
    outbox = SQLiteOutboxRows(tmp_path / "_monitor" / "outbox.db")
    real = outbox._db

    class FailingCommit:
        in_transaction = property(lambda _: real.in_transaction)

        def execute(self, sql: str, *args: Any) -> sqlite3.Cursor:
            if sql == "COMMIT":
                raise sqlite3.OperationalError("database is locked")
            return real.execute(sql, *args)

    try:
        outbox._db = FailingCommit()  # type: ignore[assignment]
        with pytest.raises(StorageError, match="locked"):
            outbox.enqueue("a1", "open", body(1), ["s1"], 1.0)
        outbox._db = real
        assert outbox.pending() == {}
        assert outbox.enqueue("a1", "open", body(1), ["s1"], 2.0) == 1
        assert outbox.pending() == {"s1": 1}
    finally:
        outbox._db = real
        outbox.close()


# The PostgreSQL adapter: several dispatchers on one schema, read-only, a server restart.


def _pg_table(schema: str) -> list[tuple[Any, ...]]:
    """Every row of the outbox's table, as stored."""
    with psycopg.connect(POSTGRES_URL) as conn:
        return conn.execute(sql.SQL("SELECT * FROM {}.deliveries ORDER BY seq").format(
            sql.Identifier(schema))).fetchall()


@pytest.mark.postgres
def test_a_read_only_postgres_outbox_reads_and_refuses_writes() -> None:
    """Opened read-only, the PostgreSQL outbox needs the outbox made (StorageError
    otherwise, and nothing is created), answers the reads, and refuses every write with
    StorageError, leaving the rows as they were."""
    schema = new_schema()
    with pytest.raises(StorageError, match="cannot read the alert outbox"):
        PostgresOutboxRows(POSTGRES_URL, schema, readonly=True)
    with psycopg.connect(POSTGRES_URL) as conn:
        assert conn.execute("SELECT count(*) FROM pg_namespace WHERE nspname = %s",
                            (schema,)).fetchone() == (0,)
    writer = PostgresOutboxRows(POSTGRES_URL, schema)
    writer.enqueue("a1", "open", body(1), ["s", "t"], 1.0)
    row = writer.next_row("s")
    assert row is not None
    writer.finish(row.seq, "delivered", 2.0, None)
    writer.close()
    before = _pg_table(schema)
    reader = PostgresOutboxRows(POSTGRES_URL, schema, readonly=True)
    try:
        assert reader.delivered() == [DeliveredRow("s", body(1), 2.0)]
        assert reader.sinks() == {"s", "t"}
        assert reader.pending() == {"t": 1}
        for write in (lambda: reader.enqueue("a2", "open", body(2), ["s"], 3.0),
                      lambda: reader.enqueue("a2", "open", body(2), [], 3.0),
                      lambda: reader.finish(row.seq, "failed", 3.0, "x"),
                      lambda: reader.expire(row.seq, 3.0, "x"),
                      lambda: reader.reschedule(row.seq, 3.0, "x"),
                      lambda: reader.prune(1e12),
                      lambda: reader.rewrite("a1", lambda _: b"{}"),
                      reader.purge_deleted):
            with pytest.raises(StorageError, match="read-only"):
                write()
    finally:
        reader.close()
    assert _pg_table(schema) == before


@pytest.mark.postgres
def test_postgres_dispatchers_share_one_outbox() -> None:
    """Two handles on one schema (two nodes) queueing the same alerts at once store each
    (alert, status, sink) once, counted by one of them, with distinct seqs; rewrites of one
    alert from both take turns, so neither undoes the other."""
    schema = new_schema()
    nodes = [PostgresOutboxRows(POSTGRES_URL, schema) for _ in range(2)]
    added = [0, 0]
    start = threading.Barrier(2)

    def work(k: int) -> None:
        start.wait()
        for n in range(30):
            added[k] += nodes[k].enqueue(f"a{n}", "open", b"alice bob", ["s1", "s2"], float(n))

    try:
        threads = [threading.Thread(target=work, args=(k,)) for k in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert sum(added) == 60
        assert nodes[0].pending() == nodes[1].pending() == {"s1": 30, "s2": 30}
        scrub = [threading.Thread(target=lambda k=k, name=name: nodes[k].rewrite(
                     "a0", lambda old: old.replace(name, b"[erased]")))
                 for k, name in enumerate((b"alice", b"bob"))]
        for thread in scrub:
            thread.start()
        for thread in scrub:
            thread.join()
        row = nodes[1].next_row("s1")
        assert row is not None
        assert (row.alert_id, row.body) == ("a0", b"[erased] [erased]")
        assert len({r[0] for r in _pg_table(schema)}) == 60
    finally:
        for node in nodes:
            node.close()


@pytest.mark.postgres
def test_postgres_outbox_survives_a_lost_connection() -> None:
    """After the server ends the connection (a restart), each call connects again and
    answers as if it had not: an enqueue counts its rows once, a finish or a reschedule
    counts one attempt."""
    rows = PostgresOutboxRows(POSTGRES_URL, new_schema())
    try:
        lose_connection(rows)
        assert rows.enqueue("a1", "open", body(1), ["s"], 1.0) == 1
        lose_connection(rows)
        first = rows.next_row("s")
        assert first is not None
        lose_connection(rows)
        rows.reschedule(first.seq, 5.0, "down")
        lose_connection(rows)
        assert rows.next_row("s") == OutboxRow(first.seq, "a1", body(1), 1, 1.0, 5.0)
        rows.finish(first.seq, "delivered", 6.0, None)
        lose_connection(rows)
        assert rows.delivered() == [DeliveredRow("s", body(1), 6.0)]
        lose_connection(rows)
        rows.purge_deleted()
    finally:
        rows.close()
