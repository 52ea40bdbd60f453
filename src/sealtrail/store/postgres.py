"""A log's store in PostgreSQL (psycopg 3): one schema per log, the same contract as SQLite.

How it keeps :class:`sealtrail.store.protocol.Store`:

- **Layout and migrations.** The store is a connection URL and a schema name; the tables
  live in that schema. ``schema_info`` holds the layout's version and a token naming this
  store. The layout is the ordered list :data:`MIGRATIONS` (version 1 is the first layout);
  a writable open applies the ones the store lacks, all in one transaction under
  ``pg_advisory_xact_lock`` (two nodes starting at once: the second waits, then finds the
  work done), so a store is at one version or the next, never in between. A read-only open
  never migrates and refuses a layout other than this sealtrail's; any open refuses a newer
  layout (upgrade sealtrail). :func:`migrate` does the same from outside a server. A node
  of an older sealtrail keeps the handles it opened before a migration (they are not
  checked again, not even on a reconnect): a step older code cannot read and write through
  needs those nodes stopped before the first new one starts.
  Binary columns are BYTEA, indexes BIGINT.
- **One writer at a time.** Every handle is one connection in autocommit mode, used by one
  thread at a time (a lock, as SQLite's handle). :meth:`PostgresStore.transaction` runs
  ``BEGIN`` (read committed) and first bumps the ``commits`` counter of the one ``state``
  row: that row lock is the store's write lock, held to ``COMMIT``, so writers of every
  process and node serialise, and each statement after it sees everything committed before.
- **Head compare-and-swap.** ``put_state(expect=)`` is one conditional ``UPDATE`` checked by
  its row count (HeadConflictError), as in SQLite.
- **Statement atomicity.** A failed statement aborts a whole PostgreSQL transaction; SQLite
  undoes only the statement. Each write runs inside a savepoint of its own, so a refused
  write (a clash) raises StorageError and leaves the transaction usable, as in SQLite.
- **Readers.** :meth:`reader` and :meth:`opener` open connections of their own with
  ``default_transaction_read_only``; :meth:`snapshot` is a ``REPEATABLE READ READ ONLY``
  transaction (the snapshot is pinned when the block is entered).
- **Change marker.** The ``commits`` counter (every write transaction bumps it), minus the
  commits this handle made itself: it moves when another handle commits.
- **Replaced.** True when the schema is gone or holds another store (another token): the
  schema dropped and made again under a running process. A restore from a dump of this very
  store carries the same token and is not seen.
- **Erasure.** See :meth:`purge_deleted` for what a ``VACUUM`` can and cannot promise.
- **Losing the database.** A connection can break under a handle (PostgreSQL restarted,
  ``pg_terminate_backend``, a network cut, the session ended by a timeout below). Outside a
  transaction or snapshot the handle reconnects on its next use: a read that fails because
  the connection is gone is run once more on a fresh connection (reads are idempotent).
  Inside :meth:`PostgresStore.transaction` there is no retry: the statement raises
  StorageError, the transaction is gone (PostgreSQL rolled it back; the caller had no
  acknowledgement), and the next ``transaction()`` reconnects. Only a break during
  ``COMMIT`` itself leaves the outcome unknown; its StorageError says so (the head
  compare-and-swap of the next writer settles it). Reader handles and snapshots behave the
  same. A reconnect may have missed anything (a restore, a failover to a replica), so it
  moves :meth:`~PostgresStore.change_marker` for good: caches reload.

Session settings (every connection; each overridable by the same-named libpq parameter in
the URL's query string, e.g. ``?connect_timeout=10&keepalives_idle=5``; the server settings
by a ``-c name=value`` in the URL's ``options``):

- ``application_name=sealtrail`` (:data:`APPLICATION_NAME`): the operator tells sealtrail's
  sessions apart in ``pg_stat_activity`` (and can end them).
- ``connect_timeout`` (:data:`CONNECT_TIMEOUT` s): an unreachable server fails a connect
  quickly instead of after the kernel's SYN retries (minutes).
- ``keepalives=1``, ``keepalives_idle`` / ``keepalives_interval`` / ``keepalives_count``
  (:data:`KEEPALIVES_IDLE`, :data:`KEEPALIVES_INTERVAL`, :data:`KEEPALIVES_COUNT`) and
  ``tcp_user_timeout`` (:data:`TCP_USER_TIMEOUT_MS`): a peer that vanished (network cut, host
  gone without closing its sockets) is noticed within about 2 + 1 x 2 = 4 s while waiting
  for an answer, and within 4 s when data sent stays unacknowledged; without them a read
  waits for the kernel's defaults (two hours of keepalive, or some 15 minutes of
  retransmissions). The same four are set on the server's side of the session
  (``tcp_keepalives_*``, ``tcp_user_timeout``), so PostgreSQL notices a vanished node too.
- ``idle_in_transaction_session_timeout`` (:data:`IDLE_IN_TRANSACTION_TIMEOUT`, 5 s): a
  node paused (SIGSTOP, a VM frozen) or hung inside a write transaction holds the ``state``
  row lock, the write lock of every node; PostgreSQL ends such a session once it has been
  idle inside a transaction that long and rolls its half-done transaction back, so the
  others wait at most that long. The paused node's next statement fails (StorageError,
  nothing stored) and its next transaction reconnects. Work inside one write transaction
  must therefore never leave the connection unused for that long. A read snapshot
  (:meth:`~PostgresStore.snapshot`) turns the timeout off for itself: it holds no lock a
  writer waits for, and parallel verification keeps one open, idle, while its workers run.
"""

from __future__ import annotations

import contextlib
import functools
import re
import secrets
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Final

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from sealtrail.core.errors import StorageError
from sealtrail.store.protocol import (
    MAX_CHUNK,
    Chunk,
    HeadConflictError,
    Hold,
    KeptCheckpoint,
    RetiredRange,
    State,
    Store,
    SubjectKey,
)

APPLICATION_NAME: Final = "sealtrail"
"""``application_name`` of every session (``pg_stat_activity``)."""
CONNECT_TIMEOUT: Final = 5
"""Seconds a connection attempt may take."""
KEEPALIVES_IDLE: Final = 2
"""Seconds of silence on a connection before the first TCP keepalive probe."""
KEEPALIVES_INTERVAL: Final = 1
"""Seconds between two unanswered keepalive probes."""
KEEPALIVES_COUNT: Final = 2
"""Unanswered probes after which the connection is dead."""
TCP_USER_TIMEOUT_MS: Final = 4000
"""Milliseconds sent data may stay unacknowledged before the connection is dead."""
IDLE_IN_TRANSACTION_TIMEOUT: Final = 5.0
"""Seconds a session may sit idle inside a transaction before PostgreSQL ends it (and rolls
the transaction back): the longest a paused or hung writer holds the write lock."""

