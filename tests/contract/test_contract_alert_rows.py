"""``AlertRows``: the monitor's rows, as every adapter must keep them (alerts stored and
grouped, listed in order, counted, linked to the subjects their evidence names, the changes
queue, the rule engine's cursors, one unit of work), :class:`AlertStore` over each adapter,
and the SQLite adapter's file: a ``monitor.db`` an older sealtrail made still reads, and a
new one is the same file.

The adapters are listed here (:data:`ALERT_ROWS`): the suite's ``Store`` adapters
(``tests/contract/adapters.py``) hold a log's data, not the monitor's.
"""

from __future__ import annotations

import dataclasses
import json
import sqlite3
import stat
import threading
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Final

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sealtrail.core.errors import ConfigError, StorageError
from sealtrail.monitor.alerts import Alert, AlertStore, monitor_db_path
from sealtrail.store.memory_monitor import MemoryAlertRows
from sealtrail.store.monitor_state import AlertRow, AlertRows, Cursor, QueuedChange
from sealtrail.store.postgres_monitor import PostgresAlertRows
from sealtrail.store.sqlite_monitor import SQLiteAlertRows
from tests.contract.pg_rows import (
    POSTGRES_URL,
    lose_connection,
    new_schema,
    pg_row_fixtures,
    postgres_rows,
)
from tests.contract.rowstores import row_fixtures

# One more adapter is one more entry: a name and how to make an empty store in a directory.
ALERT_ROWS: Final[dict[str, Callable[[Path], AlertRows]]] = {
    "sqlite": lambda d: SQLiteAlertRows(monitor_db_path(d)),
    "memory": lambda _: MemoryAlertRows(),
    "postgres": postgres_rows(PostgresAlertRows),
}

Fresh = Callable[[], AbstractContextManager[AlertRows]]


_, rows, fresh_rows = row_fixtures(ALERT_ROWS, "alertrows")
# make_rows marks the postgres adapter (skipped when unreachable); its schemas are dropped.
make_rows, drop_pg_schemas = pg_row_fixtures(ALERT_ROWS)


T1, T2, T3, T4 = ("2024-01-01T00:00:00Z", "2024-01-02T00:00:00Z", "2024-01-03T00:00:00Z",
                  "2024-01-04T00:00:00Z")
REF_A, REF_B = "ref:" + "A" * 22, "ref:" + "B" * 22


def alert(n: int, **changes: object) -> AlertRow:
    """An alert row numbered ``n`` (id ``a<n>``), open, seen at T1, of log ``payments``."""
    made = AlertRow(f"a{n:03d}", "payments", "rule.x", f"key {n}", f"title {n}", "high", "open",
                    T1, T1, 1, "[1]", '["c"]', f"message {n}", None, T1, "monitor", "")
    return dataclasses.replace(made, **changes)  # type: ignore[arg-type]


def listing(rows: AlertRows, **given: str | int | None) -> list[str]:
    """The ids ``listing`` answers, every filter unset unless given."""
    args: dict[str, str | int | None] = {"log": None, "status": None, "severity": None,
                                         "rule": None, "before": None, "limit": 100}
    args.update(given)
    return [a.id for a in rows.listing(**args)]  # type: ignore[arg-type]


# -- alerts ---------------------------------------------------------------------------------


def test_an_alert_comes_back_as_it_was_stored(rows: AlertRows) -> None:
    """``get`` answers the stored row field for field (opened index unset or set, any text),
    as an ``AlertRow``; an id never stored is None."""
    full = alert(2, opened_index=0, key="ünï\x00code", note="why", entries="[1,2,3]")
    rows.put(alert(1))
    rows.put(full)
    assert rows.get("a001") == alert(1)
    assert rows.get("a002") == full
    assert type(rows.get("a002")) is AlertRow
    assert rows.get("a003") is None
    assert rows.get("") is None


def test_a_second_put_changes_only_the_lifecycle_fields(rows: AlertRows) -> None:
    """Putting a stored id again changes status, last seen, count, entries, opened index,
    updated at/by and note; log, rule, key, title, severity, first seen, clauses and message
    stay as first stored (an erasure's scrubbed key is never put back)."""
    rows.put(alert(1))
    again = AlertRow("a001", "other", "rule.y", "key new", "title new", "low", "acknowledged",
                     T2, T3, 7, "[9]", '["d"]', "message new", 42, T3, "alice", "looked")
    rows.put(again)
    assert rows.get("a001") == dataclasses.replace(
        alert(1), status="acknowledged", last_seen=T3, count=7, entries="[9]",
        opened_index=42, updated_at=T3, updated_by="alice", note="looked")


