"""The monitor's rows in memory: the :class:`~sealtrail.store.monitor_state.AlertRows`
contract, nothing on disk (tests, an ephemeral monitor). No other process sees the rows, and
they are gone when the process ends.

Ordering as the SQLite adapter's: texts compare by code point (SQLite's ``BINARY`` over
UTF-8 orders the same), alerts not yet recorded come in the order they were first stored, and
a change's number is never reused once committed (a rolled-back one's may be, as with
``AUTOINCREMENT``).
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import TypeVar

from sealtrail.store.monitor_state import AlertRow, Cursor, QueuedChange

_T = TypeVar("_T")


@dataclasses.dataclass(slots=True)
class _Tables:
    """Everything the store holds; rows are frozen, so a copy of the containers is a copy of
    the state."""

    alerts: dict[str, AlertRow] = dataclasses.field(default_factory=dict)  # in insert order
    links: set[tuple[str, str]] = dataclasses.field(default_factory=set)  # (ref, alert id)
    changes: dict[int, QueuedChange] = dataclasses.field(default_factory=dict)
    last_seq: int = 0
    cursors: dict[str, Cursor] = dataclasses.field(default_factory=dict)

    def copy(self) -> _Tables:
        return _Tables(dict(self.alerts), set(self.links), dict(self.changes), self.last_seq,
                       dict(self.cursors))


class MemoryAlertRows:
    """The monitor's rows in dicts, behind one lock (held for a whole transaction)."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._t = _Tables()
        self._depth = 0

    def close(self) -> None:
        pass  # nothing to release

    @contextmanager
    def transaction(self) -> Iterator[None]:
        with self._lock:
            if self._depth:  # a nested transaction joins the outer one
                yield
                return
            before = self._t.copy()
            self._depth = 1
            try:
                yield
            except BaseException:
                self._t = before
                raise
            finally:
                self._depth = 0

    # -- alerts -------------------------------------------------------------------------------

    def get(self, alert_id: str) -> AlertRow | None:
        with self._lock:
            return self._t.alerts.get(alert_id)

    def current(self, log: str, rule: str, key: str) -> AlertRow | None:
        with self._lock:
            found = [a for a in self._t.alerts.values() if a.log == log and a.rule == rule
                     and a.key == key and a.status != "resolved"]
            return max(found, key=lambda a: (a.last_seen, a.id)) if found else None

    def put(self, row: AlertRow) -> None:
        with self._lock:
            stored = self._t.alerts.get(row.id)
            if stored is not None:
                row = dataclasses.replace(
                    stored, status=row.status, last_seen=row.last_seen, count=row.count,
                    entries=row.entries, opened_index=row.opened_index,
                    updated_at=row.updated_at, updated_by=row.updated_by, note=row.note)
            self._t.alerts[row.id] = row

    def update_group(self, alert_id: str, count: int, last_seen: str, entries: str) -> bool:
        with self._lock:
            stored = self._t.alerts.get(alert_id)
            if stored is None or stored.status == "resolved":
                return False
            self._t.alerts[alert_id] = dataclasses.replace(stored, count=count,
                                                           last_seen=last_seen, entries=entries)
            return True

    def set_opened(self, alert_id: str, index: int) -> None:
        with self._lock:
            stored = self._t.alerts.get(alert_id)
            if stored is not None:
                self._t.alerts[alert_id] = dataclasses.replace(stored, opened_index=index)

    def rewrite(self, alert_id: str, key: str, message: str) -> None:
        with self._lock:
            stored = self._t.alerts.get(alert_id)
            if stored is not None:
                self._t.alerts[alert_id] = dataclasses.replace(stored, key=key, message=message)

    def listing(self, *, log: str | None, status: str | None, severity: str | None,
                rule: str | None, before: str | None, limit: int) -> list[AlertRow]:
        with self._lock:
            found = [a for a in self._t.alerts.values()
                     if (log is None or a.log == log) and (status is None or a.status == status)
                     and (severity is None or a.severity == severity)
                     and (rule is None or a.rule == rule)
                     and (before is None or a.last_seen < before)]
        found.sort(key=lambda a: a.id)
        found.sort(key=lambda a: a.last_seen, reverse=True)  # stable: ties stay by id
        return _first(found, limit)

    def unrecorded(self, limit: int) -> list[AlertRow]:
        with self._lock:
            found = [a for a in self._t.alerts.values() if a.opened_index is None and a.log]
        return _first(found, limit)

    def counts(self) -> dict[tuple[str, str, str], int]:
        counted: dict[tuple[str, str, str], int] = {}
        with self._lock:
            for a in self._t.alerts.values():
                group = (a.log, a.status, a.severity)
                counted[group] = counted.get(group, 0) + 1
        return counted

    # -- subjects -----------------------------------------------------------------------------

    def link_subjects(self, alert_id: str, refs: Iterable[str]) -> None:
        with self._lock:
            self._t.links.update((ref, alert_id) for ref in refs)

    def subject_alerts(self, ref: str) -> list[AlertRow]:
        with self._lock:
            ids = sorted(alert_id for linked, alert_id in self._t.links if linked == ref)
            return [self._t.alerts[i] for i in ids if i in self._t.alerts]

    def unlink_subject(self, ref: str) -> None:
        with self._lock:
            self._t.links = {link for link in self._t.links if link[0] != ref}

    def purge_deleted(self) -> None:
        pass  # a deleted row is gone with the last reference to it

    # -- the changes queue --------------------------------------------------------------------

    def queue_change(self, alert_id: str, status: str) -> None:
        with self._lock:
            self._t.last_seq += 1
            self._t.changes[self._t.last_seq] = QueuedChange(self._t.last_seq, alert_id, status)

    def changes(self, limit: int) -> list[QueuedChange]:
        with self._lock:
            return _first(sorted(self._t.changes.values(), key=lambda c: c.seq), limit)

    def change_sent(self, seq: int) -> None:
        with self._lock:
            self._t.changes.pop(seq, None)

    # -- cursors ------------------------------------------------------------------------------

    def cursor(self, log: str) -> Cursor | None:
        with self._lock:
            return self._t.cursors.get(log)

    def put_cursor(self, log: str, cursor: Cursor) -> None:
        with self._lock:
            self._t.cursors[log] = cursor


def _first(rows: list[_T], limit: int) -> list[_T]:
    """The first ``limit`` rows; a negative limit bounds nothing (as SQLite's ``LIMIT``)."""
    return rows if limit < 0 else rows[:limit]
