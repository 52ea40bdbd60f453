"""What the PostgreSQL adapters of the narrow row stores share (API keys, the monitor's alerts,
the alert outbox): one connection per handle, the tables in a schema of their own, a write
lock per store, texts kept as bytes, and a connection made again after a server restart.

How the adapters keep their contracts where SQLite leaned on its file:

- **Layout.** A store is a connection URL and a schema name. A writable open makes the schema
  and its tables if missing (``CREATE ... IF NOT EXISTS``, one creator at a time: a
  transaction-scoped advisory lock named after the schema, the one the log store takes) and
  records the layout's version in ``row_layouts`` (one row per kind of store, so the three
  could share a schema); an open refuses a newer version. A read-only open creates nothing:
  the store's layout row must be there.
- **Texts.** Every text a store is given is kept as its UTF-8 bytes (``BYTEA``): PostgreSQL's
  ``TEXT`` refuses NUL, which SQLite keeps, and bytes compare in code-point order, SQLite's
  ``BINARY`` order, whatever the database's collation. Lone surrogates are kept as their
  three bytes (``surrogatepass``), so any ``str`` comes back as given.
- **Threads.** One connection in autocommit mode per handle, used by one thread at a time (a
  lock, held for a whole transaction as SQLite's adapters hold theirs); every statement
  outside a transaction is its own unit of work. Waits for a row lock end after 30 s
  (``lock_timeout``, SQLite's busy timeout) with StorageError.
- **One writer at a time.** :meth:`PostgresRows._transaction` is SQLite's ``BEGIN
  IMMEDIATE``: ``BEGIN`` (read committed), then ``SELECT ... FOR UPDATE`` of the store's
  ``row_layouts`` row. That row lock is the store's write lock, held to ``COMMIT``, so the
  transactions of every handle, process and node serialise, and each statement after it sees
  everything committed before. A transaction opened inside another joins it. A write inside
  a transaction the caller opened runs in a savepoint of its own: a failed statement aborts
  a whole PostgreSQL transaction, where SQLite undoes only the statement, so a refused write
  raises StorageError and leaves the transaction usable, as in SQLite. (Should a statement
  still abort it, the commit refuses, StorageError, and nothing is kept.)
- **A server restart.** A call outside a transaction that finds the connection broken (it
  was before the call, or an OperationalError left it so) connects again once and runs the
  call again; a call inside a transaction raises StorageError (the transaction is gone) and
  the next call connects again. A write whose connection broke while it ran may have been
  kept before it is run again: each adapter says what that means for its writes.
"""

from __future__ import annotations

import contextlib
import re
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Final, TypeVar

import psycopg
from psycopg import sql

from sealtrail.core.errors import StorageError
from sealtrail.store.postgres import conninfo

Conn = psycopg.Connection[tuple[Any, ...]]
T = TypeVar("T")

SCHEMA_NAME: Final = re.compile(r"[a-z_][a-z0-9_]{0,62}")
LOCK_TIMEOUT: Final = "30s"  # how long a statement waits for a row lock (SQLite's timeout)

_LAYOUTS: Final = """CREATE TABLE IF NOT EXISTS row_layouts(
    store TEXT PRIMARY KEY,
    version INTEGER NOT NULL)"""


def text(value: str) -> bytes:
    """A text as stored: its UTF-8 bytes (lone surrogates kept)."""
    return value.encode("utf-8", "surrogatepass")


def text_or_none(value: str | None) -> bytes | None:
    return None if value is None else text(value)


def untext(value: Any) -> str:
    """A stored text back (``BYTEA`` arrives as bytes or a memoryview)."""
    return bytes(value).decode("utf-8", "surrogatepass")


def untext_or_none(value: Any) -> str | None:
    return None if value is None else untext(value)


def limit_of(limit: int) -> int | None:
    """A ``LIMIT`` value: a negative limit bounds nothing (as SQLite's), ``LIMIT NULL``."""
    return None if limit < 0 else limit


