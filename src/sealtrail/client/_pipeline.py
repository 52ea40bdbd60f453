"""The delivery state both clients share: the queue, the current batch limit, backoff, counters,
receipts and callbacks. The sync client drives it from a thread, the async one from a task.

Ordering and exactly-once (spool mode):

- ``record`` commits the event to the spool before it returns; ``seq`` is the record order.
  (With ``durability="group"`` a writer thread commits it, in record order, within a window:
  see :mod:`sealtrail.client.groupspool`; delivery reads only what is committed.)
- One sender per client takes the oldest rows (at most ``limit``) and POSTs them as one JSON
  array; the service stores a batch atomically, in array order. The next batch is taken only
  after this one is settled, so the log receives events in spool order.
- Rows are deleted only after a 2xx answer carrying one receipt per id. Any other ending
  (timeout, broken connection, crash of the process) leaves them queued and they are sent
  again, with the same ids: the service answers an id it already holds with its original
  receipt (``duplicate``) instead of appending it again. So each event is stored once, and
  events acknowledged by ``record`` are never lost while the spool file survives.
"""

from __future__ import annotations

import logging
import random
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final, Literal

import msgspec

from sealtrail.client.delivery import Ack, Outcome, Reject, Retry, Split, Stall
from sealtrail.client.receipt import Receipt
from sealtrail.client.spool import Queue, Row
from sealtrail.core.retry import backoff

FailureMode = Literal["spool", "fail_closed", "drop"]
FAILURE_MODES: Final = ("spool", "fail_closed", "drop")
DROP_ATTEMPTS: Final = 3     # tries of one batch in drop mode before it is dropped
BACKOFF_BASE: Final = 0.1    # seconds before the first retry (then doubling, jittered)

log = logging.getLogger("sealtrail.client")


@dataclass(frozen=True, slots=True)
class Rejection:
    """An event the service refused for good (it is not retried): why, and the event itself."""

    id: str
    status: int
    field: str
    message: str
    event: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Settled:
    """What settling a batch produced: how long to pause (``floor`` of it not to be cut short,
    for Retry-After), and the receipts and rejections to report."""

    delay: float = 0.0
    floor: float = 0.0
    receipts: tuple[Receipt, ...] = ()
    rejections: tuple[Rejection, ...] = ()