_TABLES = """
CREATE TABLE IF NOT EXISTS schema_info(
    id SMALLINT PRIMARY KEY CHECK (id = 0),
    version INTEGER NOT NULL,
    token TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS state(
    id SMALLINT PRIMARY KEY CHECK (id = 0),
    size BIGINT NOT NULL,
    checkpoint TEXT,
    id_hwm BIGINT NOT NULL,
    commits BIGINT NOT NULL);
CREATE TABLE IF NOT EXISTS chunks(
    start BIGINT PRIMARY KEY,
    count INTEGER NOT NULL,
    batch_end BIGINT NOT NULL,
    ids BYTEA NOT NULL,
    data BYTEA NOT NULL);
ALTER TABLE chunks ALTER COLUMN data SET STORAGE EXTERNAL;
CREATE TABLE IF NOT EXISTS nodes(
    level INTEGER NOT NULL,
    block BIGINT NOT NULL,
    data BYTEA NOT NULL,
    PRIMARY KEY (level, block));
CREATE TABLE IF NOT EXISTS id_buckets(
    bucket BIGINT NOT NULL,
    start BIGINT NOT NULL,
    PRIMARY KEY (bucket, start));
CREATE TABLE IF NOT EXISTS exact_ids(id BYTEA PRIMARY KEY, idx BIGINT NOT NULL);
CREATE TABLE IF NOT EXISTS checkpoints(size BIGINT PRIMARY KEY, note TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS subject_keys(
    kid BYTEA PRIMARY KEY,
    ref BYTEA NOT NULL UNIQUE,
    wrapped BYTEA NOT NULL);
CREATE TABLE IF NOT EXISTS blind(
    seg BIGINT NOT NULL,
    tok BIGINT NOT NULL,
    idx BIGINT NOT NULL,
    PRIMARY KEY (seg, tok, idx));
CREATE TABLE IF NOT EXISTS blind_pending(start BIGINT PRIMARY KEY, data BYTEA NOT NULL);
CREATE TABLE IF NOT EXISTS holds(
    id BIGINT PRIMARY KEY,
    ref BYTEA NOT NULL,
    reason TEXT NOT NULL,
    created TEXT NOT NULL,
    released TEXT);
CREATE TABLE IF NOT EXISTS retired(
    start BIGINT PRIMARY KEY,
    stop BIGINT NOT NULL,
    receipt BIGINT NOT NULL,
    kind TEXT NOT NULL);
"""



def _layout_1(db: psycopg.Connection[tuple[Any, ...]]) -> None:
    """The first layout (every table above) and the one ``state`` row."""
    for statement in _TABLES.split(";"):
        if statement.strip():
            db.execute(statement)
    db.execute("INSERT INTO state VALUES (0, 0, NULL, 0, 0) ON CONFLICT (id) DO NOTHING")


@dataclass(frozen=True, slots=True)
class Migration:
    """One step of the layout: ``apply`` runs inside the migrating transaction, with the
    store's schema first on the ``search_path``, and brings version ``version - 1`` to
    ``version``."""

    version: int
    summary: str
    apply: Callable[[psycopg.Connection[tuple[Any, ...]]], None]


MIGRATIONS: list[Migration] = [
    Migration(1, "the first layout", _layout_1),
]
"""Every layout step, in order (versions 1, 2, ... without gaps). Add a step, never edit one
that has shipped: stores in the field are at its version."""

SCHEMA_VERSION: Final = 1
"""The layout this release writes (the last of :data:`MIGRATIONS`)."""

_SCHEMA_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")
_LOCK_WAIT_S = 30.0  # how long a writer waits for the write lock (SQLite's busy timeout)
_LOCK_STEP_MS = 1000  # ... in steps this long, fencing stalled writers between steps
_PAGE = 64  # rows read per lock hold by the chunk and node iterators
_XID = 1 << 32
_EPOCH = 1 << 48  # change_marker moves by this much at each reconnect


def conninfo(url: str, *, application_name: str = APPLICATION_NAME,
             server: dict[str, str] | None = None) -> str:
    """``url`` with every session setting of the module docstring it does not set itself:
    libpq parameters the URL names win, and so do ``-c`` settings already in its
    ``options``. ``server`` adds server settings (name -> value) to those."""
    try:
        given = conninfo_to_dict(url)
    except psycopg.Error as exc:
        # Not psycopg's text: it quotes the token it could not parse, which may be the
        # password.
        raise StorageError("not a usable database URL (not shown: it may hold a password); "
                           "use postgresql://user@host:port/database?param=value") from exc
    client = {"application_name": application_name, "connect_timeout": CONNECT_TIMEOUT,
              "keepalives": 1, "keepalives_idle": KEEPALIVES_IDLE,
              "keepalives_interval": KEEPALIVES_INTERVAL,
              "keepalives_count": KEEPALIVES_COUNT, "tcp_user_timeout": TCP_USER_TIMEOUT_MS}
    extra: dict[str, Any] = {k: v for k, v in client.items() if k not in given}
    chosen = {**client, **given}
    settings = {
        # PostgreSQL's side of the same connection notices a vanished node as fast.
        "tcp_keepalives_idle": str(chosen["keepalives_idle"]),
        "tcp_keepalives_interval": str(chosen["keepalives_interval"]),
        "tcp_keepalives_count": str(chosen["keepalives_count"]),
        "tcp_user_timeout": str(chosen["tcp_user_timeout"]),
        "idle_in_transaction_session_timeout": str(int(IDLE_IN_TRANSACTION_TIMEOUT * 1000)),
        **(server or {}),
    }
    options = str(given.get("options") or "")
    added = " ".join(f"-c {name}={value}" for name, value in settings.items()
                     if f"{name}=" not in options)
    if added:
        extra["options"] = f"{options} {added}".strip()
    return make_conninfo(url, **extra)


def _latest() -> int:
    return MIGRATIONS[-1].version if MIGRATIONS else 0


