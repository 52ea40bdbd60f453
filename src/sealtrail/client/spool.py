"""Queues of events waiting for the service: the durable SQLite spool and a memory queue.

The spool is one SQLite file (WAL, ``synchronous=FULL``, mode 0600). :meth:`Spool.put` returns
only after the event is committed to it (fsync), and rows leave it only when the service has
acknowledged them (:meth:`Spool.remove`) or refused them for good (:meth:`Spool.reject`, which
keeps them in the ``rejected`` table with the reason). Rows are delivered by ``seq``, the order
in which they were recorded. The file also keeps the newest checkpoint the client verified, so
a restarted client still notices a log that was rolled back while it was down.

Events wait here in clear text (the service seals personal fields when it stores them): the
spool is as sensitive as the application's own data, hence 0600 in a 0700 directory. Delivered
events are deleted for real while the client runs: ``secure_delete`` zeroes their bytes in the
database pages, and after each delivered batch the WAL is checkpointed and truncated to zero
bytes (:meth:`Spool.remove`), so an acknowledged event is neither in the file nor in its ``-wal``
(the ``-shm`` holds page numbers only). Refused events stay in the ``rejected`` table on purpose.

Threads that put at the same time share one commit (group commit): the first to arrive writes
every event queued so far in one transaction and one fsync, the others wait for it, and each
``put`` still returns only once its own event is on disk. One thread alone pays exactly what it
paid before; sixteen pay for far fewer fsyncs than sixteen.

The client's ``durability="group"`` (:mod:`sealtrail.client.groupspool`) writes the same file
through :meth:`Spool.put_many`, a window of events per commit.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import threading
from collections import deque
from pathlib import Path
from typing import Final, NamedTuple, Protocol

from sealtrail.client.errors import ClientError

_SCHEMA = """
CREATE TABLE IF NOT EXISTS events(
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    log TEXT NOT NULL,
    id TEXT NOT NULL UNIQUE,
    body BLOB NOT NULL,
    recorded REAL NOT NULL);
