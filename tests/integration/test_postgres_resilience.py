"""The PostgreSQL store survives its database: broken connections, paused writers, migrations.

Real PostgreSQL (skipped when unreachable). Each test has a schema of its own, ``st_<hex>``,
dropped afterwards, and its handles carry an ``application_name`` of their own (a URL query
parameter: the override path of the session settings), so a test ends exactly its own
sessions with ``pg_terminate_backend``, as a restart of PostgreSQL or a network cut would.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import psycopg
import pytest
from psycopg import sql
from tests.contract.adapters import POSTGRES_URL, _postgres_unavailable

from sealtrail.core.errors import StorageError
from sealtrail.store import postgres
from sealtrail.store.postgres import (
    IDLE_IN_TRANSACTION_TIMEOUT,
    MIGRATIONS,
    Migration,
    PostgresStore,
    migrate,
)

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.skipif(_postgres_unavailable() is not None,
                       reason=str(_postgres_unavailable())),
]


@dataclass
class Place:
    schema: str
    app: str  # the application_name of this test's sessions
    url: str  # POSTGRES_URL naming that application_name

    def open(self, *, readonly: bool = False) -> PostgresStore:
        return PostgresStore(self.url, self.schema, readonly=readonly)

    def sessions(self) -> list[int]:
        with psycopg.connect(POSTGRES_URL, autocommit=True) as db:
            rows = db.execute("SELECT pid FROM pg_stat_activity WHERE application_name = %s",
                              (self.app,)).fetchall()
        return [int(r[0]) for r in rows]

    def cut(self) -> int:
        """End every session of this test's handles (as a restart would); how many."""
        with psycopg.connect(POSTGRES_URL, autocommit=True) as db:
            rows = db.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                              "WHERE application_name = %s", (self.app,)).fetchall()
            deadline = time.monotonic() + 10.0
            while time.monotonic() < deadline and db.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s",
                    (self.app,)).fetchone() != (0,):
                time.sleep(0.02)
        return len(rows)


@pytest.fixture
def place() -> Iterator[Place]:
    schema = f"st_{secrets.token_hex(6)}"
    app = f"sealtrail_{schema}"
    yield Place(schema, app, f"{POSTGRES_URL}?application_name={app}")
    with psycopg.connect(POSTGRES_URL, autocommit=True) as db:
        db.execute("SET lock_timeout = '20s'")
        db.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


def show(store: PostgresStore, setting: str) -> str:
    return str(store._q(f"SHOW {setting}")[0][0])  # one of the names below only


# -- session settings ---------------------------------------------------------------------


def test_sessions_carry_the_settings_and_the_url_overrides_them(place: Place) -> None:
    store = place.open()
    try:
        assert show(store, "application_name") == place.app  # the URL's own wins
        assert show(store, "idle_in_transaction_session_timeout") == \
            f"{round(IDLE_IN_TRANSACTION_TIMEOUT)}s"
        assert show(store, "tcp_user_timeout") == f"{postgres.TCP_USER_TIMEOUT_MS}"
        assert show(store, "tcp_keepalives_idle") == f"{postgres.KEEPALIVES_IDLE}"
        assert show(store, "search_path") == place.schema
    finally:
        store.close()
    plain = PostgresStore(POSTGRES_URL, place.schema)
    try:
        assert show(plain, "application_name") == postgres.APPLICATION_NAME
    finally:
        plain.close()
    tuned = PostgresStore(f"{place.url}&options=-c%20idle_in_transaction_session_timeout%3D9s",
                          place.schema)
    try:
        assert show(tuned, "idle_in_transaction_session_timeout") == "9s"
    finally:
        tuned.close()
    info = postgres.conninfo(f"{POSTGRES_URL}?keepalives_idle=7&connect_timeout=9")
    assert "keepalives_idle=7" in info
    assert "connect_timeout=9" in info
    assert "tcp_keepalives_idle=7" in info  # the server side follows the client's
    assert "application_name=sealtrail" in info


# -- broken connections -----------------------------------------------------------------------


def write(store: PostgresStore, **items: str) -> None:
    with store.transaction():
        store.set_meta(items)


def test_a_read_after_the_connection_was_ended_reconnects(place: Place) -> None:
    store = place.open()
    try:
        write(store, a="1")
        marker = store.change_marker()
        assert place.cut() == 1
        assert store.meta() == {"a": "1"}  # retried once on a fresh connection
        assert store.change_marker() != marker  # a reconnect may have missed commits
        assert not store.replaced()
        assert len(place.sessions()) == 1
        again = store.change_marker()
        assert store.change_marker() == again  # and is steady once reconnected
    finally:
        store.close()