def test_update_group_folds_into_an_alert_not_resolved(rows: AlertRows) -> None:
    """``update_group`` sets count, last seen and entries of an open or acknowledged alert
    and answers True; a resolved or unknown alert answers False and nothing changes."""
    rows.put(alert(1))
    rows.put(alert(2, status="acknowledged", updated_by="bob"))
    rows.put(alert(3, status="resolved"))
    assert rows.update_group("a001", 5, T2, "[4,5]") is True
    assert rows.update_group("a002", 6, T3, "[6]") is True
    assert rows.update_group("a003", 9, T4, "[9]") is False
    assert rows.update_group("a009", 9, T4, "[9]") is False
    assert rows.get("a001") == alert(1, count=5, last_seen=T2, entries="[4,5]")
    assert rows.get("a002") == alert(2, status="acknowledged", updated_by="bob", count=6,
                                     last_seen=T3, entries="[6]")
    assert rows.get("a003") == alert(3, status="resolved")
    assert rows.get("a009") is None


def test_set_opened_and_rewrite_change_one_alert(rows: AlertRows) -> None:
    """``set_opened`` sets the opened index, ``rewrite`` the key and message, of that alert
    only; an unknown id changes nothing and stores nothing."""
    rows.put(alert(1))
    rows.put(alert(2))
    rows.set_opened("a001", 17)
    rows.rewrite("a002", "(erased)", "who: (erased)")
    rows.set_opened("a009", 1)
    rows.rewrite("a009", "k", "m")
    assert rows.get("a001") == alert(1, opened_index=17)
    assert rows.get("a002") == alert(2, key="(erased)", message="who: (erased)")
    assert rows.get("a009") is None
    assert listing(rows) == ["a001", "a002"]


def test_current_is_the_group_alert_not_resolved_seen_last(rows: AlertRows) -> None:
    """``current`` answers, of the alerts of (log, rule, key) not resolved, the one seen
    last; resolved alerts and other groups never; None when there is none."""
    rows.put(alert(1, key="k", last_seen=T2))
    rows.put(alert(2, key="k", last_seen=T3, status="acknowledged"))
    rows.put(alert(3, key="k", last_seen=T4, status="resolved"))
    rows.put(alert(4, key="k", last_seen=T4, rule="rule.other"))
    rows.put(alert(5, key="k", last_seen=T4, log="other"))
    rows.put(alert(6, key="k2", last_seen=T4))
    assert rows.current("payments", "rule.x", "k") == alert(2, key="k", last_seen=T3,
                                                            status="acknowledged")
    assert rows.current("payments", "rule.x", "missing") is None
    rows.put(alert(2, key="k", last_seen=T3, status="resolved"))
    found = rows.current("payments", "rule.x", "k")
    assert found is not None
    assert found.id == "a001"
    rows.put(alert(1, key="k", last_seen=T2, status="resolved"))
    assert rows.current("payments", "rule.x", "k") is None


def test_listing_filters_and_orders_newest_first_then_by_id(rows: AlertRows) -> None:
    """``listing`` keeps the alerts equal on each given field (``before``: last seen earlier,
    as text), newest last seen first and ties by id, at most ``limit``; a negative limit
    bounds nothing."""
    rows.put(alert(5, last_seen=T2))
    rows.put(alert(3, last_seen=T2, severity="low", status="resolved"))
    rows.put(alert(9, last_seen=T1, log="other", rule="rule.y"))
    rows.put(alert(1, last_seen=T3, status="acknowledged"))
    assert listing(rows) == ["a001", "a003", "a005", "a009"]
    assert listing(rows, log="payments") == ["a001", "a003", "a005"]
    assert listing(rows, status="resolved") == ["a003"]
    assert listing(rows, severity="high") == ["a001", "a005", "a009"]
    assert listing(rows, rule="rule.y") == ["a009"]
    assert listing(rows, before=T3) == ["a003", "a005", "a009"]
    assert listing(rows, before=T1) == []
    assert listing(rows, log="payments", severity="high", before=T3) == ["a005"]
    assert listing(rows, limit=2) == ["a001", "a003"]
    assert listing(rows, limit=0) == []
    assert listing(rows, limit=-1) == ["a001", "a003", "a005", "a009"]
    assert listing(rows, log="none") == []


