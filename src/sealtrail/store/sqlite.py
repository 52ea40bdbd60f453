"""The embedded store: one SQLite database per log, WAL mode, ``synchronous=FULL``.

``synchronous=FULL`` in WAL mode fsyncs the WAL on every commit, so a transaction that returned
is on disk: the "durable before acknowledged" invariant rests on this. Writers take the lock
with ``BEGIN IMMEDIATE`` so concurrent processes serialise instead of failing mid-transaction.
Rows per event decide the speed, so entries are stored per chunk (one row per commit and
bundle), tree hashes per 63-node block, and ids without a per-event index row.
"""

from __future__ import annotations

import contextlib
import functools
import os
import sqlite3
import stat
import struct
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

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

SCHEMA_VERSION = "2"  # 2: the exact id index is leveled (exact_ids), not one table (other_ids)
KNOWN_SCHEMAS = frozenset({"1", "2"})

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS state(
    id INTEGER PRIMARY KEY CHECK (id = 0),
    size INTEGER NOT NULL,
    checkpoint TEXT,
    id_hwm INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS chunks(
    start INTEGER PRIMARY KEY,
    count INTEGER NOT NULL,
    batch_end INTEGER NOT NULL,
    ids BLOB NOT NULL,
    data BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS nodes(key INTEGER PRIMARY KEY, data BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS id_buckets(
    bucket INTEGER NOT NULL,
    start INTEGER NOT NULL,
    PRIMARY KEY (bucket, start)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS exact_ids(
    level INTEGER NOT NULL,
    id BLOB NOT NULL,
    idx INTEGER NOT NULL,
    PRIMARY KEY (level, id)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS exact_id_levels(
    level INTEGER PRIMARY KEY,
    rows INTEGER NOT NULL,
    cursor BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS checkpoints(size INTEGER PRIMARY KEY, note TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS subject_keys(
    kid BLOB PRIMARY KEY,
    ref BLOB NOT NULL UNIQUE,
    wrapped BLOB NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS blind(
    seg INTEGER NOT NULL,
    tok INTEGER NOT NULL,
    idx INTEGER NOT NULL,
    PRIMARY KEY (seg, tok, idx)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS blind_pending(start INTEGER PRIMARY KEY, data BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS holds(
    id INTEGER PRIMARY KEY,
    ref BLOB NOT NULL,
    reason TEXT NOT NULL,
    created TEXT NOT NULL,
    released TEXT);
CREATE TABLE IF NOT EXISTS retired(
    start INTEGER PRIMARY KEY,
    end INTEGER NOT NULL,
    receipt INTEGER NOT NULL,
    kind TEXT NOT NULL);
"""

_BUSY_TIMEOUT_S = 30.0
_LEVEL_SHIFT = 40  # node block key = level << 40 | block: one rowid B-tree, blocks stored inline
_MAX_VARS = 500
_PAGE = 64  # rows read per lock hold by the iterators
# The exact id index is leveled (see put_other_ids): level 0 holds up to _EXACT_FIRST rows,
# each next level _EXACT_RATIO times more, the last one (_EXACT_LEVELS - 1) any number.
_EXACT_FIRST = 8192
_EXACT_RATIO = 8
_EXACT_LEVELS = 8


def _private(path: Path) -> None:
    """Create the database file 0600 whatever the umask (SQLite gives its -wal and -shm files
    the database file's mode), and take group and other bits off an existing one: the file
    holds sealed personal data, tokens and the id index, readable by its owner only."""
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
        mode = os.stat(path).st_mode
        if mode & 0o077 and os.stat(path).st_uid == os.geteuid():
            os.chmod(path, stat.S_IMODE(mode) & 0o700)
            for suffix in ("-wal", "-shm"):
                side = path.with_name(path.name + suffix)
                if side.exists():
                    os.chmod(side, stat.S_IMODE(side.stat().st_mode) & 0o700)
    except OSError as exc:
        raise StorageError(f"cannot create the log database {path.name}: {exc}") from exc


def _identity(path: Path) -> tuple[int, int] | None:
    """(device, inode) of the file, None when it is missing."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


class SQLiteStore:
    """A log's SQLite database. One connection, guarded by a lock for use from many threads.

    Implements :class:`sealtrail.store.protocol.Store`.
    """

    def __init__(self, path: Path, *, readonly: bool = False) -> None:
        self.path = path
        self._readonly = readonly
        self._lock = threading.RLock()
        try:
            if readonly:
                uri = f"{path.resolve().as_uri()}?mode=ro"
                self._db = sqlite3.connect(uri, uri=True, isolation_level=None,
                                           check_same_thread=False, timeout=_BUSY_TIMEOUT_S)
            else:
                _private(path)
                self._db = sqlite3.connect(str(path), isolation_level=None,
                                           check_same_thread=False, timeout=_BUSY_TIMEOUT_S)
                self._db.execute("PRAGMA journal_mode=WAL")
                self._db.execute("PRAGMA synchronous=FULL")
                # Erasure deletes subject keys: overwrite freed content instead of leaving it
                # in free pages (sealtrail deletes nothing else).
                self._db.execute("PRAGMA secure_delete=ON")
                self._db.executescript(_SCHEMA)
                with self.transaction():
                    if self._db.execute("SELECT 1 FROM state").fetchone() is None:
                        self._db.execute("INSERT INTO state VALUES (0, 0, NULL, 0)")
                        self._db.execute("INSERT OR IGNORE INTO meta VALUES ('schema', ?)",
                                         (SCHEMA_VERSION,))
                    self._upgrade()
            # Schema 1 kept the exact id index in one table; a read-only open reads it there.
            names = {r[0] for r in self._db.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table'")}
            self._legacy = "other_ids" in names
            self._leveled = "exact_ids" in names
        except sqlite3.Error as exc:
            raise StorageError(f"cannot open the log database {path.name}: {exc}") from exc
        self._in_tx = False
        # The file this handle opened: a copy moved into place later is another file.
        self._opened = _identity(path)

    @property
    def location(self) -> str:
        """The database file's path."""
        return str(self.path)

    def replaced(self) -> bool:
        """True when the path no longer names the file this handle opened (moved away, or an
        older copy put in its place): appends would go to an unlinked file and vanish."""
        now = _identity(self.path)
        return now is None or self._opened is None or now != self._opened

    def reader(self) -> Store:
        """A read-only connection of its own (a long read never holds up appends)."""
        return SQLiteStore(self.path, readonly=True)

    def opener(self) -> Callable[[], Store]:
        """Opens a read-only connection to the same file in another process (picklable)."""
        return functools.partial(SQLiteStore, self.path, readonly=True)

    def _upgrade(self) -> None:
        """Schema 1 to 2, in the opening transaction: the rows of the one exact-id table move
        to the last level of ``exact_ids`` unchanged, and the meta says schema 2, which an
        older sealtrail reads as "made by a newer sealtrail" and does not append to (it would
        look for ids where there are none left)."""
        row = self._db.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()
        if row is None or row[0] != "1":
            return
        last = _EXACT_LEVELS - 1
        if self._db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' "
                            "AND name = 'other_ids'").fetchone() is not None:
            moved = self._db.execute(f"INSERT INTO exact_ids SELECT {last}, id, idx "
                                     "FROM other_ids").rowcount
            self._db.execute("INSERT INTO exact_id_levels VALUES (?, ?, ?) ON CONFLICT(level) "
                             "DO UPDATE SET rows = rows + excluded.rows", (last, moved, b""))
            self._db.execute("DROP TABLE other_ids")
        self._db.execute("UPDATE meta SET value = ? WHERE key = 'schema'", (SCHEMA_VERSION,))

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """``BEGIN IMMEDIATE`` ... ``COMMIT`` (fsync); rolls back on any exception."""
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise StorageError(f"cannot start a write: {exc}") from exc
            self._in_tx = True
            try:
                yield
            except BaseException:
                self._in_tx = False
                with contextlib.suppress(sqlite3.Error):  # the transaction may be gone already
                    self._db.execute("ROLLBACK")
                raise
            try:
                self._db.execute("COMMIT")
            except sqlite3.Error as exc:
                self._in_tx = False
                with contextlib.suppress(sqlite3.Error):
                    self._db.execute("ROLLBACK")
                raise StorageError(f"commit failed, nothing was stored: {exc}") from exc
            finally:
                self._in_tx = False

    @contextmanager
    def snapshot(self) -> Iterator[None]:
        """A read transaction: every read inside sees one committed state (for verification)."""
        with self._lock:
            try:
                self._db.execute("BEGIN")
            except sqlite3.Error as exc:  # inside a transaction or another snapshot
                raise StorageError(f"cannot start a read snapshot: {exc}") from exc
            try:
                yield
            finally:
                self._db.execute("COMMIT")

    def _q(self, sql: str, args: Iterable[object] = ()) -> list[Any]:
        try:
            with self._lock:
                return self._db.execute(sql, tuple(args)).fetchall()
        except sqlite3.Error as exc:
            raise StorageError(f"read failed: {exc}") from exc

    def _w(self, sql: str, rows: Sequence[tuple[object, ...]]) -> int:
        if not self._in_tx:
            raise StorageError("write outside a transaction")
        try:
            return self._db.executemany(sql, rows).rowcount
        except sqlite3.Error as exc:
            raise StorageError(f"write failed: {exc}") from exc

    def _all(self, table: str, sql: str, rows: Sequence[tuple[object, ...]]) -> None:
        """A write of which every row must land: fewer means a trigger planted on the table
        discards them (``RAISE(IGNORE)``), and the commit must not be acknowledged."""
        written = self._w(sql, rows)
        if rows and written != len(rows):
            raise StorageError(f"{table}: {written} of {len(rows)} rows written (a trigger "
                               "on the table discards writes: it was edited)")

    def meta(self) -> dict[str, str]:
        return {str(k): str(v) for k, v in self._q("SELECT key, value FROM meta")}

    def set_meta(self, items: dict[str, str]) -> None:
        self._w("INSERT OR REPLACE INTO meta VALUES (?, ?)", list(items.items()))

    def delete_meta(self, key: str) -> None:
        """Remove a setting (inside a transaction)."""
        self._w("DELETE FROM meta WHERE key = ?", [(key,)])

    @property
    def in_transaction(self) -> bool:
        """Whether this store is inside a write transaction (the write lock is held)."""
        return self._in_tx

    def state(self) -> State:
        rows = self._q("SELECT size, checkpoint, id_hwm FROM state WHERE id = 0")
        if not rows:
            raise StorageError("the state row is missing")
        size, cp, hwm = rows[0]
        if not isinstance(size, int) or not isinstance(hwm, int) or not (
                cp is None or isinstance(cp, str)):
            raise StorageError("the state row is malformed")
        return State(size, cp, hwm)

    def put_state(self, state: State, *, expect: State | None = None) -> None:
        if expect is None:
            self._w("UPDATE state SET size = ?, checkpoint = ?, id_hwm = ? WHERE id = 0",
                    [(state.size, state.checkpoint, state.id_hwm)])
            return
        if not self._in_tx:
            raise StorageError("write outside a transaction")
        # One statement: the row changes only if it is still the expected head.
        try:
            cur = self._db.execute(
                "UPDATE state SET size = ?, checkpoint = ?, id_hwm = ? WHERE id = 0 "
                "AND size = ? AND checkpoint IS ? AND id_hwm = ?",
                (state.size, state.checkpoint, state.id_hwm, expect.size, expect.checkpoint,
                 expect.id_hwm))
        except sqlite3.Error as exc:
            raise StorageError(f"write failed: {exc}") from exc
        if cur.rowcount != 1:
            raise HeadConflictError(f"the head moved from size {expect.size} to "
                                    f"{self.state().size} under this writer: nothing was stored")

    def node_blocks(self, keys: Iterable[tuple[int, int]]) -> dict[tuple[int, int], bytes]:
        out: dict[tuple[int, int], bytes] = {}
        wanted = sorted({(lv << _LEVEL_SHIFT) | b for lv, b in keys})
        mask = (1 << _LEVEL_SHIFT) - 1
        for i in range(0, len(wanted), _MAX_VARS):
            part = wanted[i:i + _MAX_VARS]
            rows = self._q("SELECT key, data FROM nodes WHERE key IN "
                           f"({','.join('?' * len(part))})", part)
            for key, data in rows:
                k = int(key)
                out[(k >> _LEVEL_SHIFT, k & mask)] = bytes(data)
        return out

    def iter_node_blocks(self, level: int) -> Iterator[tuple[int, bytes]]:
        lo = level << _LEVEL_SHIFT
        hi = lo + (1 << _LEVEL_SHIFT)
        while True:
            # One page at a time, the lock released between pages: a paused reader never
            # blocks writers.
            rows = self._q("SELECT key, data FROM nodes WHERE key >= ? AND key < ? "
                           "ORDER BY key LIMIT ?", (lo, hi, _PAGE))
            for key, data in rows:
                yield int(key) - (level << _LEVEL_SHIFT), bytes(data)
            if len(rows) < _PAGE:
                return
            lo = int(rows[-1][0]) + 1

    def node_extent(self) -> list[tuple[int, int, int]]:
        """(level, last block, its length in bytes) for every level that has blocks."""
        rows = self._q(f"SELECT key >> {_LEVEL_SHIFT}, max(key) FROM nodes GROUP BY 1")
        out = []
        mask = (1 << _LEVEL_SHIFT) - 1
        for level, key in rows:
            length = self._q("SELECT length(data) FROM nodes WHERE key = ?", (key,))[0][0]
            out.append((int(level), int(key) & mask, int(length)))
        return out

    def put_node_blocks(self, blocks: dict[tuple[int, int], bytes]) -> None:
        self._all("nodes", "INSERT OR REPLACE INTO nodes VALUES (?, ?)",
                  [((lv << _LEVEL_SHIFT) | b, d) for (lv, b), d in blocks.items()])

    def put_chunks(self, chunks: list[Chunk]) -> None:
        self._all("chunks", "INSERT INTO chunks VALUES (?, ?, ?, ?, ?)",
                  [(c.start, c.count, c.batch_end, c.ids, c.data) for c in chunks])

    def _chunk_page(self, where: str, args: tuple[object, ...], order: str) -> list[Chunk]:
        rows = self._q("SELECT start, count, batch_end, ids, data FROM chunks "
                       f"WHERE {where} ORDER BY start {order} LIMIT {_PAGE}", args)
        return [Chunk(int(s), int(n), int(be), bytes(ids), bytes(d))
                for s, n, be, ids, d in rows]

    def _first_reaching(self, index: int, order: str) -> int | None:
        """The start of the first (``ASC``) or last (``DESC``) row holding ``index``: a row
        holds at most MAX_CHUNK entries, so only starts that close below it are looked at
        (a few index reads however large the log)."""
        rows = self._q(f"SELECT start FROM chunks WHERE start <= ? AND start >= ? "
                       f"AND start + count > ? ORDER BY start {order} LIMIT 1",
                       (index, index - MAX_CHUNK + 1, index))
        return int(rows[0][0]) if rows and isinstance(rows[0][0], int) else None

    def iter_chunks(self, start: int = 0, end: int | None = None) -> Iterator[Chunk]:
        stop = end if end is not None else 1 << 62
        if stop <= start:
            return
        # The first chunk holding ``start`` may begin before it; rows in between that end
        # before ``start`` (only where rows overlap) are passed over.
        first = self._first_reaching(start, "ASC")
        lo = first if first is not None else start
        while True:
            page = self._chunk_page("start >= ? AND start < ?", (lo, stop), "ASC")
            yield from (c for c in page if c.start >= start or c.start + c.count > start)
            if len(page) < _PAGE:
                return
            lo = page[-1].start + 1

    def stray_chunk(self, size: int) -> int | None:
        """The start of a row outside ``[0, size)``, if there is one."""
        rows = self._q("SELECT start FROM chunks WHERE start < 0 OR start >= ? LIMIT 1", (size,))
        return int(rows[0][0]) if rows else None

    def iter_all_chunks(self) -> Iterator[Chunk]:
        """Every chunk row, whatever its start (the verifier must see rows no index reaches)."""
        page = self._chunk_page("1", (), "ASC")
        while True:
            yield from page
            if len(page) < _PAGE:
                return
            page = self._chunk_page("start > ?", (page[-1].start,), "ASC")

    def iter_chunks_desc(self, before: int) -> Iterator[Chunk]:
        """Chunks starting in ``[0, before)``, newest first (for newest-first searches)."""
        hi = before
        while True:
            page = self._chunk_page("start >= 0 AND start < ?", (hi,), "DESC")
            yield from page
            if len(page) < _PAGE:
                return
            hi = page[-1].start

    def chunk_starts_for_buckets(self, buckets: Iterable[int]) -> list[int]:
        out: set[int] = set()
        bl = sorted(set(buckets))
        for i in range(0, len(bl), _MAX_VARS):
            part = bl[i:i + _MAX_VARS]
            rows = self._q(f"SELECT start FROM id_buckets WHERE bucket IN "
                           f"({','.join('?' * len(part))})", part)
            out.update(int(r[0]) for r in rows)
        return sorted(out)

    def chunks_at(self, starts: Iterable[int]) -> list[Chunk]:
        out: list[Chunk] = []
        sl = sorted(set(starts))
        for i in range(0, len(sl), _MAX_VARS):
            part = sl[i:i + _MAX_VARS]
            rows = self._q("SELECT start, count, batch_end, ids, data FROM chunks WHERE start IN "
                           f"({','.join('?' * len(part))})", part)
            out.extend(Chunk(int(s), int(n), int(be), bytes(ids), bytes(d))
                       for s, n, be, ids, d in rows)
        return out

    def put_buckets(self, rows: list[tuple[int, int]]) -> None:
        self._w("INSERT OR IGNORE INTO id_buckets VALUES (?, ?)", list(rows))

    def find_other_ids(self, ids: list[bytes]) -> dict[bytes, int]:
        out: dict[bytes, int] = {}
        levels = self._exact_levels()
        for i in range(0, len(ids), _MAX_VARS):
            part = ids[i:i + _MAX_VARS]
            marks = ",".join("?" * len(part))
            rows = (self._q(f"SELECT id, idx FROM other_ids WHERE id IN ({marks})", part)
                    if self._legacy else [])
            if levels:
                rows += self._q(f"SELECT id, idx FROM exact_ids WHERE level IN "
                                f"({','.join('?' * len(levels))}) AND id IN ({marks})",
                                [*levels, *part])
            out.update((bytes(k), v if type(v) is int else -1) for k, v in rows)
        return out

    def _exact_levels(self) -> list[Any]:
        """The levels of ``exact_ids`` that hold rows, read from the rows themselves (a skip
        scan, a few point reads): never from the counters, which only pace the moves."""
        levels: list[Any] = []
        while self._leveled:
            # The stored value as it is (an edited 0.5 or 'x' too): where a row sits changes
            # no answer, so every row is read wherever it is, and the walk always moves on.
            row = self._q("SELECT level FROM exact_ids WHERE level > ? ORDER BY level LIMIT 1",
                          (levels[-1] if levels else -(1 << 63),))
            if not row:
                return levels
            levels.append(row[0][0])
        return levels

    def put_other_ids(self, rows: list[tuple[bytes, int]]) -> None:
        """Add exact rows to level 0, then move rows one level down where a level is over
        its size: a leveled index, as log-structured merge trees keep one.

        Why levels: exact rows are keyed by random ids (UUIDv4, and UUIDv7 ids dated well
        before their commit), and inserting random keys into one growing B-tree dirties a
        page per row once the tree is larger than a commit, so every commit got slower as the
        log grew. Level 0 stays small (its pages are few and cached); a move takes the next
        rows of a level in id order, a narrow key range of the level below, so its writes
        are a few pages per hundred rows. Each level over its size moves as many rows per
        commit as the commit added (at least 1024): no commit pays for a whole level.
        Where a row sits changes no answer: lookups read every level that holds rows, and
        ``verify`` compares the rows of all levels with their rebuild from the chunks.
        """
        self._w("INSERT INTO exact_ids VALUES (0, ?, ?)", [(k, i) for k, i in rows])
        held: dict[int, int] = {}
        cursor: dict[int, bytes] = {}
        for lv, n, c in self._db.execute("SELECT level, rows, cursor FROM exact_id_levels"):
            # Pacing only: an edited counter (not an integer) counts as empty.
            if type(lv) is int:
                held[lv] = n if type(n) is int else 0
                cursor[lv] = c if type(c) is bytes else b""
        held[0] = held.get(0, 0) + len(rows)
        budget = max(len(rows), 1024)
        cap = _EXACT_FIRST
        for level in range(_EXACT_LEVELS - 1):
            if held.get(level, 0) > cap:
                moved, last = self._move_exact(level, cursor.get(level, b""), budget)
                held[level] -= moved
                cursor[level] = last if moved == budget else b""
                held[level + 1] = held.get(level + 1, 0) + moved
            cap *= _EXACT_RATIO
        self._w("INSERT OR REPLACE INTO exact_id_levels VALUES (?, ?, ?)",
                [(lv, n, cursor.get(lv, b"")) for lv, n in held.items()])

    def _move_exact(self, level: int, cursor: bytes, budget: int) -> tuple[int, bytes]:
        """Move up to ``budget`` rows of a level, the next ones after ``cursor`` in id order
        (from the start once past the end), to the level below, inside SQLite (no row comes
        up to Python): (rows moved, the last id moved)."""
        db = self._db
        span = ("SELECT min(id), max(id), count(*) FROM (SELECT id FROM exact_ids "
                "WHERE level = ? AND id > ? ORDER BY id LIMIT ?)")
        try:
            low, high, n = db.execute(span, (level, cursor, budget)).fetchone()
            if not n and cursor:
                low, high, n = db.execute(span, (level, b"", budget)).fetchone()
            if not n:
                return 0, b""
            db.execute("INSERT INTO exact_ids SELECT level + 1, id, idx FROM exact_ids "
                       "WHERE level = ? AND id >= ? AND id <= ?", (level, low, high))
            db.execute("DELETE FROM exact_ids WHERE level = ? AND id >= ? AND id <= ?",
                       (level, low, high))
        except sqlite3.Error as exc:
            raise StorageError(f"write failed: {exc}") from exc
        return int(n), bytes(high)

    def iter_id_buckets(self) -> Iterator[tuple[int, int]]:
        """Every (bucket, chunk start) row of the UUIDv7 id index, in key order (paged)."""
        last: tuple[int, int] = (-(1 << 63), -1)
        while True:
            rows = self._q("SELECT bucket, start FROM id_buckets WHERE (bucket, start) > (?, ?) "
                           "ORDER BY bucket, start LIMIT 4096", last)
            if not rows:
                return
            for bucket, start in rows:
                yield int(bucket), int(start)
            last = (int(rows[-1][0]), int(rows[-1][1]))

    def iter_other_ids(self) -> Iterator[tuple[bytes, int]]:
        """Every (id, index) row of the exact id index: every level (paged, in key order),
        after the one table of a schema 1 log opened read-only."""
        last = b""
        while self._legacy:
            rows = self._q("SELECT id, idx FROM other_ids WHERE id > ? ORDER BY id LIMIT 4096",
                           (last,))
            if not rows:
                break
            for ident, idx in rows:
                yield bytes(ident), int(idx)
            last = bytes(rows[-1][0])
        key: tuple[int, bytes] = (-(1 << 63), b"")
        while self._leveled:
            rows = self._q("SELECT level, id, idx FROM exact_ids WHERE (level, id) > (?, ?) "
                           "ORDER BY level, id LIMIT 4096", key)
            if not rows:
                return
            for _, ident, idx in rows:  # an edited non-integer index reads as -1 (a mismatch)
                yield bytes(ident), idx if type(idx) is int else -1
            key = (rows[-1][0], bytes(rows[-1][1]))  # as stored: an edited level still moves on

    def put_checkpoint(self, size: int, note: str) -> None:
        self._all("checkpoints", "INSERT OR REPLACE INTO checkpoints VALUES (?, ?)",
                  [(size, note)])

    def iter_checkpoints(self) -> Iterator[KeptCheckpoint]:
        for size, note in self._q("SELECT size, note FROM checkpoints ORDER BY size"):
            yield KeptCheckpoint(int(size), str(note))

    # -- keys, blind index, holds (personal-data protection) ---------------------------------

    def subject_keys_by_ref(self, refs: Iterable[bytes]) -> dict[bytes, SubjectKey]:
        """The key of each subject reference that has one."""
        out: dict[bytes, SubjectKey] = {}
        rl = list(refs)
        for i in range(0, len(rl), _MAX_VARS):
            part = rl[i:i + _MAX_VARS]
            rows = self._q("SELECT ref, kid, wrapped FROM subject_keys WHERE ref IN "
                           f"({','.join('?' * len(part))})", part)
            out.update((bytes(r), SubjectKey(bytes(k), bytes(r), bytes(w))) for r, k, w in rows)
        return out

    def subject_keys_by_kid(self, kids: Iterable[bytes]) -> dict[bytes, SubjectKey]:
        """The key of each key id still present (an erased key is absent)."""
        out: dict[bytes, SubjectKey] = {}
        kl = list(kids)
        for i in range(0, len(kl), _MAX_VARS):
            part = kl[i:i + _MAX_VARS]
            rows = self._q("SELECT kid, ref, wrapped FROM subject_keys WHERE kid IN "
                           f"({','.join('?' * len(part))})", part)
            out.update((bytes(k), SubjectKey(bytes(k), bytes(r), bytes(w))) for k, r, w in rows)
        return out

    def put_subject_keys(self, rows: list[SubjectKey]) -> None:
        """Insert keys (inside a transaction)."""
        self._all("subject_keys", "INSERT INTO subject_keys(kid, ref, wrapped) "
                  "VALUES (?, ?, ?)", [tuple(r) for r in rows])

    def delete_subject_key(self, kid: bytes) -> None:
        """Destroy a subject key (inside a transaction; secure_delete overwrites it)."""
        self._w("DELETE FROM subject_keys WHERE kid = ?", [(kid,)])

    def put_blind(self, rows: list[tuple[int, int, int]]) -> None:
        """Insert (segment, token, index) rows (inside a transaction)."""
        self._w("INSERT OR IGNORE INTO blind VALUES (?, ?, ?)", rows)

    def delete_blind(self, rows: list[tuple[int, int, int]]) -> None:
        """Delete (segment, token, index) rows (inside a transaction)."""
        self._w("DELETE FROM blind WHERE seg = ? AND tok = ? AND idx = ?", rows)

    def blind_lookup(self, token: int, segments: Iterable[int]) -> list[int]:
        """Indexes carrying ``token`` in the given segments, in the order of the segments."""
        out: list[int] = []
        try:
            with self._lock:
                cur = self._db.cursor()
                for seg in segments:
                    rows = cur.execute("SELECT idx FROM blind WHERE seg = ? AND tok = ? "
                                       "ORDER BY idx", (seg, token)).fetchall()
                    out.extend(r[0] for r in rows)
        except sqlite3.Error as exc:
            raise StorageError(f"read failed: {exc}") from exc
        return out

    def blind_segment(self, seg: int) -> list[tuple[int, int]]:
        """(token, index) of every row filed under segment ``seg``."""
        return [(int(t), int(i)) for t, i in
                self._q("SELECT tok, idx FROM blind WHERE seg = ?", (seg,))]

    def blind_outside(self, last_seg: int) -> list[tuple[int, int, int]]:
        """A few (segment, token, index) rows filed outside segments ``0..last_seg``."""
        return [(int(s), int(t), int(i)) for s, t, i in
                self._q("SELECT seg, tok, idx FROM blind WHERE seg < 0 OR seg > ? "
                        "ORDER BY seg, idx LIMIT 8", (last_seg,))]

    def put_blind_pending(self, rows: list[tuple[int, bytes]]) -> None:
        """Insert or replace (start, packed pairs) rows of the pending blind index."""
        self._w("INSERT OR REPLACE INTO blind_pending VALUES (?, ?)", rows)

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
        self._w("DELETE FROM blind_pending WHERE start = ?", [(s,) for s in starts])

    def put_hold(self, ref: bytes, reason: str, created: str) -> int:
        """Record a legal hold (inside a transaction); returns its number."""
        if not self._in_tx:
            raise StorageError("write outside a transaction")
        try:
            cur = self._db.execute("INSERT INTO holds(ref, reason, created) VALUES (?, ?, ?)",
                                   (ref, reason, created))
        except sqlite3.Error as exc:
            raise StorageError(f"write failed: {exc}") from exc
        return int(cur.lastrowid or 0)

    def release_holds(self, ref: bytes, released: str) -> None:
        """Release every open hold on ``ref`` (inside a transaction)."""
        self._w("UPDATE holds SET released = ? WHERE ref = ? AND released IS NULL",
                [(released, ref)])

    def holds(self, ref: bytes | None = None, *, open_only: bool = True) -> list[Hold]:
        """Legal holds, oldest first."""
        where = ["1"]
        args: list[object] = []
        if ref is not None:
            where.append("ref = ?")
            args.append(ref)
        if open_only:
            where.append("released IS NULL")
        rows = self._q("SELECT id, ref, reason, created, released FROM holds WHERE "
                       f"{' AND '.join(where)} ORDER BY id", args)
        return [Hold(int(i), bytes(r), str(re), str(c), None if rl is None else str(rl))
                for i, r, re, c, rl in rows]

    def replace_chunk_data(self, rows: list[tuple[int, bytes]]) -> None:
        """Rewrite the leaf framing of existing chunks, by start (inside a transaction).

        Only retention uses it: purged and archived entries become zero-length leaves, their
        leaf hashes stay in the tree (see ``log/retention.py``).
        """
        self._w("UPDATE chunks SET data = ? WHERE start = ?", [(d, s) for s, d in rows])

    def delete_blind_range(self, start: int, end: int) -> None:
        """Delete blind-index rows of entries ``start <= idx < end`` (inside a transaction)."""
        self._w("DELETE FROM blind WHERE seg >= ? AND seg <= ? AND idx >= ? AND idx < ?",
                [(start >> 12, (end - 1) >> 12, start, end)])

    def put_retired(self, rows: list[RetiredRange]) -> None:
        """Record retired ranges (inside a transaction)."""
        self._w("INSERT INTO retired VALUES (?, ?, ?, ?)", rows)

    def delete_retired(self, start: int, end: int) -> None:
        """Forget retired ranges inside ``[start, end)`` (a restored archive segment)."""
        self._w("DELETE FROM retired WHERE start >= ? AND end <= ?", [(start, end)])

    def retired(self) -> list[RetiredRange]:
        """Every retired range, by start."""
        return [RetiredRange(int(a), int(b), int(r), str(k)) for a, b, r, k in
                self._q("SELECT start, end, receipt, kind FROM retired ORDER BY start")]

    def entry_at(self, index: int) -> bytes | None:
        """One leaf, reading only its bytes from its chunk (not the whole bundle)."""
        first = self._first_reaching(index, "DESC")
        if first is None:
            return None
        rows = self._q("SELECT start, count, substr(data, 1, 4 * count) FROM chunks "
                       "WHERE start = ?", (first,))
        if not rows:
            return None
        start, count, head = int(rows[0][0]), int(rows[0][1]), bytes(rows[0][2])
        k = index - start
        if not 0 <= k < count or len(head) != 4 * count:
            return None
        lens = struct.unpack(f"<{count}I", head)
        offset = 4 * count + sum(lens[:k]) + 1
        leaf = self._q("SELECT substr(data, ?, ?) FROM chunks WHERE start = ?",
                       (offset, lens[k], start))
        return bytes(leaf[0][0]) if leaf else None

    def purge_deleted(self, wait_s: float = 2.0) -> bool:
        """Fold the WAL into the database and truncate it (after erasure: no old copies;
        ``secure_delete`` already overwrote the freed pages in the database file).

        SQLite waits (busy handler) up to ``wait_s`` for readers of old snapshots, then
        answers "busy" rather than failing: that is returned as False.
        """
        try:
            with self._lock:
                self._db.execute(f"PRAGMA busy_timeout = {int(wait_s * 1000)}")
                try:
                    row = self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
                finally:
                    self._db.execute(f"PRAGMA busy_timeout = {int(_BUSY_TIMEOUT_S * 1000)}")
        except sqlite3.Error as exc:
            raise StorageError(f"WAL checkpoint failed: {exc}") from exc
        return row is not None and int(row[0]) == 0

    def change_marker(self) -> int:
        """Changes whenever another connection commits (SQLite ``PRAGMA data_version``)."""
        return int(self._q("PRAGMA data_version")[0][0])

    @contextmanager
    def savepoint(self) -> Iterator[None]:
        """A nested part of the current transaction, rolled back alone if the block raises."""
        if not self._in_tx:
            raise StorageError("a savepoint needs a transaction")
        self._db.execute("SAVEPOINT request")
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK TO request")
            self._db.execute("RELEASE request")
            raise
        self._db.execute("RELEASE request")

    def close(self) -> None:
        with self._lock:
            self._db.close()
