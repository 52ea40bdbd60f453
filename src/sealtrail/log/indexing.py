"""The index step: blind-index rows written after the commit, from a cursor kept in the store.

The append path writes no index rows. Its commit records, when the store has none, a cursor
(the ``unindexed_from`` setting): every entry from there on still waits for its rows. This
step, run later in a transaction of its own (or inside an engine change that needs an
up-to-date index, such as an erasure), writes the rows of every entry from the cursor to the
committed size and removes the cursor, in one transaction: a crash leaves either both or
neither, and the next run starts again from the cursor (idempotent, resumable).

Where the rows come from: the tokens each commit of this process computed while preparing
its events (handed over with :meth:`Indexer.committed`), else -- entries another process
appended, a queue lost in a crash, entries appended with the keyring locked -- the entries
themselves, opened with the log's keys. Without the keyring nothing can be indexed: the
cursor waits for a process that has it.

A background thread (:meth:`Indexer.start`) runs the step shortly after each commit
(:data:`LINGER` seconds, so a burst of commits is indexed in one transaction); searches run it
first themselves, so a search never misses a committed entry (:meth:`AuditLog.find`). With
several processes appending, the background step indexes the entries it has tokens for and
moves the cursor to where it stopped, leaving another process's entries to that process for
:data:`PATIENCE` seconds before it opens them itself.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Final

from sealtrail.core import canonical
from sealtrail.core.blind import BlindIndexer
from sealtrail.core.errors import SealtrailError
from sealtrail.log.blindindex import SEG_SHIFT, BlindIndex
from sealtrail.log.protect import UNINDEXED_KEY, Protector
from sealtrail.store.protocol import Store

LINGER: Final = 0.2        # seconds the background step waits to take more commits at once
RETRY: Final = 1.0         # seconds before the background step tries again after a failure
PATIENCE: Final = 1.0      # seconds the background step leaves another process's entries to it
_QUEUE_MAX: Final = 2_000_000  # queued rows kept at most; past that, rebuilt from the entries

_log = logging.getLogger("sealtrail.index")


@dataclass(frozen=True, slots=True)
class Indexed:
    """Rows of one commit's entries ``[start, end)``: (entry index, token) pairs."""

    start: int
    end: int
    rows: list[tuple[int, int]]


def tokens_of(protector: Protector, blind: BlindIndexer, index: int, leaf: bytes
              ) -> list[int]:
    """The blind tokens of a stored entry, as its append computed them: ``actor.id``,
    ``actor.ip``, ``target.id`` and each subject of the opened event (none for a subject
    whose key was erased)."""
    obj = canonical.leaf_object(leaf)
    if not isinstance(obj, dict):
        return []
    obj.pop("v", None)
    ev: dict[str, Any] = protector.reveal(index, obj)
    out: list[int] = []
    actor = ev.get("actor") or {}
    target = ev.get("target") or {}
    for name, value in (("actor.id", actor.get("id")), ("actor.ip", actor.get("ip")),
                        ("target.id", target.get("id"))):
        if isinstance(value, str):
            out.append(blind.token(name, value))
    if "erased" not in ev:
        for subject in set(ev.get("subjects") or ()):
            if isinstance(subject, str):
                out.append(blind.token("subject", subject))
    return out


