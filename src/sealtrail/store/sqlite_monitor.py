"""The monitor's rows in SQLite: one file (``DATA/_monitor/monitor.db``), WAL mode,
``synchronous=FULL``, ``secure_delete``, made 0600 in a 0700 directory.

One connection in autocommit mode, shared by the monitor's threads behind one lock (held for
a whole transaction); SQLite's own locking makes the file safe for several processes (the
monitor, the service's API, the CLI). A file made before the changes queue or the subject
links existed gains their tables on open.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sealtrail.core.errors import StorageError
from sealtrail.store.monitor_state import AlertRow, Cursor, QueuedChange

_SCHEMA = """
CREATE TABLE IF NOT EXISTS alerts(
    id TEXT PRIMARY KEY,
    log TEXT NOT NULL,
    rule TEXT NOT NULL,
    key TEXT NOT NULL,
    title TEXT NOT NULL,
    severity TEXT NOT NULL,
    status TEXT NOT NULL,
    first_seen TEXT NOT NULL,
    last_seen TEXT NOT NULL,
    count INTEGER NOT NULL,
    entries TEXT NOT NULL,
    clauses TEXT NOT NULL,
    message TEXT NOT NULL,
    opened_index INTEGER,
    updated_at TEXT NOT NULL,
    updated_by TEXT NOT NULL,
    note TEXT NOT NULL DEFAULT '');
