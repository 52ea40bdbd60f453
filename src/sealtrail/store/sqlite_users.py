"""The console's user, session and failure rows in SQLite: tables of their own in the
service's file (``DATA/_service/service.db``, beside the API keys), WAL mode,
``synchronous=FULL``, the file made 0600 in a 0700 directory.

One connection in autocommit mode, shared by the service's threads behind a lock (a
statement's row count and rows are read before another thread's statement runs: SQLite's
change count is the connection's, not the statement's); SQLite's own locking makes the file
safe for several processes (the service's workers and ``sealtrail users``). Every
conditional write is one statement (``UPDATE ... WHERE``, an upsert with ``RETURNING``), so
two processes racing on it cannot both win.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from pathlib import Path
from typing import Any, Final

from sealtrail.core.errors import StorageError
from sealtrail.store.users import FailureRow, SessionRow, UserRow

_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS console_users(
    name TEXT PRIMARY KEY,
    role TEXT NOT NULL,
    source TEXT NOT NULL,
    hash TEXT,
    created TEXT NOT NULL,
    disabled TEXT,
    totp BLOB,
    totp_step INTEGER NOT NULL,
    subject TEXT);
CREATE TABLE IF NOT EXISTS console_sessions(
    hash BLOB PRIMARY KEY,
    id TEXT NOT NULL,
    user TEXT NOT NULL,
    csrf TEXT NOT NULL,
    via TEXT NOT NULL,
    created TEXT NOT NULL,
    last_seen TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS console_sessions_user ON console_sessions(user);
CREATE TABLE IF NOT EXISTS console_failures(
    name TEXT PRIMARY KEY,
    count INTEGER NOT NULL,
    last TEXT NOT NULL,
    locked_until TEXT);
"""

_USER: Final = "name, role, source, hash, created, disabled, totp, totp_step, subject"
# After the upgrade below (the column may be new): a subject binds one user at most.
_SUBJECT_INDEX: Final = ("CREATE UNIQUE INDEX IF NOT EXISTS console_users_subject "
                         "ON console_users(subject)")
_SESSION: Final = "hash, id, user, csrf, via, created, last_seen"