def _stored_version(db: psycopg.Connection[tuple[Any, ...]], location: str) -> int:
    """The layout version of the store (0: there is none), through ``db``'s search_path."""
    exists = db.execute("SELECT to_regclass('schema_info') IS NOT NULL").fetchone()
    if exists != (True,):
        return 0
    row = db.execute("SELECT version FROM schema_info WHERE id = 0").fetchone()
    if row is None:
        raise StorageError(f"the store in {location} has no schema version")
    return int(row[0])


def _newer(location: str, version: int) -> StorageError:
    return StorageError(f"the store in {location} has schema {version}, newer than this "
                        f"sealtrail's {_latest()}: upgrade sealtrail")


def _migrate(db: psycopg.Connection[tuple[Any, ...]], schema: str,
             location: str) -> tuple[int, int]:
    """Make the store or bring its layout to :data:`MIGRATIONS`' last version, in one
    transaction under the store's advisory lock; (version found, version now). ``db`` is in
    autocommit mode with the schema as its search_path."""
    latest = _latest()
    versions = [m.version for m in MIGRATIONS]
    if versions != list(range(1, latest + 1)):
        raise StorageError(f"the migrations are not numbered 1..{latest}: {versions}")
    with db.transaction():
        db.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"sealtrail store {schema}",))
        current = _stored_version(db, location)
        if current > latest:
            raise _newer(location, current)
        if current == latest:
            return current, current
        if current == 0:
            db.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))
            db.execute("CREATE TABLE IF NOT EXISTS schema_info(id SMALLINT PRIMARY KEY "
                       "CHECK (id = 0), version INTEGER NOT NULL, token TEXT NOT NULL)")
            db.execute("INSERT INTO schema_info VALUES (0, 0, %s)", (secrets.token_hex(16),))
        for step in MIGRATIONS[current:]:
            step.apply(db)
            db.execute("UPDATE schema_info SET version = %s WHERE id = 0", (step.version,))
    return current, latest


def migrate(url: str, schema: str) -> tuple[int, int]:
    """Make the store in ``schema`` or bring its layout up to date (what a writable open
    does); (version found, version now), 0 found meaning there was no store. StorageError
    when the store is newer than this sealtrail."""
    if not _SCHEMA_NAME.fullmatch(schema):
        raise StorageError(f"not a usable schema name: {schema!r}")
    try:
        db = psycopg.connect(conninfo(url), autocommit=True)
    except psycopg.Error as exc:
        raise StorageError(f"cannot connect to the log database: {exc}") from exc
    location = _where(db, schema)
    try:
        with db:
            db.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(schema)))
            return _migrate(db, schema, location)
    except psycopg.Error as exc:
        raise StorageError(f"cannot migrate the log store {location}: {exc}") from exc


_VALUES = re.compile(r"\bVALUES\s*\(([^)]*)\)")
_TYPED = re.compile(r"%s::(\w+)")
_PER_STATEMENT = 50_000  # rows per unnest statement


def _statements(query: str, rows: Sequence[Sequence[object]]
                ) -> Iterator[tuple[str, Sequence[object]]]:
    """The statements that write ``rows`` by ``query``, each sent and answered before the
    next. An ``INSERT ... VALUES (%s::type, ...)`` whose every placeholder names its type
    becomes ``INSERT ... SELECT * FROM unnest(%s::type[], ...)``: one statement and one
    array per column for all the rows (a multi-row ``VALUES`` costs the client a parse of
    thousands of placeholders). Anything else runs one statement per row. Never
    ``executemany``: psycopg pipelines it, and a writer paused between the messages of a
    pipeline leaves its backend waiting for the rest ('active', ClientRead), where no
    PostgreSQL 15 timeout ends it — the write lock would be held for as long as the process
    is stopped. Between whole statements the session is idle in its transaction, and
    ``idle_in_transaction_session_timeout`` ends it."""
    found = _VALUES.search(query)
    types = _TYPED.findall(found.group(1)) if found is not None else []
    if (len(rows) == 1 or found is None or not types
            or len(types) != found.group(1).count("%s")):
        for row in rows:
            yield query, row
        return
    arrays = ", ".join(f"%b::{kind}[]" for kind in types)  # binary: no hex, no text ints
    # The query is this module's constant; the types come from its own casts.
    statement = (f"{query[:found.start()]}SELECT * FROM unnest({arrays})"  # noqa: S608
                 f"{query[found.end():]}")
    for start in range(0, len(rows), _PER_STATEMENT):
        part = rows[start:start + _PER_STATEMENT]
        yield statement, [list(column) for column in zip(*part, strict=True)]


def _where(db: psycopg.Connection[tuple[Any, ...]], schema: str) -> str:
    """The database (no password) and the schema, for messages."""
    info = db.info
    return f"postgresql://{info.user}@{info.host}:{info.port}/{info.dbname} (schema {schema})"


