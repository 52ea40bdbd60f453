"""Group commit: many callers' appends committed together, one transaction (one fsync, one
checkpoint signature) per round.

Whichever caller finds no commit in progress becomes the leader: it takes every queued
request and commits them in one go; the others sleep on their own event and get their
receipts. A leader commits at most :data:`LEAD_ROUNDS` rounds, then hands leadership to the
oldest waiter, so no caller is kept committing for others for long. Waking only those who have
work (not every waiter) keeps 64 threads from fighting over the GIL.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Final

from sealtrail.core.receipt import Receipt
from sealtrail.log.ingest import Request

LEAD_ROUNDS: Final = 4  # commits a leader makes before handing leadership to a waiter


class GroupCommit:
    """The queue of one engine. ``commit`` commits a batch of requests, answering each (its
    receipts or its error, and ``done``); an error it raises answers every request not yet
    answered."""

    def __init__(self, commit: Callable[[list[Request]], None]) -> None:
        self._commit_batch = commit
        self._mutex = threading.Lock()
        self._queue: list[Request] = []
        self._leading = False

    def submit(self, req: Request) -> list[Receipt]:
        """Queue ``req`` and return its receipts once committed (or raise its error)."""
        with self._mutex:
            self._queue.append(req)
            lead = not self._leading
            self._leading = True
        if not lead:
            req.wake.wait()
        if not req.done:  # we lead: commit the queue (ours included), then what queued meanwhile
            rounds = 0
            while True:
                with self._mutex:
                    batch, self._queue = self._queue, []
                    if not batch or rounds == LEAD_ROUNDS:
                        if batch:  # hand the rest to the oldest waiter, who wakes as leader
                            self._queue = batch
                            batch[0].wake.set()
                        else:
                            self._leading = False
                        break
                rounds += 1
                try:
                    self.commit(batch)
                finally:
                    for other in batch:
                        if other is not req:
                            other.wake.set()
        if req.error is not None:
            raise req.error
        return req.receipts

    def commit(self, batch: list[Request]) -> None:
        """Commit one batch; whatever it raises answers every request not yet answered."""
        try:
            self._commit_batch(batch)
        except BaseException as exc:
            for req in batch:
                if not req.done:
                    req.error = exc
                    req.done = True
            if not isinstance(exc, Exception):  # KeyboardInterrupt and the like go on up
                raise