def test_a_transaction_after_the_connection_was_ended_reconnects(place: Place) -> None:
    store = place.open()
    try:
        place.cut()
        write(store, a="1")
        marker = store.change_marker()
        write(store, b="2")
        assert store.change_marker() == marker  # its own commit, counted as before
        assert store.meta() == {"a": "1", "b": "2"}
    finally:
        store.close()


def cut_inside(store: PostgresStore, place: Place, *, swallow: bool) -> None:
    """A transaction whose sessions end half-way; ``swallow``: its caller ignores the
    failed write and goes on to the commit."""
    with store.transaction():
        store.set_meta({"lost": "1"})
        place.cut()
        try:
            store.set_meta({"lost_too": "1"})
        except StorageError:
            if not swallow:
                raise


def test_a_break_inside_a_transaction_raises_and_stores_nothing(place: Place) -> None:
    store = place.open()
    other = place.open(readonly=True)
    try:
        write(store, kept="1")
        with pytest.raises(StorageError):
            cut_inside(store, place, swallow=False)
        # The caller swallows the failure inside: the commit still refuses.
        with pytest.raises(StorageError, match="lost inside the transaction"):
            cut_inside(store, place, swallow=True)
        assert not store.in_transaction
        assert other.meta() == {"kept": "1"}
        write(store, after="1")  # the next transaction reconnects
        assert other.meta() == {"kept": "1", "after": "1"}
        assert store.state().size == 0
    finally:
        store.close()
        other.close()


def test_readers_and_snapshots_reconnect(place: Place) -> None:
    store = place.open()
    reader = store.reader()
    try:
        write(store, a="1")
        place.cut()
        assert reader.meta() == {"a": "1"}
        with reader.snapshot():
            assert reader.meta() == {"a": "1"}
            place.cut()
            with pytest.raises(StorageError):
                reader.meta()  # no retry inside a snapshot: it would be another one
        with reader.snapshot():
            assert reader.meta() == {"a": "1"}
        assert reader.meta() == {"a": "1"}
        write(store, b="2")
    finally:
        reader.close()
        store.close()


def test_every_handle_survives_the_end_of_all_its_sessions(place: Place) -> None:
    writers = [place.open(), place.open()]
    reader = writers[0].reader()
    try:
        write(writers[0], a="1")
        markers = [w.change_marker() for w in writers]
        assert place.cut() == 3
        write(writers[1], b="2")
        write(writers[0], c="3")
        assert reader.meta() == {"a": "1", "b": "2", "c": "3"}
        assert [w.change_marker() for w in writers] != markers
        assert len(place.sessions()) == 3
    finally:
        for handle in (*writers, reader):
            handle.close()


def test_a_closed_handle_does_not_reconnect(place: Place) -> None:
    store = place.open()
    store.close()
    with pytest.raises(StorageError):
        store.meta()
    assert place.sessions() == []


def test_a_paused_writer_loses_the_write_lock_after_the_idle_timeout(place: Place) -> None:
    paused = place.open()
    other = place.open()
    locked = threading.Event()
    outcome: list[BaseException | None] = []

    def hold() -> None:
        try:
            with paused.transaction():
                paused.set_meta({"paused": "1"})
                locked.set()
                time.sleep(IDLE_IN_TRANSACTION_TIMEOUT + 2.0)  # idle inside: as if stopped
        except BaseException as exc:
            outcome.append(exc)
        else:
            outcome.append(None)

    thread = threading.Thread(target=hold)
    thread.start()
    try:
        assert locked.wait(10.0)
        began = time.monotonic()
        write(other, other="1")  # waits for the state row lock until the session ends
        waited = time.monotonic() - began
        assert IDLE_IN_TRANSACTION_TIMEOUT - 1.0 <= waited <= IDLE_IN_TRANSACTION_TIMEOUT + 5.0
        thread.join(30.0)
        assert len(outcome) == 1
        assert isinstance(outcome[0], StorageError)
        assert other.meta() == {"other": "1"}  # nothing of the paused transaction
        write(paused, resumed="1")  # its next transaction reconnects
        assert other.meta() == {"other": "1", "resumed": "1"}
    finally:
        thread.join(30.0)
        paused.close()
        other.close()


