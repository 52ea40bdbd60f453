"""The monitor's own state behind a narrow protocol: its alert index, the queue of alert
changes waiting for the dispatcher, and the rule engine's cursor per log.

:class:`~sealtrail.monitor.alerts.AlertStore` decides (grouping, the evidence kept, scrubbing
erased subjects' pseudonyms, validating filters, the JSON of evidence and engine state); an
:class:`AlertRows` store only keeps and fetches rows, and holds no policy. Evidence, clauses
and engine state are kept as the JSON text ``AlertStore`` gives, times as its text
(``core/timefmt.py``), compared as text.

Adapters: ``store/sqlite_monitor.py`` (``DATA/_monitor/monitor.db``, the monitor's default),
``store/memory_monitor.py`` (nothing on disk). ``tests/contract/test_contract_alert_rows.py``
holds the behaviour every adapter must show; ``log/datadir.py`` is the one engine module that
names an adapter.
"""

from __future__ import annotations

from collections.abc import Iterable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class AlertRow:
    """One alert as stored."""

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
    entries: str  # JSON text: the log indexes of the evidence
    clauses: str  # JSON text: the rule clauses that matched
    message: str
    opened_index: int | None  # the index of the alert's alert.open event; None: not yet
    updated_at: str
    updated_by: str
    note: str


@dataclass(frozen=True, slots=True)
class QueuedChange:
    """A change of an alert's status waiting for the dispatcher."""

    seq: int  # increasing, never reused for a change that was committed
    alert_id: str
    status: str


@dataclass(frozen=True, slots=True)
class Cursor:
    """Where the rule engine is in one log, and its saved state."""

    next_index: int
    state: str  # JSON text


class AlertRows(Protocol):
    """The monitor's rows. Every method may be called from several threads at once; a call
    outside :meth:`transaction` is its own unit of work. A negative ``limit`` bounds nothing
    (as SQLite's ``LIMIT``)."""

    def transaction(self) -> AbstractContextManager[None]:
        """One unit of work: every write inside it is kept together when the block ends, or
        none of them when it raises (the exception goes on). Other threads wait until it ends.
        A transaction opened inside another joins it."""

    # -- alerts -------------------------------------------------------------------------------

    def get(self, alert_id: str) -> AlertRow | None:
        """The alert with this id; None when there is none."""

    def current(self, log: str, rule: str, key: str) -> AlertRow | None:
        """The alert of (log, rule, key) not resolved and seen last (of two seen at the same
        time, the one with the greater id); None when there is none."""

    def put(self, row: AlertRow) -> None:
        """Store a new alert; when its id is stored, change only its status, last seen,
        count, entries, opened index, updated at/by and note (the rest stays as stored)."""

    def update_group(self, alert_id: str, count: int, last_seen: str, entries: str) -> bool:
        """Set the count, last seen and entries of an alert not resolved; False (and nothing
        changes) when there is no such alert or it is resolved."""

    def set_opened(self, alert_id: str, index: int) -> None:
        """Set the alert's opened index (nothing when there is no such alert)."""

    def rewrite(self, alert_id: str, key: str, message: str) -> None:
        """Replace the alert's key and message (nothing when there is no such alert)."""

    def listing(self, *, log: str | None, status: str | None, severity: str | None,
                rule: str | None, before: str | None, limit: int) -> list[AlertRow]:
        """At most ``limit`` alerts with each given field equal (``before``: last seen
        earlier), ordered by last seen, newest first, then by id."""

    def unrecorded(self, limit: int) -> list[AlertRow]:
        """At most ``limit`` alerts of a log (``log`` not empty) with no opened index, in the
        order they were first stored."""

    def counts(self) -> dict[tuple[str, str, str], int]:
        """How many alerts per (log, status, severity); combinations with none are absent."""

    # -- the subjects an alert's evidence names (erasure) ---------------------------------------

    def link_subjects(self, alert_id: str, refs: Iterable[str]) -> None:
        """Note that the alert names these subjects; a link already noted stays one."""

    def subject_alerts(self, ref: str) -> list[AlertRow]:
        """The stored alerts linked to the subject ``ref``, by id."""

    def unlink_subject(self, ref: str) -> None:
        """Delete every link to the subject ``ref``."""

    def purge_deleted(self) -> None:
        """Leave no copy of deleted or rewritten rows where the store keeps its data (for a
        file: neither in free pages nor in a journal)."""

    # -- the changes queue --------------------------------------------------------------------

    def queue_change(self, alert_id: str, status: str) -> None:
        """Queue a change, after every change queued before it."""

    def changes(self, limit: int) -> list[QueuedChange]:
        """At most ``limit`` queued changes, oldest first."""

    def change_sent(self, seq: int) -> None:
        """Remove the queued change ``seq`` (nothing when there is none)."""

    # -- the rule engine's cursors --------------------------------------------------------------

    def cursor(self, log: str) -> Cursor | None:
        """The log's cursor; None when none was saved."""

    def put_cursor(self, log: str, cursor: Cursor) -> None:
        """Save the log's cursor, replacing the one saved before."""

    def close(self) -> None:
        """Release the store; closing twice is harmless."""
