"""The group-durable spool (``durability="group"``): ``put`` queues in memory, a writer commits.

In the default per-call durability, :meth:`Spool.put` returns only once its event is committed
(an fsync per call, shared by threads that put at the same time). Here ``put`` appends the event
to a list in memory and returns; one writer thread per client appends what callers queued to
the same SQLite spool, in put order, one transaction and one fsync per batch, and starts the
next commit no sooner than ``window`` seconds after the last one began. An idle writer commits
the first event at once; under load, events wait at most one window plus the commit before
they are on disk. That is what a crash of the process (kill -9, power loss) can lose: the
events put since the start of the last completed commit, at most those of the last window
and the commit after it. :meth:`sync` (the client's ``flush``) and :meth:`close` commit
everything queued before they return; exactly-once, order and delivery are the spool's.

When a commit fails (a full or broken disk) its events stay queued, in order, and are tried
again every window; meanwhile ``put`` raises ClientError (the application learns that what it
records is not being kept), and :meth:`sync` waits. :meth:`close` tries once more and reports,
on the ``sealtrail.client`` logger, what it could not write.

While ``max_unwritten`` events wait for the writer, ``put`` waits for it (back-pressure, not
unbounded memory).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from sealtrail.client.errors import ClientError
from sealtrail.client.spool import Row, Spool

log = logging.getLogger("sealtrail.client")

_Queued = tuple[str, str, bytes, float]   # log, id, body, recorded
RETRY_PAUSE = 0.1  # seconds at least between two tries of a failed commit


class GroupSpool:
    """A :class:`Spool` whose puts are made durable by a writer thread, a window at a time."""

    def __init__(self, spool: Spool, window: float, *, max_unwritten: int) -> None:
        self.spool = spool
        self.path = spool.path
        self.window = window
        self.max_unwritten = max_unwritten
        self.on_durable: Callable[[int], object] | None = None
        """Called from the writer thread with how many events a commit made durable."""
        # Held by the writer from taking a batch until it is committed (or put back), so that
        # count() never sees a batch in neither place, or in both.
        self._committing = threading.Lock()
        self._cv = threading.Condition(threading.Lock())  # guards everything below
        self._queue: list[_Queued] = []
        self._queued = 0     # puts accepted since the start
        self._durable = 0    # of them, committed: always a prefix, in put order
        self._error: ClientError | None = None
        self._stopping = False
        self._wake = threading.Event()    # something was queued (or a sync, or close)
        self._hurry = threading.Event()   # a sync or close: do not wait out the window
        self._thread = threading.Thread(target=self._run, daemon=True,
                                        name=f"sealtrail-spool-writer[{self.path.name}]")
        self._thread.start()

    # -- the callers' side -----------------------------------------------------------------

    def put(self, log: str, ident: str, body: bytes, recorded: float) -> int:
        """Queue an event for the writer; return 0 (its ``seq`` is known once committed).

        Raises ClientError when the last commit failed or the spool is closed.
        """
        with self._cv:
            if self._stopping:
                raise ClientError(f"the spool {self.path} is closed")
            if self._error is not None:
                raise ClientError(f"the spool cannot be written, so this event would not be "
                                  f"kept: {self._error}") from self._error
            if len(self._queue) >= self.max_unwritten:
                self._hurry.set()
                self._wake.set()
                self._cv.wait_for(lambda: len(self._queue) < self.max_unwritten
                                  or self._stopping or self._error is not None)
                if self._stopping or self._error is not None:
                    raise ClientError(f"the spool {self.path} cannot take the event "
                                      f"({self._error or 'closed'})")
            self._queue.append((log, ident, body, recorded))
            self._queued += 1
        if not self._wake.is_set():
            self._wake.set()
        return 0

    def sync(self, timeout: float | None) -> bool:
        """Commit everything queued so far now; whether it is durable within ``timeout``."""
        with self._cv:
            target = self._queued
            if self._durable >= target:
                return True
            self._hurry.set()
            self._wake.set()
            self._cv.wait_for(lambda: self._durable >= target or not self._thread.is_alive(),
                              timeout)
            return self._durable >= target

    @property
    def full(self) -> bool:
        """Whether a ``put`` would wait for the writer now (``max_unwritten`` events wait)."""
        return len(self._queue) >= self.max_unwritten

    @property
    def durable(self) -> int:
        """How many of the events put since this spool opened are committed (the oldest)."""
        with self._cv:
            return self._durable

    def close(self) -> None:
        """Commit what is queued, stop the writer, close the file."""
        with self._cv:
            if self._stopping:
                return
            self._stopping = True
            self._cv.notify_all()
        self._hurry.set()
        self._wake.set()
        self._thread.join()
        with self._cv:
            lost = len(self._queue)
        if lost:
            log.error("sealtrail: %d recorded audit event(s) could not be written to the spool "
                      "%s and are lost: %s", lost, self.path, self._error)
        self.spool.close()

    # -- the writer ------------------------------------------------------------------------

    def _run(self) -> None:
        try:
            while True:
                # 1. Wait for work; a sync or close that arrives from here on is not missed.
                self._wake.wait()
                self._wake.clear()
                self._hurry.clear()
                started = time.monotonic()
                # 2. One transaction, one fsync, in put order.
                with self._committing:
                    with self._cv:
                        batch, self._queue = self._queue, []
                        stopping = self._stopping
                    ok = self._commit(batch) if batch else True
                if batch and ok:
                    self._tell(len(batch))  # outside the lock: the callback takes others
                if stopping:
                    return  # puts are refused from the moment stopping was read; a failed
                            # last commit is reported by close()
                # 3. No next commit sooner than a window after this one began (a failed one
                #    is tried again after RETRY_PAUSE at least).
                pause = self.window if ok else max(self.window, RETRY_PAUSE)
                rest = pause - (time.monotonic() - started)
                if rest > 0:
                    self._hurry.wait(rest)
        finally:
            with self._cv:
                self._cv.notify_all()

    def _commit(self, batch: list[_Queued]) -> bool:
        try:
            self.spool.put_many(batch)
        except Exception as exc:  # whatever it is, the batch is not dropped (nor the writer)
            error = exc if isinstance(exc, ClientError) else ClientError(
                f"cannot write to the spool {self.path}: {exc!r}")
            with self._cv:
                self._queue[:0] = batch   # first in line again, order kept
                first = self._error is None
                self._error = error
                self._cv.notify_all()
            if first:
                log.exception("sealtrail: the spool writer could not commit; %d recorded "
                              "event(s) wait in memory and are tried again every %.3f s",
                              len(batch), max(self.window, RETRY_PAUSE))
            self._wake.set()
            return False
        with self._cv:
            self._durable += len(batch)
            self._error = None
            self._cv.notify_all()
        return True

    def _tell(self, n: int) -> None:
        callback = self.on_durable
        if callback is not None:
            try:
                callback(n)
            except Exception:
                log.exception("sealtrail: the spool writer's callback raised")

    # -- the delivery side: the spool file's rows ------------------------------------------

    def peek(self, log: str, limit: int) -> list[Row]:
        """The oldest ``limit`` committed events of ``log``."""
        return self.spool.peek(log, limit)

    def remove(self, seqs: list[int]) -> None:
        """Forget acknowledged events (see :meth:`Spool.remove`)."""
        self.spool.remove(seqs)

    def reject(self, log: str, row: Row, *, status: int, field: str, reason: str,
               at: float) -> None:
        """Move a refused event to the ``rejected`` table."""
        self.spool.reject(log, row, status=status, field=field, reason=reason, at=at)

    def first_seq(self, log: str) -> int | None:
        """The ``seq`` of the oldest committed event of ``log``."""
        return self.spool.first_seq(log)

    def last_seq(self, log: str) -> int | None:
        """The ``seq`` of the newest committed event of ``log`` (``sync`` first for all)."""
        return self.spool.last_seq(log)

    def count(self, log: str) -> int:
        """How many events of ``log`` wait: in the file, and queued for the writer."""
        with self._committing:
            with self._cv:
                queued = sum(1 for item in self._queue if item[0] == log)
            return self.spool.count(log) + queued

    def kept_checkpoint(self, log: str, vkey: str) -> str | None:
        """See :meth:`Spool.kept_checkpoint`."""
        return self.spool.kept_checkpoint(log, vkey)

    def keep_checkpoint(self, log: str, vkey: str, note: str) -> None:
        """See :meth:`Spool.keep_checkpoint`."""
        self.spool.keep_checkpoint(log, vkey, note)

    def scrub(self) -> bool:
        """See :meth:`Spool.scrub`."""
        return self.spool.scrub()