class Pipeline:
    """Delivery bookkeeping over a queue; every method is thread-safe and does no network I/O."""

    def __init__(self, queue: Queue | None, log_name: str, *, mode: FailureMode,
                 batch_size: int, max_backoff: float, keep_receipts: int,
                 on_receipt: Callable[[Receipt], object] | None,
                 on_rejected: Callable[[Rejection], object] | None) -> None:
        self.queue = queue
        self.log_name = log_name
        self.mode = mode
        self.batch_size = batch_size
        self.limit = batch_size
        self.max_backoff = max_backoff
        self.on_receipt = on_receipt
        self.on_rejected = on_rejected
        self.delivered = 0
        self.rejected = 0
        self.dropped = 0
        self.retries = 0
        self.last_error: str | None = None
        self._attempts = 0
        self._keep = keep_receipts
        self._receipts: OrderedDict[str, Receipt] = OrderedDict()
        self._lock = threading.Lock()
        self._rng = random.Random()
        self._warned_full = False

    # -- queue -----------------------------------------------------------------------------

    def take(self) -> list[Row]:
        """The next batch to send (oldest first), empty when nothing waits."""
        if self.queue is None:
            return []
        return self.queue.peek(self.log_name, self.limit)

    def last_seq(self) -> int | None:
        """The newest queued event's ``seq`` (what a flush waits for)."""
        return None if self.queue is None else self.queue.last_seq(self.log_name)

    def done_through(self, seq: int) -> bool:
        """Whether every event up to ``seq`` has left the queue (stored, rejected or dropped)."""
        if self.queue is None:
            return True
        first = self.queue.first_seq(self.log_name)
        return first is None or first > seq

    def pending(self) -> int:
        """How many events wait."""
        return 0 if self.queue is None else self.queue.count(self.log_name)

    def count_full(self) -> None:
        """A ``drop`` mode record found the queue full: the event is dropped."""
        with self._lock:
            self.dropped += 1
            warn, self._warned_full = not self._warned_full, True
        if warn:
            log.warning("sealtrail: the queue is full; dropping audit events (failure_mode=drop)")

    # -- settling --------------------------------------------------------------------------

    def settle(self, rows: list[Row], outcome: Outcome, now: float) -> Settled:
        """Apply the service's answer for ``rows`` to the queue; return what to do next."""
        queue = self.queue
        if queue is None:
            raise RuntimeError("settle needs a queue")
        if isinstance(outcome, Ack):
            queue.remove([row.seq for row in rows])
            with self._lock:
                self.delivered += len(rows)
                self._attempts = 0
                self.limit = min(self.batch_size, self.limit * 2)
                self._warned_full = False
                self.last_error = None
            self.remember(outcome.receipts)
            return Settled(receipts=outcome.receipts)
        if isinstance(outcome, Reject):
            out = []
            for item in outcome.rejected:
                row = rows[item.position]
                queue.reject(self.log_name, row, status=outcome.status, field=item.field,
                             reason=item.message, at=now)
                out.append(Rejection(row.id, outcome.status, item.field, item.message,
                                     _decode(row.body)))
                log.error("sealtrail: the service refused event %s for good (HTTP %d, %s: %s); "
                          "it is not retried%s", row.id, outcome.status, item.field,
                          item.message, " (kept in the spool's rejected table)"
                          if self.mode == "spool" else "")
            with self._lock:
                self.rejected += len(out)
            return Settled(rejections=tuple(out))
        if isinstance(outcome, Split):
            with self._lock:
                self.limit = max(1, outcome.limit)
            log.info("sealtrail: sending smaller batches (%d): %s", self.limit, outcome.reason)
            return Settled()
        return self._failed(rows, outcome)

    def _failed(self, rows: list[Row], outcome: Retry | Stall) -> Settled:
        with self._lock:
            attempt = self._attempts
            self._attempts += 1
            self.retries += 1
            self.last_error = outcome.reason
            jitter = self._rng.random()
        if self.mode == "drop" and attempt + 1 >= DROP_ATTEMPTS:
            if self.queue is not None:
                self.queue.remove([row.seq for row in rows])
            with self._lock:
                self.dropped += len(rows)
                self._attempts = 0
            log.warning("sealtrail: dropped %d audit event(s) after %d attempts: %s",
                        len(rows), DROP_ATTEMPTS, outcome.reason)
            return Settled()
        cap = self.max_backoff if self.mode != "drop" else min(self.max_backoff, 1.0)
        delay = backoff(attempt, base=BACKOFF_BASE, cap=cap, jitter=jitter)
        floor = 0.0
        if isinstance(outcome, Retry) and outcome.retry_after is not None:
            floor = outcome.retry_after
            delay = max(delay, floor)
        level = logging.ERROR if isinstance(outcome, Stall) else logging.WARNING
        if attempt == 0 or isinstance(outcome, Stall):
            log.log(level, "sealtrail: delivery of %d event(s) failed (%s); retrying in %.2fs",
                    len(rows), outcome.reason, delay)
        return Settled(delay=delay, floor=floor)

    # -- receipts and callbacks ------------------------------------------------------------

    def remember(self, receipts: tuple[Receipt, ...]) -> None:
        """Keep the newest receipts (at most ``keep_receipts``)."""
        if self._keep <= 0:
            return
        with self._lock:
            for r in receipts:
                self._receipts[r.id] = r
                self._receipts.move_to_end(r.id)
            while len(self._receipts) > self._keep:
                self._receipts.popitem(last=False)

    def receipts(self) -> dict[str, Receipt]:
        """The kept receipts by event id, oldest first."""
        with self._lock:
            return dict(self._receipts)

    def notify(self, settled: Settled) -> None:
        """Run the callbacks; an exception in one is logged, never breaks delivery."""
        for receipt in settled.receipts:
            _call(self.on_receipt, receipt)
        for rejection in settled.rejections:
            _call(self.on_rejected, rejection)


def _call(fn: Callable[[Any], object] | None, arg: object) -> None:
    if fn is None:
        return
    try:
        fn(arg)
    except Exception:
        log.exception("sealtrail: a client callback raised")


def _decode(body: bytes) -> dict[str, Any]:
    try:
        doc = msgspec.json.decode(body)
    except msgspec.DecodeError:
        return {}
    return doc if isinstance(doc, dict) else {}
