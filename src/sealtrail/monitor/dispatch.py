"""The alert dispatcher: a durable outbox and one delivery thread per sink.

:meth:`Dispatcher.submit` never waits for a sink. It records one row per (alert, sink) in a
durable outbox (:class:`~sealtrail.store.outbox.OutboxRows`; by default the SQLite file that
``log/datadir.open_outbox_rows`` opens: WAL, ``synchronous=FULL``, mode 0600) and returns;
each sink's thread delivers its rows oldest first. Delivery is at least once: a row becomes
``delivered`` only after the sink accepted it, so a crash between the two sends it again after
the restart (receivers deduplicate on the alert id; webhooks carry it as
``Sealtrail-Alert-Id``). Rows are keyed by (alert id, status, sink): the same alert submitted
twice is delivered once per sink, and a status change (``open`` → ``resolved``) is a new
notification.

Failures (``SinkError.retryable``) are retried after an exponential, jittered backoff
(:func:`backoff`, "equal jitter"; never sooner than a ``Retry-After``), until the row is older
than ``max_age``, when it is marked ``failed``. Permanent failures are marked ``failed`` at once.
While a sink fails, its thread also waits before trying the *next* row, so a dead receiver
costs one attempt per backoff period rather than one per pending alert; other sinks are not
affected (their own threads).

After ``failure_threshold`` consecutive failures of one sink, ``on_failure(sink, error, n)`` is
called once for that streak (a success ends it), so the service can raise a "sink failing"
trail-failure alert through its *other* channels.
"""

from __future__ import annotations

import json
import logging
import random
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sealtrail.core.canonical import compact_json
from sealtrail.core.errors import ConfigError, StorageError, ValidationError
from sealtrail.core.retry import backoff
from sealtrail.log.datadir import open_outbox_rows, service_rows_exist
from sealtrail.monitor.sinks import Sink, SinkError
from sealtrail.store.outbox import OutboxRow, OutboxRows

__all__ = ["Dispatcher", "FailureCallback", "RetryPolicy", "SinkStats", "backoff",
           "delivered_of_rule"]

log = logging.getLogger("sealtrail.monitor")

FailureCallback = Callable[[str, str, int], None]