class PostgresRows:
    """One kind of row store in ``schema`` of the database at ``url``: the connection, the
    layout, the write lock and the calls (a base class: the adapters add the methods).

    ``store`` names the kind in ``row_layouts``; ``tables`` is its ``CREATE ... IF NOT
    EXISTS`` statements (``;``-separated); ``what`` names the store in messages."""

    def __init__(self, url: str, schema: str, *, store: str, version: int, tables: str,
                 what: str, readonly: bool = False) -> None:
        if not SCHEMA_NAME.fullmatch(schema):
            raise StorageError(f"not a usable schema name for {what}: {schema!r} (lower-case "
                               "letters, digits and _, at most 63)")
        self._url = url
        self._schema = schema
        self._store = store
        self._version = version
        self._what = what
        self._readonly = readonly
        self._lock = threading.RLock()
        self._in_tx = False
        self._closed = False
        self.location = f"schema {schema}"
        self._db = self._connect(f"cannot {'read' if readonly else 'open'} {what}")
        info = self._db.info
        self.location = (f"postgresql://{info.user}@{info.host}:{info.port}/{info.dbname} "
                         f"(schema {schema})")
        try:
            if not readonly:
                self._create(tables)
            self._check_layout()
        except psycopg.Error as exc:
            self._db.close()
            raise StorageError(f"cannot {'read' if readonly else 'open'} {what} "
                               f"{self.location}: {exc}") from exc
        except StorageError:
            self._db.close()
            raise

    # -- the connection -----------------------------------------------------------------------

    def _connect(self, failure: str) -> Conn:
        """A new connection, its search path the schema (read-only for a read-only store)."""
        try:
            # The log store's session settings (keepalives, the idle-in-transaction bound: a
            # node paused inside an alert transaction must not hold the others' lock).
            conn: Conn = psycopg.connect(conninfo(self._url), autocommit=True)
        except psycopg.Error as exc:
            raise StorageError(f"{failure}: cannot connect to its database: {exc}") from exc
        try:
            conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(self._schema)))
            conn.execute(f"SET lock_timeout = '{LOCK_TIMEOUT}'")
            if self._readonly:
                conn.execute("SET default_transaction_read_only = on")
        except psycopg.Error as exc:
            conn.close()
            raise StorageError(f"{failure}: {exc}") from exc
        return conn

    def _reconnect(self) -> None:
        with contextlib.suppress(psycopg.Error):
            self._db.close()
        self._db = self._connect(f"{self._what} {self.location} lost its connection")

    def _create(self, tables: str) -> None:
        """Make the schema, ``row_layouts`` and the store's tables if missing (one creator at
        a time), and the store's layout row."""
        with self._db.transaction():
            self._db.execute("SELECT pg_advisory_xact_lock(hashtext(%s))",
                             (f"sealtrail store {self._schema}",))
            if self._layout_version() is not None:
                return  # an existing store: its layout is checked, never altered here
            self._db.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(
                sql.Identifier(self._schema)))
            self._db.execute(_LAYOUTS)
            for statement in tables.split(";"):
                if statement.strip():
                    self._db.execute(statement)
            self._db.execute("INSERT INTO row_layouts VALUES (%s, %s) "
                             "ON CONFLICT (store) DO NOTHING", (self._store, self._version))

    def _layout_version(self) -> int | None:
        made = self._db.execute("SELECT to_regclass('row_layouts') IS NOT NULL").fetchone()
        if made != (True,):
            return None
        row = self._db.execute("SELECT version FROM row_layouts WHERE store = %s",
                               (self._store,)).fetchone()
        return None if row is None else int(row[0])

    def _check_layout(self) -> None:
        found = self._layout_version()
        if found is None:
            raise StorageError(f"cannot read {self._what} {self.location}: there is none "
                               "(no row_layouts row names it)")
        if found > self._version:
            raise StorageError(f"{self._what} {self.location} has layout {found}, newer than "
                               f"this sealtrail's {self._version}: upgrade sealtrail")

    def close(self) -> None:
        with self._lock:
            if not self._closed:
                self._closed = True
                self._db.close()

    # -- calls --------------------------------------------------------------------------------

    def _fail(self, exc: psycopg.Error) -> StorageError:
        return StorageError(f"{self._what} {self.location}: {exc}")

    def _run(self, work: Callable[[Conn], T]) -> T:
        """``work`` on the connection, under the lock. Outside a transaction a connection
        found broken is made again once and ``work`` run again; inside one, StorageError."""
        with self._lock:
            if self._closed:
                raise StorageError(f"{self._what} {self.location} is closed")
            if not self._in_tx and (self._db.broken or self._db.closed):
                self._reconnect()
            try:
                return work(self._db)
            except psycopg.OperationalError as exc:
                if not (self._db.broken or self._db.closed):
                    raise self._fail(exc) from exc
                if self._in_tx:
                    raise StorageError(f"{self._what} {self.location}: the connection was "
                                       f"lost inside a transaction: {exc}") from exc
            except psycopg.Error as exc:
                raise self._fail(exc) from exc
            self._reconnect()
            try:
                return work(self._db)
            except psycopg.Error as exc:
                raise self._fail(exc) from exc

    def _rows(self, query: str | sql.Composed, args: tuple[Any, ...] = ()
              ) -> list[tuple[Any, ...]]:
        """The rows a query answers."""
        return self._run(lambda db: db.execute(query, args).fetchall())

    def _count(self, query: str, args: tuple[Any, ...] = ()) -> int:
        """How many rows a statement changed."""
        return self._run(lambda db: db.execute(query, args).rowcount)

    def _in_savepoint(self, work: Callable[[Conn], T]) -> T:
        """``work`` inside a transaction, undone alone when it fails: a failed statement
        aborts a whole PostgreSQL transaction, where SQLite undoes only the statement, so the
        transaction stays usable as SQLite's does."""

        def guarded(db: Conn) -> T:
            db.execute("SAVEPOINT statement")
            try:
                result = work(db)
            except psycopg.Error:
                with contextlib.suppress(psycopg.Error):  # the connection may be gone
                    db.execute("ROLLBACK TO SAVEPOINT statement")
                    db.execute("RELEASE SAVEPOINT statement")
                raise
            db.execute("RELEASE SAVEPOINT statement")
            return result

        return self._run(guarded)

    def _refuse_write(self) -> None:
        if self._readonly:
            raise StorageError(f"{self._what} {self.location} is open read-only")

    def _vacuum(self, tables: Sequence[str]) -> None:
        """``VACUUM`` the store's tables (outside a transaction): the dead row versions no
        snapshot still sees leave the heap and index pages, and their TOAST. A role that may
        not vacuum them (neither their owner nor the database's, nor a superuser) is refused
        with StorageError, where ``VACUUM`` would skip them with a warning only."""
        self._refuse_write()
        with self._lock:
            if self._in_tx:
                raise StorageError(f"{self._what}: purge_deleted cannot run inside a "
                                   "transaction")
            barred = self._rows(
                "SELECT c.relname FROM pg_class c WHERE c.oid = ANY(%s::text[]::regclass[]) "
                "AND NOT pg_has_role(c.relowner, 'MEMBER') AND NOT pg_has_role("
                "(SELECT datdba FROM pg_database WHERE datname = current_database()), 'MEMBER')",
                (list(tables),))
            if barred:
                raise StorageError(f"{self._what} {self.location}: purge_deleted needs the "
                                   f"owner of {', '.join(sorted(str(r[0]) for r in barred))} "
                                   "(only the owner may VACUUM a table)")
            self._run(lambda db: db.execute(sql.SQL("VACUUM {}").format(
                sql.SQL(", ").join(sql.Identifier(table) for table in tables))))

    # -- the unit of work ---------------------------------------------------------------------

    def _begin(self, db: Conn, *, lock: bool) -> None:
        try:
            db.execute("BEGIN ISOLATION LEVEL READ COMMITTED")
            if lock:  # the store's write lock (SQLite's BEGIN IMMEDIATE), held to COMMIT
                db.execute("SELECT 1 FROM row_layouts WHERE store = %s FOR UPDATE",
                           (self._store,))
        except BaseException:
            self._quiet_rollback()
            raise

    def _quiet_rollback(self) -> None:
        with contextlib.suppress(psycopg.Error):  # the transaction or connection may be gone
            self._db.execute("ROLLBACK")

    @contextmanager
    def _transaction(self, *, lock: bool = True) -> Iterator[None]:
        """``BEGIN``, the write lock (unless not ``lock``), ... ``COMMIT``; rolls back when
        the block raises; a transaction inside another joins it.

        A connection broken while idle (a server restart) is found by the ``BEGIN``, before
        anything of the block is sent: it is made again and the block runs. So a write that
        must not run twice runs in a transaction, even alone."""
        self._refuse_write()
        with self._lock:
            if self._in_tx:
                yield
                return
            self._run(lambda db: self._begin(db, lock=lock))
            self._in_tx = True
            try:
                yield
            except BaseException:
                self._in_tx = False
                self._quiet_rollback()
                raise
            try:
                # COMMIT of a transaction a failed statement aborted answers ROLLBACK quietly.
                if self._db.info.transaction_status != psycopg.pq.TransactionStatus.INTRANS:
                    self._quiet_rollback()
                    raise StorageError(f"{self._what} {self.location}: commit failed, nothing "
                                       "was kept: a statement of the transaction failed")
                self._db.execute("COMMIT")
            except psycopg.Error as exc:
                self._quiet_rollback()
                raise StorageError(f"{self._what} {self.location}: commit failed: {exc}"
                                   ) from exc
            finally:
                self._in_tx = False
