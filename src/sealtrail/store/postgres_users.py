"""The console's user, session and failure rows in PostgreSQL (psycopg 3): tables of their own
in the service's schema (``sealtrail__service``, beside the API keys), so every service node
using the database signs in the same users and honours the same sessions and lockouts.

How it keeps :class:`sealtrail.store.users.UserRows` (the shared plumbing, texts kept as UTF-8
bytes and the reconnection after a server restart: ``store/postgres_rows.py``):

- **Conditional writes are single statements.** Disabling (``WHERE disabled IS NULL``), using
  a TOTP step (``WHERE totp_step < %s``) and counting a failure (an upsert ``RETURNING`` the
  count) check and write under the row's lock, so of two nodes racing the second sees the
  first's write. Order by ``created`` then ``name`` as bytes: SQLite's order.
- **Run again after a restart.** An insert whose connection broke while it ran may have been
  kept: run again, one that finds this very row stored answers as the first run would have.
  A failure counted again after a lost connection counts twice: lockout errs on the safe
  side. A conditional update run again answers False where the first run wrote: the callers
  read that as "already done" (disabled, code used), which is what happened.
"""

from __future__ import annotations

from typing import Any, Final

from sealtrail.core.errors import StorageError
from sealtrail.store.postgres_rows import (
    Conn,
    PostgresRows,
    text,
    text_or_none,
    untext,
    untext_or_none,
)
from sealtrail.store.users import FailureRow, SessionRow, UserRow

LAYOUT_VERSION: Final = 2
"""1: the first layout; 2: ``console_users.subject`` (single sign-on users bound to their
provider's account), added to a layout-1 store when a writable handle opens it."""

_TABLES: Final = """
CREATE TABLE IF NOT EXISTS console_users(
    name BYTEA PRIMARY KEY,
    role BYTEA NOT NULL,
    source BYTEA NOT NULL,
    hash BYTEA,
    created BYTEA NOT NULL,
    disabled BYTEA,
    totp BYTEA,
    totp_step BIGINT NOT NULL,
    subject BYTEA);
CREATE INDEX IF NOT EXISTS console_users_created ON console_users(created, name);
CREATE UNIQUE INDEX IF NOT EXISTS console_users_subject ON console_users(subject);
CREATE TABLE IF NOT EXISTS console_sessions(
    hash BYTEA PRIMARY KEY,
    id BYTEA NOT NULL,
    "user" BYTEA NOT NULL,
    csrf BYTEA NOT NULL,
    via BYTEA NOT NULL,
    created BYTEA NOT NULL,
    last_seen BYTEA NOT NULL);
CREATE INDEX IF NOT EXISTS console_sessions_user ON console_sessions("user");
CREATE TABLE IF NOT EXISTS console_failures(
    name BYTEA PRIMARY KEY,
    count BIGINT NOT NULL,
    last BYTEA NOT NULL,
    locked_until BYTEA);
"""

_USER: Final = "name, role, source, hash, created, disabled, totp, totp_step, subject"
_SESSION: Final = 'hash, id, "user", csrf, via, created, last_seen'
_FREE: Final = "(locked_until IS NULL OR locked_until <= %s)"
_UNKNOWN: Final = "name NOT IN (SELECT name FROM console_users)"
"""Only counters of names that are no user's compete for the cap (store/users.py)."""