_PRUNE_EVERY = 3600.0  # seconds between removals of old finished rows
_MAX_WAIT = 30.0  # a delivery thread re-checks at least this often (clock changes)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Retry timing, in seconds. Tests use milliseconds.

    ``keep`` is how long delivered and failed rows stay in the outbox: the window within which
    a resubmitted alert is recognised as a duplicate.
    """

    base: float = 1.0
    cap: float = 300.0
    max_age: float = 86400.0
    failure_threshold: int = 3
    keep: float = 7 * 86400.0

    def __post_init__(self) -> None:
        if not (0 < self.base <= self.cap) or self.max_age <= 0 or self.keep <= 0:
            raise ConfigError("retry policy: need 0 < base <= cap, max_age > 0, keep > 0")
        if self.failure_threshold < 1:
            raise ConfigError("retry policy: failure_threshold must be at least 1")


@dataclass(frozen=True, slots=True)
class SinkStats:
    """One sink's delivery counters. ``delivered`` and ``failed`` count since this dispatcher
    started; ``pending`` is what the outbox holds now."""

    delivered: int
    failed: int
    pending: int
    consecutive_failures: int
    last_error: str | None


def _encode(alert: Mapping[str, Any]) -> bytes:
    return compact_json(alert).encode()


def _body_change(change: Callable[[dict[str, Any]], dict[str, Any]]
                 ) -> Callable[[bytes], bytes | None]:
    """``change`` over a stored body: a body that is not a JSON object is left as it is."""
    def apply(body: bytes) -> bytes | None:
        try:
            doc = json.loads(body)
        except ValueError:
            return None
        return _encode(change(doc)) if isinstance(doc, dict) else None
    return apply


@dataclass(slots=True)
class _Lane:
    """One sink's thread state (guarded by the dispatcher's condition)."""

    sink: Sink
    delivered: int = 0
    failed: int = 0
    consecutive: int = 0
    last_error: str | None = None
    gate: float = 0.0  # no attempt before this time (the sink is backing off)
    thread: threading.Thread | None = None


class Dispatcher:
    """Delivers submitted alerts to every sink, durably, in the background.

    The dispatcher owns the sinks it is given and its outbox: :meth:`close` closes them.
    ``Dispatcher(sinks, outbox_path)`` opens the SQLite outbox at that path (safe for several
    processes); ``Dispatcher(sinks, rows=...)`` works over any other store of the rows (tests:
    ``MemoryOutboxRows``). The store keeps rows; everything decided about a delivery is
    decided here.
    """

    def __init__(self, sinks: Sequence[Sink], outbox_path: Path | None = None, *,
                 clock: Callable[[], float] = time.time,
                 on_failure: FailureCallback | None = None,
                 policy: RetryPolicy | None = None,
                 jitter: Callable[[], float] = random.random,
                 rows: OutboxRows | None = None) -> None:
        if outbox_path is not None and rows is not None:
            raise TypeError("Dispatcher takes an outbox path or rows=, not both")
        names = [sink.name for sink in sinks]
        if len(set(names)) != len(names):
            raise ConfigError(f"sink names must be unique: {sorted(names)}")
        self._policy = policy or RetryPolicy()
        self._clock = clock
        self._jitter = jitter
        self._on_failure = on_failure
        if rows is None:
            if outbox_path is None:
                raise TypeError("Dispatcher needs an outbox path or rows=")
            rows = open_outbox_rows(Path(outbox_path))
        self._outbox: OutboxRows = rows
        self._cond = threading.Condition()
        self._closing = False
        self._generation = 0  # bumped by submit: a thread about to sleep sees it missed one
        self._lanes = {sink.name: _Lane(sink) for sink in sinks}
        self._last_prune = clock()
        try:
            self._outbox.prune(self._last_prune - self._policy.keep)
            orphans = {k: v for k, v in self._outbox.pending().items() if k not in self._lanes}
        except StorageError:
            self._outbox.close()
            raise
        if orphans:
            log.warning("the alert outbox holds deliveries for sinks no longer configured: %s",
                        ", ".join(f"{k} ({v})" for k, v in sorted(orphans.items())))
        for lane in self._lanes.values():
            lane.thread = threading.Thread(target=self._work, args=(lane,), daemon=True,
                                           name=f"sealtrail-sink-{lane.sink.name}")
            lane.thread.start()

    def submit(self, alert: Mapping[str, Any]) -> int:
        """Queue ``alert`` for every sink and return at once; how many deliveries are new
        (0 when this alert id and status were submitted before).

        Raises :class:`ValidationError` for an alert without an ``id`` or not JSON-serialisable,
        :class:`StorageError` when the outbox cannot be written.
        """
        ident = alert.get("id")
        if not isinstance(ident, str) or not ident:
            raise ValidationError("alert.id", "must be a non-empty string")
        try:
            body = _encode(alert)
        except (TypeError, ValueError) as exc:
            raise ValidationError("alert", f"is not JSON-serialisable: {exc}") from exc
        with self._cond:
            if self._closing:
                raise StorageError("the alert dispatcher is closed")
        now = self._clock()
        added = self._outbox.enqueue(ident, str(alert.get("status") or ""), body,
                                     list(self._lanes), now)
        if now - self._last_prune > _PRUNE_EVERY:
            self._last_prune = now
            self._outbox.prune(now - self._policy.keep)
        with self._cond:
            self._generation += 1
            self._cond.notify_all()
        return added

    def rewrite(self, alert_ids: Sequence[str],
                change: Callable[[dict[str, Any]], dict[str, Any]]) -> int:
        """Rewrite the queued and kept deliveries of these alerts (subject erasure: their
        pseudonyms go); a delivery not yet made sends the rewritten body. How many rows."""
        apply = _body_change(change)
        done = sum(self._outbox.rewrite(a, apply) for a in alert_ids)
        if done:
            self._outbox.purge_deleted()
        return done

    def stats(self) -> dict[str, SinkStats]:
        """Per sink: delivered, failed, pending, consecutive failures, last error."""
        pending = self._outbox.pending()
        with self._cond:
            return {name: SinkStats(lane.delivered, lane.failed, pending.get(name, 0),
                                    lane.consecutive, lane.last_error)
                    for name, lane in self._lanes.items()}

    def flush(self, timeout: float) -> bool:
        """Wait until no delivery is pending (each row delivered or failed); False on timeout."""
        deadline = time.monotonic() + timeout
        while True:
            pending = self._outbox.pending()
            if not any(pending.get(name, 0) for name in self._lanes):
                return True
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            with self._cond:
                self._cond.wait(min(remaining, 0.05))

    def close(self, timeout: float = 30.0) -> None:
        """Stop the threads (a send in progress finishes), close the sinks and the outbox.
        Undelivered rows stay in the outbox for the next dispatcher."""
        with self._cond:
            if self._closing:
                return
            self._closing = True
            self._cond.notify_all()
        for lane in self._lanes.values():
            if lane.thread is not None:
                lane.thread.join(timeout)
        for lane in self._lanes.values():
            try:
                lane.sink.close()
            except Exception:  # one sink failing to close must not keep the others open
                log.exception("closing sink %s failed", lane.sink.name)
        self._outbox.close()

    def __enter__(self) -> Dispatcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- the delivery threads ------------------------------------------------------------------

    def _sleep(self, seconds: float, generation: int) -> bool:
        """Wait up to ``seconds`` or until woken (at once if an alert was submitted since
        ``generation`` was read); False when the dispatcher is closing."""
        with self._cond:
            if not self._closing and self._generation == generation:
                self._cond.wait(min(max(seconds, 0.0), _MAX_WAIT))
            return not self._closing

    def _work(self, lane: _Lane) -> None:
        while True:
            with self._cond:
                generation = self._generation
            try:
                row = self._outbox.next_row(lane.sink.name)
            except StorageError:
                log.exception("sink %s: reading the outbox failed", lane.sink.name)
                if not self._sleep(1.0, generation):
                    return
                continue
            now = self._clock()
            if row is None:
                if not self._sleep(_MAX_WAIT, generation):
                    return
                continue
            with self._cond:
                due = max(row.next_at, lane.gate)
            if due > now:
                if not self._sleep(due - now, generation):
                    return
                continue
            with self._cond:
                if self._closing:
                    return
            try:
                self._attempt(lane, row, now)
            except StorageError:
                log.exception("sink %s: recording a delivery failed", lane.sink.name)
                if not self._sleep(1.0, generation):
                    return
            with self._cond:
                self._cond.notify_all()  # flush() waits for rows to finish

    def _attempt(self, lane: _Lane, row: OutboxRow, now: float) -> None:
        # 1. a row older than max_age fails without another try;
        # 2. send; success ends the sink's failure streak;
        # 3. a permanent failure finishes the row; a retryable one reschedules it and makes
        #    the sink wait before its next row;
        # 4. the N-th consecutive failure calls on_failure (outside any lock).
        name, policy = lane.sink.name, self._policy
        if now - row.created > policy.max_age:  # 1
            error = f"not delivered within {policy.max_age:g} s: {lane.last_error or '?'}"
            self._outbox.expire(row.seq, now, error)
            with self._cond:
                lane.failed += 1
                lane.last_error = error
            log.error("sink %s: alert %s given up: %s", name, row.alert_id, error)
            return
        try:  # 2
            lane.sink.send(json.loads(row.body))
        except SinkError as exc:
            error, retryable, retry_after = str(exc), exc.retryable, exc.retry_after or 0.0
        except Exception as exc:  # a bug in a sink must not stop its thread
            log.exception("sink %s raised an unexpected error", name)
            error, retryable, retry_after = f"{type(exc).__name__}: {exc}", True, 0.0
        else:
            self._outbox.finish(row.seq, "delivered", self._clock(), None)
            with self._cond:
                lane.delivered += 1
                lane.consecutive = 0
                lane.gate = 0.0
            return
        later = self._clock()  # 3
        if retryable:
            delay = max(retry_after, backoff(row.attempts, base=policy.base, cap=policy.cap,
                                             jitter=self._jitter()))
            self._outbox.reschedule(row.seq, later + delay, error)
        else:
            self._outbox.finish(row.seq, "failed", later, error)
        with self._cond:
            lane.consecutive += 1
            lane.last_error = error
            streak = lane.consecutive
            if retryable:
                lane.gate = later + max(retry_after, backoff(
                    streak - 1, base=policy.base, cap=policy.cap, jitter=self._jitter()))
            else:
                lane.failed += 1
        log.warning("sink %s: alert %s %s: %s", name, row.alert_id,
                    "will be retried" if retryable else "failed for good", error)
        if streak == policy.failure_threshold and self._on_failure is not None:  # 4
            try:
                self._on_failure(name, error, streak)
            except Exception:
                log.exception("the on_failure callback raised")


def delivered_of_rule(outbox_path: Path, rule: str, store: str | None = None
                      ) -> tuple[set[str], float | None, set[str]]:
    """Which sinks delivered alerts of ``rule``, when the last one was delivered (Unix
    seconds), and every sink the outbox knows; reads the outbox only (compliance reports use
    it for test alerts)."""
    if not service_rows_exist("outbox", outbox_path, store):
        return set(), None, set()  # no sink ever had a delivery queued
    outbox = open_outbox_rows(outbox_path, readonly=True, store_url=store)
    try:
        rows = outbox.delivered()
        known = outbox.sinks()
    finally:
        outbox.close()
    sinks: set[str] = set()
    last: float | None = None
    for row in rows:
        try:
            if json.loads(row.body).get("rule") != rule:
                continue
        except ValueError:
            continue
        sinks.add(row.sink)
        if row.finished is not None:
            last = max(last or 0.0, row.finished)
    return sinks, last, known