CREATE TABLE IF NOT EXISTS changes(
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    alert_id TEXT NOT NULL,
    status TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS alerts_group ON alerts(log, rule, key, status);
CREATE INDEX IF NOT EXISTS alerts_list ON alerts(log, status, last_seen);
CREATE TABLE IF NOT EXISTS alert_subjects(
    alert_id TEXT NOT NULL,
    ref TEXT NOT NULL,
    PRIMARY KEY(ref, alert_id)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS cursors(
    log TEXT PRIMARY KEY,
    next_index INTEGER NOT NULL,
    state TEXT NOT NULL);
"""

_COLUMNS = ("id, log, rule, key, title, severity, status, first_seen, last_seen, count, "
            "entries, clauses, message, opened_index, updated_at, updated_by, note")
_JOINED = ", ".join("a." + column for column in _COLUMNS.split(", "))


class SQLiteAlertRows:
    """The monitor's rows in the SQLite file ``path`` (created, with its directory, when
    missing)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o600)
            os.close(fd)
            self._db = sqlite3.connect(str(path), isolation_level=None,
                                       check_same_thread=False, timeout=30.0)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            # Deleted and rewritten rows (subject erasure) are overwritten, not left in free
            # pages for anyone with the file to read.
            self._db.execute("PRAGMA secure_delete=ON")
            self._db.executescript(_SCHEMA)
        except (OSError, sqlite3.Error) as exc:
            raise StorageError(f"cannot open the monitor database {path}: {exc}") from exc
        self._lock = threading.RLock()

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """BEGIN IMMEDIATE; a nested one joins the outer."""
        with self._lock:
            if self._db.in_transaction:
                yield
                return
            try:
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    yield
                    self._db.execute("COMMIT")
                except BaseException:
                    if self._db.in_transaction:  # also when COMMIT itself failed
                        self._db.execute("ROLLBACK")
                    raise
            except sqlite3.Error as exc:
                raise StorageError(f"monitor database: {exc}") from exc

    def _q(self, sql: str, args: tuple[Any, ...] = ()) -> list[Any]:
        with self._lock:
            try:
                return self._db.execute(sql, args).fetchall()
            except sqlite3.Error as exc:
                raise StorageError(f"monitor database: {exc}") from exc

    def _changed(self, sql: str, args: tuple[Any, ...]) -> int:
        with self._lock:
            try:
                return self._db.execute(sql, args).rowcount
            except sqlite3.Error as exc:
                raise StorageError(f"monitor database: {exc}") from exc

    # -- alerts -------------------------------------------------------------------------------

    def get(self, alert_id: str) -> AlertRow | None:
        rows = self._q(f"SELECT {_COLUMNS} FROM alerts WHERE id = ?",  # noqa: S608
                       (alert_id,))
        return _row(rows[0]) if rows else None

    def current(self, log: str, rule: str, key: str) -> AlertRow | None:
        rows = self._q(f"SELECT {_COLUMNS} FROM alerts "  # noqa: S608 - constant columns
                       "WHERE log = ? AND rule = ? AND key = ? "
                       "AND status != 'resolved' ORDER BY last_seen DESC, id DESC LIMIT 1",
                       (log, rule, key))
        return _row(rows[0]) if rows else None

    def put(self, row: AlertRow) -> None:
        a = row
        # An upsert, not INSERT OR REPLACE: what a later put does not change (the key and
        # message an erasure scrubbed, the first sighting, the title) stays as stored.
        self._q(f"INSERT INTO alerts({_COLUMNS}) VALUES "  # noqa: S608
                "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(id) DO UPDATE "
                "SET status = excluded.status, last_seen = excluded.last_seen, "
                "count = excluded.count, entries = excluded.entries, "
                "opened_index = excluded.opened_index, updated_at = excluded.updated_at, "
                "updated_by = excluded.updated_by, note = excluded.note",
                (a.id, a.log, a.rule, a.key, a.title, a.severity, a.status, a.first_seen,
                 a.last_seen, a.count, a.entries, a.clauses, a.message, a.opened_index,
                 a.updated_at, a.updated_by, a.note))

    def update_group(self, alert_id: str, count: int, last_seen: str, entries: str) -> bool:
        return self._changed("UPDATE alerts SET count = ?, last_seen = ?, entries = ? "
                             "WHERE id = ? AND status != 'resolved'",
                             (count, last_seen, entries, alert_id)) == 1

    def set_opened(self, alert_id: str, index: int) -> None:
        self._q("UPDATE alerts SET opened_index = ? WHERE id = ?", (index, alert_id))

    def rewrite(self, alert_id: str, key: str, message: str) -> None:
        self._q("UPDATE alerts SET key = ?, message = ? WHERE id = ?", (key, message, alert_id))

    def listing(self, *, log: str | None, status: str | None, severity: str | None,
                rule: str | None, before: str | None, limit: int) -> list[AlertRow]:
        where, args = ["1"], list[Any]()
        for col, value in (("log", log), ("status", status), ("severity", severity),
                           ("rule", rule)):
            if value is not None:
                where.append(f"{col} = ?")
                args.append(value)
        if before is not None:
            where.append("last_seen < ?")
            args.append(before)
        # Columns and clauses are constants of this module; every value is bound.
        rows = self._q(f"SELECT {_COLUMNS} FROM alerts WHERE {' AND '.join(where)} "  # noqa: S608
                       "ORDER BY last_seen DESC, id LIMIT ?", (*args, limit))
        return [_row(r) for r in rows]

    def unrecorded(self, limit: int) -> list[AlertRow]:
        rows = self._q(f"SELECT {_COLUMNS} FROM alerts "  # noqa: S608 - constant columns
                       "WHERE opened_index IS NULL AND log != '' ORDER BY rowid LIMIT ?",
                       (limit,))
        return [_row(r) for r in rows]

    def counts(self) -> dict[tuple[str, str, str], int]:
        return {(r[0], r[1], r[2]): int(r[3]) for r in
                self._q("SELECT log, status, severity, count(*) FROM alerts "
                        "GROUP BY log, status, severity")}

    # -- subjects -----------------------------------------------------------------------------

    def link_subjects(self, alert_id: str, refs: Iterable[str]) -> None:
        rows = [(alert_id, ref) for ref in set(refs)]
        if rows:
            with self._lock:
                try:
                    self._db.executemany("INSERT OR IGNORE INTO alert_subjects(alert_id, ref) "
                                         "VALUES (?, ?)", rows)
                except sqlite3.Error as exc:
                    raise StorageError(f"monitor database: {exc}") from exc

    def subject_alerts(self, ref: str) -> list[AlertRow]:
        rows = self._q(f"SELECT {_JOINED} "  # noqa: S608 - constant columns
                       "FROM alerts a JOIN alert_subjects s ON s.alert_id = a.id "
                       "WHERE s.ref = ? ORDER BY a.id", (ref,))
        return [_row(r) for r in rows]

    def unlink_subject(self, ref: str) -> None:
        self._q("DELETE FROM alert_subjects WHERE ref = ?", (ref,))

    def purge_deleted(self) -> None:
        """Fold the write-ahead log into the database and truncate it, so the pages of rows
        rewritten or deleted survive in neither file (``secure_delete`` zeroes the freed
        ones)."""
        self._q("PRAGMA wal_checkpoint(TRUNCATE)")

    # -- the changes queue --------------------------------------------------------------------

    def queue_change(self, alert_id: str, status: str) -> None:
        self._q("INSERT INTO changes(alert_id, status) VALUES (?, ?)", (alert_id, status))

    def changes(self, limit: int) -> list[QueuedChange]:
        return [QueuedChange(int(s), str(a), str(st)) for s, a, st in
                self._q("SELECT seq, alert_id, status FROM changes ORDER BY seq LIMIT ?",
                        (limit,))]

    def change_sent(self, seq: int) -> None:
        self._q("DELETE FROM changes WHERE seq = ?", (seq,))

    # -- cursors ------------------------------------------------------------------------------

    def cursor(self, log: str) -> Cursor | None:
        rows = self._q("SELECT next_index, state FROM cursors WHERE log = ?", (log,))
        return Cursor(int(rows[0][0]), str(rows[0][1])) if rows else None

    def put_cursor(self, log: str, cursor: Cursor) -> None:
        self._q("INSERT OR REPLACE INTO cursors VALUES (?, ?, ?)",
                (log, cursor.next_index, cursor.state))


def _row(r: tuple[Any, ...]) -> AlertRow:
    return AlertRow(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8], int(r[9]), r[10],
                    r[11], r[12], None if r[13] is None else int(r[13]), r[14], r[15], r[16])