class PostgresUserRows(PostgresRows):
    """User, session and failure rows in ``schema`` (created, with its tables, when missing)
    of the database at ``url``.

    Implements :class:`sealtrail.store.users.UserRows`.
    """

    def __init__(self, url: str, schema: str) -> None:
        super().__init__(url, schema, store="console_users", version=LAYOUT_VERSION,
                         tables=_TABLES, what="the console user store")
        try:
            self._upgrade()
        except BaseException:
            self.close()
            raise

    def _upgrade(self) -> None:
        """Bring a layout-1 store to layout 2 (the ``subject`` column and its unique index;
        its existing SSO users stay unbound, which single sign-on refuses until an
        administrator acts: ``Users.oidc_user``), under the store's write lock so two nodes
        opening it at once upgrade it once."""
        with self._transaction():
            found = self._rows("SELECT version FROM row_layouts WHERE store = %s",
                               ("console_users",))
            if found and int(found[0][0]) >= LAYOUT_VERSION:
                return
            self._count("ALTER TABLE console_users ADD COLUMN IF NOT EXISTS subject BYTEA")
            self._count("CREATE UNIQUE INDEX IF NOT EXISTS console_users_subject "
                        "ON console_users(subject)")
            self._count("UPDATE row_layouts SET version = %s WHERE store = %s",
                        (LAYOUT_VERSION, "console_users"))

    def _insert(self, table: str, columns: str, key: str, values: tuple[Any, ...],
                same: Any) -> bool:
        """Insert once (``same(found)``: the row found after a lost connection is ours)."""
        tries = 0
        marks = ", ".join(["%s"] * len(values))

        def work(db: Conn) -> bool:
            nonlocal tries
            tries += 1
            # Any unique key (a user's name or subject, a session's hash): refused, not raised.
            cur = db.execute(f"INSERT INTO {table}({columns}) VALUES ({marks}) "  # noqa: S608
                             "ON CONFLICT DO NOTHING", values)
            if cur.rowcount == 1:
                return True
            if tries == 1:
                return False
            found = db.execute(f"SELECT {columns} FROM {table} "  # noqa: S608
                               f"WHERE {key} = %s", (values[0],)).fetchone()
            return found is not None and bool(same(found))

        return self._run(work)

    # -- users ------------------------------------------------------------------------------

    def insert_user(self, row: UserRow) -> None:
        values = (text(row.name), text(row.role), text(row.source), text_or_none(row.hash),
                  text(row.created), text_or_none(row.disabled), row.totp, row.totp_step,
                  text_or_none(row.subject))
        if not self._insert("console_users", _USER, "name", values,
                            lambda found: _user(found) == row):
            raise StorageError(f"a user named {row.name!r}, or one bound to its single "
                               "sign-on subject, exists")

    def get_user(self, name: str) -> UserRow | None:
        found = self._rows(f"SELECT {_USER} FROM console_users "  # noqa: S608
                           "WHERE name = %s", (text(name),))
        return _user(found[0]) if found else None

    def get_user_by_subject(self, subject: str) -> UserRow | None:
        found = self._rows(f"SELECT {_USER} FROM console_users "  # noqa: S608
                           "WHERE subject = %s", (text(subject),))
        return _user(found[0]) if found else None

    def users(self) -> list[UserRow]:
        found = self._rows(f"SELECT {_USER} FROM console_users "  # noqa: S608
                           "ORDER BY created, name")
        return [_user(row) for row in found]

    def set_password(self, name: str, hash_: str) -> bool:
        return self._count("UPDATE console_users SET hash = %s WHERE name = %s",
                           (text(hash_), text(name))) > 0

    def set_role(self, name: str, role: str) -> bool:
        return self._count("UPDATE console_users SET role = %s WHERE name = %s",
                           (text(role), text(name))) > 0

    def disable(self, name: str, at: str) -> bool:
        return self._count("UPDATE console_users SET disabled = %s "
                           "WHERE name = %s AND disabled IS NULL", (text(at), text(name))) > 0

    def set_totp(self, name: str, secret: bytes) -> bool:
        return self._count("UPDATE console_users SET totp = %s, totp_step = -1 "
                           "WHERE name = %s", (secret, text(name))) > 0

    def use_totp_step(self, name: str, step: int) -> bool:
        return self._count("UPDATE console_users SET totp_step = %s "
                           "WHERE name = %s AND totp_step < %s", (step, text(name), step)) > 0

    # -- sessions ---------------------------------------------------------------------------

    def insert_session(self, row: SessionRow) -> None:
        values = (row.hash, text(row.id), text(row.user), text(row.csrf), text(row.via),
                  text(row.created), text(row.last_seen))
        if not self._insert("console_sessions", _SESSION, "hash", values,
                            lambda found: _session(found) == row):
            raise StorageError("a session with this token hash exists")

    def get_session(self, hash_: bytes) -> SessionRow | None:
        found = self._rows(f"SELECT {_SESSION} FROM console_sessions "  # noqa: S608
                           "WHERE hash = %s", (hash_,))
        return _session(found[0]) if found else None

    def touch_session(self, hash_: bytes, at: str) -> bool:
        return self._count("UPDATE console_sessions SET last_seen = %s WHERE hash = %s",
                           (text(at), hash_)) > 0

    def delete_session(self, hash_: bytes) -> bool:
        return self._count("DELETE FROM console_sessions WHERE hash = %s", (hash_,)) > 0

    def delete_sessions_of(self, user: str) -> int:
        return self._count('DELETE FROM console_sessions WHERE "user" = %s', (text(user),))

    def prune_sessions(self, seen_before: str, created_before: str) -> int:
        return self._count("DELETE FROM console_sessions WHERE last_seen < %s "
                           "OR created < %s", (text(seen_before), text(created_before)))

    # -- failed sign-ins --------------------------------------------------------------------

    def get_failures(self, name: str) -> FailureRow | None:
        found = self._rows("SELECT name, count, last, locked_until FROM console_failures "
                           "WHERE name = %s", (text(name),))
        return _failure(found[0]) if found else None

    def add_failure(self, name: str, at: str) -> int:
        found = self._rows("INSERT INTO console_failures(name, count, last) "
                           "VALUES (%s, 1, %s) ON CONFLICT (name) DO UPDATE SET "
                           "count = console_failures.count + 1, last = excluded.last "
                           "RETURNING count", (text(name), text(at)))
        return int(found[0][0])

    def lock(self, name: str, until: str) -> None:
        self._count("UPDATE console_failures SET locked_until = %s WHERE name = %s",
                    (text(until), text(name)))

    def clear_failures(self, name: str) -> None:
        self._count("DELETE FROM console_failures WHERE name = %s", (text(name),))

    def prune_failures(self, now: str, stale_before: str, keep: int) -> int:
        at, stale = text(now), text(stale_before)
        with self._transaction():
            gone = self._count(f"DELETE FROM console_failures WHERE {_FREE} "  # noqa: S608
                               "AND last < %s", (at, stale))
            gone += self._count(
                f"DELETE FROM console_failures WHERE {_FREE} AND {_UNKNOWN} "  # noqa: S608
                f"AND name NOT IN (SELECT name FROM console_failures WHERE {_FREE} "
                f"AND {_UNKNOWN} ORDER BY last DESC, name DESC LIMIT %s)",
                (at, at, max(keep, 0)))
        return gone


def _user(found: tuple[Any, ...]) -> UserRow:
    name, role, source, digest, created, disabled, totp, step, subject = found
    return UserRow(untext(name), untext(role), untext(source), untext_or_none(digest),
                   untext(created), untext_or_none(disabled),
                   None if totp is None else bytes(totp), int(step), untext_or_none(subject))


def _session(found: tuple[Any, ...]) -> SessionRow:
    digest, session_id, user, csrf, via, created, last_seen = found
    return SessionRow(bytes(digest), untext(session_id), untext(user), untext(csrf),
                      untext(via), untext(created), untext(last_seen))


def _failure(found: tuple[Any, ...]) -> FailureRow:
    name, count, last, locked = found
    return FailureRow(untext(name), int(count), untext(last), untext_or_none(locked))
