"""A log's keyring document in its PostgreSQL schema, so every node sees the same keys.

The document is what ``keyring.json`` holds beside a SQLite store: every key in it is wrapped
by the KEK, which never reaches the database, so the row is no more secret than the file
(a reader of the database learns key ids and dates, not keys). One row, ``keyring`` in the
log's schema, with a ``version`` that every write increments. The identity
:meth:`sealtrail.log.keyring.Keyring.follow` compares before each sealing is that version
*and* a SHA-256 of the document, so a rotation on one node is picked up by the others before
they seal again, and so is a document edited in place without the version (an older copy
put back by someone with the database): ``follow`` then refuses a data key that went back.
A read-modify-write (rotation) holds a session advisory lock named after the schema, the
cross-node form of the file's ``flock``.

Implements :class:`sealtrail.log.keyring.KeyringHome` (structurally: the store layer does not
import the engine). Picklable: a prepare worker process connects again on first use.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg import sql

from sealtrail.core.errors import KeyringError, StorageError
from sealtrail.store.postgres import conninfo

_TABLE = """CREATE TABLE IF NOT EXISTS {}.keyring(
    id SMALLINT PRIMARY KEY CHECK (id = 0),
    doc TEXT NOT NULL,
    version BIGINT NOT NULL)"""


class PostgresKeyringHome:
    """The ``keyring`` row of ``schema``, through one connection made on first use."""

    def __init__(self, url: str, schema: str) -> None:
        self._url = url
        self._schema = schema
        self._conn: psycopg.Connection[tuple[Any, ...]] | None = None
        self._held = False  # inside locked(): the connection holding the lock, never replaced
        self._lock = threading.RLock()

    def __reduce__(self) -> tuple[type[PostgresKeyringHome], tuple[str, str]]:
        return PostgresKeyringHome, (self._url, self._schema)

    @property
    def where(self) -> str:
        """The schema and table (the URL may hold a password: never shown)."""
        return f"PostgreSQL {self._schema}.keyring"

    def _db(self) -> psycopg.Connection[tuple[Any, ...]]:
        conn = self._conn
        if conn is not None and not conn.closed and not conn.broken:
            return conn
        if self._held:
            # A new session would not hold the lock: the read-modify-write must not go on.
            raise StorageError(f"the keyring's lock was lost with its connection "
                               f"({self.where}): nothing was written")
        try:
            self._conn = conn = psycopg.connect(conninfo(self._url), autocommit=True)
        except psycopg.Error as exc:
            raise StorageError(f"cannot connect to the keyring's database: {exc}") from exc
        return conn

    def _q(self, query: sql.Composed | str, args: tuple[object, ...] = ()
           ) -> list[tuple[Any, ...]]:
        with self._lock:
            for attempt in (0, 1):
                conn = self._db()
                try:
                    cur = conn.execute(query, args)
                    return cur.fetchall() if cur.description is not None else []
                except psycopg.OperationalError as exc:
                    if attempt or not conn.broken:
                        raise StorageError(f"keyring read failed: {exc}") from exc
                except psycopg.Error as exc:
                    raise StorageError(f"keyring read failed: {exc}") from exc
        raise AssertionError("unreachable")  # pragma: no cover

    def _row(self) -> tuple[str, int] | None:
        rows = self._keyring_q("SELECT doc, version FROM {}.keyring WHERE id = 0")
        return (str(rows[0][0]), int(rows[0][1])) if rows else None

    def _identity(self) -> tuple[int, bytes] | None:
        # One round trip: it runs before every sealing (Keyring.follow).
        rows = self._keyring_q(
            "SELECT version, sha256(convert_to(doc, 'UTF8')) FROM {}.keyring WHERE id = 0")
        return (int(rows[0][0]), bytes(rows[0][1])) if rows else None

    def _keyring_q(self, query: str) -> list[tuple[Any, ...]]:
        """``query`` on the keyring table; no rows when the table was never made."""
        try:
            return self._q(sql.SQL(query).format(sql.Identifier(self._schema)))
        except StorageError as exc:
            if isinstance(exc.__cause__, psycopg.errors.UndefinedTable):
                return []
            raise

    def _has_table(self) -> bool:
        rows = self._q("SELECT to_regclass(format('%%I.keyring', %s::text)) IS NOT NULL",
                       (self._schema,))
        return bool(rows and rows[0][0])

    def exists(self) -> bool:
        """Whether the row is there."""
        return self._row() is not None

    def read_text(self) -> str:
        """The document; KeyringError when there is none."""
        row = self._row()
        if row is None:
            raise KeyringError(f"the keyring {self.where} is missing: encrypted fields cannot "
                               "be read or written without it (restore it from your backup)")
        return row[0]

    def identity(self) -> object:
        """The row's version and the document's SHA-256 (None when there is no row)."""
        return self._identity()

    def write_text(self, text: str, *, exclusive: bool) -> None:
        """Insert (``exclusive``: refused when a row exists) or replace, version + 1."""
        ident = sql.Identifier(self._schema)
        with self._lock:
            conn = self._db()
            try:
                with conn.transaction():
                    if not self._has_table():
                        # One creator at a time, with the store's own creation (same key).
                        conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))",
                                     (f"sealtrail store {self._schema}",))
                        conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(ident))
                        conn.execute(sql.SQL(_TABLE).format(ident))
                    if exclusive:
                        cur = conn.execute(sql.SQL(
                            "INSERT INTO {}.keyring VALUES (0, %s, 1) "
                            "ON CONFLICT (id) DO NOTHING").format(ident), (text,))
                        if cur.rowcount != 1:
                            raise KeyringError(f"a keyring already exists at {self.where}")
                    else:
                        conn.execute(sql.SQL(
                            "INSERT INTO {}.keyring VALUES (0, %s, 1) ON CONFLICT (id) "
                            "DO UPDATE SET doc = EXCLUDED.doc, version = keyring.version + 1"
                        ).format(ident), (text,))
            except psycopg.Error as exc:
                raise StorageError(f"keyring write failed: {exc}") from exc

    @contextmanager
    def locked(self) -> Iterator[None]:
        """A session advisory lock named after the schema, held on this home's connection."""
        key = f"sealtrail keyring {self._schema}"
        with self._lock:
            self._q("SELECT pg_advisory_lock(hashtext(%s))", (key,))
            self._held = True
            try:
                yield
            finally:
                self._held = False
                conn = self._conn
                if conn is not None and not conn.broken:  # a lost session released it
                    try:
                        conn.execute("SELECT pg_advisory_unlock(hashtext(%s))", (key,))
                    except psycopg.Error:
                        conn.close()  # closing the session releases the lock

    def close(self) -> None:
        """Close the connection (made again on the next use)."""
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None


__all__ = ["PostgresKeyringHome"]
