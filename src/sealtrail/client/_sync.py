"""The synchronous client: ``record`` returns at once; a thread delivers in batches."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Self

import httpx

from sealtrail.client import _config
from sealtrail.client._pipeline import Pipeline, Rejection, Settled
from sealtrail.client.delivery import (
    Ack,
    Outcome,
    Reject,
    Retry,
    Stall,
    classify,
)
from sealtrail.client.errors import ClientError, DeliveryError
from sealtrail.client.groupspool import GroupSpool
from sealtrail.client.prepare import merge_fields, prepare_event
from sealtrail.client.receipt import Receipt
from sealtrail.client.spool import Row
from sealtrail.client.witness import check_older, check_witnessed, policy_of
from sealtrail.core.errors import ValidationError
from sealtrail.core.event import Event
from sealtrail.core.retry import backoff
from sealtrail.core.witness_policy import Witnessed, WitnessPolicy

log = logging.getLogger("sealtrail.client")

FAIL_CLOSED_ATTEMPTS = 3


class Client:
    """Records audit events in a sealtrail service (``POST /v1/logs/{log}/events``).

    ``failure_mode`` says what happens when the service cannot be reached:

    - ``"spool"`` (default): :meth:`record` commits the event to a local SQLite spool
      (``spool_path``) before it returns; a background thread delivers the spool in order, in
      batches, retrying until the service acknowledges. Nothing acknowledged by ``record`` is
      lost, nothing is stored twice, and a new client on the same spool resumes delivery.
    - ``"fail_closed"``: :meth:`record` sends the event itself and raises
      :class:`DeliveryError` unless the service stored it: the audited action must not go on.
    - ``"drop"``: events wait in memory (at most ``max_queue``); those that cannot be sent
      are dropped and counted (:attr:`dropped`). ``record`` never blocks.

    ``durability`` says when a spooled event is on disk: ``"call"`` (default) before
    :meth:`record` returns (an fsync per call, shared by threads recording at once);
    ``"group"``: :meth:`record` queues the event for a writer thread, which commits what was
    queued at most every ``group_window_ms`` milliseconds (default 5). A crash of the process
    can lose what was recorded in the last window (and the commit after it), never an event
    recorded before a :meth:`flush` or :meth:`close` that returned (both commit everything
    queued first). At most ``max_queue`` events wait for the writer (then ``record`` waits).
    See :mod:`sealtrail.client.groupspool`.

    ``verifier`` (the log's vkey text) enables :meth:`verify_receipt`. ``transport`` is an
    ``httpx.BaseTransport`` (tests, proxies, mTLS). Use it as a context manager, or call
    :meth:`close`.
    """

    def __init__(self, base_url: str, token: str, log: str = "default", *,
                 spool_path: str | os.PathLike[str] | None = None,
                 failure_mode: str = "spool", durability: str = "call",
                 group_window_ms: float = 5.0, batch_size: int = 100,
                 flush_interval: float = 0.2, timeout: float = 5.0,
                 verifier: str | None = None, transport: httpx.BaseTransport | None = None,
                 on_receipt: Callable[[Receipt], object] | None = None,
                 on_rejected: Callable[[Rejection], object] | None = None,
                 max_queue: int = 10_000, max_backoff: float = 30.0,
                 keep_receipts: int = 1000) -> None:
        cfg = _config.settings(base_url, token, log, failure_mode=failure_mode,
                               batch_size=batch_size, flush_interval=flush_interval,
                               timeout=timeout, verifier=verifier, max_backoff=max_backoff,
                               durability=durability, group_window_ms=group_window_ms)
        self._cfg = cfg
        self._pipe: Pipeline = _config.pipeline(
            cfg, spool_path=spool_path, max_queue=max_queue, max_backoff=max_backoff,
            keep_receipts=keep_receipts, on_receipt=on_receipt, on_rejected=on_rejected)
        try:
            self._witness = _config.witness(cfg, self._pipe)
        except BaseException:
            if self._pipe.queue is not None:
                self._pipe.queue.close()
            raise
        self._http = httpx.Client(base_url=cfg.base_url, headers=cfg.headers,
                                  timeout=cfg.timeout, transport=transport)
        self._verify_lock = threading.Lock()
        self._release_lock = threading.Lock()
        self._released = False
        self._cv = threading.Condition()
        self._recorded = 0
        self._kicks = 0
        self._flushers = 0
        self._stopping = False
        self._closed = False
        self._thread: threading.Thread | None = None
        self._group = isinstance(self._pipe.queue, GroupSpool)
        if isinstance(self._pipe.queue, GroupSpool):
            self._pipe.queue.on_durable = self._committed
        if self._pipe.queue is not None:
            self._thread = threading.Thread(target=self._run, daemon=True,
                                            name=f"sealtrail-client[{cfg.log}]")
            self._thread.start()

    # -- recording -------------------------------------------------------------------------

    def record(self, event: Mapping[str, Any] | Event | None = None, /, *,
               actor: Mapping[str, Any] | None = None, action: str | None = None,
               outcome: str | None = None, **fields: Any) -> str:
        """Record one event; return its id (a UUIDv7 assigned here unless ``id`` is given).

        Fields are those of the event model (docs/events.md), as keywords or a mapping.
        Raises ValidationError naming the field (nothing is queued) for an invalid event;
        in ``fail_closed`` mode, DeliveryError when the service did not store it.
        """
        if self._closed:
            raise _config.closed_error()
        doc = merge_fields(event, {"actor": actor, "action": action, "outcome": outcome,
                                   **fields})
        ident, body = prepare_event(doc, now=datetime.now(UTC), rand=os.urandom(10))
        queue = self._pipe.queue
        if queue is None:
            self._send_now(ident, body)
            return ident
        if queue.put(self._cfg.log, ident, body, time.time()) < 0:
            self._pipe.count_full()
            return ident
        if self._group:
            return ident  # the writer tells the sender once the event is committed
        with self._cv:
            self._recorded += 1
            self._cv.notify_all()
        return ident

    def _committed(self, n: int) -> None:
        """``durability="group"``: the spool writer committed ``n`` events (its thread)."""
        with self._cv:
            self._recorded += n
            self._cv.notify_all()

    def _send_now(self, ident: str, body: bytes) -> Receipt:
        """fail_closed: POST one event, retrying briefly; raise unless it is stored."""
        deadline = time.monotonic() + self._cfg.timeout
        row = Row(0, ident, body, time.time())
        for attempt in range(FAIL_CLOSED_ATTEMPTS):
            outcome = self._post([row])
            if isinstance(outcome, Ack):
                self._pipe.remember(outcome.receipts)
                self._pipe.notify(Settled(receipts=outcome.receipts))
                return outcome.receipts[0]
            if isinstance(outcome, Reject):
                item = outcome.rejected[0]
                raise ValidationError(item.field, f"refused by the service: {item.message}")
            reason = getattr(outcome, "reason", "")
            status = getattr(outcome, "status", None)
            if isinstance(outcome, Stall):
                raise DeliveryError(f"the service refused the event: {reason}",
                                    event_id=ident, status=status)
            pause = backoff(attempt, base=0.05, cap=1.0, jitter=0.5)
            if isinstance(outcome, Retry) and outcome.retry_after is not None:
                pause = max(pause, outcome.retry_after)
            if attempt + 1 == FAIL_CLOSED_ATTEMPTS or time.monotonic() + pause > deadline:
                raise DeliveryError(f"the service did not store the event: {reason}",
                                    event_id=ident, status=status)
            time.sleep(pause)
        raise DeliveryError("unreachable", event_id=ident)  # pragma: no cover

    def _post(self, rows: list[Row]) -> Outcome:
        body = b"[" + b",".join(row.body for row in rows) + b"]"
        try:
            resp = self._http.post(f"{self._cfg.prefix}/events", content=body,
                                   headers={"content-type": "application/json"})
        except httpx.HTTPError as exc:
            return Retry(f"{type(exc).__name__}: {exc}")
        return classify(resp.status_code, resp.headers, resp.content,
                        [row.id for row in rows], now=datetime.now(UTC))

    # -- the sender thread -----------------------------------------------------------------

    def _run(self) -> None:
        try:
            while True:
                with self._cv:
                    if self._stopping:
                        return
                    seen_rec, seen_kick = self._recorded, self._kicks
                try:
                    self._step(seen_rec, seen_kick)
                except Exception:
                    log.exception("sealtrail: the delivery thread failed; retrying")
                    self._pause(Settled(delay=1.0), seen_kick)
        finally:
            with self._cv:
                stopping = self._stopping
            if stopping:
                self._release()

    def _step(self, seen_rec: int, seen_kick: int) -> None:
        rows = self._pipe.take()
        if not rows:
            with self._cv:
                self._cv.wait_for(lambda: (self._recorded != seen_rec or self._stopping
                                           or self._kicks != seen_kick), timeout=_config.IDLE_POLL)
            return
        linger = self._linger(rows)
        if linger > 0:
            want = self._pipe.limit - len(rows)
            with self._cv:
                self._cv.wait_for(lambda: (self._recorded - seen_rec >= want or self._stopping
                                           or self._flushers > 0 or self._kicks != seen_kick),
                                  timeout=linger)
            return
        settled = self._pipe.settle(rows, self._post(rows), time.time())
        self._pipe.notify(settled)
        with self._cv:
            self._cv.notify_all()
        if settled.delay:
            self._pause(settled, seen_kick)

    def _linger(self, rows: list[Row]) -> float:
        """How much longer to wait for a fuller batch (0: send now)."""
        if len(rows) >= self._pipe.limit or self._flushers or self._closed:
            return 0.0
        waited = max(0.0, time.time() - rows[0].recorded)  # a clock stepped back waits no more
        return self._cfg.flush_interval - waited

    def _pause(self, settled: Settled, seen_kick: int) -> None:
        """Back off; a flush cuts the pause short, except the Retry-After part."""
        with self._cv:
            if settled.floor:
                self._cv.wait_for(lambda: self._stopping, timeout=settled.floor)
            rest = settled.delay - settled.floor
            if rest > 0:
                self._cv.wait_for(lambda: self._stopping or self._kicks != seen_kick,
                                  timeout=rest)

    # -- flushing and closing --------------------------------------------------------------

    def flush(self, timeout: float | None = 30.0) -> bool:
        """Wait until every event recorded so far is acknowledged (or rejected, or dropped).

        Returns False when ``timeout`` seconds passed first (spooled events stay spooled).
        A flush also cuts a retry backoff short: the sender tries again at once. With
        ``durability="group"`` it first commits what waits for the spool writer.
        """
        if self._released:
            raise _config.closed_error()
        deadline = None if timeout is None else time.monotonic() + timeout
        if self._pipe.queue is not None and not self._pipe.queue.sync(timeout):
            return False
        target = self._pipe.last_seq()
        if target is None or self._thread is None:
            return True
        with self._cv:
            self._kicks += 1
            self._flushers += 1
            self._cv.notify_all()
            try:
                while not self._pipe.done_through(target):
                    if not self._thread.is_alive():
                        return False
                    remaining = 0.5 if deadline is None else deadline - time.monotonic()
                    if remaining <= 0:
                        return False
                    self._cv.wait(min(remaining, 0.5))
                return True
            finally:
                self._flushers -= 1

    def close(self, timeout: float = 5.0) -> None:
        """Flush (up to ``timeout`` seconds), stop the sender and release the connection.

        In spool mode what is still undelivered stays in the spool for the next client; in
        drop mode it is dropped (and counted).
        """
        if self._closed:
            return
        self._closed = True
        flushed = self.flush(timeout)
        # Counted before the sender stops: a stopping sender releases the queue it reads.
        left_at_stop = self._pipe.pending()
        with self._cv:
            self._stopping = True
            self._cv.notify_all()
        if self._thread is not None:
            self._thread.join(self._cfg.timeout + 1.0)
        left = self._pipe.pending() if not self._released else left_at_stop
        if not flushed and left:
            if self._cfg.mode == "drop":
                self._pipe.dropped += left
                log.warning("sealtrail: dropped %d undelivered audit event(s) at close", left)
            else:
                log.warning("sealtrail: %d audit event(s) stay in the spool; a client on the "
                            "same spool delivers them", left)
        if self._thread is None or not self._thread.is_alive():
            self._release()

    def _release(self) -> None:
        with self._release_lock:
            if self._released:
                return
            self._released = True
        self._http.close()
        if self._pipe.queue is not None:
            self._pipe.queue.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    # -- receipts and verification ---------------------------------------------------------

    def verify_receipt(self, receipt: Receipt) -> None:
        """Check with proofs from the service that ``receipt``'s event is in the log, and that
        the log only grew since the last check (see :mod:`sealtrail.client.witness`).

        Needs ``verifier=``. Raises VerificationError (a fork, a rollback, a bad proof or
        signature), or ClientError when the service cannot be asked.
        """
        witness = self._witness
        if witness is None:
            raise ClientError("verify_receipt needs the log's verifier key: "
                              "Client(..., verifier=vkey)")
        if self._released:
            raise _config.closed_error()
        with self._verify_lock:
            note = self._get("checkpoint", {}).decode("utf-8", "replace")
            cp = witness.open(note)
            need = witness.consistency_needed(cp)
            proof = (self._get("proof/consistency", {"first": need[0], "second": need[1]})
                     if need is not None else None)
            before = witness.note
            witness.advance(note, cp, proof)
            if witness.note != before and witness.note is not None:
                self._keep(witness.note)
            witness.check_covers(receipt, cp)
            inclusion = self._get("proof/inclusion", {"index": receipt.index, "size": cp.size})
            witness.check_inclusion(receipt, cp, note, inclusion)

    def _keep(self, note: str) -> None:
        queue, verifier = self._pipe.queue, self._cfg.verifier
        if queue is not None and verifier is not None and not self._released:
            queue.keep_checkpoint(self._cfg.log, verifier.format(), note)


    def witnessed(self, policy: str | WitnessPolicy) -> Witnessed:
        """Which of ``policy``'s witnesses cosigned the log's checkpoint, as the service
        serves it at ``/tlog/<log>/checkpoint`` (with the witnesses' cosignature lines).

        The note must be signed by the log's key and extend the newest checkpoint this
        client verified (a consistency proof is fetched and checked, as for
        :meth:`verify_receipt`); it then becomes the kept one. Returns the
        :class:`~sealtrail.core.witness_policy.Witnessed` report (``.met``: the quorum
        cosigned). Needs ``verifier=``. Raises VerificationError (a fork, a rollback, a bad
        signature or cosignature), or ClientError when the service cannot be asked.
        """
        witness = self._witness
        if witness is None:
            raise ClientError("witnessed needs the log's verifier key: "
                              "Client(..., verifier=vkey)")
        wanted = policy_of(policy)
        if self._released:
            raise _config.closed_error()
        with self._verify_lock:
            note = (self._get_url(f"/tlog/{self._cfg.log}/checkpoint", {})).decode(
                "utf-8", "replace")
            cp = witness.open(note)
            kept = witness.checkpoint
            if kept is not None and cp.size < kept.size:
                # The served (witnessed) checkpoint lags the newest by a round: check it is
                # a prefix of the kept one; the kept one stays.
                older = (self._get("proof/consistency", {"first": cp.size,
                                                              "second": kept.size})
                         if cp.size > 0 else None)
                check_older(witness, note, cp, older)
                return check_witnessed(note, wanted)
            need = witness.consistency_needed(cp)
            proof = (self._get("proof/consistency", {"first": need[0], "second": need[1]})
                     if need is not None else None)
            before = witness.note
            witness.advance(note, cp, proof)
            if witness.note != before and witness.note is not None:
                self._keep(witness.note)
            return check_witnessed(note, wanted)

    def _get(self, path: str, params: dict[str, int]) -> bytes:
        return self._get_url(f"{self._cfg.prefix}/{path}", params)

    def _get_url(self, url: str, params: dict[str, int]) -> bytes:
        try:
            resp = self._http.get(url, params=params)
        except httpx.HTTPError as exc:
            raise ClientError(f"GET {url}: {type(exc).__name__}: {exc}") from exc
        if resp.status_code != 200:
            raise ClientError(f"GET {url}: HTTP {resp.status_code}: "
                              f"{_config.error_text(resp.content)}")
        return resp.content

    @property
    def checkpoint(self) -> str | None:
        """The newest checkpoint note this client verified (kept in the spool across runs)."""
        return None if self._witness is None else self._witness.note

    @property
    def receipts(self) -> dict[str, Receipt]:
        """The newest receipts (up to ``keep_receipts``) by event id, oldest first."""
        return self._pipe.receipts()

    # -- counters --------------------------------------------------------------------------

    @property
    def pending(self) -> int:
        """Events waiting for delivery (in the spool, or in memory in drop mode)."""
        return 0 if self._released else self._pipe.pending()

    @property
    def delivered(self) -> int:
        """Events acknowledged by the service since this client started."""
        return self._pipe.delivered

    @property
    def rejected(self) -> int:
        """Events the service refused for good (reported to ``on_rejected``)."""
        return self._pipe.rejected

    @property
    def dropped(self) -> int:
        """Events dropped (drop mode: queue full, service unreachable, or left at close)."""
        return self._pipe.dropped

    @property
    def retries(self) -> int:
        """Failed delivery attempts that were (or will be) retried."""
        return self._pipe.retries

    @property
    def last_error(self) -> str | None:
        """Why the last delivery attempt failed (None after a success)."""
        return self._pipe.last_error
