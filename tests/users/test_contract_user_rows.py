"""``UserRows``: the console's user, session and failure rows, as every adapter (memory,
SQLite, PostgreSQL) must keep them: fetch what was stored, conditional writes that win once,
counters that count every failure of racing threads, and pruning that never unlocks a name.
"""

from __future__ import annotations

import stat
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Final

import pytest

from sealtrail.core.errors import StorageError
from sealtrail.log.apikeys import DB_FILE, SERVICE_DIR
from sealtrail.store.memory_users import MemoryUserRows
from sealtrail.store.postgres_users import PostgresUserRows
from sealtrail.store.sqlite_users import SQLiteUserRows
from sealtrail.store.users import FailureRow, SessionRow, UserRow, UserRows
from tests.contract.pg_rows import lose_connection, pg_row_fixtures, postgres_rows
from tests.contract.rowstores import row_fixtures

# One more adapter is one more entry: a name and how to make an empty store in a directory.
USER_ROWS: Final[dict[str, Callable[[Path], UserRows]]] = {
    "sqlite": lambda d: SQLiteUserRows(d / SERVICE_DIR / DB_FILE),
    "memory": lambda _: MemoryUserRows(),
    "postgres": postgres_rows(PostgresUserRows),
}

_, rows, fresh_rows = row_fixtures(USER_ROWS, "userrows")
make_rows, drop_pg_schemas = pg_row_fixtures(USER_ROWS)

T1, T2, T3, T4 = ("2024-01-01T00:00:00.000000Z", "2024-01-02T00:00:00.000000Z",
                  "2024-01-03T00:00:00.000000Z", "2024-01-04T00:00:00.000000Z")


def user(name: str, *, created: str = T1, **changes: object) -> UserRow:
    """A local user row; fields changed by keyword."""
    fields: dict[str, object] = {"role": "reader", "source": "local", "hash": f"$argon2id${name}",
                                 "disabled": None, "totp": None, "totp_step": -1,
                                 "subject": None}
    fields.update(changes)
    return UserRow(name, str(fields["role"]), str(fields["source"]),
                   fields["hash"],  # type: ignore[arg-type]
                   created, fields["disabled"], fields["totp"],  # type: ignore[arg-type]
                   int(fields["totp_step"]),  # type: ignore[call-overload]
                   fields["subject"])  # type: ignore[arg-type]


def session(n: int, user_name: str = "ann", *, created: str = T1, seen: str = T1
            ) -> SessionRow:
    return SessionRow(bytes([n]) * 32, f"{n:016x}", user_name, f"csrf-{n}", "password",
                      created, seen)


def test_a_user_comes_back_as_it_was_stored(rows: UserRows) -> None:
    """``get_user`` answers the inserted row field for field (optional fields empty or set,
    any text and bytes), as a ``UserRow``; a name never stored is None."""
    full = user("bob.ünï@x", role="admin", disabled=T2, totp=b"\x00\xff" * 10, totp_step=7,
                source="oidc", hash=None, subject="ünï" + "f" * 61)
    rows.insert_user(user("ann"))
    rows.insert_user(full)
    assert rows.get_user("ann") == user("ann")
    assert rows.get_user(full.name) == full
    assert type(rows.get_user("ann")) is UserRow
    assert rows.get_user("nobody") is None


def test_a_second_user_with_a_name_fails_and_the_first_stays(rows: UserRows) -> None:
    rows.insert_user(user("ann"))
    with pytest.raises(StorageError):
        rows.insert_user(user("ann", role="admin", created=T2))
    assert rows.users() == [user("ann")]


def test_users_are_listed_by_creation_then_name(rows: UserRows) -> None:
    assert rows.users() == []
    for made in (user("c", created=T2), user("b", created=T2), user("z", created=T1)):
        rows.insert_user(made)
    assert [u.name for u in rows.users()] == ["z", "b", "c"]


def test_changes_of_a_user(rows: UserRows) -> None:
    """Password, role and TOTP writes change that field only, and answer False for a name
    that is not stored; a new TOTP secret starts its used step again."""
    rows.insert_user(user("ann", totp_step=5))
    rows.insert_user(user("bob"))
    assert rows.set_password("ann", "$new") is True
    assert rows.set_role("ann", "auditor") is True
    assert rows.set_totp("ann", b"secret") is True
    assert rows.get_user("ann") == user("ann", hash="$new", role="auditor", totp=b"secret",
                                        totp_step=-1)
    assert rows.get_user("bob") == user("bob")
    assert rows.set_password("x", "h") is False
    assert rows.set_role("x", "admin") is False
    assert rows.set_totp("x", b"s") is False
    assert rows.disable("x", T2) is False
    assert rows.use_totp_step("x", 3) is False
    assert rows.get_user("x") is None


