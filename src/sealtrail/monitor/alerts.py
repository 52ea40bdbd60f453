"""Alerts: what the monitor raised, their lifecycle, and the monitor's own state.

An alert's authoritative record is the log itself: opening, acknowledging and resolving an
alert each append an event (category ``system``; actions ``alert.open``, ``alert.acknowledge``,
``alert.resolve``) naming who and why — PCI DSS 10.4.3 asks that anomalies be addressed and
the handling recorded. This module keeps, beside the log, an index of alerts for listing and
de-duplication, and the rule engine's cursor and state per log, in
``<data dir>/_monitor/monitor.db`` (SQLite, WAL, 0600). Losing that file loses no record: the
events are in the log. The rows are kept behind the
:class:`~sealtrail.store.monitor_state.AlertRows` protocol (the SQLite adapter is opened by
``log/datadir.py``); what they mean is decided here.

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
import uuid
from collections.abc import Iterable, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from sealtrail.core.errors import ConfigError
from sealtrail.log.datadir import open_alert_rows, service_rows_exist
from sealtrail.monitor.privacy import scrub
from sealtrail.store.monitor_state import AlertRow, AlertRows, Cursor

STATUSES: Final = ("open", "acknowledged", "resolved")
SEVERITIES: Final = ("low", "medium", "high", "critical")
MAX_EVIDENCE: Final = 100
MONITOR_DIR: Final = "_monitor"


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


def outbox_db_path(data_dir: str | os.PathLike[str]) -> Path:
    """Where the monitor's dispatcher keeps its delivery outbox for a data directory."""
    return Path(data_dir) / MONITOR_DIR / "outbox.db"


def alerting_evidence(data_dir: str | os.PathLike[str], store: str | None = None
                      ) -> dict[str, Any] | None:
    """What a compliance report can show of alerting, from the monitor's own files: how many
    sinks delivered a test alert (``sealtrail alerts test``), when the last one arrived, and
    whether the service's monitor and integrity watch have run. None: never monitored.
    ``store``: the monitor's rows in that PostgreSQL store instead of the directory's files."""
    from sealtrail.core.timefmt import format_time  # noqa: PLC0415 - reports only
    from sealtrail.monitor.dispatch import delivered_of_rule  # noqa: PLC0415

    if not service_rows_exist("alerts", monitor_db_path(data_dir), store):
        return None
    tested, last, known = delivered_of_rule(outbox_db_path(data_dir), "builtin.alert_test",
                                            store)
    when = (format_time(datetime.fromtimestamp(last, UTC)) if last is not None else None)
    return {"sinks": len(known), "integrity_watch": True, "last_test_alert": when,
            "tested_sinks": sorted(tested)}


def _alert(row: AlertRow) -> Alert:
    return Alert(row.id, row.log, row.rule, row.key, row.title, row.severity, row.status,
                 row.first_seen, row.last_seen, row.count, json.loads(row.entries),
                 json.loads(row.clauses), row.message, row.opened_index, row.updated_at,
                 row.updated_by, row.note)


def _evidence(entries: builtins.list[int]) -> str:
    """The JSON text of an alert's evidence as kept: its newest ``MAX_EVIDENCE`` indexes."""
    return json.dumps(entries[-MAX_EVIDENCE:])