class PostgresStore:
    """A log's tables in one PostgreSQL schema, through one connection guarded by a lock.

    Implements :class:`sealtrail.store.protocol.Store`.
    """

    def __init__(self, url: str, schema: str, *, readonly: bool = False) -> None:
        if not _SCHEMA_NAME.fullmatch(schema):
            raise StorageError(f"not a usable schema name: {schema!r} (lower-case letters, "
                               "digits and _, at most 63)")
        self._url = url
        self._schema = schema
        self._readonly = readonly
        self._lock = threading.RLock()
        self._in_tx = False
        self._in_snapshot = False
        self._savepoints = 0
        self._own_commits = 0
        self._epoch = 0  # reconnects so far (each moves change_marker)
        self._closed = False
        self._side: psycopg.Connection[tuple[Any, ...]] | None = None  # see state()
        self._aside_lock = threading.Lock()
        self._conninfo = conninfo(url)
        self._location = f"schema {schema}"
        self._db: psycopg.Connection[tuple[Any, ...]] = self._connect()
        self._location = _where(self._db, schema)
        try:
            if not readonly:
                _migrate(self._db, schema, self._location)
            self._token = self._check_schema()
        except psycopg.Error as exc:
            self._db.close()
            raise StorageError(f"cannot open the log store {self._location}: {exc}") from exc
        except StorageError:
            self._db.close()
            raise

    def _connect(self) -> psycopg.Connection[tuple[Any, ...]]:
        """A new session with the settings of the module docstring, on the store's schema."""
        try:
            db = psycopg.connect(self._conninfo, autocommit=True)
        except psycopg.Error as exc:
            raise StorageError(f"cannot connect to the log database: {exc}") from exc
        try:
            db.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(self._schema)))
            if self._readonly:
                db.execute("SET default_transaction_read_only = on")
        except psycopg.Error as exc:
            db.close()
            raise StorageError(f"cannot open the log store {self._location}: {exc}") from exc
        return db

    def _aside(self, query: str) -> list[tuple[Any, ...]]:
        """A read on the side connection (made on first use, made again once if lost)."""
        with self._aside_lock:
            for attempt in (1, 2):
                if self._closed:
                    raise StorageError("the store is closed")
                if self._side is None or self._side.closed:
                    self._side = self._connect()
                try:
                    return self._side.execute(query).fetchall()
                except psycopg.Error as exc:
                    if attempt == 1 and self._side.closed:
                        continue
                    raise StorageError(f"read failed: {exc}") from exc
        raise AssertionError("unreachable")  # pragma: no cover

    def _ensure(self) -> None:
        """Outside a transaction or snapshot, a new connection in place of a lost one (the
        caller holds the lock). A reconnect moves change_marker: commits may have been
        missed, or the database may be another copy."""
        if self._db.closed and not self._closed and not (self._in_tx or self._in_snapshot):
            self._db = self._connect()
            self._epoch += 1

    def _lost(self) -> bool:
        """Whether the connection is gone (broken, or ended by the server)."""
        return self._db.closed and not self._closed

    def _check_schema(self) -> str:
        """The store's token, after refusing a missing layout or one not this sealtrail's
        (a newer one always; an older one on a read-only open, which never migrates)."""
        version = _stored_version(self._db, self._location)
        if version == 0:
            raise StorageError(f"no sealtrail store in {self._location}")
        if version > _latest():
            raise _newer(self._location, version)
        if version < _latest():
            raise StorageError(f"the store in {self._location} has schema {version}, older "
                               f"than this sealtrail's {_latest()}: a writable open (a "
                               "server start) or postgres.migrate upgrades it")
        row = self._db.execute("SELECT token FROM schema_info WHERE id = 0").fetchone()
        if row is None:
            raise StorageError(f"the store in {self._location} has no schema version")
        return str(row[0])

    def schema_version(self) -> int:
        """The layout version the store is at (0: the schema holds no store)."""
        exists = self._q("SELECT to_regclass('schema_info') IS NOT NULL")
        if exists != [(True,)]:
            return 0
        rows = self._q("SELECT version FROM schema_info WHERE id = 0")
        return int(rows[0][0]) if rows else 0

    @property
    def location(self) -> str:
        """The database (no password) and the schema."""
        return self._location

    def replaced(self) -> bool:
        """True when the schema no longer holds the store this handle opened (dropped, or
        dropped and made again): writes would go to another store."""
        with self._lock:
            if self._q("SELECT to_regclass('schema_info') IS NULL") == [(True,)]:
                return True
            rows = self._q("SELECT token FROM schema_info WHERE id = 0")
        return not rows or rows[0][0] != self._token

    def reader(self) -> Store:
        """A read-only connection of its own (a long read never holds up appends)."""
        return PostgresStore(self._url, self._schema, readonly=True)

    def opener(self) -> Callable[[], Store]:
        """Opens a read-only connection to the same schema in another process (picklable)."""
        return functools.partial(PostgresStore, self._url, self._schema, readonly=True)

    # -- the unit of work ---------------------------------------------------------------------

    def _quiet_rollback(self) -> None:
        with contextlib.suppress(psycopg.Error):  # the transaction may be gone already
            self._db.execute("ROLLBACK")

    def _begin(self, statements: Sequence[str], what: str) -> None:
        """Open a transaction with ``statements``; once more on a new connection when the
        connection turns out lost (nothing of the transaction was done yet)."""
        for attempt in (1, 2):
            self._ensure()
            try:
                for statement in statements:
                    self._db.execute(statement)
                return
            except psycopg.Error as exc:
                self._quiet_rollback()
                if attempt == 1 and self._lost():
                    continue
                raise StorageError(f"{what}: {exc}") from exc

    def _take_write_lock(self) -> None:
        """``BEGIN`` and the write lock, waiting for it at most :data:`_LOCK_WAIT_S` seconds.

        The wait is cut into steps; after each step that did not get the lock, a writer
        that holds it while stalled in the middle of a statement stream (its backend
        'active', waiting for the client's next message for longer than the idle
        timeout: a node paused between the messages of a pipeline) is ended with
        ``pg_terminate_backend``. No PostgreSQL 15 timeout ends such a session (the idle
        one ends only sessions *between* statements), so without this fence one paused
        node would stop every node's writes for as long as it stays paused. Its
        transaction is rolled back; it never acknowledged it."""
        deadline = time.monotonic() + _LOCK_WAIT_S
        while True:
            try:
                self._begin(("BEGIN ISOLATION LEVEL READ COMMITTED",
                             f"SET LOCAL lock_timeout = '{_LOCK_STEP_MS}ms'",
                             # The write lock, and the counter change_marker reads.
                             "UPDATE state SET commits = commits + 1 WHERE id = 0"),
                            "cannot start a write")
                return
            except StorageError as exc:
                cause = exc.__cause__
                if not isinstance(cause, psycopg.errors.LockNotAvailable):
                    raise
                if time.monotonic() >= deadline:
                    raise StorageError(f"cannot start a write: the write lock was not free "
                                       f"within {_LOCK_WAIT_S:.0f} s") from exc
                self._fence_stalled_writers()

    def _fence_stalled_writers(self) -> None:
        """End the sessions that hold this store's ``state`` table for writing while
        stalled mid-statement longer than the idle timeout (see :meth:`_take_write_lock`)."""
        with contextlib.suppress(psycopg.Error):
            self._db.execute(
                "SELECT pg_terminate_backend(a.pid) FROM pg_locks l "
                "JOIN pg_stat_activity a ON a.pid = l.pid "
                "WHERE l.locktype = 'relation' AND l.relation = 'state'::regclass "
                "AND l.mode = 'RowExclusiveLock' AND l.granted "
                "AND a.pid <> pg_backend_pid() AND a.state = 'active' "
                "AND a.wait_event = 'ClientRead' "
                "AND a.state_change < clock_timestamp() - make_interval(secs => %s)",
                (IDLE_IN_TRANSACTION_TIMEOUT,))

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """``BEGIN``, the write lock (the state row), ... ``COMMIT``; rolls back on any
        exception."""
        with self._lock:
            if self._readonly:
                raise StorageError("cannot start a write: this handle is read-only")
            if self._in_tx or self._in_snapshot:
                raise StorageError("cannot start a write: this handle is in a transaction")
            self._take_write_lock()
            self._in_tx = True
            self._savepoints = 0
            try:
                yield
            except BaseException:
                self._in_tx = False
                self._quiet_rollback()
                raise
            try:
                if self._lost():
                    raise StorageError("commit failed, nothing was stored: the connection to "
                                       "the database was lost inside the transaction")
                # COMMIT of a transaction a failed statement aborted answers ROLLBACK quietly.
                if self._db.info.transaction_status != psycopg.pq.TransactionStatus.INTRANS:
                    self._quiet_rollback()
                    raise StorageError("commit failed, nothing was stored: a statement of "
                                       "the transaction failed")
                self._db.execute("COMMIT")
                self._own_commits += 1
            except psycopg.Error as exc:
                self._quiet_rollback()
                if self._lost():
                    raise StorageError("the connection to the database was lost during "
                                       "COMMIT: the transaction may or may not be stored "
                                       f"({exc})") from exc
                raise StorageError(f"commit failed, nothing was stored: {exc}") from exc
            finally:
                self._in_tx = False

    @contextmanager
    def savepoint(self) -> Iterator[None]:
        """A nested part of the current transaction, rolled back alone if the block raises."""
        with self._lock:
            if not self._in_tx:
                raise StorageError("a savepoint needs a transaction")
            self._savepoints += 1
            name = sql.Identifier(f"request_{self._savepoints}")
            try:
                self._db.execute(sql.SQL("SAVEPOINT {}").format(name))
            except psycopg.Error as exc:
                self._savepoints -= 1
                raise StorageError(f"cannot make a savepoint: {exc}") from exc
            try:
                yield
            except BaseException:
                with contextlib.suppress(psycopg.Error):
                    self._db.execute(sql.SQL("ROLLBACK TO {}").format(name))
                    self._db.execute(sql.SQL("RELEASE {}").format(name))
                raise
            else:
                try:
                    self._db.execute(sql.SQL("RELEASE {}").format(name))
                except psycopg.Error as exc:
                    raise StorageError(f"cannot release a savepoint: {exc}") from exc
            finally:
                self._savepoints -= 1

    @property
    def in_transaction(self) -> bool:
        """Whether this handle is inside a write transaction (the write lock is held)."""
        return self._in_tx

    @contextmanager
    def snapshot(self) -> Iterator[None]:
        """A ``REPEATABLE READ READ ONLY`` transaction, pinned when the block is entered."""
        with self._lock:
            if self._in_tx or self._in_snapshot:
                raise StorageError("cannot start a read snapshot: this handle is in a "
                                   "transaction")
            self._begin(("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY",
                         # A snapshot holds no lock a writer waits for, and may sit idle for
                         # long (parallel verification waits for its workers inside one).
                         "SET LOCAL idle_in_transaction_session_timeout = 0",
                         "SELECT 1 FROM state WHERE id = 0"),  # takes the snapshot
                        "cannot start a read snapshot")
            self._in_snapshot = True
            try:
                yield
            finally:
                self._in_snapshot = False
                self._quiet_rollback()

    def change_marker(self) -> int:
        """The write-transaction counter, less this handle's own commits, plus a step for
        each reconnect."""
        commits = int(self._q("SELECT commits FROM state WHERE id = 0")[0][0])
        return commits - self._own_commits + self._epoch * _EPOCH

    # -- statements -----------------------------------------------------------------------------

    def _q(self, query: str, args: Sequence[object] = (), *,
           rows: bool = True) -> list[tuple[Any, ...]]:
        """Run a read (``rows``: and fetch its rows). Outside a transaction or snapshot, a
        read that finds the connection lost runs once more on a new one."""
        with self._lock:
            for attempt in (1, 2):
                self._ensure()
                try:
                    cur = self._db.execute(query, args)
                    return cur.fetchall() if rows else []
                except psycopg.Error as exc:
                    if attempt == 1 and self._lost() and not (self._in_tx or self._in_snapshot):
                        continue
                    raise StorageError(f"read failed: {exc}") from exc
        raise AssertionError("unreachable")

    def _w(self, query: str, rows: Sequence[Sequence[object]]) -> int:
        """Run a write for each row, as one statement: undone alone when it fails."""
        if not self._in_tx:
            raise StorageError("write outside a transaction")
        if not rows:
            return 0
        try:
            self._db.execute("SAVEPOINT statement")
        except psycopg.Error as exc:
            raise StorageError(f"write failed: {exc}") from exc
        try:
            count = 0
            with self._db.cursor() as cur:
                for statement, args in _statements(query, rows):
                    cur.execute(statement, args)
                    count += cur.rowcount
            self._db.execute("RELEASE statement")
        except psycopg.Error as exc:
            with contextlib.suppress(psycopg.Error):
                self._db.execute("ROLLBACK TO statement")
                self._db.execute("RELEASE statement")
            raise StorageError(f"write failed: {exc}") from exc
        return count

    # -- head -----------------------------------------------------------------------------------

    def meta(self) -> dict[str, str]:
        return {str(k): str(v) for k, v in self._q("SELECT key, value FROM meta")}

    def set_meta(self, items: dict[str, str]) -> None:
        self._w("INSERT INTO meta VALUES (%s::text, %s::text) ON CONFLICT (key) "
                "DO UPDATE SET value = excluded.value", list(items.items()))

    def delete_meta(self, key: str) -> None:
        """Remove a setting (inside a transaction)."""
        self._w("DELETE FROM meta WHERE key = %s", [(key,)])

    def state(self) -> State:
        """The head. While another thread of this process holds this handle in a write
        transaction (which may be waiting for another node's write lock for seconds), it is
        read on a side connection instead of waiting: the head committed now, as a read a
        moment earlier would have seen it (checkpoint and health reads must not queue
        behind a writer). The transaction's own thread reads on the handle, as ever."""
        if self._lock.acquire(blocking=False):
            try:
                rows = self._q("SELECT size, checkpoint, id_hwm FROM state WHERE id = 0")
            finally:
                self._lock.release()
        else:
            rows = self._aside("SELECT size, checkpoint, id_hwm FROM state WHERE id = 0")
        if not rows:
            raise StorageError("the state row is missing")
        size, cp, hwm = rows[0]
        return State(int(size), None if cp is None else str(cp), int(hwm))

    def put_state(self, state: State, *, expect: State | None = None) -> None:
        if expect is None:
            self._w("UPDATE state SET size = %s, checkpoint = %s, id_hwm = %s WHERE id = 0",
                    [(state.size, state.checkpoint, state.id_hwm)])
            return
        # One statement: the row changes only if it is still the expected head.
        changed = self._w(
            "UPDATE state SET size = %s, checkpoint = %s, id_hwm = %s WHERE id = 0 "
            "AND size = %s AND checkpoint IS NOT DISTINCT FROM %s::text AND id_hwm = %s",
            [(state.size, state.checkpoint, state.id_hwm, expect.size, expect.checkpoint,
              expect.id_hwm)])
        if changed != 1:
            raise HeadConflictError(f"the head moved from size {expect.size} to "
                                    f"{self.state().size} under this writer: nothing was stored")

    def put_checkpoint(self, size: int, note: str) -> None:
        self._all("checkpoints", "INSERT INTO checkpoints VALUES (%s, %s) ON CONFLICT (size) "
                  "DO UPDATE SET note = excluded.note", [(size, note)])

    def iter_checkpoints(self) -> Iterator[KeptCheckpoint]:
        for size, note in self._q("SELECT size, note FROM checkpoints ORDER BY size"):
            yield KeptCheckpoint(int(size), str(note))

    # -- entries and tree nodes -----------------------------------------------------------------

    def node_blocks(self, keys: Iterable[tuple[int, int]]) -> dict[tuple[int, int], bytes]:
        wanted = sorted(set(keys))
        if not wanted:
            return {}
        rows = self._q("SELECT n.level, n.block, n.data FROM nodes n JOIN "
                       "unnest(%s::integer[], %s::bigint[]) AS k(level, block) "
                       "ON n.level = k.level AND n.block = k.block",
                       ([lv for lv, _ in wanted], [b for _, b in wanted]))
        return {(int(lv), int(b)): bytes(d) for lv, b, d in rows}

    def iter_node_blocks(self, level: int) -> Iterator[tuple[int, bytes]]:
        lo = -(1 << 63)
        while True:
            # One page at a time, the lock released between pages.
            rows = self._q("SELECT block, data FROM nodes WHERE level = %s AND block >= %s "
                           "ORDER BY block LIMIT %s", (level, lo, _PAGE))
            for block, data in rows:
                yield int(block), bytes(data)
            if len(rows) < _PAGE:
                return
            lo = int(rows[-1][0]) + 1

    def node_extent(self) -> list[tuple[int, int, int]]:
        """(level, last block, its length in bytes) for every level that has blocks; and,
        for a level that also has blocks at a negative number (no tree makes them: only an
        edit of the table does), the lowest of those too, so they are not passed over."""
        rows = self._q("(SELECT DISTINCT ON (level) level, block, length(data) FROM nodes "
                       "ORDER BY level, block DESC) UNION ALL "
                       "(SELECT DISTINCT ON (level) level, block, length(data) FROM nodes "
                       "WHERE block < 0 ORDER BY level, block)")
        return [(int(lv), int(b), int(n)) for lv, b, n in rows]

    def put_node_blocks(self, blocks: dict[tuple[int, int], bytes]) -> None:
        self._all("nodes", "INSERT INTO nodes VALUES (%s::integer, %s::bigint, %s::bytea) "
                  "ON CONFLICT (level, block) "
                  "DO UPDATE SET data = excluded.data",
                  [(lv, b, d) for (lv, b), d in blocks.items()])

    def put_chunks(self, chunks: list[Chunk]) -> None:
        self._all("chunks", "INSERT INTO chunks VALUES (%s::bigint, %s::integer, %s::bigint, "
                  "%s::bytea, %s::bytea)",
                  [(c.start, c.count, c.batch_end, c.ids, c.data) for c in chunks])

    def _all(self, table: str, query: str, rows: Sequence[Sequence[object]]) -> None:
        """A write of which every row must land (inserts and upserts): fewer rows written
        means a rule or trigger planted on the table discards them, and the commit must not
        be acknowledged (SQLite's ``RAISE(IGNORE)`` trigger is caught by ``verify`` only)."""
        written = self._w(query, rows)
        if written != len(rows):
            raise StorageError(f"{table}: {written} of {len(rows)} rows written (a rule or "
                               "trigger on the table discards writes: it was edited)")

    def _chunk_page(self, where: str, args: tuple[object, ...], order: str) -> list[Chunk]:
        # ``where`` and ``order`` are this module's constants; values are bound parameters.
        rows = self._q("SELECT start, count, batch_end, ids, data FROM chunks "  # noqa: S608
                       f"WHERE {where} ORDER BY start {order} LIMIT {_PAGE}", args)
        return [Chunk(int(s), int(n), int(be), bytes(ids), bytes(d))
                for s, n, be, ids, d in rows]

    def _first_reaching(self, index: int, order: str) -> int | None:
        """The start of the first (``ASC``) or last (``DESC``) row holding ``index``: a row
        holds at most MAX_CHUNK entries, so only starts that close below it are looked at."""
        rows = self._q(f"SELECT start FROM chunks WHERE start <= %s AND start >= %s "  # noqa: S608
                       f"AND start + count > %s ORDER BY start {order} LIMIT 1",
                       (index, index - MAX_CHUNK + 1, index))
        return int(rows[0][0]) if rows else None

    def iter_chunks(self, start: int = 0, end: int | None = None) -> Iterator[Chunk]:
        stop = end if end is not None else 1 << 62
        if stop <= start:
            return
        first = self._first_reaching(start, "ASC")
        lo = first if first is not None else start
        while True:
            page = self._chunk_page("start >= %s AND start < %s", (lo, stop), "ASC")
            yield from (c for c in page if c.start >= start or c.start + c.count > start)
            if len(page) < _PAGE:
                return
            lo = page[-1].start + 1

    def stray_chunk(self, size: int) -> int | None:
        """The start of a row outside ``[0, size)``, if there is one."""
        rows = self._q("SELECT start FROM chunks WHERE start < 0 OR start >= %s LIMIT 1",
                       (size,))
        return int(rows[0][0]) if rows else None

    def iter_all_chunks(self) -> Iterator[Chunk]:
        """Every chunk row, whatever its start."""
        page = self._chunk_page("TRUE", (), "ASC")
        while True:
            yield from page
            if len(page) < _PAGE:
                return
            page = self._chunk_page("start > %s", (page[-1].start,), "ASC")

    def iter_chunks_desc(self, before: int) -> Iterator[Chunk]:
        """Chunks starting in ``[0, before)``, newest first."""
        hi = before
        while True:
            page = self._chunk_page("start >= 0 AND start < %s", (hi,), "DESC")
            yield from page
            if len(page) < _PAGE:
                return
            hi = page[-1].start

    def chunks_at(self, starts: Iterable[int]) -> list[Chunk]:
        wanted = sorted(set(starts))
        if not wanted:
            return []
        rows = self._q("SELECT start, count, batch_end, ids, data FROM chunks "
                       "WHERE start = ANY(%s::bigint[]) ORDER BY start", (wanted,))
        return [Chunk(int(s), int(n), int(be), bytes(ids), bytes(d))
                for s, n, be, ids, d in rows]

    def entry_at(self, index: int) -> bytes | None:
        """One leaf, reading only its bytes from its chunk (not the whole bundle)."""
        first = self._first_reaching(index, "DESC")
        if first is None:
            return None
        rows = self._q("SELECT count, substring(data FROM 1 FOR 4 * count) FROM chunks "
                       "WHERE start = %s", (first,))
        if not rows:
            return None
        count, head = int(rows[0][0]), bytes(rows[0][1])
        k = index - first
        if not 0 <= k < count or len(head) != 4 * count:
            return None
        lens = [int.from_bytes(head[4 * j:4 * j + 4], "little") for j in range(count)]
        offset = 4 * count + sum(lens[:k]) + 1
        leaf = self._q("SELECT substring(data FROM %s FOR %s) FROM chunks WHERE start = %s",
                       (offset, lens[k], first))
        return bytes(leaf[0][0]) if leaf else None

    def replace_chunk_data(self, rows: list[tuple[int, bytes]]) -> None:
        """Rewrite the leaf framing of existing chunks, by start (retention only)."""
        self._w("UPDATE chunks SET data = %s WHERE start = %s", [(d, s) for s, d in rows])

    # -- id index -------------------------------------------------------------------------------

    def chunk_starts_for_buckets(self, buckets: Iterable[int]) -> list[int]:
        wanted = sorted(set(buckets))
        if not wanted:
            return []
        rows = self._q("SELECT DISTINCT start FROM id_buckets WHERE bucket = ANY(%s::bigint[]) "
                       "ORDER BY start", (wanted,))
        return [int(r[0]) for r in rows]

    def put_buckets(self, rows: list[tuple[int, int]]) -> None:
        self._w("INSERT INTO id_buckets VALUES (%s::bigint, %s::bigint) "
                "ON CONFLICT DO NOTHING", list(rows))

    def find_other_ids(self, ids: list[bytes]) -> dict[bytes, int]:
        if not ids:
            return {}
        rows = self._q("SELECT id, idx FROM exact_ids WHERE id = ANY(%s::bytea[])", (ids,))
        return {bytes(k): int(v) for k, v in rows}

    def put_other_ids(self, rows: list[tuple[bytes, int]]) -> None:
        self._w("INSERT INTO exact_ids VALUES (%s::bytea, %s::bigint)", list(rows))

    def iter_id_buckets(self) -> Iterator[tuple[int, int]]:
        """Every (bucket, chunk start) row of the UUIDv7 id index, in key order (paged)."""
        last: tuple[int, int] = (-(1 << 63), -(1 << 63))
        while True:
            rows = self._q("SELECT bucket, start FROM id_buckets WHERE (bucket, start) > "
                           "(%s, %s) ORDER BY bucket, start LIMIT 4096", last)
            if not rows:
                return
            for bucket, start in rows:
                yield int(bucket), int(start)
            last = (int(rows[-1][0]), int(rows[-1][1]))

    def iter_other_ids(self) -> Iterator[tuple[bytes, int]]:
        """Every (id, index) row of the exact id index, in id order (paged)."""
        last = b""
        while True:
            rows = self._q("SELECT id, idx FROM exact_ids WHERE id > %s ORDER BY id "
                           "LIMIT 4096", (last,))
            if not rows:
                return
            for ident, idx in rows:
                yield bytes(ident), int(idx)
            last = bytes(rows[-1][0])

    # -- keys, blind index, holds (personal-data protection) ------------------------------------

    def subject_keys_by_ref(self, refs: Iterable[bytes]) -> dict[bytes, SubjectKey]:
        """The key of each subject reference that has one."""
        wanted = list(refs)
        if not wanted:
            return {}
        rows = self._q("SELECT ref, kid, wrapped FROM subject_keys "
                       "WHERE ref = ANY(%s::bytea[])", (wanted,))
        return {bytes(r): SubjectKey(bytes(k), bytes(r), bytes(w)) for r, k, w in rows}

    def subject_keys_by_kid(self, kids: Iterable[bytes]) -> dict[bytes, SubjectKey]:
        """The key of each key id still present (an erased key is absent)."""
        wanted = list(kids)
        if not wanted:
            return {}
        rows = self._q("SELECT kid, ref, wrapped FROM subject_keys "
                       "WHERE kid = ANY(%s::bytea[])", (wanted,))
        return {bytes(k): SubjectKey(bytes(k), bytes(r), bytes(w)) for k, r, w in rows}

    def put_subject_keys(self, rows: list[SubjectKey]) -> None:
        """Insert keys (inside a transaction)."""
        self._all("subject_keys", "INSERT INTO subject_keys(kid, ref, wrapped) "
                  "VALUES (%s::bytea, %s::bytea, %s::bytea)", [tuple(r) for r in rows])

    def delete_subject_key(self, kid: bytes) -> None:
        """Destroy a subject key (inside a transaction; :meth:`purge_deleted` vacuums it)."""
        self._w("DELETE FROM subject_keys WHERE kid = %s", [(kid,)])

    def purge_deleted(self, wait_s: float = 2.0) -> bool:
        """Wait (up to ``wait_s``) until no other session of this database holds a snapshot
        older than this call, then ``VACUUM subject_keys``; False when one still did (the
        vacuum then keeps the row versions it can still see; the next purge removes them).

        What it promises: no SQL session, now or later, can read a deleted key, and the dead
        row versions are gone from the table's heap and index pages (their space marked
        free). What it cannot: PostgreSQL does not overwrite freed bytes in place (they stay
        in the data files until the space is reused), and the key's insertion stays in WAL
        segments not yet recycled, in archived WAL, on replicas' disks and in backups; those
        follow the operator's WAL, replication and backup retention. Seeing other sessions'
        snapshots needs ``pg_stat_activity`` rows (the same role, or ``pg_read_all_stats``);
        replication slots and prepared transactions are not waited for.
        """
        # The lock first: another thread's transaction on this handle (the background index
        # step) holds it to its end, so only this thread's own transaction is refused here.
        with self._lock:
            if self._in_tx or self._in_snapshot:
                raise StorageError("purge_deleted cannot run inside a transaction")
        deadline = time.monotonic() + wait_s
        horizon = int(self._q("SELECT pg_snapshot_xmax(pg_current_snapshot())::text")[0][0])
        horizon %= _XID
        clear = False
        while True:
            xmins = self._q("SELECT backend_xmin::text FROM pg_stat_activity "
                            "WHERE datname = current_database() AND pid <> pg_backend_pid() "
                            "AND backend_xmin IS NOT NULL")
            clear = not any(0 < (horizon - int(x)) % _XID < _XID // 2 for (x,) in xmins)
            if clear or time.monotonic() >= deadline:
                break
            time.sleep(min(0.05, max(0.0, deadline - time.monotonic())))
        try:
            self._q("VACUUM subject_keys", rows=False)
        except StorageError as exc:
            raise StorageError(f"vacuum failed: {exc}") from exc
        return clear

    def put_blind(self, rows: list[tuple[int, int, int]]) -> None:
        """Insert (segment, token, index) rows (inside a transaction)."""
        self._w("INSERT INTO blind VALUES (%s::bigint, %s::bigint, %s::bigint) "
                "ON CONFLICT DO NOTHING", rows)

    def delete_blind(self, rows: list[tuple[int, int, int]]) -> None:
        """Delete (segment, token, index) rows (inside a transaction)."""
        self._w("DELETE FROM blind WHERE seg = %s AND tok = %s AND idx = %s", rows)

    def delete_blind_range(self, start: int, end: int) -> None:
        """Delete blind-index rows of entries ``start <= idx < end`` (inside a transaction)."""
        self._w("DELETE FROM blind WHERE seg >= %s AND seg <= %s AND idx >= %s AND idx < %s",
                [(start >> 12, (end - 1) >> 12, start, end)])

    def blind_lookup(self, token: int, segments: Iterable[int]) -> list[int]:
        """Indexes carrying ``token`` in the given segments, in the order of the segments."""
        order = list(segments)
        if not order:
            return []
        rows = self._q("SELECT b.idx FROM unnest(%s::bigint[]) WITH ORDINALITY AS s(seg, n) "
                       "JOIN blind b ON b.seg = s.seg AND b.tok = %s ORDER BY s.n, b.idx",
                       (order, token))
        return [int(r[0]) for r in rows]

    def blind_segment(self, seg: int) -> list[tuple[int, int]]:
        """(token, index) of every row filed under segment ``seg``."""
        return [(int(t), int(i)) for t, i in
                self._q("SELECT tok, idx FROM blind WHERE seg = %s", (seg,))]

    def blind_outside(self, last_seg: int) -> list[tuple[int, int, int]]:
        """A few (segment, token, index) rows filed outside segments ``0..last_seg``."""
        return [(int(s), int(t), int(i)) for s, t, i in
                self._q("SELECT seg, tok, idx FROM blind WHERE seg < 0 OR seg > %s "
                        "ORDER BY seg, idx LIMIT 8", (last_seg,))]

    def put_blind_pending(self, rows: list[tuple[int, bytes]]) -> None:
        """Insert or replace (start, packed pairs) rows of the pending blind index."""
        self._w("INSERT INTO blind_pending VALUES (%s::bigint, %s::bytea) ON CONFLICT (start) "
                "DO UPDATE SET data = excluded.data", rows)

    def blind_pending(self) -> list[tuple[int, bytes]]:
        """Every pending blind-index row (the segment being filled), by start."""
        return [(int(a), bytes(b)) for a, b in
                self._q("SELECT start, data FROM blind_pending ORDER BY start")]

    def blind_pending_start(self) -> int | None:
        """The smallest start among pending rows (None when there are none)."""
        value = self._q("SELECT min(start) FROM blind_pending")[0][0]
        return None if value is None else int(value)

    def delete_blind_pending(self, starts: list[int]) -> None:
        """Remove pending rows (inside a transaction)."""
        self._w("DELETE FROM blind_pending WHERE start = %s", [(s,) for s in starts])

    def put_hold(self, ref: bytes, reason: str, created: str) -> int:
        """Record a legal hold (inside a transaction); returns its number (the largest so far
        plus one, as SQLite's rowid: the write lock makes it unique)."""
        if not self._in_tx:
            raise StorageError("write outside a transaction")
        number = int(self._q("SELECT coalesce(max(id), 0) + 1 FROM holds")[0][0])
        self._w("INSERT INTO holds(id, ref, reason, created) VALUES (%s, %s, %s, %s)",
                [(number, ref, reason, created)])
        return number

    def release_holds(self, ref: bytes, released: str) -> None:
        """Release every open hold on ``ref`` (inside a transaction)."""
        self._w("UPDATE holds SET released = %s WHERE ref = %s AND released IS NULL",
                [(released, ref)])

    def holds(self, ref: bytes | None = None, *, open_only: bool = True) -> list[Hold]:
        """Legal holds, oldest first."""
        rows = self._q("SELECT id, ref, reason, created, released FROM holds "
                       "WHERE (%s::bytea IS NULL OR ref = %s::bytea) "
                       "AND (NOT %s OR released IS NULL) ORDER BY id",
                       (ref, ref, open_only))
        return [Hold(int(i), bytes(r), str(re_), str(c), None if rl is None else str(rl))
                for i, r, re_, c, rl in rows]

    # -- retirement -----------------------------------------------------------------------------

    def put_retired(self, rows: list[RetiredRange]) -> None:
        """Record retired ranges (inside a transaction)."""
        self._w("INSERT INTO retired VALUES (%s, %s, %s, %s)", [tuple(r) for r in rows])

    def delete_retired(self, start: int, end: int) -> None:
        """Forget retired ranges inside ``[start, end)`` (a restored archive segment)."""
        self._w("DELETE FROM retired WHERE start >= %s AND stop <= %s", [(start, end)])

    def retired(self) -> list[RetiredRange]:
        """Every retired range, by start."""
        return [RetiredRange(int(a), int(b), int(r), str(k)) for a, b, r, k in
                self._q("SELECT start, stop, receipt, kind FROM retired ORDER BY start")]

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._db.close()
        with self._aside_lock:
            if self._side is not None:
                self._side.close()
                self._side = None