def test_unrecorded_are_alerts_of_a_log_without_an_opened_index(rows: AlertRows) -> None:
    """``unrecorded`` answers alerts with no opened index and a log, in the order they were
    first stored (a later put keeps the place), at most ``limit``."""
    rows.put(alert(9))
    rows.put(alert(1))
    rows.put(alert(5, log=""))
    rows.put(alert(3, opened_index=4))
    rows.put(alert(7))
    rows.put(alert(9, status="acknowledged", last_seen=T4))
    assert [a.id for a in rows.unrecorded(100)] == ["a009", "a001", "a007"]
    assert [a.id for a in rows.unrecorded(2)] == ["a009", "a001"]
    rows.set_opened("a001", 8)
    assert [a.id for a in rows.unrecorded(100)] == ["a009", "a007"]
    assert rows.unrecorded(100)[0] == alert(9, status="acknowledged", last_seen=T4)


def test_counts_are_per_log_status_and_severity(rows: AlertRows) -> None:
    """``counts`` answers how many alerts per (log, status, severity), none for absent
    combinations."""
    assert rows.counts() == {}
    rows.put(alert(1))
    rows.put(alert(2))
    rows.put(alert(3, status="resolved"))
    rows.put(alert(4, severity="low", log="other"))
    assert rows.counts() == {("payments", "open", "high"): 2,
                             ("payments", "resolved", "high"): 1, ("other", "open", "low"): 1}


# -- subjects -------------------------------------------------------------------------------


def test_subject_links_find_the_alerts_and_unlink_removes_them(rows: AlertRows) -> None:
    """``subject_alerts`` answers the stored alerts linked to a subject, by id, each once
    however often linked; a link to an alert not stored finds nothing; ``unlink_subject``
    deletes that subject's links only; ``purge_deleted`` keeps every row."""
    for n in (3, 1, 2):
        rows.put(alert(n))
    rows.link_subjects("a003", [REF_A, REF_A, REF_B])
    rows.link_subjects("a001", iter([REF_A]))
    rows.link_subjects("a001", [REF_A])
    rows.link_subjects("a002", [])
    rows.link_subjects("a404", [REF_A])
    assert [a.id for a in rows.subject_alerts(REF_A)] == ["a001", "a003"]
    assert rows.subject_alerts(REF_B) == [alert(3)]
    assert rows.subject_alerts("ref:none") == []
    rows.unlink_subject(REF_A)
    rows.purge_deleted()
    assert rows.subject_alerts(REF_A) == []
    assert rows.subject_alerts(REF_B) == [alert(3)]
    assert listing(rows) == ["a001", "a002", "a003"]


# -- the changes queue and the cursors ------------------------------------------------------


def test_changes_are_queued_in_order_and_numbers_not_reused(rows: AlertRows) -> None:
    """Queued changes come oldest first with increasing numbers, at most ``limit``;
    ``change_sent`` removes one (an unknown number: nothing); a number sent is never given
    again."""
    assert rows.changes(10) == []
    rows.queue_change("a1", "open")
    rows.queue_change("a2", "open")
    rows.queue_change("a1", "resolved")
    queued = rows.changes(10)
    assert [(c.alert_id, c.status) for c in queued] == [("a1", "open"), ("a2", "open"),
                                                        ("a1", "resolved")]
    assert all(type(c) is QueuedChange for c in queued)
    assert queued[0].seq < queued[1].seq < queued[2].seq
    assert rows.changes(2) == queued[:2]
    rows.change_sent(queued[2].seq)
    rows.change_sent(queued[0].seq)
    rows.change_sent(10_000)
    assert rows.changes(10) == [queued[1]]
    rows.queue_change("a3", "acknowledged")
    last = rows.changes(10)[-1]
    assert (last.alert_id, last.status) == ("a3", "acknowledged")
    assert last.seq > queued[2].seq


