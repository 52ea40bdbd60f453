"""Alerts: what the monitor raised, their lifecycle, and the monitor's own state.

An alert's authoritative record is the log itself: opening, acknowledging and resolving an
alert each append an event (category ``system``; actions ``alert.open``, ``alert.acknowledge``,
``alert.resolve``) naming who and why — PCI DSS 10.4.3 asks that anomalies be addressed and
the handling recorded. This module keeps, beside the log, an index of alerts for listing and
de-duplication, and the rule engine's cursor and state per log, in
``<data dir>/_monitor/monitor.db`` (SQLite, WAL, 0600). Losing that file loses no record: the
events are in the log.

Notification: opening, acknowledging and resolving an alert each queue a change (``changes``)
in the same transaction; the monitor's loop hands the queued changes, in order, to the
dispatcher, so a change made by another process — the service's API, the CLI — reaches the
sinks too, and none is lost to a crash in between.

Grouping: while an alert for the same (log, rule, key) is open or acknowledged and was last
seen within the de-duplication window, a new detection updates it (count, last seen, evidence)
instead of opening another, and no one is notified again.
"""

from __future__ import annotations

import builtins
import json
import os
import sqlite3
import threading
import uuid
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from sealtrail.core.errors import ConfigError, StorageError
from sealtrail.monitor.privacy import scrub

STATUSES: Final = ("open", "acknowledged", "resolved")
SEVERITIES: Final = ("low", "medium", "high", "critical")
MAX_EVIDENCE: Final = 100
MONITOR_DIR: Final = "_monitor"

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


@dataclass(slots=True)
class Alert:
    """One alert as listed (the shape sinks receive, see docs/alerts.md)."""

    id: str
    log: str
    rule: str
    key: str
    title: str
    severity: str
    status: str
    first_seen: str
    last_seen: str
    count: int
    entries: list[int] = field(default_factory=list)
    clauses: list[str] = field(default_factory=list)
    message: str = ""
    opened_index: int | None = None
    updated_at: str = ""
    updated_by: str = ""
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (API, CLI, sinks)."""
        return {"id": self.id, "log": self.log, "rule": self.rule, "key": self.key,
                "title": self.title, "severity": self.severity, "status": self.status,
                "first_seen": self.first_seen, "last_seen": self.last_seen,
                "count": self.count, "entries": self.entries, "clauses": self.clauses,
                "message": self.message, "opened_index": self.opened_index,
                "updated_at": self.updated_at, "updated_by": self.updated_by,
                "note": self.note}


def new_alert_id() -> str:
    """A random alert id (UUIDv4 text)."""
    return str(uuid.uuid4())


def monitor_db_path(data_dir: str | os.PathLike[str]) -> Path:
    """Where the monitor keeps its index and state for a data directory."""
    return Path(data_dir) / MONITOR_DIR / "monitor.db"


def alerting_evidence(data_dir: str | os.PathLike[str]) -> dict[str, Any] | None:
    """What a compliance report can show of alerting, from the monitor's own files: how many
    sinks delivered a test alert (``sealtrail alerts test``), when the last one arrived, and
    whether the service's monitor and integrity watch have run. None: never monitored."""
    from sealtrail.core.timefmt import format_time  # noqa: PLC0415 - reports only
    from sealtrail.monitor.dispatch import delivered_of_rule  # noqa: PLC0415

    if not monitor_db_path(data_dir).exists():
        return None
    tested, last, known = delivered_of_rule(Path(data_dir) / MONITOR_DIR / "outbox.db",
                                            "builtin.alert_test")
    when = (format_time(datetime.fromtimestamp(last, UTC)) if last is not None else None)
    return {"sinks": len(known), "integrity_watch": True, "last_test_alert": when,
            "tested_sinks": sorted(tested)}


def _row(r: tuple[Any, ...]) -> Alert:
    return Alert(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8], int(r[9]),
                 json.loads(r[10]), json.loads(r[11]), r[12],
                 None if r[13] is None else int(r[13]), r[14], r[15], r[16])