def test_a_snapshot_may_idle_longer_than_a_write_transaction(place: Place) -> None:
    url = f"{place.url}&options=-c%20idle_in_transaction_session_timeout%3D500ms"
    store = PostgresStore(url, place.schema)
    try:
        write(store, a="1")
        with store.snapshot():
            time.sleep(1.5)  # three times the timeout, idle inside the snapshot
            assert store.meta() == {"a": "1"}
        with pytest.raises(StorageError), store.transaction():  # noqa: PT012
            store.set_meta({"b": "2"})
            time.sleep(1.5)
        assert store.meta() == {"a": "1"}
        assert show(store, "idle_in_transaction_session_timeout") == "500ms"
    finally:
        store.close()


_HOLDER = """
import sys, time
from sealtrail.store.postgres import PostgresStore
store = PostgresStore(sys.argv[1], sys.argv[2])
with store.transaction():
    store.set_meta({"stopped": "1"})
    print("locked", flush=True)
    time.sleep(120)
"""


def test_a_stopped_process_inside_a_write_does_not_hold_up_the_others(place: Place) -> None:
    """A real pause: a process SIGSTOPped while it holds the write lock."""
    place.open().close()
    child = subprocess.Popen([sys.executable, "-c", _HOLDER, place.url, place.schema],
                             stdout=subprocess.PIPE, text=True)
    other = place.open()
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "locked"
        os.kill(child.pid, signal.SIGSTOP)
        began = time.monotonic()
        write(other, other="1")
        assert time.monotonic() - began <= IDLE_IN_TRANSACTION_TIMEOUT + 5.0
        assert other.meta() == {"other": "1"}
    finally:
        os.kill(child.pid, signal.SIGCONT)
        child.kill()
        child.wait(10)
        if child.stdout is not None:
            child.stdout.close()
        other.close()


# -- migrations -------------------------------------------------------------------------------


def _add_note(db: psycopg.Connection[tuple[Any, ...]]) -> None:
    db.execute("ALTER TABLE meta ADD COLUMN note TEXT")  # fails if run twice


def test_migrate_makes_a_store_and_then_has_nothing_to_do(place: Place) -> None:
    assert migrate(place.url, place.schema) == (0, 1)
    assert migrate(place.url, place.schema) == (1, 1)
    store = place.open(readonly=True)
    try:
        assert store.schema_version() == 1
        assert store.state().size == 0
    finally:
        store.close()


def test_a_newer_migration_upgrades_and_a_newer_store_is_refused(
        place: Place, monkeypatch: pytest.MonkeyPatch) -> None:
    first = place.open()
    write(first, a="1")
    assert first.schema_version() == 1
    first.close()
    with monkeypatch.context() as patch:
        patch.setattr(postgres, "MIGRATIONS", [*MIGRATIONS, Migration(2, "a note", _add_note)])
        with pytest.raises(StorageError, match="older than this sealtrail's 2"):
            place.open(readonly=True)  # a read-only open never migrates
        # Two nodes starting at once: one migrates, the other waits and finds it done.
        opened: list[PostgresStore | BaseException] = []

        def start() -> None:
            try:
                opened.append(place.open())
            except BaseException as exc:
                opened.append(exc)

        threads = [threading.Thread(target=start) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30.0)
        stores = [s for s in opened if isinstance(s, PostgresStore)]
        assert len(stores) == 2, opened
        assert [s.schema_version() for s in stores] == [2, 2]
        assert stores[0].meta() == {"a": "1"}  # the data came through
        assert stores[0]._q("SELECT count(note) FROM meta") == [(0,)]
        for s in stores:
            s.close()
        assert migrate(place.url, place.schema) == (2, 2)
    # This sealtrail knows version 1 only: every open refuses the newer store.
    with pytest.raises(StorageError, match="upgrade sealtrail"):
        place.open()
    with pytest.raises(StorageError, match="upgrade sealtrail"):
        place.open(readonly=True)
    with pytest.raises(StorageError, match="upgrade sealtrail"):
        migrate(place.url, place.schema)


def test_a_failing_migration_leaves_the_store_as_it_was(
        place: Place, monkeypatch: pytest.MonkeyPatch) -> None:
    place.open().close()

    def broken(db: psycopg.Connection[tuple[Any, ...]]) -> None:
        _add_note(db)
        db.execute("SELECT 1 / 0")

    monkeypatch.setattr(postgres, "MIGRATIONS", [*MIGRATIONS, Migration(2, "broken", broken)])
    with pytest.raises(StorageError, match="division by zero"):
        place.open()
    monkeypatch.setattr(postgres, "MIGRATIONS", list(MIGRATIONS))
    store = place.open()
    try:
        assert store.schema_version() == 1
        assert [r[0] for r in store._q(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = %s "
            "AND table_name = 'meta' ORDER BY ordinal_position", (place.schema,))] == \
            ["key", "value"]
    finally:
        store.close()