class SQLiteUserRows:
    """User, session and failure rows in the SQLite file ``path`` (created, with its
    directory, when missing)."""

    def __init__(self, path: Path) -> None:
        self._lock = threading.Lock()
        try:
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            if not path.exists():
                os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
            self._db = sqlite3.connect(str(path), isolation_level=None,
                                       check_same_thread=False, timeout=30)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(_SCHEMA)
            self._upgrade()
        except (OSError, sqlite3.Error) as exc:
            raise StorageError(f"cannot open the console user store: {exc}") from exc

    def _upgrade(self) -> None:
        """Add ``subject`` to a table made before single sign-on users were bound to their
        provider's account (its existing SSO users stay unbound: single sign-on refuses
        them until an administrator acts, see ``Users.oidc_user``). One writer at a time:
        two processes opening the file at once must not both add the column."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            columns = {row[1] for row in self._db.execute("PRAGMA table_info(console_users)")}
            if "subject" not in columns:
                self._db.execute("ALTER TABLE console_users ADD COLUMN subject TEXT")
            self._db.execute(_SUBJECT_INDEX)
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _run(self, sql: str, params: tuple[Any, ...] = ()) -> _Done:
        """Run one statement; its row count and rows, read under the lock."""
        try:
            with self._lock:
                cur = self._db.execute(sql, params)
                return _Done(cur.rowcount, cur.fetchall())
        except sqlite3.IntegrityError as exc:  # the inserts' keys: a name, subject, token hash
            raise StorageError("a console user or session with this key exists") from exc
        except sqlite3.Error as exc:  # locked, full, closed: the service answers a failure
            raise StorageError(f"console user store: {exc}") from exc

    # -- users ------------------------------------------------------------------------------

    def insert_user(self, row: UserRow) -> None:
        self._run(f"INSERT INTO console_users({_USER}) "  # noqa: S608 - constant columns
                  "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                  (row.name, row.role, row.source, row.hash, row.created, row.disabled,
                   row.totp, row.totp_step, row.subject))

    def get_user(self, name: str) -> UserRow | None:
        found = self._run(f"SELECT {_USER} FROM console_users "  # noqa: S608
                          "WHERE name = ?", (name,)).fetchone()
        return None if found is None else _user(found)

    def get_user_by_subject(self, subject: str) -> UserRow | None:
        found = self._run(f"SELECT {_USER} FROM console_users "  # noqa: S608
                          "WHERE subject = ?", (subject,)).fetchone()
        return None if found is None else _user(found)

    def users(self) -> list[UserRow]:
        found = self._run(f"SELECT {_USER} FROM console_users "  # noqa: S608
                          "ORDER BY created, name").fetchall()
        return [_user(row) for row in found]

    def set_password(self, name: str, hash_: str) -> bool:
        return self._run("UPDATE console_users SET hash = ? WHERE name = ?",
                         (hash_, name)).rowcount > 0

    def set_role(self, name: str, role: str) -> bool:
        return self._run("UPDATE console_users SET role = ? WHERE name = ?",
                         (role, name)).rowcount > 0

    def disable(self, name: str, at: str) -> bool:
        return self._run("UPDATE console_users SET disabled = ? "
                         "WHERE name = ? AND disabled IS NULL", (at, name)).rowcount > 0

    def set_totp(self, name: str, secret: bytes) -> bool:
        return self._run("UPDATE console_users SET totp = ?, totp_step = -1 WHERE name = ?",
                         (secret, name)).rowcount > 0

    def use_totp_step(self, name: str, step: int) -> bool:
        return self._run("UPDATE console_users SET totp_step = ? "
                         "WHERE name = ? AND totp_step < ?", (step, name, step)).rowcount > 0

    # -- sessions ---------------------------------------------------------------------------

    def insert_session(self, row: SessionRow) -> None:
        self._run(f"INSERT INTO console_sessions({_SESSION}) "  # noqa: S608
                  "VALUES (?, ?, ?, ?, ?, ?, ?)",
                  (row.hash, row.id, row.user, row.csrf, row.via, row.created, row.last_seen))

    def get_session(self, hash_: bytes) -> SessionRow | None:
        found = self._run(f"SELECT {_SESSION} FROM console_sessions "  # noqa: S608
                          "WHERE hash = ?", (hash_,)).fetchone()
        return None if found is None else _session(found)

    def touch_session(self, hash_: bytes, at: str) -> bool:
        return self._run("UPDATE console_sessions SET last_seen = ? WHERE hash = ?",
                         (at, hash_)).rowcount > 0

    def delete_session(self, hash_: bytes) -> bool:
        return self._run("DELETE FROM console_sessions WHERE hash = ?", (hash_,)).rowcount > 0

    def delete_sessions_of(self, user: str) -> int:
        return self._run("DELETE FROM console_sessions WHERE user = ?", (user,)).rowcount

    def prune_sessions(self, seen_before: str, created_before: str) -> int:
        return self._run("DELETE FROM console_sessions WHERE last_seen < ? OR created < ?",
                         (seen_before, created_before)).rowcount

    # -- failed sign-ins --------------------------------------------------------------------

    def get_failures(self, name: str) -> FailureRow | None:
        found = self._run("SELECT name, count, last, locked_until FROM console_failures "
                          "WHERE name = ?", (name,)).fetchone()
        return None if found is None else FailureRow(*found)

    def add_failure(self, name: str, at: str) -> int:
        found = self._run("INSERT INTO console_failures(name, count, last) VALUES (?, 1, ?) "
                          "ON CONFLICT(name) DO UPDATE SET count = count + 1, "
                          "last = excluded.last RETURNING count", (name, at)).fetchone()
        return int(found[0])

    def lock(self, name: str, until: str) -> None:
        self._run("UPDATE console_failures SET locked_until = ? WHERE name = ?", (until, name))

    def clear_failures(self, name: str) -> None:
        self._run("DELETE FROM console_failures WHERE name = ?", (name,))

    def prune_failures(self, now: str, stale_before: str, keep: int) -> int:
        free = "(locked_until IS NULL OR locked_until <= ?)"
        # Only counters of names that are no user's compete for the cap (store/users.py).
        unknown = "name NOT IN (SELECT name FROM console_users)"
        try:
            with self._lock, self._db:  # one transaction: the two deletes see one state
                self._db.execute("BEGIN IMMEDIATE")
                stale = self._db.execute(f"DELETE FROM console_failures WHERE {free} "  # noqa: S608
                                         "AND last < ?", (now, stale_before)).rowcount
                over = self._db.execute(
                    f"DELETE FROM console_failures WHERE {free} AND {unknown} "  # noqa: S608
                    f"AND name NOT IN (SELECT name FROM console_failures WHERE {free} "
                    f"AND {unknown} ORDER BY last DESC, name DESC LIMIT ?)",
                    (now, now, max(keep, 0))).rowcount
        except sqlite3.Error as exc:
            raise StorageError(f"console user store: {exc}") from exc
        return stale + over


class _Done:
    """What a statement did: how many rows it changed, the rows it answered."""

    __slots__ = ("rowcount", "rows")

    def __init__(self, rowcount: int, rows: list[Any]) -> None:
        self.rowcount = rowcount
        self.rows = rows

    def fetchone(self) -> Any:
        return self.rows[0] if self.rows else None

    def fetchall(self) -> list[Any]:
        return self.rows


def _user(found: tuple[Any, ...]) -> UserRow:
    name, role, source, digest, created, disabled, totp, step, subject = found
    return UserRow(name, role, source, digest, created, disabled,
                   None if totp is None else bytes(totp), int(step), subject)


def _session(found: tuple[Any, ...]) -> SessionRow:
    digest, session_id, user, csrf, via, created, last_seen = found
    return SessionRow(bytes(digest), session_id, user, csrf, via, created, last_seen)
