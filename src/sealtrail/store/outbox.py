"""The monitor's delivery outbox behind a narrow protocol: one row per (alert, status, sink).

:class:`~sealtrail.monitor.dispatch.Dispatcher` decides (what to queue, when a row is due
again, when it has waited too long, what an erasure changes in a body); an
:class:`OutboxRows` store only keeps and fetches rows, and holds no policy. Bodies are opaque
bytes to the store (the dispatcher's JSON); times are Unix seconds the dispatcher gives
(its clock), never read by the store.

A row is ``pending`` until it is finished as ``delivered`` or ``failed``. Rows are keyed by
``seq``, given in the order rows are queued and never reused (not even after a prune), and are
unique by (alert id, status, sink): queueing the same triple again adds nothing.

Adapters: ``store/sqlite_outbox.py`` (``DATA/_monitor/outbox.db``, the service's outbox),
``store/memory_outbox.py`` (nothing on disk). ``tests/contract/test_contract_outbox_rows.py``
holds the behaviour every adapter must show; ``log/datadir.py`` is the one module that names
an adapter.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

Finished = Literal["delivered", "failed"]


@dataclass(frozen=True, slots=True)
class OutboxRow:
    """A pending delivery as the dispatcher needs it to make an attempt."""

    seq: int
    alert_id: str
    body: bytes
    attempts: int  # attempts made so far (finish and reschedule count one each)
    created: float  # when it was queued
    next_at: float  # no attempt before this time


@dataclass(frozen=True, slots=True)
class DeliveredRow:
    """A delivery a sink accepted: which sink, the body it was sent, and when."""

    sink: str
    body: bytes
    finished: float | None


class OutboxRows(Protocol):
    """The outbox's rows. Every method may be called from several threads at once."""

    def enqueue(self, alert_id: str, status: str, body: bytes, sinks: Sequence[str],
                now: float) -> int:
        """Queue ``body`` once for each sink, pending, created and due at ``now``, all or
        nothing; a (alert id, status, sink) already held (in any state) is left as it is.
        How many rows were new."""

    def next_row(self, sink: str) -> OutboxRow | None:
        """The pending row of ``sink`` due first (smallest ``next_at``, then ``seq``), due
        yet or not; None when the sink has none pending."""

    def finish(self, seq: int, state: Finished, now: float, error: str | None) -> None:
        """Mark the row ``state`` at ``now`` with ``error`` (None: no error), counting one
        more attempt. An unknown ``seq`` changes nothing."""

    def expire(self, seq: int, now: float, error: str) -> None:
        """Mark the row ``failed`` at ``now`` without another attempt (it waited too long).
        An unknown ``seq`` changes nothing."""

    def reschedule(self, seq: int, next_at: float, error: str) -> None:
        """Keep the row pending, due again at ``next_at``, counting one more attempt. An
        unknown ``seq`` changes nothing."""

    def pending(self) -> dict[str, int]:
        """How many rows are pending, per sink (sinks with none are left out)."""

    def prune(self, before: float) -> None:
        """Remove the finished rows (delivered or failed) finished before ``before``; pending
        rows stay whatever their age."""

    def rewrite(self, alert_id: str, change: Callable[[bytes], bytes | None]) -> int:
        """Replace the body of every row of ``alert_id`` (any status, sink or state) by
        ``change(body)``; a row for which it answers None keeps its body. How many rows were
        replaced."""

    def purge_deleted(self) -> None:
        """Leave no copy of a replaced body or a pruned row in the store's files (after an
        erasure's :meth:`rewrite`)."""

    def delivered(self) -> list[DeliveredRow]:
        """Every row in state ``delivered``, in ``seq`` order (compliance reports read it)."""

    def sinks(self) -> set[str]:
        """Every sink the outbox holds a row for, in any state."""

    def close(self) -> None:
        """Release the store; closing twice is harmless."""