def test_cursors_are_saved_per_log_and_replaced(rows: AlertRows) -> None:
    """A log without a cursor answers None; a saved one comes back; saving again replaces
    it; logs are apart."""
    assert rows.cursor("payments") is None
    rows.put_cursor("payments", Cursor(10, '{"v":2}'))
    rows.put_cursor("other", Cursor(3, "{}"))
    rows.put_cursor("payments", Cursor(12, '{"v":3,"s":"ü"}'))
    assert rows.cursor("payments") == Cursor(12, '{"v":3,"s":"ü"}')
    assert rows.cursor("other") == Cursor(3, "{}")
    assert rows.cursor("none") is None


# -- the unit of work -----------------------------------------------------------------------


def _write_everything(rows: AlertRows) -> None:
    rows.put(alert(2))
    rows.put(alert(1, status="resolved", count=3))
    rows.update_group("a002", 9, T4, "[9]")
    rows.set_opened("a002", 5)
    rows.rewrite("a002", "(erased)", "(erased)")
    rows.link_subjects("a002", [REF_B])
    rows.unlink_subject(REF_A)
    rows.queue_change("a002", "open")
    rows.change_sent(1)
    rows.put_cursor("payments", Cursor(99, "{}"))


def _snapshot(rows: AlertRows) -> tuple[object, ...]:
    return (rows.listing(log=None, status=None, severity=None, rule=None, before=None,
                         limit=-1), rows.subject_alerts(REF_A), rows.subject_alerts(REF_B),
            rows.changes(-1), rows.cursor("payments"), rows.counts(), rows.unrecorded(-1))


def _seed(rows: AlertRows) -> None:
    rows.put(alert(1))
    rows.link_subjects("a001", [REF_A])
    rows.queue_change("a001", "open")
    rows.put_cursor("payments", Cursor(1, '{"v":1}'))


class _BoomError(Exception):
    pass


def _fail_in(rows: AlertRows, nested: Callable[[], object], *, outer: bool = True) -> None:
    """Write ``nested`` in a transaction inside another (with every kind of write in the
    outer one when ``outer``), then raise."""
    with rows.transaction():
        if outer:
            _write_everything(rows)
        with rows.transaction():
            nested()
        raise _BoomError


def test_a_transaction_that_raises_keeps_nothing(rows: AlertRows) -> None:
    """Every kind of write inside a transaction that raises is undone, a nested
    transaction's too, and the exception goes on; the store answers as before it began."""
    _seed(rows)
    before = _snapshot(rows)
    with pytest.raises(_BoomError):
        _fail_in(rows, lambda: rows.put(alert(7)))
    assert _snapshot(rows) == before
    assert rows.get("a007") is None
    with pytest.raises(_BoomError):
        _fail_in(rows, lambda: rows.put(alert(8)), outer=False)
    assert _snapshot(rows) == before


def test_a_transaction_that_ends_keeps_everything(rows: AlertRows) -> None:
    """The writes of a transaction that ends, a nested one's with them, are all kept, as
    when made one by one."""
    _seed(rows)
    with rows.transaction():
        _write_everything(rows)
        with rows.transaction():
            rows.put(alert(7))
        assert rows.get("a007") == alert(7)  # a transaction reads its own writes
    kept = _snapshot(rows)
    assert rows.get("a007") == alert(7)
    assert rows.get("a002") == alert(2, count=9, last_seen=T4, entries="[9]",
                                     opened_index=5, key="(erased)", message="(erased)")
    assert rows.subject_alerts(REF_A) == []
    assert rows.cursor("payments") == Cursor(99, "{}")
    one_by_one = MemoryAlertRows()
    _seed(one_by_one)
    _write_everything(one_by_one)
    one_by_one.put(alert(7))
    assert _snapshot(one_by_one) == kept


def test_other_threads_wait_for_a_transaction(rows: AlertRows) -> None:
    """A write from another thread during a transaction waits until it ends, and is kept
    even when the transaction is undone."""
    done = threading.Event()

    def other() -> None:
        rows.put(alert(2))
        done.set()

    thread = threading.Thread(target=other)
    waited: list[bool] = []

    def start_then_fail() -> None:
        thread.start()
        waited.append(not done.wait(0.3))

    with pytest.raises(_BoomError):
        _fail_in(rows, start_then_fail, outer=False)
    thread.join(10)
    assert waited == [True]
    assert done.is_set()
    assert listing(rows) == ["a002"]


