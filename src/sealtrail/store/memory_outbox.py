"""The monitor's delivery outbox in memory: the :class:`~sealtrail.store.outbox.OutboxRows`
contract, nothing on disk (tests, an ephemeral monitor). Pending deliveries are gone when the
process ends, so delivery is at least once only while it runs."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from sealtrail.core.errors import StorageError
from sealtrail.store.outbox import DeliveredRow, Finished, OutboxRow


@dataclass(slots=True)
class _Delivery:
    """One row as kept (mutable; handed out only as frozen records)."""

    seq: int
    alert_id: str
    status: str
    sink: str
    body: bytes
    created: float
    next_at: float
    state: str = "pending"
    attempts: int = 0
    finished: float | None = None
    last_error: str | None = None


class MemoryOutboxRows:
    """Outbox rows in a dict by ``seq``, behind one lock."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rows: dict[int, _Delivery] = {}
        self._keys: dict[tuple[str, str, str], int] = {}  # (alert id, status, sink) -> seq
        self._last_seq = 0  # never reused, as SQLite's AUTOINCREMENT

    def close(self) -> None:
        pass  # nothing to release

    def enqueue(self, alert_id: str, status: str, body: bytes, sinks: Sequence[str],
                now: float) -> int:
        with self._lock:
            added = 0
            for sink in sinks:
                key = (alert_id, status, sink)
                if key in self._keys:
                    continue
                self._last_seq += 1
                self._keys[key] = self._last_seq
                self._rows[self._last_seq] = _Delivery(self._last_seq, alert_id, status, sink,
                                                       bytes(body), now, now)
                added += 1
            return added

    def next_row(self, sink: str) -> OutboxRow | None:
        with self._lock:
            due = [row for row in self._rows.values()
                   if row.sink == sink and row.state == "pending"]
            if not due:
                return None
            row = min(due, key=lambda r: (r.next_at, r.seq))
            return OutboxRow(row.seq, row.alert_id, row.body, row.attempts, row.created,
                             row.next_at)

    def finish(self, seq: int, state: Finished, now: float, error: str | None) -> None:
        if state not in ("delivered", "failed"):
            raise StorageError(f"alert outbox: a delivery cannot finish as {state!r}")
        with self._lock:
            row = self._rows.get(seq)
            if row is not None:
                row.state, row.finished, row.last_error = state, now, error
                row.attempts += 1

    def expire(self, seq: int, now: float, error: str) -> None:
        with self._lock:
            row = self._rows.get(seq)
            if row is not None:
                row.state, row.finished, row.last_error = "failed", now, error

    def reschedule(self, seq: int, next_at: float, error: str) -> None:
        with self._lock:
            row = self._rows.get(seq)
            if row is not None:
                row.next_at, row.last_error = next_at, error
                row.attempts += 1

    def pending(self) -> dict[str, int]:
        with self._lock:
            counts: dict[str, int] = {}
            for row in self._rows.values():
                if row.state == "pending":
                    counts[row.sink] = counts.get(row.sink, 0) + 1
            return counts

    def prune(self, before: float) -> None:
        with self._lock:
            gone = [row for row in self._rows.values() if row.state != "pending"
                    and row.finished is not None and row.finished < before]
            for row in gone:
                del self._rows[row.seq]
                del self._keys[(row.alert_id, row.status, row.sink)]

    def rewrite(self, alert_id: str, change: Callable[[bytes], bytes | None]) -> int:
        with self._lock:
            rows = [row for row in self._rows.values() if row.alert_id == alert_id]
        done = 0
        for row in sorted(rows, key=lambda r: r.seq):
            new = change(row.body)
            if new is not None:
                with self._lock:
                    if row.seq in self._rows:  # not pruned meanwhile
                        row.body = bytes(new)
                        done += 1
        return done

    def purge_deleted(self) -> None:
        pass  # a replaced body is no longer referenced; nothing is kept elsewhere

    def delivered(self) -> list[DeliveredRow]:
        with self._lock:
            return [DeliveredRow(row.sink, row.body, row.finished)
                    for seq, row in sorted(self._rows.items()) if row.state == "delivered"]

    def sinks(self) -> set[str]:
        with self._lock:
            return {row.sink for row in self._rows.values()}
