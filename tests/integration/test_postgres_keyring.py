"""The keyring's home in PostgreSQL: created once when nodes race, its lock never silently
replaced by a new session, every edit of the row seen."""

from __future__ import annotations

import threading

import psycopg
import pytest

from sealtrail.core.errors import KeyringError, StorageError
from sealtrail.store.postgres import PostgresStore
from sealtrail.store.postgres_keyring import PostgresKeyringHome

pytestmark = pytest.mark.postgres


def test_nodes_creating_one_log_at_once_make_one_keyring(pg_store: str) -> None:
    """Three keyring creators and three store opens of one schema, at once: one keyring
    wins, the others are told a keyring exists; every store open works."""
    barrier = threading.Barrier(6)
    outcomes: list[str] = []

    def keyring(n: int) -> None:
        home = PostgresKeyringHome(pg_store, "sealtrail_race")
        barrier.wait()
        try:
            home.write_text(f'{{"n": {n}}}', exclusive=True)
            outcomes.append("made")
        except KeyringError:
            outcomes.append("exists")
        except StorageError as exc:
            outcomes.append(f"failed: {exc}")
        finally:
            home.close()

    def store() -> None:
        barrier.wait()
        try:
            PostgresStore(pg_store, "sealtrail_race").close()
            outcomes.append("opened")
        except StorageError as exc:
            outcomes.append(f"failed: {exc}")

    threads = [threading.Thread(target=keyring, args=(n,)) for n in range(3)]
    threads += [threading.Thread(target=store) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(outcomes) == ["exists", "exists", "made", "opened", "opened", "opened"]


def test_a_lock_whose_session_ended_is_not_taken_again_silently(pg_store: str) -> None:
    """Inside ``locked()`` the session that holds the advisory lock ends: the next read or
    write refuses instead of going on over a new session that holds nothing."""
    home = PostgresKeyringHome(pg_store, "sealtrail_lock")
    home.write_text('{"v": 1}', exclusive=True)
    try:
        with home.locked():
            with psycopg.connect(pg_store, autocommit=True) as admin:
                admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                              "WHERE datname = current_database() AND pid <> pg_backend_pid() "
                              "AND application_name = 'sealtrail'")
            with pytest.raises(StorageError):  # the dead session's own error
                home.write_text('{"v": 2}', exclusive=False)
            with pytest.raises(StorageError, match="lock was lost"):  # no new session
                home.write_text('{"v": 2}', exclusive=False)
        assert home.read_text() == '{"v": 1}'  # outside the lock: a new session reads
    finally:
        home.close()


def test_an_in_place_edit_of_the_row_changes_its_identity(pg_store: str) -> None:
    """An edit that keeps the version (someone with the database) is still a change."""
    home = PostgresKeyringHome(pg_store, "sealtrail_ident")
    home.write_text('{"v": 1}', exclusive=True)
    try:
        before = home.identity()
        with psycopg.connect(pg_store, autocommit=True) as admin:
            admin.execute("UPDATE sealtrail_ident.keyring SET doc = '{\"v\": 0}'")
        assert home.identity() != before
    finally:
        home.close()
