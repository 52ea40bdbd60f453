"""The asyncio client: the same behaviour as :class:`~sealtrail.client.Client`, awaited.

Spool reads and writes (SQLite, with fsync) run in worker threads (``asyncio.to_thread``) so the
event loop never waits for the disk; delivery runs in one task started on first use. With
``durability="group"``, ``record`` appends to the spool writer's queue on the loop (no thread
hop: nothing waits for the disk) and the writer's commits wake the delivery task.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Self, TypeVar

import httpx

from sealtrail.client import _config
from sealtrail.client._pipeline import Pipeline, Rejection, Settled
from sealtrail.client.delivery import Ack, Outcome, Reject, Retry, Stall, classify
from sealtrail.client.errors import ClientError, DeliveryError
from sealtrail.client.groupspool import GroupSpool
from sealtrail.client.prepare import merge_fields, prepare_event
from sealtrail.client.receipt import Receipt
from sealtrail.client.spool import Row, Spool
from sealtrail.client.witness import check_older, check_witnessed, policy_of
from sealtrail.core.errors import ValidationError
from sealtrail.core.event import Event
from sealtrail.core.retry import backoff
from sealtrail.core.witness_policy import Witnessed, WitnessPolicy

log = logging.getLogger("sealtrail.client")

FAIL_CLOSED_ATTEMPTS = 3
T = TypeVar("T")


class AsyncClient:
    """Records audit events in a sealtrail service from asyncio code.

    The constructor takes the same arguments as :class:`~sealtrail.client.Client` (with an
    ``httpx.AsyncBaseTransport``); ``await record(...)``, ``await flush()``,
    ``await verify_receipt(...)``, ``await close()`` (or its alias ``aclose()``) or
    ``async with``. Its public names are :class:`~sealtrail.client.Client`'s plus ``aclose``
    (``tests/client/test_async_client.py`` checks it).
    """

    def __init__(self, base_url: str, token: str, log: str = "default", *,
                 spool_path: str | os.PathLike[str] | None = None,
                 failure_mode: str = "spool", durability: str = "call",
                 group_window_ms: float = 5.0, batch_size: int = 100,
                 flush_interval: float = 0.2, timeout: float = 5.0,
                 verifier: str | None = None,
                 transport: httpx.AsyncBaseTransport | None = None,
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
        self._http = httpx.AsyncClient(base_url=cfg.base_url, headers=cfg.headers,
                                       timeout=cfg.timeout, transport=transport)
        self._verify_lock = asyncio.Lock()
        self._cv = asyncio.Condition()
        self._recorded = 0
        self._kicks = 0
        self._flushers = 0
        self._stopping = False
        self._closed = False
        self._released = False
        self._task: asyncio.Task[None] | None = None
        self._notes: set[asyncio.Task[None]] = set()  # the group writer's news, in flight

    async def _q(self, fn: Callable[..., T], *args: Any) -> T:
        """Run a queue operation: in a thread for the spool (disk), inline for memory."""
        if isinstance(self._pipe.queue, Spool | GroupSpool):
            return await asyncio.to_thread(fn, *args)
        return fn(*args)

    def _start(self) -> None:
        if self._task is None and self._pipe.queue is not None and not self._stopping:
            loop = asyncio.get_running_loop()
            queue = self._pipe.queue
            if isinstance(queue, GroupSpool):
                queue.on_durable = lambda n: self._committed(loop, n)
            self._task = loop.create_task(self._run(), name=f"sealtrail-client[{self._cfg.log}]")

    def _committed(self, loop: asyncio.AbstractEventLoop, n: int) -> None:
        """``durability="group"``: the spool writer committed ``n`` events (its thread); tell
        the sender task, on the loop."""
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody to tell
            loop.call_soon_threadsafe(self._note_committed, n)

    def _note_committed(self, n: int) -> None:
        task = asyncio.get_running_loop().create_task(self._recorded_more(n))
        self._notes.add(task)
        task.add_done_callback(self._notes.discard)

    async def _recorded_more(self, n: int) -> None:
        async with self._cv:
            self._recorded += n
            self._cv.notify_all()

    async def _wait(self, predicate: Callable[[], bool], timeout: float) -> None:
        """Wait (holding the condition) until ``predicate`` or ``timeout``."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._cv.wait_for(predicate), timeout)

    # -- recording -------------------------------------------------------------------------

    async def record(self, event: Mapping[str, Any] | Event | None = None, /, *,
                     actor: Mapping[str, Any] | None = None, action: str | None = None,
                     outcome: str | None = None, **fields: Any) -> str:
        """Record one event; return its id. See :meth:`sealtrail.client.Client.record`."""
        if self._closed:
            raise _config.closed_error()
        doc = merge_fields(event, {"actor": actor, "action": action, "outcome": outcome,
                                   **fields})
        ident, body = prepare_event(doc, now=datetime.now(UTC), rand=os.urandom(10))
        queue = self._pipe.queue
        if queue is None:
            await self._send_now(ident, body)
            return ident
        self._start()
        if isinstance(queue, GroupSpool):  # a list append; the writer tells the sender
            if queue.full:  # back-pressure: wait for the writer off the loop
                await asyncio.to_thread(queue.put, self._cfg.log, ident, body, time.time())
            else:
                queue.put(self._cfg.log, ident, body, time.time())
            return ident
        if await self._q(queue.put, self._cfg.log, ident, body, time.time()) < 0:
            self._pipe.count_full()
            return ident
        async with self._cv:
            self._recorded += 1
            self._cv.notify_all()
        return ident

    async def _send_now(self, ident: str, body: bytes) -> Receipt:
        deadline = time.monotonic() + self._cfg.timeout
        row = Row(0, ident, body, time.time())
        for attempt in range(FAIL_CLOSED_ATTEMPTS):
            outcome = await self._post([row])
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
            await asyncio.sleep(pause)
        raise DeliveryError("unreachable", event_id=ident)  # pragma: no cover

    async def _post(self, rows: list[Row]) -> Outcome:
        body = b"[" + b",".join(row.body for row in rows) + b"]"
        try:
            resp = await self._http.post(f"{self._cfg.prefix}/events", content=body,
                                         headers={"content-type": "application/json"})
        except httpx.HTTPError as exc:
            return Retry(f"{type(exc).__name__}: {exc}")
        return classify(resp.status_code, resp.headers, resp.content,
                        [row.id for row in rows], now=datetime.now(UTC))

    # -- the sender task -------------------------------------------------------------------

    async def _run(self) -> None:
        while True:
            async with self._cv:
                if self._stopping:
                    return
                seen_rec, seen_kick = self._recorded, self._kicks
            try:
                await self._step(seen_rec, seen_kick)
            except Exception:
                log.exception("sealtrail: the delivery task failed; retrying")
                await self._pause(Settled(delay=1.0), seen_kick)

    async def _step(self, seen_rec: int, seen_kick: int) -> None:
        rows = await self._q(self._pipe.take)
        if not rows:
            async with self._cv:
                await self._wait(lambda: (self._recorded != seen_rec or self._stopping
                                          or self._kicks != seen_kick), _config.IDLE_POLL)
            return
        linger = self._linger(rows)
        if linger > 0:
            want = self._pipe.limit - len(rows)
            async with self._cv:
                await self._wait(lambda: (self._recorded - seen_rec >= want or self._stopping
                                          or self._flushers > 0 or self._kicks != seen_kick),
                                 linger)
            return
        outcome = await self._post(rows)
        settled = await self._q(self._pipe.settle, rows, outcome, time.time())
        self._pipe.notify(settled)
        async with self._cv:
            self._cv.notify_all()
        if settled.delay:
            await self._pause(settled, seen_kick)

    def _linger(self, rows: list[Row]) -> float:
        if len(rows) >= self._pipe.limit or self._flushers or self._closed:
            return 0.0
        waited = max(0.0, time.time() - rows[0].recorded)  # a clock stepped back waits no more
        return self._cfg.flush_interval - waited

    async def _pause(self, settled: Settled, seen_kick: int) -> None:
        async with self._cv:
            if settled.floor:
                await self._wait(lambda: self._stopping, settled.floor)
            rest = settled.delay - settled.floor
            if rest > 0:
                await self._wait(lambda: self._stopping or self._kicks != seen_kick, rest)

    # -- flushing and closing --------------------------------------------------------------

    async def flush(self, timeout: float | None = 30.0) -> bool:
        """Wait until every event recorded so far is acknowledged; False on timeout.

        With ``durability="group"`` it first commits what waits for the spool writer.
        """
        if self._released:
            raise _config.closed_error()
        queue = self._pipe.queue
        if queue is None:
            return True
        self._start()
        deadline = None if timeout is None else time.monotonic() + timeout
        if isinstance(queue, GroupSpool) and not await asyncio.to_thread(queue.sync, timeout):
            return False
        target = await self._q(self._pipe.last_seq)
        task = self._task
        if target is None or task is None:
            return True
        async with self._cv:
            self._kicks += 1
            self._flushers += 1
            self._cv.notify_all()
            try:
                while not await self._q(self._pipe.done_through, target):
                    if task.done():
                        return False
                    remaining = 0.5 if deadline is None else deadline - time.monotonic()
                    if remaining <= 0:
                        return False
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._cv.wait(), min(remaining, 0.5))
                return True
            finally:
                self._flushers -= 1

    async def close(self, timeout: float = 5.0) -> None:
        """Flush (up to ``timeout`` seconds), stop the sender, release connection and spool.

        In spool mode what is still undelivered stays in the spool for the next client; in
        drop mode it is dropped (and counted). Closing twice does nothing.
        """
        if self._closed:
            return
        self._closed = True
        flushed = await self.flush(timeout)
        async with self._cv:
            self._stopping = True
            self._cv.notify_all()
        if self._task is not None:
            try:
                await asyncio.wait_for(self._task, self._cfg.timeout + 1.0)
            except TimeoutError:
                log.warning("sealtrail: the delivery task did not stop in time; cancelled it")
        left = await self._q(self._pipe.pending)
        if not flushed and left:
            if self._cfg.mode == "drop":
                self._pipe.dropped += left
                log.warning("sealtrail: dropped %d undelivered audit event(s) at close", left)
            else:
                log.warning("sealtrail: %d audit event(s) stay in the spool; a client on the "
                            "same spool delivers them", left)
        self._released = True
        await self._http.aclose()
        queue = self._pipe.queue
        if isinstance(queue, GroupSpool):
            await asyncio.to_thread(queue.close)  # joins the writer: off the loop
        elif queue is not None:
            queue.close()

    async def aclose(self, timeout: float = 5.0) -> None:
        """The same as :meth:`close` (the name ``contextlib.aclosing`` and httpx use)."""
        await self.close(timeout)

    async def __aenter__(self) -> Self:
        self._start()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        await self.close()

    # -- receipts and verification ---------------------------------------------------------

    async def verify_receipt(self, receipt: Receipt) -> None:
        """See :meth:`sealtrail.client.Client.verify_receipt`."""
        witness = self._witness
        if witness is None:
            raise ClientError("verify_receipt needs the log's verifier key: "
                              "AsyncClient(..., verifier=vkey)")
        if self._released:
            raise _config.closed_error()
        async with self._verify_lock:
            note = (await self._get("checkpoint", {})).decode("utf-8", "replace")
            cp = witness.open(note)
            need = witness.consistency_needed(cp)
            proof = (await self._get("proof/consistency", {"first": need[0], "second": need[1]})
                     if need is not None else None)
            before = witness.note
            witness.advance(note, cp, proof)
            queue, verifier = self._pipe.queue, self._cfg.verifier
            if (witness.note is not None and witness.note != before and queue is not None
                    and verifier is not None and not self._released):
                await self._q(queue.keep_checkpoint, self._cfg.log, verifier.format(),
                              witness.note)
            witness.check_covers(receipt, cp)
            inclusion = await self._get("proof/inclusion",
                                        {"index": receipt.index, "size": cp.size})
            witness.check_inclusion(receipt, cp, note, inclusion)


    async def witnessed(self, policy: str | WitnessPolicy) -> Witnessed:
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
                              "AsyncClient(..., verifier=vkey)")
        wanted = policy_of(policy)
        if self._released:
            raise _config.closed_error()
        async with self._verify_lock:
            note = (await self._get_url(f"/tlog/{self._cfg.log}/checkpoint", {})).decode(
                "utf-8", "replace")
            cp = witness.open(note)
            kept = witness.checkpoint
            if kept is not None and cp.size < kept.size:
                # The served (witnessed) checkpoint lags the newest by a round: check it is
                # a prefix of the kept one; the kept one stays.
                older = (await self._get("proof/consistency", {"first": cp.size,
                                                              "second": kept.size})
                         if cp.size > 0 else None)
                check_older(witness, note, cp, older)
                return check_witnessed(note, wanted)
            need = witness.consistency_needed(cp)
            proof = (await self._get("proof/consistency", {"first": need[0], "second": need[1]})
                     if need is not None else None)
            before = witness.note
            witness.advance(note, cp, proof)
            queue, verifier = self._pipe.queue, self._cfg.verifier
            if (witness.note is not None and witness.note != before and queue is not None
                    and verifier is not None and not self._released):
                await self._q(queue.keep_checkpoint, self._cfg.log, verifier.format(),
                              witness.note)
            return check_witnessed(note, wanted)

    async def _get(self, path: str, params: dict[str, int]) -> bytes:
        return await self._get_url(f"{self._cfg.prefix}/{path}", params)

    async def _get_url(self, url: str, params: dict[str, int]) -> bytes:
        try:
            resp = await self._http.get(url, params=params)
        except httpx.HTTPError as exc:
            raise ClientError(f"GET {url}: {type(exc).__name__}: {exc}") from exc
        if resp.status_code != 200:
            raise ClientError(f"GET {url}: HTTP {resp.status_code}: "
                              f"{_config.error_text(resp.content)}")
        return resp.content

    @property
    def checkpoint(self) -> str | None:
        """The newest checkpoint note this client verified."""
        return None if self._witness is None else self._witness.note

    @property
    def receipts(self) -> dict[str, Receipt]:
        """The newest receipts by event id, oldest first."""
        return self._pipe.receipts()

    @property
    def pending(self) -> int:
        """Events waiting for delivery (a quick read of the spool, like the sync client's)."""
        return 0 if self._released else self._pipe.pending()

    @property
    def delivered(self) -> int:
        """Events acknowledged by the service since this client started."""
        return self._pipe.delivered

    @property
    def rejected(self) -> int:
        """Events the service refused for good."""
        return self._pipe.rejected

    @property
    def dropped(self) -> int:
        """Events dropped (drop mode)."""
        return self._pipe.dropped

    @property
    def retries(self) -> int:
        """Failed delivery attempts that were (or will be) retried."""
        return self._pipe.retries

    @property
    def last_error(self) -> str | None:
        """Why the last delivery attempt failed (None after a success)."""
        return self._pipe.last_error