def test_disable_once_keeps_the_first_time(rows: UserRows) -> None:
    rows.insert_user(user("ann"))
    assert rows.disable("ann", T2) is True
    assert rows.disable("ann", T3) is False
    assert rows.get_user("ann") == user("ann", disabled=T2)


def test_a_totp_step_is_used_once_and_only_later_ones_after_it(rows: UserRows) -> None:
    rows.insert_user(user("ann", totp=b"k"))
    assert rows.use_totp_step("ann", 100) is True
    assert rows.use_totp_step("ann", 100) is False
    assert rows.use_totp_step("ann", 99) is False
    assert rows.use_totp_step("ann", 101) is True
    found = rows.get_user("ann")
    assert found is not None
    assert found.totp_step == 101


def test_racing_threads_use_a_step_once(rows: UserRows) -> None:
    """Of eight threads offering the same step at once, exactly one wins."""
    rows.insert_user(user("ann", totp=b"k"))
    won: list[bool] = []
    barrier = threading.Barrier(8)

    def offer() -> None:
        barrier.wait()
        won.append(rows.use_totp_step("ann", 55_000_000))

    threads = [threading.Thread(target=offer) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(won) == [False] * 7 + [True]


def test_sessions_are_kept_touched_and_ended(rows: UserRows) -> None:
    """A session comes back as stored; touch moves ``last_seen``; one session, or every
    session of a user, ends; a second insert of a hash fails."""
    for n, name in ((1, "ann"), (2, "ann"), (3, "bob")):
        rows.insert_session(session(n, name))
    assert rows.get_session(session(1).hash) == session(1)
    assert type(rows.get_session(session(1).hash)) is SessionRow
    with pytest.raises(StorageError):
        rows.insert_session(session(1, "bob"))
    assert rows.touch_session(session(1).hash, T2) is True
    assert rows.get_session(session(1).hash) == session(1, seen=T2)
    assert rows.touch_session(b"\x09" * 32, T2) is False
    assert rows.delete_session(session(3).hash) is True
    assert rows.delete_session(session(3).hash) is False
    assert rows.get_session(session(3).hash) is None
    assert rows.delete_sessions_of("ann") == 2
    assert rows.get_session(session(1).hash) is None
    assert rows.delete_sessions_of("ann") == 0


def test_prune_sessions_ends_idle_and_old_ones(rows: UserRows) -> None:
    rows.insert_session(session(1, created=T1, seen=T3))  # too old
    rows.insert_session(session(2, created=T3, seen=T3))  # live
    rows.insert_session(session(3, created=T3, seen=T2))  # idle
    assert rows.prune_sessions(T3, T2) == 2
    assert rows.get_session(session(2).hash) == session(2, created=T3, seen=T3)
    assert rows.get_session(session(1).hash) is None


def test_failures_count_lock_and_clear(rows: UserRows) -> None:
    assert rows.get_failures("ann") is None
    assert rows.add_failure("ann", T1) == 1
    assert rows.add_failure("ann", T2) == 2
    assert rows.get_failures("ann") == FailureRow("ann", 2, T2, None)
    rows.lock("ann", T4)
    rows.lock("nobody", T4)  # no counter: nothing happens
    assert rows.get_failures("nobody") is None
    assert rows.add_failure("ann", T3) == 3
    assert rows.get_failures("ann") == FailureRow("ann", 3, T3, T4)
    rows.clear_failures("ann")
    assert rows.get_failures("ann") is None
    rows.clear_failures("ann")


def test_racing_failures_are_all_counted(rows: UserRows) -> None:
    barrier = threading.Barrier(6)

    def fail() -> None:
        barrier.wait()
        for _ in range(5):
            rows.add_failure("ann", T1)

    threads = [threading.Thread(target=fail) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    found = rows.get_failures("ann")
    assert found is not None
    assert found.count == 30


def test_prune_failures_keeps_locks_and_the_latest(rows: UserRows) -> None:
    """Stale unlocked counters go, then all but the ``keep`` latest unlocked ones; a name
    locked at ``now`` stays however old or many; one whose lock ended may go."""
    rows.add_failure("stale", T1)
    rows.add_failure("locked-old", T1)
    rows.lock("locked-old", T4)
    rows.add_failure("lock-ended", T1)
    rows.lock("lock-ended", T2)
    for n, at in enumerate((T2, T3, T3)):
        rows.add_failure(f"recent{n}", at)
    assert rows.prune_failures(T3, T2, 2) == 3  # stale, lock-ended; recent0 is the oldest
    assert rows.get_failures("locked-old") is not None
    assert rows.get_failures("recent1") is not None
    assert rows.get_failures("recent2") is not None
    for gone in ("stale", "lock-ended", "recent0"):
        assert rows.get_failures(gone) is None
    assert rows.prune_failures(T3, T1, 0) == 2
    assert rows.get_failures("locked-old") is not None


def test_the_cap_never_pushes_out_a_users_counter(rows: UserRows) -> None:
    """Only counters of names that are no user's compete for the ``keep`` cap: a user's
    counter, however old, stays while it is not stale, so failures of made-up names cannot
    restart a real user's count toward the lockout; stale, it goes like any other."""
    rows.insert_user(user("rita"))
    rows.insert_user(user("sso", source="oidc", hash=None, subject="ab" * 32))
    rows.add_failure("rita", T2)
    rows.add_failure("rita", T2)
    rows.add_failure("sso", T2)
    for n in range(5):
        rows.add_failure(f"junk{n}", T3)
    assert rows.prune_failures(T3, T1, 2) == 3
    found = rows.get_failures("rita")
    assert found is not None
    assert found.count == 2
    assert rows.get_failures("sso") is not None
    assert [n for n in range(5) if rows.get_failures(f"junk{n}") is not None] == [3, 4]
    assert rows.prune_failures(T3, T1, 0) == 2
    assert rows.get_failures("rita") is not None
    assert rows.prune_failures(T4, T3, 0) == 2  # stale now: a user's counter may go
    assert rows.get_failures("rita") is None
    assert rows.get_failures("sso") is None


def test_users_are_found_by_their_single_sign_on_subject(rows: UserRows) -> None:
    """``subject`` is stored and found; it binds one user at most (a second insert with it
    fails, the first stays); local users have none and are never found by it."""
    bound = user("carol", source="oidc", hash=None, subject="c" * 64)
    rows.insert_user(bound)
    rows.insert_user(user("ann"))
    rows.insert_user(user("bob"))  # two users without a subject: no conflict
    assert rows.get_user("carol") == bound
    assert rows.get_user_by_subject("c" * 64) == bound
    assert rows.get_user_by_subject("d" * 64) is None
    with pytest.raises(StorageError):
        rows.insert_user(user("carol2", source="oidc", hash=None, subject="c" * 64))
    assert rows.get_user("carol2") is None
    assert [u.name for u in rows.users()] == ["ann", "bob", "carol"]


def test_closing_twice_is_harmless(make_rows: Callable[[Path], UserRows],
                                   tmp_path: Path) -> None:
    made = make_rows(tmp_path)
    made.close()
    made.close()


def test_the_sqlite_file_is_private_and_shared_with_the_api_keys(tmp_path: Path) -> None:
    """The rows share the API keys' file: 0600 in a 0700 directory, each store's tables
    apart."""
    from sealtrail.store.sqlite_service import SQLiteKeyRows

    path = tmp_path / SERVICE_DIR / DB_FILE
    users = SQLiteUserRows(path)
    keys = SQLiteKeyRows(path)
    try:
        users.insert_user(user("ann"))
        assert keys.rows() == []
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    finally:
        users.close()
        keys.close()
    again = SQLiteUserRows(path)
    try:
        assert again.get_user("ann") == user("ann")
    finally:
        again.close()


# The console_users table as the first release of the stores made it (no ``subject``).
_V1_USERS: Final = """CREATE TABLE console_users(name {t} PRIMARY KEY, role {t} NOT NULL,
    source {t} NOT NULL, hash {t}, created {t} NOT NULL, disabled {t}, totp {b},
    totp_step {i} NOT NULL)"""


def test_a_sqlite_store_made_before_subjects_is_upgraded(tmp_path: Path) -> None:
    """A file whose users table has no ``subject`` gets the column and its unique index on
    open; its users come back unbound (subject None)."""
    import sqlite3

    path = tmp_path / SERVICE_DIR / DB_FILE
    path.parent.mkdir(mode=0o700)
    with sqlite3.connect(path) as db:
        db.execute(_V1_USERS.format(t="TEXT", b="BLOB", i="INTEGER"))
        db.execute("INSERT INTO console_users VALUES ('old', 'reader', 'oidc', NULL, ?, NULL, "
                   "NULL, -1)", (T1,))
    db.close()
    for _ in range(2):  # a second open finds it upgraded
        upgraded = SQLiteUserRows(path)
        try:
            assert upgraded.get_user("old") == user("old", source="oidc", hash=None)
        finally:
            upgraded.close()
    upgraded = SQLiteUserRows(path)
    try:
        upgraded.insert_user(user("new", source="oidc", hash=None, subject="e" * 64))
        assert upgraded.get_user_by_subject("e" * 64) == user(
            "new", source="oidc", hash=None, subject="e" * 64)
        with pytest.raises(StorageError):
            upgraded.insert_user(user("new2", source="oidc", hash=None, subject="e" * 64))
    finally:
        upgraded.close()


@pytest.mark.postgres
def test_a_postgres_store_of_layout_1_is_upgraded(pg_store: str) -> None:
    """A layout-1 store (no ``subject``) is brought to layout 2 by a writable open, once;
    its users come back unbound, and a subject binds one user at most."""
    import psycopg

    from sealtrail.store.postgres_users import LAYOUT_VERSION

    with psycopg.connect(pg_store, autocommit=True) as db:
        db.execute("CREATE SCHEMA sealtrail__service")
        db.execute("SET search_path TO sealtrail__service")
        db.execute("CREATE TABLE row_layouts(store TEXT PRIMARY KEY, version INTEGER NOT NULL)")
        db.execute("INSERT INTO row_layouts VALUES ('console_users', 1)")
        db.execute(_V1_USERS.format(t="BYTEA", b="BYTEA", i="BIGINT"))
        db.execute("CREATE TABLE console_sessions(hash BYTEA PRIMARY KEY, id BYTEA NOT NULL, "
                   '"user" BYTEA NOT NULL, csrf BYTEA NOT NULL, via BYTEA NOT NULL, '
                   "created BYTEA NOT NULL, last_seen BYTEA NOT NULL)")
        db.execute("CREATE TABLE console_failures(name BYTEA PRIMARY KEY, count BIGINT NOT "
                   "NULL, last BYTEA NOT NULL, locked_until BYTEA)")
        db.execute("INSERT INTO console_users VALUES ('old', 'reader', 'oidc', NULL, %s, NULL, "
                   "NULL, -1)", (T1.encode(),))
    for _ in range(2):
        store = PostgresUserRows(pg_store, "sealtrail__service")
        try:
            assert store.get_user("old") == user("old", source="oidc", hash=None)
        finally:
            store.close()
    with psycopg.connect(pg_store) as db:
        found = db.execute("SELECT version FROM sealtrail__service.row_layouts WHERE store = "
                           "'console_users'").fetchone()
    assert found == (LAYOUT_VERSION,) == (2,)
    store = PostgresUserRows(pg_store, "sealtrail__service")
    try:
        store.insert_user(user("new", source="oidc", hash=None, subject="e" * 64))
        assert store.get_user_by_subject("e" * 64) == user(
            "new", source="oidc", hash=None, subject="e" * 64)
        with pytest.raises(StorageError):
            store.insert_user(user("new2", source="oidc", hash=None, subject="e" * 64))
        assert store.get_user("new2") is None
    finally:
        store.close()


@pytest.mark.postgres
def test_postgres_answers_after_a_lost_connection(make_rows: Callable[[Path], UserRows],
                                                  tmp_path: Path) -> None:
    """A PostgreSQL store whose server connection ended (a restart) connects again."""
    if not isinstance(probe := make_rows(tmp_path), PostgresUserRows):
        probe.close()
        pytest.skip("PostgreSQL only")
    try:
        probe.insert_user(user("ann"))
        lose_connection(probe)
        assert probe.get_user("ann") == user("ann")
        lose_connection(probe)
        probe.insert_user(user("bob"))
        assert [u.name for u in probe.users()] == ["ann", "bob"]
    finally:
        probe.close()