def test_threads_write_and_read_at_once(rows: AlertRows) -> None:
    """Four threads storing alerts, queueing changes and grouping at once lose nothing."""

    def work(base: int) -> None:
        for n in range(base, base + 25):
            with rows.transaction():
                rows.put(alert(n))
                rows.queue_change(f"a{n:03d}", "open")
            rows.update_group(f"a{n:03d}", 2, T2, "[2]")
            assert rows.get(f"a{n:03d}") is not None

    threads = [threading.Thread(target=work, args=(base,)) for base in (0, 25, 50, 75)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(listing(rows, limit=-1)) == 100
    assert rows.counts() == {("payments", "open", "high"): 100}
    seqs = [c.seq for c in rows.changes(-1)]
    assert len(seqs) == 100
    assert seqs == sorted(set(seqs))


def test_closing_twice_is_harmless(make_rows: Callable[[Path], AlertRows],
                                   tmp_path: Path) -> None:
    """``close`` may be called again."""
    made = make_rows(tmp_path)
    made.close()
    made.close()


# -- against a reference --------------------------------------------------------------------

_ops = st.lists(st.tuples(
    st.sampled_from(["put", "group", "opened", "link", "unlink", "queue", "sent", "raise"]),
    st.integers(0, 4), st.sampled_from(["open", "acknowledged", "resolved"]),
    st.sampled_from([T1, T2, T3, T4]), st.sampled_from(["k0", "k1"])), max_size=25)


@settings(max_examples=40, deadline=None)
@given(ops=_ops)
def test_any_sequence_answers_as_the_memory_store(fresh_rows: Fresh,
                                                  ops: list[tuple[str, int, str, str, str]]
                                                  ) -> None:
    """Any sequence of writes, some in transactions that raise, leaves the adapter answering
    every read as the in-memory store does after the same sequence."""
    reference = MemoryAlertRows()
    with fresh_rows() as rows:
        for store in (rows, reference):
            for op, n, status, seen, key in ops:
                try:
                    with store.transaction():
                        _apply(store, op, n, status, seen, key)
                except _UndoneError:
                    pass
        assert _answers(rows) == _answers(reference)


class _UndoneError(Exception):
    pass


def _apply(rows: AlertRows, op: str, n: int, status: str, seen: str, key: str) -> None:
    if op == "put":
        rows.put(alert(n, status=status, last_seen=seen, key=key))
    elif op == "group":
        rows.update_group(f"a{n:03d}", n + 2, seen, f"[{n}]")
    elif op == "opened":
        rows.set_opened(f"a{n:03d}", n)
    elif op == "link":
        rows.link_subjects(f"a{n:03d}", [REF_A if n % 2 else REF_B])
    elif op == "unlink":
        rows.unlink_subject(REF_A)
    elif op == "queue":
        rows.queue_change(f"a{n:03d}", status)
    elif op == "sent":
        queued = rows.changes(1)
        if queued:
            rows.change_sent(queued[0].seq)
    else:
        rows.put(alert(n + 10))
        raise _UndoneError


def _answers(rows: AlertRows) -> tuple[object, ...]:
    return (rows.listing(log=None, status=None, severity=None, rule=None, before=None,
                         limit=-1),
            [rows.current("payments", "rule.x", k) for k in ("k0", "k1")],
            rows.unrecorded(-1), rows.counts(), rows.subject_alerts(REF_A),
            rows.subject_alerts(REF_B), [(c.alert_id, c.status) for c in rows.changes(-1)])


# -- AlertStore over each adapter -----------------------------------------------------------


@pytest.fixture
def store(rows: AlertRows, tmp_path: Path) -> AlertStore:
    """An alert store over the adapter under test."""
    return AlertStore(monitor_db_path(tmp_path / "over"), rows=rows)


def _alert(n: int, **changes: object) -> Alert:
    made = Alert(f"a{n:03d}", "payments", "rule.x", f"user {REF_A}", "Title", "high", "open",
                 T1, T1, 1, [n], ["c1", "c2"], f"seen {REF_A}", None, T1, "monitor", "")
    for name, value in changes.items():
        setattr(made, name, value)
    return made


def test_alert_store_keeps_alerts_over_every_adapter(store: AlertStore) -> None:
    """``AlertStore`` stores, groups, lists, counts and records alerts the same over every
    adapter; evidence keeps its newest 100 indexes; the engine state is JSON."""
    with store.transaction():
        store.put(_alert(1, entries=list(range(150))))
        store.queue_change("a001", "open")
    store.put(_alert(2, severity="low", last_seen=T2))
    got = store.get("a001")
    assert got is not None
    assert got.entries == list(range(50, 150))
    assert got.clauses == ["c1", "c2"]
    assert got.to_dict()["opened_index"] is None
    grown = _alert(1, count=2, last_seen=T3, entries=[*range(150), 150])
    assert store.update_group(grown) is True
    current = store.current("payments", "rule.x", f"user {REF_A}")
    assert current is not None
    assert (current.id, current.count, current.entries[-1]) == ("a001", 2, 150)
    assert [a.id for a in store.list()] == ["a001", "a002"]
    assert [a.id for a in store.list("payments", severity="low")] == ["a002"]
    assert [a.id for a in store.list(before=T3)] == ["a002"]
    with pytest.raises(ConfigError):
        store.list(status="closed")
    with pytest.raises(ConfigError):
        store.list(severity="urgent")
    assert store.counts() == {("payments", "open", "high"): 1, ("payments", "open", "low"): 1}
    assert [a.id for a in store.unrecorded()] == ["a001", "a002"]
    store.set_opened("a001", 3)
    assert [a.id for a in store.unrecorded()] == ["a002"]
    assert [(a, s) for _, a, s in store.changes()] == [("a001", "open")]
    store.change_sent(store.changes()[0][0])
    assert store.changes() == []
    assert store.cursor("payments") == (0, None)
    store.put_cursor("payments", 7, {"v": 2, "rules": {"r": [1, 2]}})
    assert store.cursor("payments") == (7, {"v": 2, "rules": {"r": [1, 2]}})
    store.close()


def test_alert_store_erases_a_subject_over_every_adapter(store: AlertStore) -> None:
    """Erasing a subject scrubs its pseudonyms from the key and message of the alerts that
    name it, keeps their evidence, answers their former keys, and unlinks the subject; a
    later put of the old alert does not bring the key back."""
    store.put(_alert(1))
    store.put(_alert(2, key="other", message="nothing personal"))
    store.link_subjects("a001", [REF_A])
    changed = store.erase_subject(REF_A)
    assert [(a.id, a.key, old) for a, old in changed] == [("a001", "user (erased)",
                                                           f"user {REF_A}")]
    stored = store.get("a001")
    assert stored is not None
    assert (stored.key, stored.message, stored.entries) == ("user (erased)", "seen (erased)",
                                                            [1])
    assert store.subject_alerts(REF_A) == []
    store.put(_alert(1, status="resolved"))
    again = store.get("a001")
    assert again is not None
    assert (again.key, again.status) == ("user (erased)", "resolved")
    assert store.get("a002") == _alert(2, key="other", message="nothing personal")
    store.purge_files()
    store.close()


# -- the SQLite file ------------------------------------------------------------------------

# The alerts table and indexes of the first monitor (the changes queue and subject links came
# later), and the SQL the code before AlertRows wrote with.
_FIRST_SCHEMA = """
CREATE TABLE IF NOT EXISTS alerts(
    id TEXT PRIMARY KEY, log TEXT NOT NULL, rule TEXT NOT NULL, key TEXT NOT NULL,
    title TEXT NOT NULL, severity TEXT NOT NULL, status TEXT NOT NULL,
    first_seen TEXT NOT NULL, last_seen TEXT NOT NULL, count INTEGER NOT NULL,
    entries TEXT NOT NULL, clauses TEXT NOT NULL, message TEXT NOT NULL,
    opened_index INTEGER, updated_at TEXT NOT NULL, updated_by TEXT NOT NULL,
    note TEXT NOT NULL DEFAULT '');
CREATE INDEX IF NOT EXISTS alerts_group ON alerts(log, rule, key, status);
CREATE INDEX IF NOT EXISTS alerts_list ON alerts(log, status, last_seen);
CREATE TABLE IF NOT EXISTS cursors(
    log TEXT PRIMARY KEY, next_index INTEGER NOT NULL, state TEXT NOT NULL);
"""
_LATER_SCHEMA = """
CREATE TABLE IF NOT EXISTS changes(
    seq INTEGER PRIMARY KEY AUTOINCREMENT, alert_id TEXT NOT NULL, status TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS alert_subjects(
    alert_id TEXT NOT NULL, ref TEXT NOT NULL, PRIMARY KEY(ref, alert_id)) WITHOUT ROWID;
"""
_OLD_COLUMNS = ("id, log, rule, key, title, severity, status, first_seen, last_seen, count, "
                "entries, clauses, message, opened_index, updated_at, updated_by, note")


def _old_monitor_db(data_dir: Path, *, later: bool) -> Path:
    """A monitor.db as the code before AlertRows left it: two alerts (one recorded, one
    not), a cursor, and with ``later`` a queued change and a subject link."""
    path = monitor_db_path(data_dir)
    path.parent.mkdir(mode=0o700, parents=True)
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.executescript(_FIRST_SCHEMA + (_LATER_SCHEMA if later else ""))
    for values in (("a1", "payments", "rule.x", f"user {REF_A}", "Title", "high", "open", T1,
                    T2, 3, json.dumps([4, 5, 6]), json.dumps(["c"]), f"seen {REF_A}", 9, T2,
                    "monitor", ""),
                   ("a2", "payments", "rule.y", "k", "Other", "low", "acknowledged", T1, T3, 1,
                    json.dumps([7]), json.dumps([]), "m", None, T3, "alice", "looking")):
        db.execute(f"INSERT INTO alerts({_OLD_COLUMNS}) VALUES "
                   "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", values)
    db.execute("INSERT OR REPLACE INTO cursors VALUES (?, ?, ?)",
               ("payments", 12, json.dumps({"v": 2}, separators=(",", ":"))))
    if later:
        db.execute("INSERT INTO changes(alert_id, status) VALUES (?, ?)", ("a2", "acknowledged"))
        db.execute("INSERT OR IGNORE INTO alert_subjects(alert_id, ref) VALUES (?, ?)",
                   ("a1", REF_A))
    db.close()
    return path


@pytest.mark.parametrize("later", [False, True], ids=["first", "with-changes-and-subjects"])
def test_a_monitor_db_made_by_the_old_code_still_reads(tmp_path: Path, later: bool) -> None:
    """``AlertStore(path)`` over a monitor.db written by the old SQL answers its alerts,
    cursor and counts as stored, and what a newer monitor adds (queue, links) works."""
    path = _old_monitor_db(tmp_path, later=later)
    store = AlertStore(path)
    try:
        first = store.get("a1")
        assert first is not None
        assert first.to_dict() == {
            "id": "a1", "log": "payments", "rule": "rule.x", "key": f"user {REF_A}",
            "title": "Title", "severity": "high", "status": "open", "first_seen": T1,
            "last_seen": T2, "count": 3, "entries": [4, 5, 6], "clauses": ["c"],
            "message": f"seen {REF_A}", "opened_index": 9, "updated_at": T2,
            "updated_by": "monitor", "note": ""}
        assert [a.id for a in store.list()] == ["a2", "a1"]
        assert [a.id for a in store.unrecorded()] == ["a2"]
        assert store.cursor("payments") == (12, {"v": 2})
        assert store.counts() == {("payments", "open", "high"): 1,
                                  ("payments", "acknowledged", "low"): 1}
        current = store.current("payments", "rule.y", "k")
        assert current is not None
        assert current.note == "looking"
        assert [(a, s) for _, a, s in store.changes()] == ([("a2", "acknowledged")] if later
                                                           else [])
        if not later:
            store.link_subjects("a1", [REF_A])
        store.queue_change("a1", "resolved")
        assert store.changes()[-1][1:] == ("a1", "resolved")
        assert [a.key for a, _ in store.erase_subject(REF_A)] == ["user (erased)"]
    finally:
        store.close()


def _tables(db: sqlite3.Connection) -> list[tuple[str, str]]:
    return sorted(db.execute("SELECT name, sql FROM sqlite_master WHERE sql IS NOT NULL"))


def test_the_sqlite_file_is_the_one_the_old_code_made(tmp_path: Path) -> None:
    """A new monitor.db has the old code's tables and indexes and their SQL, WAL mode, mode
    0600 in a 0700 directory; an old file opened gains the later tables, same as new."""
    path = monitor_db_path(tmp_path / "new")
    SQLiteAlertRows(path).close()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    db = sqlite3.connect(path)
    try:
        assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        made = _tables(db)
    finally:
        db.close()
    assert [name for name, _ in made] == ["alert_subjects", "alerts", "alerts_group",
                                          "alerts_list", "changes", "cursors",
                                          "sqlite_sequence"]
    old = _old_monitor_db(tmp_path / "old", later=False)
    SQLiteAlertRows(old).close()
    db = sqlite3.connect(old)
    try:
        assert [name for name, _ in _tables(db)] == [name for name, _ in made]
    finally:
        db.close()


def test_an_erasure_leaves_no_copy_in_the_files(tmp_path: Path) -> None:
    """After an erasure and ``purge_files``, neither monitor.db nor its write-ahead log holds
    the erased pseudonym."""
    path = monitor_db_path(tmp_path)
    store = AlertStore(path)
    try:
        store.put(_alert(1))
        store.link_subjects("a001", [REF_A])
        store.erase_subject(REF_A)
        store.purge_files()
        for file in path.parent.iterdir():
            assert REF_A.encode() not in file.read_bytes(), file.name
    finally:
        store.close()


def test_a_file_that_is_not_a_database_is_a_storage_error(tmp_path: Path) -> None:
    """Opening a file that is not SQLite fails as StorageError naming the monitor database."""
    path = monitor_db_path(tmp_path)
    path.parent.mkdir(parents=True)
    path.write_bytes(b"not a database, " * 100)
    with pytest.raises(StorageError, match="monitor database"):
        AlertStore(path)


# -- the PostgreSQL adapter: several monitors on one schema, and a server restart ------------


@pytest.mark.postgres
def test_postgres_transactions_of_two_nodes_take_turns() -> None:
    """A write or a transaction of another handle on the same schema (another node) waits
    until a transaction ends, as SQLite's file lock makes other processes wait; then each
    sees the other's alerts."""
    schema = new_schema()
    first, second = PostgresAlertRows(POSTGRES_URL, schema), PostgresAlertRows(POSTGRES_URL,
                                                                               schema)
    done = threading.Event()

    def other() -> None:
        with second.transaction():
            second.put(alert(2))
        second.queue_change("a002", "open")
        done.set()

    thread = threading.Thread(target=other)
    try:
        with first.transaction():
            first.put(alert(1))
            first.queue_change("a001", "open")
            thread.start()
            assert not done.wait(0.3)
            assert first.get("a002") is None
        thread.join(10)
        assert done.is_set()
        assert listing(first) == listing(second) == ["a001", "a002"]
        queued = second.changes(-1)
        assert [c.alert_id for c in queued] == ["a001", "a002"]
    finally:
        thread.join(10)
        first.close()
        second.close()


@pytest.mark.postgres
def test_postgres_alert_rows_survive_a_lost_connection() -> None:
    """After the server ends the connection (a restart), a call connects again and goes on;
    a transaction whose connection is lost raises StorageError and keeps nothing, and the
    next call connects again."""
    rows = PostgresAlertRows(POSTGRES_URL, new_schema())
    try:
        rows.put(alert(1))
        lose_connection(rows)
        assert rows.get("a001") == alert(1)
        lose_connection(rows)
        rows.queue_change("a001", "open")
        lose_connection(rows)
        with rows.transaction():
            rows.put(alert(2))

        def lost_in_a_transaction() -> None:
            with rows.transaction():
                rows.put(alert(3))
                lose_connection(rows)
                rows.queue_change("a003", "open")

        with pytest.raises(StorageError, match="lost"):
            lost_in_a_transaction()
        assert listing(rows) == ["a001", "a002"]
        assert [(c.alert_id, c.status) for c in rows.changes(-1)] == [("a001", "open")]
        rows.purge_deleted()
    finally:
        rows.close()


@pytest.mark.postgres
def test_a_refused_postgres_write_leaves_the_transaction_usable() -> None:
    """A write PostgreSQL refuses inside a transaction (a count past BIGINT) raises
    StorageError and is undone alone: the transaction goes on and keeps its other writes, as
    SQLite's, where a failed statement does not abort the transaction."""
    rows = PostgresAlertRows(POSTGRES_URL, new_schema())
    try:
        with rows.transaction():
            rows.put(alert(1))
            with pytest.raises(StorageError, match="out of range"):
                rows.put(alert(2, count=1 << 63))
            rows.queue_change("a001", "open")
        assert listing(rows) == ["a001"]
        assert [(c.alert_id, c.status) for c in rows.changes(-1)] == [("a001", "open")]
    finally:
        rows.close()