class AlertStore:
    """The alert index and the engine's per-log state (thread-safe; several processes may
    share the file).

    ``AlertStore(path)`` keeps the rows in the SQLite file ``path`` (opened by
    ``log/datadir.py``); ``AlertStore(path, rows=...)`` over any other
    :class:`~sealtrail.store.monitor_state.AlertRows` (tests: ``MemoryAlertRows``), where
    ``path`` still names the monitor's directory (its loop lock). The rows only keep; what is
    grouped, scrubbed and kept as evidence is decided here.
    """

    def __init__(self, path: Path, *, rows: AlertRows | None = None) -> None:
        self.path = path
        self._rows = open_alert_rows(path) if rows is None else rows

    def close(self) -> None:
        """Close the database."""
        self._rows.close()

    def transaction(self) -> AbstractContextManager[None]:
        """One write transaction (the rows' unit of work); a nested one joins the outer."""
        return self._rows.transaction()

    # -- alerts -------------------------------------------------------------------------------

    def get(self, alert_id: str) -> Alert | None:
        """One alert by id."""
        found = self._rows.get(alert_id)
        return None if found is None else _alert(found)

    def current(self, log: str, rule: str, key: str) -> Alert | None:
        """The latest open or acknowledged alert of (log, rule, key), if any."""
        found = self._rows.current(log, rule, key)
        return None if found is None else _alert(found)

    def put(self, alert: Alert) -> None:
        """Insert or replace an alert (inside :meth:`transaction` or alone)."""
        a = alert
        self._rows.put(AlertRow(a.id, a.log, a.rule, a.key, a.title, a.severity, a.status,
                                a.first_seen, a.last_seen, a.count, _evidence(a.entries),
                                json.dumps(a.clauses), a.message, a.opened_index,
                                a.updated_at, a.updated_by, a.note))

    def update_group(self, alert: Alert) -> bool:
        """Fold a detection into a stored alert: count, last seen and evidence only (never its
        status or who changed it, which another process may have just set). False when the
        alert was resolved meanwhile: the caller opens a new one."""
        return self._rows.update_group(alert.id, alert.count, alert.last_seen,
                                       _evidence(alert.entries))

    def link_subjects(self, alert_id: str, refs: Iterable[str]) -> None:
        """Note that the alert's evidence names these data subjects (their ``ref:``
        pseudonyms), so erasing one of them finds the alert."""
        self._rows.link_subjects(alert_id, refs)

    def subject_alerts(self, ref: str) -> builtins.list[Alert]:
        """The alerts whose evidence names the data subject ``ref``."""
        return [_alert(row) for row in self._rows.subject_alerts(ref)]

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
                self._rows.rewrite(alert.id, alert.key, alert.message)
                changed.append((alert, old))
            self._rows.unlink_subject(ref)
        return changed

    def purge_files(self) -> None:
        """Fold the write-ahead log into the database and truncate it, so the pages of
        rows rewritten by an erasure survive in neither file."""
        self._rows.purge_deleted()

    def unrecorded(self, limit: int = 500) -> builtins.list[Alert]:
        """Alerts of a log whose ``alert.open`` event is not in the log yet (a crash came
        between the alert's commit here and its append there)."""
        return [_alert(row) for row in self._rows.unrecorded(limit)]

    def set_opened(self, alert_id: str, index: int) -> None:
        """Note the index of the alert's ``alert.open`` event in its log."""
        self._rows.set_opened(alert_id, index)

    def list(self, log: str | None = None, *, status: str | None = None,
             severity: str | None = None, rule: str | None = None, limit: int = 100,
             before: str | None = None) -> list[Alert]:
        """Alerts, newest first (by last seen), filtered; errors name the bad filter."""
        if status is not None and status not in STATUSES:
            raise ConfigError(f"status: use one of {', '.join(STATUSES)}")
        if severity is not None and severity not in SEVERITIES:
            raise ConfigError(f"severity: use one of {', '.join(SEVERITIES)}")
        return [_alert(row) for row in
                self._rows.listing(log=log, status=status, severity=severity, rule=rule,
                                   before=before, limit=limit)]

    def queue_change(self, alert_id: str, status: str) -> None:
        """Queue a notification of the alert's new status (with the write that made it)."""
        self._rows.queue_change(alert_id, status)

    def changes(self, limit: int = 500) -> builtins.list[tuple[int, str, str]]:
        """Queued notifications (seq, alert id, status), oldest first."""
        return [(c.seq, c.alert_id, c.status) for c in self._rows.changes(limit)]

    def change_sent(self, seq: int) -> None:
        """Remove a notification the dispatcher has taken."""
        self._rows.change_sent(seq)

    def counts(self) -> dict[tuple[str, str, str], int]:
        """Alerts per (log, status, severity), for /metrics."""
        return self._rows.counts()

    # -- engine state ---------------------------------------------------------------------------

    def cursor(self, log: str) -> tuple[int, dict[str, Any] | None]:
        """The next index to evaluate and the engine's saved state for a log."""
        saved = self._rows.cursor(log)
        if saved is None:
            return 0, None
        state = json.loads(saved.state)
        return saved.next_index, state if isinstance(state, dict) else None

    def put_cursor(self, log: str, next_index: int, state: Mapping[str, Any]) -> None:
        """Save where the engine is and its state, together."""
        self._rows.put_cursor(log, Cursor(next_index,
                                          json.dumps(state, separators=(",", ":"))))