CREATE INDEX IF NOT EXISTS events_by_log ON events(log, seq);
CREATE TABLE IF NOT EXISTS rejected(
    id TEXT PRIMARY KEY,
    log TEXT NOT NULL,
    body BLOB NOT NULL,
    status INTEGER NOT NULL,
    field TEXT NOT NULL,
    reason TEXT NOT NULL,
    at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS checkpoints(
    log TEXT NOT NULL,
    vkey TEXT NOT NULL,
    note TEXT NOT NULL,
    PRIMARY KEY(log, vkey));
"""


# One statement a put where SQLite has RETURNING (3.35, 2021), else the SELECT that follows.
_INSERT: Final = (
    "INSERT INTO events(log, id, body, recorded) VALUES (?, ?, ?, ?) "
    "ON CONFLICT(id) DO NOTHING RETURNING seq" if sqlite3.sqlite_version_info >= (3, 35) else
    "INSERT INTO events(log, id, body, recorded) VALUES (?, ?, ?, ?) "
    "ON CONFLICT(id) DO NOTHING")
# Many puts at once (the group-durable writer): no seq to answer, so no RETURNING.
_INSERT_MANY: Final = ("INSERT INTO events(log, id, body, recorded) VALUES (?, ?, ?, ?) "
                       "ON CONFLICT(id) DO NOTHING")

BUSY_TIMEOUT_S: Final = 30
"""How long a spool write waits for another process's transaction."""
SCRUB_WAIT_MS: Final = 200
"""How long the WAL truncation after a delivered batch waits for other connections."""


class _Put:
    """One ``put`` waiting for the commit that carries it (``woken`` is set when it is done,
    or when its thread is handed the writing)."""

    __slots__ = ("body", "done", "error", "ident", "log", "recorded", "seq", "woken")

    def __init__(self, log: str, ident: str, body: bytes, recorded: float) -> None:
        self.log, self.ident, self.body, self.recorded = log, ident, body, recorded
        self.seq = -1
        self.done = False
        self.error: BaseException | None = None
        self.woken = threading.Event()


class Row(NamedTuple):
    """One queued event: its order, id, JSON bytes and when it was recorded (Unix seconds)."""

    seq: int
    id: str
    body: bytes
    recorded: float


class Queue(Protocol):
    """What the delivery loop needs from a queue (the spool, or memory for ``drop``)."""

    def put(self, log: str, ident: str, body: bytes, recorded: float) -> int: ...
    def sync(self, timeout: float | None) -> bool: ...
    def peek(self, log: str, limit: int) -> list[Row]: ...
    def remove(self, seqs: list[int]) -> None: ...
    def reject(self, log: str, row: Row, *, status: int, field: str, reason: str,
               at: float) -> None: ...
    def first_seq(self, log: str) -> int | None: ...
    def last_seq(self, log: str) -> int | None: ...
    def count(self, log: str) -> int: ...
    def kept_checkpoint(self, log: str, vkey: str) -> str | None: ...
    def keep_checkpoint(self, log: str, vkey: str, note: str) -> None: ...
    def close(self) -> None: ...


def default_spool_path(base_url: str, log: str) -> Path:
    """``$XDG_STATE_HOME/sealtrail/spool-<hash of url and log>.db`` (~/.local/state by default)."""
    state = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    digest = hashlib.sha256(f"{base_url}\n{log}".encode()).hexdigest()[:16]
    return Path(state) / "sealtrail" / f"spool-{digest}.db"


class Spool:
    """The durable queue: one SQLite file, safe for several threads and processes."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        if not self.path.exists():
            os.close(os.open(self.path, os.O_WRONLY | os.O_CREAT, 0o600))
        self._lock = threading.Lock()
        # Group commit: puts waiting for a commit, and whether a thread is writing them.
        self._queued = threading.Lock()
        self._waiting: list[_Put] = []
        self._writing = False
        self.commits = 0  # transactions that carried puts (a test and a benchmark read it)
        try:
            self._db = sqlite3.connect(str(self.path), isolation_level=None,
                                       check_same_thread=False, timeout=BUSY_TIMEOUT_S)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute("PRAGMA secure_delete=ON")
            self._db.executescript(_SCHEMA)
        except sqlite3.Error as exc:
            raise ClientError(f"cannot open the spool {self.path}: {exc}") from exc

    def close(self) -> None:
        """Close the file (everything put is already on disk)."""
        with self._lock:
            self._db.close()

    def put(self, log: str, ident: str, body: bytes, recorded: float) -> int:
        """Append an event durably (committed with fsync) and return its ``seq``; an id
        already queued is kept once. Concurrent puts share a commit (module docstring)."""
        mine = _Put(log, ident, body, recorded)
        with self._queued:
            self._waiting.append(mine)
            writer = not self._writing
            self._writing = True
        if not writer:
            try:
                mine.woken.wait()  # done, or handed the writing by the thread before
            except BaseException:
                self._abandon(mine)  # interrupted (Ctrl-C): never leave the queue stuck
                raise
        if not mine.done:
            self._write_until_done(mine)
        if mine.error is not None:
            raise mine.error
        return mine.seq

    def sync(self, timeout: float | None) -> bool:
        """Everything put is durable already (each ``put`` returns only then): True."""
        return True

    def put_many(self, rows: list[tuple[str, str, bytes, float]]) -> None:
        """Append ``(log, id, body, recorded)`` rows durably, in order, in one transaction (one
        fsync); an id already queued is kept once. Raises ClientError, and then none of them
        is kept. The group-durable writer's commit (:mod:`sealtrail.client.groupspool`)."""
        try:
            with self._lock:
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    self._db.executemany(_INSERT_MANY, rows)
                    self._db.execute("COMMIT")
                except BaseException:
                    self._db.execute("ROLLBACK")
                    raise
                self.commits += 1
        except sqlite3.Error as exc:
            raise ClientError(f"cannot write to the spool {self.path}: {exc}") from exc

    def _abandon(self, mine: _Put) -> None:
        """A waiting put whose thread was interrupted: take it out of the queue, or, when it
        was already handed the writing, hand that on (or stop) so later puts still run."""
        with self._queued:
            if mine in self._waiting:
                self._waiting.remove(mine)
                return
            handed = mine.woken.is_set() and not mine.done
            if handed:
                if self._waiting:
                    self._waiting[0].woken.set()
                else:
                    self._writing = False

    def _write_until_done(self, mine: _Put) -> None:
        """As the writing thread: commit everything queued (``mine`` among it), then hand the
        writing to the oldest put still waiting, woken alone (no herd of waiters), or stop."""
        try:
            while not mine.done:
                with self._queued:
                    batch, self._waiting = self._waiting, []
                self._commit(batch)
        finally:
            with self._queued:
                if self._waiting:
                    self._waiting[0].woken.set()
                else:
                    self._writing = False

    def _commit(self, batch: list[_Put]) -> None:
        """Write ``batch`` in one transaction; every put in it learns its seq or the error."""
        try:
            with self._lock:
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    for put in batch:
                        row = self._db.execute(
                            _INSERT, (put.log, put.ident, put.body, put.recorded)).fetchone()
                        if row is None:  # already queued: keep the first, answer its seq
                            row = self._db.execute("SELECT seq FROM events WHERE id = ?",
                                                   (put.ident,)).fetchone()
                        put.seq = int(row[0])
                    self._db.execute("COMMIT")
                except BaseException:
                    self._db.execute("ROLLBACK")
                    raise
                self.commits += 1
        except sqlite3.Error as exc:
            error: BaseException = ClientError(f"cannot write to the spool {self.path}: {exc}")
            error.__cause__ = exc
            for put in batch:
                put.error = error
        except BaseException as exc:  # e.g. KeyboardInterrupt in the writing thread
            for put in batch:  # the other callers get an error of their own, not the signal
                put.error = ClientError(f"the spool write was interrupted "
                                        f"({type(exc).__name__}); nothing of it was kept")
            raise
        finally:
            for put in batch:
                put.done = True
                put.woken.set()

    def peek(self, log: str, limit: int) -> list[Row]:
        """The oldest ``limit`` events of ``log``, oldest first."""
        with self._lock:
            rows = self._db.execute("SELECT seq, id, body, recorded FROM events WHERE log = ? "
                                    "ORDER BY seq LIMIT ?", (log, limit)).fetchall()
        return [Row(seq, ident, bytes(body), recorded) for seq, ident, body, recorded in rows]

    def remove(self, seqs: list[int]) -> None:
        """Forget acknowledged events (one transaction), then scrub them from the files.

        ``secure_delete`` zeroed the rows in the pages this transaction wrote; the older copies
        of those pages sit in the WAL, so the WAL is checkpointed into the database and
        truncated (one checkpoint per delivered batch, not per event).
        """
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.executemany("DELETE FROM events WHERE seq = ?", [(s,) for s in seqs])
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")
            self._scrub()

    def _scrub(self) -> bool:
        """Checkpoint the WAL into the database and truncate it to zero bytes.

        Waits at most :data:`SCRUB_WAIT_MS` for another connection's transaction (a second
        process on the same spool); when one is still open the WAL is left as it is and the
        next delivered batch tries again. Returns whether the WAL was emptied.
        """
        try:
            self._db.execute(f"PRAGMA busy_timeout={SCRUB_WAIT_MS}")
            try:
                busy, _, _ = self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
            finally:
                self._db.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_S * 1000}")
        except sqlite3.Error:
            return False  # the rows are deleted; their old page copies go at the next batch
        return not busy

    def scrub(self) -> bool:
        """Empty the WAL now (see :meth:`remove`); whether it worked."""
        with self._lock:
            return self._scrub()

    def reject(self, log: str, row: Row, *, status: int, field: str, reason: str,
               at: float) -> None:
        """Move an event the service refused for good to the ``rejected`` table."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.execute("INSERT OR REPLACE INTO rejected VALUES (?, ?, ?, ?, ?, ?, ?)",
                                 (row.id, log, row.body, status, field, reason[:2000], at))
                self._db.execute("DELETE FROM events WHERE seq = ?", (row.seq,))
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def first_seq(self, log: str) -> int | None:
        """The ``seq`` of the oldest queued event of ``log``."""
        with self._lock:
            row = self._db.execute("SELECT MIN(seq) FROM events WHERE log = ?", (log,)).fetchone()
        return None if row[0] is None else int(row[0])

    def last_seq(self, log: str) -> int | None:
        """The ``seq`` of the newest queued event of ``log``."""
        with self._lock:
            row = self._db.execute("SELECT MAX(seq) FROM events WHERE log = ?", (log,)).fetchone()
        return None if row[0] is None else int(row[0])

    def count(self, log: str) -> int:
        """How many events of ``log`` wait."""
        with self._lock:
            row = self._db.execute("SELECT COUNT(*) FROM events WHERE log = ?", (log,)).fetchone()
        return int(row[0])

    def kept_checkpoint(self, log: str, vkey: str) -> str | None:
        """The newest checkpoint note verified for ``log`` under ``vkey``."""
        with self._lock:
            row = self._db.execute("SELECT note FROM checkpoints WHERE log = ? AND vkey = ?",
                                   (log, vkey)).fetchone()
        return None if row is None else str(row[0])

    def keep_checkpoint(self, log: str, vkey: str, note: str) -> None:
        """Remember a newly verified checkpoint note (durably)."""
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO checkpoints VALUES (?, ?, ?)",
                             (log, vkey, note))


class MemoryQueue:
    """The ``drop`` mode's queue: bounded, in memory, gone with the process."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._rows: deque[tuple[str, Row]] = deque()
        self._next = 1
        self._lock = threading.Lock()
        self._checkpoints: dict[tuple[str, str], str] = {}

    def close(self) -> None:
        """Forget everything."""
        with self._lock:
            self._rows.clear()

    def put(self, log: str, ident: str, body: bytes, recorded: float) -> int:
        """Queue an event; ``-1`` (nothing queued) when the queue is full."""
        with self._lock:
            if len(self._rows) >= self.capacity:
                return -1
            seq, self._next = self._next, self._next + 1
            self._rows.append((log, Row(seq, ident, body, recorded)))
        return seq

    def sync(self, timeout: float | None) -> bool:
        """Nothing in memory is ever durable, and nothing waits to be: True."""
        return True

    def peek(self, log: str, limit: int) -> list[Row]:
        """The oldest ``limit`` events of ``log``."""
        with self._lock:
            out = []
            for name, row in self._rows:
                if name == log:
                    out.append(row)
                    if len(out) == limit:
                        break
        return out

    def remove(self, seqs: list[int]) -> None:
        """Forget these events."""
        gone = set(seqs)
        with self._lock:
            self._rows = deque(item for item in self._rows if item[1].seq not in gone)

    def reject(self, log: str, row: Row, *, status: int, field: str, reason: str,
               at: float) -> None:
        """Forget a refused event (the client logs and reports it)."""
        self.remove([row.seq])

    def first_seq(self, log: str) -> int | None:
        """The oldest queued ``seq`` of ``log``."""
        with self._lock:
            return next((row.seq for name, row in self._rows if name == log), None)

    def last_seq(self, log: str) -> int | None:
        """The newest queued ``seq`` of ``log``."""
        with self._lock:
            return next((row.seq for name, row in reversed(self._rows) if name == log), None)

    def count(self, log: str) -> int:
        """How many events of ``log`` wait."""
        with self._lock:
            return sum(1 for name, _ in self._rows if name == log)

    def kept_checkpoint(self, log: str, vkey: str) -> str | None:
        """The newest checkpoint verified in this process."""
        return self._checkpoints.get((log, vkey))

    def keep_checkpoint(self, log: str, vkey: str, note: str) -> None:
        """Remember a verified checkpoint for this process's lifetime."""
        self._checkpoints[(log, vkey)] = note