class Indexer:
    """The index step of one log in this process: what its commits handed over, and the
    thread that writes it."""

    def __init__(self, store: Store, protector: Protector) -> None:
        self._store = store
        self._protector = protector
        self._index = BlindIndex(store)
        self._queue: list[Indexed] = []
        self._queued = 0
        self._mutex = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.last_error = ""
        self._gap: tuple[int, float] | None = None  # (entry, since when) without tokens here

    # -- handing over -----------------------------------------------------------------------

    def committed(self, done: Indexed) -> None:
        """A commit's rows (after it is durable); wakes the background step."""
        with self._mutex:
            if self._queued + len(done.rows) <= _QUEUE_MAX:
                self._queue.append(done)
                self._queued += len(done.rows)
        self._wake.set()

    # -- the step ---------------------------------------------------------------------------

    def pending(self) -> bool:
        """Whether committed entries wait for their rows (a cursor is stored)."""
        return UNINDEXED_KEY in self._store.meta()

    def cursor(self) -> int | None:
        """The first entry without rows yet (None: every committed entry is indexed)."""
        value = self._store.meta().get(UNINDEXED_KEY)
        return int(value) if value is not None else None

    def step(self, *, patient: bool = False) -> int:
        """Index every committed entry from the cursor (inside the caller's write
        transaction); the number of entries indexed. Does nothing when the keyring is locked
        (the tokens need its blind key).

        ``patient`` (the background step): stop at the first entries this process has no
        tokens for -- another process appended them and its own step will index them from
        its tokens, cheaper than opening them here -- unless they have waited
        :data:`PATIENCE` seconds (that process may be gone). The cursor then moves to where
        it stopped.
        """
        store = self._store
        if not store.in_transaction:
            raise SealtrailError("the index step runs inside a write transaction")
        start = self.cursor()
        if start is None:
            self._drop_below(store.state().size)
            return 0
        if not self._protector.unlocked:
            return 0
        blind = self._protector.blind()
        size = store.state().size
        rows: list[tuple[int, int, int]] = []
        at = start
        for part in self._take(start, size):
            if part.start > at:
                if patient and not self._waited(at):
                    break
                self._rebuild(blind, at, part.start, rows)
            rows.extend((idx >> SEG_SHIFT, tok, idx) for idx, tok in part.rows)
            at = part.end
        if at < size and (not patient or self._waited(at)):
            self._rebuild(blind, at, size, rows)
            at = size
        if at == start:
            return 0
        self._index.add(rows, at)
        if at < size:
            store.set_meta({UNINDEXED_KEY: str(at)})
        else:
            store.delete_meta(UNINDEXED_KEY)
        # Forgotten now: if this transaction rolls back, the next run rebuilds from entries.
        self._drop_below(at)
        return at - start

    def _waited(self, at: int) -> bool:
        """Whether entries from ``at`` without tokens here have waited long enough for the
        process that appended them to index them."""
        now = time.monotonic()
        if self._gap is None or self._gap[0] != at:
            self._gap = (at, now)
        return now - self._gap[1] >= PATIENCE

    def run(self, *, patient: bool = False) -> int:
        """:meth:`step` in a transaction of its own (when there is anything to do)."""
        if not self.pending():
            return 0
        with self._store.transaction():
            return self.step(patient=patient)

    def _take(self, start: int, size: int) -> Iterator[Indexed]:
        """Queued parts within ``[start, size)``, in order, each wholly inside (a part
        another commit already indexed, or beyond what is committed, is not used)."""
        with self._mutex:
            parts = sorted(self._queue, key=lambda p: p.start)
        at = start
        for part in parts:
            if part.start >= at and part.end <= size:
                yield part
                at = part.end

    def _drop_below(self, end: int) -> None:
        """Forget queued parts of entries below ``end`` (their rows are written)."""
        with self._mutex:
            if self._queue:
                self._queue = [p for p in self._queue if p.end > end]
                self._queued = sum(len(p.rows) for p in self._queue)

    def _rebuild(self, blind: BlindIndexer, start: int, end: int,
                 rows: list[tuple[int, int, int]]) -> None:
        """Rows of entries ``[start, end)`` from the entries themselves (purged ones have
        none)."""
        for chunk in self._store.iter_chunks(start, end):
            for k, leaf in enumerate(chunk.leaves()):
                index = chunk.start + k
                if start <= index < end and leaf:
                    seg = index >> SEG_SHIFT
                    rows.extend((seg, tok, index)
                                for tok in tokens_of(self._protector, blind, index, leaf))

    # -- the background thread --------------------------------------------------------------

    def start(self) -> None:
        """Start the background step (once)."""
        if self._thread is not None or self._stop.is_set():
            return
        self._thread = threading.Thread(target=self._loop, name="sealtrail-index",
                                        daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._wake.wait()
            if self._stop.wait(LINGER):
                break
            self._wake.clear()
            try:
                self.run(patient=True)
                if self.pending():
                    self._wake.set()  # entries of another process: look again shortly
                self.last_error = ""
            except Exception as exc:
                self.last_error = str(exc)
                _log.warning("index step failed (retrying in %.0f s): %s", RETRY, exc)
                self._wake.set()
                self._stop.wait(RETRY)

    def close(self) -> None:
        """Stop the background step (what it has not written, the next run rebuilds)."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
