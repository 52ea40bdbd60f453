"""The monitor's delivery outbox in SQLite: one file (``DATA/_monitor/outbox.db``), WAL mode,
``synchronous=FULL``, ``secure_delete`` on, made 0600 in a 0700 directory.

One connection in autocommit mode shared by the dispatcher's threads, every method one short
statement or transaction under one lock; SQLite's own locking makes the file safe for other
processes. Opened read-only (compliance reports), it runs no pragma and writes nothing, and
its writing methods are refused.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from sealtrail.core.errors import StorageError
from sealtrail.store.outbox import DeliveredRow, Finished, OutboxRow

_SCHEMA = """
CREATE TABLE IF NOT EXISTS deliveries(
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    alert_id TEXT NOT NULL,
    status TEXT NOT NULL,
    sink TEXT NOT NULL,
    body BLOB NOT NULL,
    state TEXT NOT NULL DEFAULT 'pending'
        CHECK (state IN ('pending', 'delivered', 'failed')),
    attempts INTEGER NOT NULL DEFAULT 0,
    created REAL NOT NULL,
    next_at REAL NOT NULL,
    finished REAL,
    last_error TEXT,
    UNIQUE(alert_id, status, sink));
CREATE INDEX IF NOT EXISTS deliveries_due ON deliveries(sink, state, next_at);
"""


class SQLiteOutboxRows:
    """Outbox rows in the SQLite file ``path`` (created, with its directory, when missing;
    read-only: it must exist)."""

    def __init__(self, path: Path, *, readonly: bool = False) -> None:
        self.path = path
        self._readonly = readonly
        self._lock = threading.Lock()
        if readonly:
            try:
                self._db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True,
                                           check_same_thread=False, timeout=30)
            except sqlite3.Error as exc:
                raise StorageError(f"cannot read the alert outbox {path}: {exc}") from exc
            return
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        try:
            if not path.exists():
                os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
            self._db = sqlite3.connect(str(path), isolation_level=None,
                                       check_same_thread=False, timeout=30)
        except (OSError, sqlite3.Error) as exc:
            raise StorageError(f"cannot open the alert outbox {path}: {exc}") from exc
        try:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute("PRAGMA secure_delete=ON")  # rewritten bodies leave no copy
            self._db.executescript(_SCHEMA)
        except sqlite3.Error as exc:
            self._db.close()
            raise StorageError(f"cannot open the alert outbox {path}: {exc}") from exc

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _run(self, sql: str, params: Sequence[Any] = (), *, write: bool = True) -> list[Any]:
        if write and self._readonly:
            raise StorageError(f"the alert outbox {self.path} is open read-only")
        with self._lock:
            try:
                return self._db.execute(sql, params).fetchall()
            except sqlite3.Error as exc:
                if self._readonly:
                    raise StorageError(f"cannot read the alert outbox {self.path}: {exc}"
                                       ) from exc
                raise StorageError(f"alert outbox {self.path}: {exc}") from exc

    def enqueue(self, alert_id: str, status: str, body: bytes, sinks: Sequence[str],
                now: float) -> int:
        if self._readonly:
            raise StorageError(f"the alert outbox {self.path} is open read-only")
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    added = 0
                    for sink in sinks:
                        cur = self._db.execute(
                            "INSERT INTO deliveries(alert_id, status, sink, body, created, "
                            "next_at) VALUES (?, ?, ?, ?, ?, ?) "
                            "ON CONFLICT(alert_id, status, sink) DO NOTHING",
                            (alert_id, status, sink, body, now, now))
                        added += cur.rowcount
                    self._db.execute("COMMIT")
                except BaseException:
                    if self._db.in_transaction:  # also when COMMIT itself failed
                        self._db.execute("ROLLBACK")
                    raise
            except sqlite3.Error as exc:
                raise StorageError(f"cannot write to the alert outbox {self.path}: {exc}"
                                   ) from exc
        return added

    def next_row(self, sink: str) -> OutboxRow | None:
        rows = self._run("SELECT seq, alert_id, body, attempts, created, next_at FROM deliveries"
                         " WHERE sink = ? AND state = 'pending' ORDER BY next_at, seq LIMIT 1",
                         (sink,), write=False)
        if not rows:
            return None
        seq, alert_id, body, attempts, created, next_at = rows[0]
        return OutboxRow(int(seq), str(alert_id), bytes(body), int(attempts), float(created),
                         float(next_at))

    def finish(self, seq: int, state: Finished, now: float, error: str | None) -> None:
        self._run("UPDATE deliveries SET state = ?, finished = ?, last_error = ?, "
                  "attempts = attempts + 1 WHERE seq = ?", (state, now, error, seq))

    def expire(self, seq: int, now: float, error: str) -> None:
        self._run("UPDATE deliveries SET state = 'failed', finished = ?, last_error = ? "
                  "WHERE seq = ?", (now, error, seq))

    def reschedule(self, seq: int, next_at: float, error: str) -> None:
        self._run("UPDATE deliveries SET next_at = ?, last_error = ?, attempts = attempts + 1 "
                  "WHERE seq = ?", (next_at, error, seq))

    def pending(self) -> dict[str, int]:
        rows = self._run("SELECT sink, COUNT(*) FROM deliveries WHERE state = 'pending' "
                         "GROUP BY sink", write=False)
        return {str(sink): int(n) for sink, n in rows}

    def prune(self, before: float) -> None:
        self._run("DELETE FROM deliveries WHERE state != 'pending' AND finished < ?", (before,))

    def rewrite(self, alert_id: str, change: Callable[[bytes], bytes | None]) -> int:
        rows = self._run("SELECT seq, body FROM deliveries WHERE alert_id = ?", (alert_id,),
                         write=False)
        done = 0
        for seq, body in rows:
            new = change(bytes(body))
            if new is not None:
                self._run("UPDATE deliveries SET body = ? WHERE seq = ?", (new, seq))
                done += 1
        return done

    def purge_deleted(self) -> None:
        """Fold the write-ahead log into the file and truncate it (``secure_delete`` has
        already zeroed the pages freed in the file itself)."""
        self._run("PRAGMA wal_checkpoint(TRUNCATE)")

    def delivered(self) -> list[DeliveredRow]:
        rows = self._run("SELECT sink, body, finished FROM deliveries "
                         "WHERE state = 'delivered' ORDER BY seq", write=False)
        return [DeliveredRow(str(sink), bytes(body), None if finished is None
                             else float(finished)) for sink, body, finished in rows]

    def sinks(self) -> set[str]:
        return {str(row[0]) for row in self._run("SELECT DISTINCT sink FROM deliveries",
                                                 write=False)}