_COLUMNS = ("id, log, rule, key, title, severity, status, first_seen, last_seen, count, "
            "entries, clauses, message, opened_index, updated_at, updated_by, note")


class AlertStore:
    """The alert index and the engine's per-log state (thread-safe; several processes may
    share the file)."""

    def __init__(self, path: Path) -> None:
        self.path = path
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
        """Close the database."""
        with self._lock:
            self._db.close()

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """One write transaction (BEGIN IMMEDIATE); a nested one joins the outer."""
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

    # -- alerts -------------------------------------------------------------------------------

    def get(self, alert_id: str) -> Alert | None:
        """One alert by id."""
        rows = self._q(f"SELECT {_COLUMNS} FROM alerts WHERE id = ?",  # noqa: S608
                       (alert_id,))
        return _row(rows[0]) if rows else None

    def current(self, log: str, rule: str, key: str) -> Alert | None:
        """The latest open or acknowledged alert of (log, rule, key), if any."""
        rows = self._q(f"SELECT {_COLUMNS} FROM alerts "  # noqa: S608 - constant columns
                       "WHERE log = ? AND rule = ? AND key = ? "
                       "AND status != 'resolved' ORDER BY last_seen DESC LIMIT 1",
                       (log, rule, key))
        return _row(rows[0]) if rows else None

    def put(self, alert: Alert) -> None:
        """Insert or replace an alert (inside :meth:`transaction` or alone)."""
        a = alert
        # An upsert, not INSERT OR REPLACE: the row's ``notified`` mark must survive updates.
        self._q(f"INSERT INTO alerts({_COLUMNS}) VALUES "  # noqa: S608
                "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(id) DO UPDATE "
                "SET status = excluded.status, last_seen = excluded.last_seen, "
                "count = excluded.count, entries = excluded.entries, "
                "opened_index = excluded.opened_index, updated_at = excluded.updated_at, "
                "updated_by = excluded.updated_by, note = excluded.note",
                (a.id, a.log, a.rule, a.key, a.title, a.severity, a.status, a.first_seen,
                 a.last_seen, a.count, json.dumps(a.entries[-MAX_EVIDENCE:]),
                 json.dumps(a.clauses), a.message, a.opened_index, a.updated_at, a.updated_by,
                 a.note))

    def update_group(self, alert: Alert) -> bool:
        """Fold a detection into a stored alert: count, last seen and evidence only (never its
        status or who changed it, which another process may have just set). False when the
        alert was resolved meanwhile: the caller opens a new one."""
        with self._lock:
            try:
                cur = self._db.execute(
                    "UPDATE alerts SET count = ?, last_seen = ?, entries = ? "
                    "WHERE id = ? AND status != 'resolved'",
                    (alert.count, alert.last_seen, json.dumps(alert.entries[-MAX_EVIDENCE:]),
                     alert.id))
            except sqlite3.Error as exc:
                raise StorageError(f"monitor database: {exc}") from exc
            return cur.rowcount == 1

    def link_subjects(self, alert_id: str, refs: Iterable[str]) -> None:
        """Note that the alert's evidence names these data subjects (their ``ref:``
        pseudonyms), so erasing one of them finds the alert."""
        rows = [(alert_id, ref) for ref in set(refs)]
        if rows:
            with self._lock:
                try:
                    self._db.executemany("INSERT OR IGNORE INTO alert_subjects(alert_id, ref) "
                                         "VALUES (?, ?)", rows)
                except sqlite3.Error as exc:
                    raise StorageError(f"monitor database: {exc}") from exc

    def subject_alerts(self, ref: str) -> builtins.list[Alert]:
        """The alerts whose evidence names the data subject ``ref``."""
        rows = self._q(f"SELECT {', '.join('a.' + c for c in _COLUMNS.split(', '))} "  # noqa: S608
                       "FROM alerts a JOIN alert_subjects s ON s.alert_id = a.id "
                       "WHERE s.ref = ?", (ref,))
        return [_row(r) for r in rows]

    def erase_subject(self, ref: str) -> builtins.list[tuple[Alert, str]]:
        """A data subject was erased: in every alert whose evidence names it, each
        pseudonym in the key and message becomes ``(erased)``, and the link to the subject is
        deleted (inside :meth:`transaction` or alone). Returns the changed alerts with their
        former keys. Evidence (log indexes) is kept: the entries now read as erased."""
        changed: list[tuple[Alert, str]] = []
        with self.transaction():
            for alert in self.subject_alerts(ref):
                old = alert.key
                alert.key, alert.message = scrub(alert.key), scrub(alert.message)
                self._q("UPDATE alerts SET key = ?, message = ? WHERE id = ?",
                        (alert.key, alert.message, alert.id))
                changed.append((alert, old))
            self._q("DELETE FROM alert_subjects WHERE ref = ?", (ref,))
        return changed

    def purge_files(self) -> None:
        """Fold the write-ahead log into the database and truncate it, so the pages of
        rows rewritten by an erasure survive in neither file."""
        self._q("PRAGMA wal_checkpoint(TRUNCATE)")

    def unrecorded(self, limit: int = 500) -> builtins.list[Alert]:
        """Alerts of a log whose ``alert.open`` event is not in the log yet (a crash came
        between the alert's commit here and its append there)."""
        rows = self._q(f"SELECT {_COLUMNS} FROM alerts "  # noqa: S608 - constant columns
                       "WHERE opened_index IS NULL AND log != '' LIMIT ?", (limit,))
        return [_row(r) for r in rows]

    def set_opened(self, alert_id: str, index: int) -> None:
        """Note the index of the alert's ``alert.open`` event in its log."""
        self._q("UPDATE alerts SET opened_index = ? WHERE id = ?", (index, alert_id))

    def list(self, log: str | None = None, *, status: str | None = None,
             severity: str | None = None, rule: str | None = None, limit: int = 100,
             before: str | None = None) -> list[Alert]:
        """Alerts, newest first (by last seen), filtered; errors name the bad filter."""
        if status is not None and status not in STATUSES:
            raise ConfigError(f"status: use one of {', '.join(STATUSES)}")
        if severity is not None and severity not in SEVERITIES:
            raise ConfigError(f"severity: use one of {', '.join(SEVERITIES)}")
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

    def queue_change(self, alert_id: str, status: str) -> None:
        """Queue a notification of the alert's new status (with the write that made it)."""
        self._q("INSERT INTO changes(alert_id, status) VALUES (?, ?)", (alert_id, status))

    def changes(self, limit: int = 500) -> builtins.list[tuple[int, str, str]]:
        """Queued notifications (seq, alert id, status), oldest first."""
        return [(int(s), str(a), str(st)) for s, a, st in
                self._q("SELECT seq, alert_id, status FROM changes ORDER BY seq LIMIT ?",
                        (limit,))]

    def change_sent(self, seq: int) -> None:
        """Remove a notification the dispatcher has taken."""
        self._q("DELETE FROM changes WHERE seq = ?", (seq,))

    def counts(self) -> dict[tuple[str, str, str], int]:
        """Alerts per (log, status, severity), for /metrics."""
        return {(r[0], r[1], r[2]): int(r[3]) for r in
                self._q("SELECT log, status, severity, count(*) FROM alerts "
                        "GROUP BY log, status, severity")}

    # -- engine state ---------------------------------------------------------------------------

    def cursor(self, log: str) -> tuple[int, dict[str, Any] | None]:
        """The next index to evaluate and the engine's saved state for a log."""
        rows = self._q("SELECT next_index, state FROM cursors WHERE log = ?", (log,))
        if not rows:
            return 0, None
        state = json.loads(rows[0][1])
        return int(rows[0][0]), state if isinstance(state, dict) else None

    def put_cursor(self, log: str, next_index: int, state: Mapping[str, Any]) -> None:
        """Save where the engine is and its state, together."""
        self._q("INSERT OR REPLACE INTO cursors VALUES (?, ?, ?)",
                (log, next_index, json.dumps(state, separators=(",", ":"))))
