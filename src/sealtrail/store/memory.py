"""The in-memory store: the whole :class:`~sealtrail.store.protocol.Store` contract, nothing
on disk. For ephemeral logs and tests; ``tests/contract/`` runs it through the same suite as
the SQLite store.

How it keeps the contract without a database:

- **Versions.** The committed data is one :class:`_Tables` value. A table (a dict or a list
  of immutable rows) is shared between versions and never changed once committed; a writer
  copies a table the first time it writes it (copy-on-write), so readers, snapshots and
  iterators holding an older version keep seeing exactly that version.
- **Handles.** The store made by ``MemoryStore()`` is the one handle that writes;
  :meth:`MemoryStore.reader` gives read-only handles on the same data. A handle reads the
  committed version (its own version inside a transaction, the pinned one inside a
  snapshot). As SQLite's one connection per handle, a handle lets one thread at a time use
  it, and holds its lock for a whole transaction or snapshot: the writing handle's lock is
  the store's write lock (one writer at a time), and no other thread sees a transaction's
  uncommitted rows.
- **Transactions.** :meth:`MemoryStore.transaction` works on a version of its own; leaving
  the block normally publishes it with one reference swap (all or nothing), raising drops
  it. A savepoint works on a version of its own in the same way, dropped alone when its
  block raises.
- **Erasure.** A deleted subject key is gone from the committed version at commit; only a
  snapshot still pinning an older version keeps a copy, which :meth:`purge_deleted` waits for.

Cost: a commit copies each table it writes (time in the table's rows), so a log of millions
of entries belongs in SQLite. No other process can reach the data: :meth:`opener` is None.
"""

from __future__ import annotations

import bisect
import dataclasses
import itertools
import struct
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Final

from sealtrail.core.errors import StorageError
from sealtrail.store.protocol import (
    Chunk,
    HeadConflictError,
    Hold,
    KeptCheckpoint,
    RetiredRange,
    State,
    Store,
    SubjectKey,
)

# The blind index's segment of an entry (``log/blindindex.py``: 4096 entries), which
# ``delete_blind_range`` bounds its rows by, as the SQLite store does.
_SEG_SHIFT: Final = 12
_OUTSIDE_ROWS: Final = 8  # how many rows blind_outside answers at most (as SQLite's LIMIT)
_TABLES: Final = ("state", "reach", "meta", "chunks", "starts", "nodes", "buckets", "exact",
                  "checkpoints", "keys", "key_refs", "blind", "pending", "holds", "retired")


class _Tables:
    """One version of every table. Rows are immutable values; a table object is shared with
    other versions until a writer copies it (see :meth:`MemoryStore._own`)."""

    __slots__ = _TABLES

    def __init__(self) -> None:
        self.state = State(0, None, 0)
        self.reach = 0                               # the largest chunk count stored
        self.meta: dict[str, str] = {}
        self.chunks: dict[int, Chunk] = {}
        self.starts: list[int] = []                  # the chunk starts, ascending
        self.nodes: dict[tuple[int, int], bytes] = {}
        self.buckets: dict[int, frozenset[int]] = {}  # bucket -> chunk starts
        self.exact: dict[bytes, int] = {}
        self.checkpoints: dict[int, str] = {}
        self.keys: dict[bytes, SubjectKey] = {}      # by key id
        self.key_refs: dict[bytes, bytes] = {}       # subject reference -> key id
        self.blind: dict[tuple[int, int], frozenset[int]] = {}  # (segment, token) -> indexes
        self.pending: dict[int, bytes] = {}
        self.holds: list[Hold] = []
        self.retired: dict[int, RetiredRange] = {}

    def clone(self) -> _Tables:
        """A new version sharing every table with this one."""
        new = _Tables.__new__(_Tables)
        for name in _TABLES:
            setattr(new, name, getattr(self, name))
        return new


class _Shared:
    """What every handle on one in-memory store shares: the committed version, the commit
    count and the versions open snapshots pin."""

    def __init__(self) -> None:
        self.committed = _Tables()
        self.commits = 0
        self.changed = threading.Condition()  # guards committed, commits and pins
        self.pins: dict[int, _Tables] = {}
        self.pin_ids = itertools.count()


class MemoryStore:
    """A log's store held in this process's memory (gone when the process ends).

    Implements :class:`sealtrail.store.protocol.Store`; :meth:`reader` gives more handles on
    the same data.
    """

    def __init__(self, location: str = ":memory:") -> None:
        self._setup(_Shared(), location, readonly=False)

    def _setup(self, shared: _Shared, location: str, *, readonly: bool) -> None:
        self._shared = shared
        self._location = location
        self._readonly = readonly
        self._lock = threading.RLock()  # one thread at a time on this handle (see above)
        self._closed = False
        self._tx: _Tables | None = None   # this handle's version inside a transaction
        self._owned: set[str] = set()     # tables that version copied (may change in place)
        self._pinned: _Tables | None = None
        self._own_commits = 0

    def __repr__(self) -> str:
        return f"MemoryStore({self._location!r}{', read-only' if self._readonly else ''})"

    # -- the unit of work ---------------------------------------------------------------------

    @property
    def location(self) -> str:
        """The name given at creation (``:memory:`` by default)."""
        return self._location

    @property
    def in_transaction(self) -> bool:
        """Whether this handle is inside a write transaction (holds the write lock)."""
        return self._tx is not None

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Hold the write lock (this handle's) and work on a version of our own; publish it
        when the block exits normally, drop it when the block raises."""
        with self._lock:
            self._check_open()
            if self._readonly:
                raise StorageError("cannot start a write: this handle is read-only")
            if self._tx is not None or self._pinned is not None:
                raise StorageError("cannot start a write: this handle is inside a "
                                   f"{'transaction' if self._tx is not None else 'snapshot'}")
            try:
                self._tx = self._shared.committed.clone()
                self._owned = set()
                yield
                if self._closed:
                    raise StorageError("commit failed, nothing was stored: the store was closed")
                with self._shared.changed:
                    self._shared.committed = self._tx
                    self._shared.commits += 1
                    self._own_commits += 1
                    self._shared.changed.notify_all()
            finally:
                self._tx = None
                self._owned = set()

    @contextmanager
    def savepoint(self) -> Iterator[None]:
        """A version of its own inside the transaction, dropped alone if the block raises."""
        with self._lock:
            outer, outer_owned = self._tx, self._owned
            if outer is None:
                raise StorageError("a savepoint needs a transaction")
            self._tx, self._owned = outer.clone(), set()
            try:
                yield
            except BaseException:
                self._tx, self._owned = outer, outer_owned
                raise
            # The outer version is dropped: the tables it copied and this part did not are
            # still referenced by this handle alone.
            self._owned |= outer_owned

    @contextmanager
    def snapshot(self) -> Iterator[None]:
        """Pin the committed version: every read inside sees it, whatever commits meanwhile."""
        with self._lock:
            self._check_open()
            if self._tx is not None or self._pinned is not None:
                raise StorageError("cannot start a snapshot: this handle is inside a "
                                   f"{'transaction' if self._tx is not None else 'snapshot'}")
            shared = self._shared
            with shared.changed:
                pin = next(shared.pin_ids)
                self._pinned = shared.pins[pin] = shared.committed
            try:
                yield
            finally:
                self._pinned = None
                with shared.changed:
                    del shared.pins[pin]
                    shared.changed.notify_all()

    def change_marker(self) -> int:
        """The number of commits made through other handles (this handle's own do not count,
        as SQLite's ``data_version``)."""
        with self._lock:
            self._check_open()
            with self._shared.changed:
                return self._shared.commits - self._own_commits

    def replaced(self) -> bool:
        """Always False: nothing can put other data where an in-memory store is."""
        return False

    def reader(self) -> Store:
        """A read-only handle on the same data (its reads never wait for a writer)."""
        with self._lock:
            self._check_open()
            handle = MemoryStore.__new__(MemoryStore)
            handle._setup(self._shared, self._location, readonly=True)
            return handle

    def opener(self) -> Callable[[], Store] | None:
        """None: another process cannot reach this process's memory."""
        return None

    def close(self) -> None:
        """Close this handle (others on the same data stay open)."""
        with self._lock:
            self._closed = True

    def _check_open(self) -> None:
        if self._closed:
            raise StorageError(f"the store {self._location} is closed")

    def _view(self) -> _Tables:
        """The version this handle reads now (call with the handle's lock held)."""
        self._check_open()
        if self._tx is not None:
            return self._tx
        if self._pinned is not None:
            return self._pinned
        return self._shared.committed

    def _writing(self) -> _Tables:
        """This transaction's version (call with the handle's lock held)."""
        self._check_open()
        if self._tx is None:
            raise StorageError("write outside a transaction")
        return self._tx

    def _own(self, data: _Tables, *names: str) -> None:
        """Copy the named tables into ``data`` unless this version copied them already."""
        for name in names:
            if name not in self._owned:
                setattr(data, name, getattr(data, name).copy())
                self._owned.add(name)

    # -- EntryLog -----------------------------------------------------------------------------

    def put_chunks(self, chunks: list[Chunk]) -> None:
        """Insert chunks; a start already stored (or given twice) fails, storing none."""
        with self._lock:
            data = self._writing()
            new: dict[int, Chunk] = {}
            for c in chunks:
                start = int(c.start)
                if start in data.chunks or start in new:
                    raise StorageError(f"write failed: a chunk already starts at {start}")
                new[start] = Chunk(start, int(c.count), int(c.batch_end), bytes(c.ids),
                                   bytes(c.data))
            if not new:
                return
            self._own(data, "chunks", "starts")
            data.chunks.update(new)
            tail = data.starts[-1] if data.starts else None
            data.starts.extend(sorted(new))
            if tail is not None and min(new) < tail:
                data.starts.sort()
            data.reach = max(data.reach, *(c.count for c in new.values()))

    def iter_chunks(self, start: int = 0, end: int | None = None) -> Iterator[Chunk]:
        """Chunks overlapping ``[start, end)``: those starting inside it, and those starting
        before it that reach into it; in order of start."""
        with self._lock:
            data = self._view()
            if end is not None and end <= start:
                return iter(())
            starts, chunks = data.starts, data.chunks
            # A chunk starting before ``start`` reaches it only if it starts less than the
            # largest count before it.
            lo = bisect.bisect_left(starts, start - max(data.reach - 1, 0))
            hi = len(starts) if end is None else bisect.bisect_left(starts, end)
            picked = [s for s in starts[lo:hi] if s >= start or s + chunks[s].count > start]
        return (chunks[s] for s in picked)

    def iter_all_chunks(self) -> Iterator[Chunk]:
        """Every chunk in order of start, wherever it starts."""
        with self._lock:
            data = self._view()
            starts, chunks = list(data.starts), data.chunks
        return (chunks[s] for s in starts)

    def iter_chunks_desc(self, before: int) -> Iterator[Chunk]:
        """Chunks starting in ``[0, before)``, newest first."""
        with self._lock:
            data = self._view()
            starts, chunks = data.starts, data.chunks
            picked = starts[bisect.bisect_left(starts, 0):bisect.bisect_left(starts, before)]
        return (chunks[s] for s in reversed(picked))

    def stray_chunk(self, size: int) -> int | None:
        """The first start outside ``[0, size)``, if any."""
        with self._lock:
            starts = self._view().starts
            if starts and starts[0] < 0:
                return starts[0]
            at = bisect.bisect_left(starts, size)
            return starts[at] if at < len(starts) else None

    def chunks_at(self, starts: Iterable[int]) -> list[Chunk]:
        """The chunks with these starts (those stored), in order of start."""
        with self._lock:
            chunks = self._view().chunks
            return [chunks[s] for s in sorted(set(starts)) if s in chunks]

    def entry_at(self, index: int) -> bytes | None:
        """One leaf by index, from the latest-starting chunk that holds it; None when none
        does or its framing cannot hold the leaf's length."""
        with self._lock:
            data = self._view()
            starts, chunks = data.starts, data.chunks
            at = bisect.bisect_right(starts, index)
            low = index - max(data.reach - 1, 0)
            while at > 0 and starts[at - 1] >= low:
                at -= 1
                c = chunks[starts[at]]
                if 0 <= index - c.start < c.count:
                    return _leaf(c, index - c.start)
            return None

    def replace_chunk_data(self, rows: list[tuple[int, bytes]]) -> None:
        """Rewrite the leaf framing of existing chunks (a start with no chunk changes none)."""
        with self._lock:
            data = self._writing()
            self._own(data, "chunks")
            for start, framing in rows:
                old = data.chunks.get(start)
                if old is not None:
                    data.chunks[start] = dataclasses.replace(old, data=bytes(framing))

    def node_blocks(self, keys: Iterable[tuple[int, int]]) -> dict[tuple[int, int], bytes]:
        """The stored node blocks among ``keys``."""
        with self._lock:
            nodes = self._view().nodes
            return {k: nodes[k] for k in set(keys) if k in nodes}

    def iter_node_blocks(self, level: int) -> Iterator[tuple[int, bytes]]:
        """All blocks of one level in block order."""
        with self._lock:
            nodes = self._view().nodes
            return iter(sorted((b, d) for (lv, b), d in nodes.items() if lv == level))

    def node_extent(self) -> list[tuple[int, int, int]]:
        """(level, last block, its length in bytes) for every level that has blocks."""
        with self._lock:
            nodes = self._view().nodes
            last: dict[int, int] = {}
            for lv, b in nodes:
                if b > last.get(lv, b - 1):
                    last[lv] = b
            return [(lv, b, len(nodes[(lv, b)])) for lv, b in sorted(last.items())]

    def put_node_blocks(self, blocks: dict[tuple[int, int], bytes]) -> None:
        """Insert or replace node blocks."""
        with self._lock:
            data = self._writing()
            self._own(data, "nodes")
            data.nodes.update(((int(lv), int(b)), bytes(d)) for (lv, b), d in blocks.items())

    def chunk_starts_for_buckets(self, buckets: Iterable[int]) -> list[int]:
        """Starts of chunks holding ids of any of the buckets, ascending, each once."""
        with self._lock:
            table = self._view().buckets
            found: set[int] = set()
            for bucket in set(buckets):
                found |= table.get(bucket, frozenset())
            return sorted(found)

    def put_buckets(self, rows: list[tuple[int, int]]) -> None:
        """Record (bucket, chunk start) pairs; repeats are ignored."""
        with self._lock:
            data = self._writing()
            grouped: dict[int, set[int]] = {}
            for bucket, start in rows:
                grouped.setdefault(int(bucket), set()).add(int(start))
            self._own(data, "buckets")
            for bucket, starts in grouped.items():
                data.buckets[bucket] = data.buckets.get(bucket, frozenset()) | starts

    def find_other_ids(self, ids: list[bytes]) -> dict[bytes, int]:
        """Index of each id that has an exact row."""
        with self._lock:
            exact = self._view().exact
            return {bytes(i): exact[i] for i in ids if i in exact}

    def put_other_ids(self, rows: list[tuple[bytes, int]]) -> None:
        """Record exact (id, index) rows; an id already recorded (or given twice) fails,
        recording none (SQLite's primary key refuses it)."""
        with self._lock:
            data = self._writing()
            new: dict[bytes, int] = {}
            for ident, index in rows:
                key = bytes(ident)
                if key in data.exact or key in new:
                    raise StorageError("write failed: an exact id row for this id exists")
                new[key] = int(index)
            self._own(data, "exact")
            data.exact.update(new)

    def iter_id_buckets(self) -> Iterator[tuple[int, int]]:
        """Every (bucket, chunk start) row, in key order."""
        with self._lock:
            table = self._view().buckets
            return iter([(b, s) for b in sorted(table) for s in sorted(table[b])])

    def iter_other_ids(self) -> Iterator[tuple[bytes, int]]:
        """Every (id, index) row of the exact id index, in id order."""
        with self._lock:
            return iter(sorted(self._view().exact.items()))

    # -- Head ---------------------------------------------------------------------------------

    def state(self) -> State:
        """The committed head (this transaction's, inside one)."""
        with self._lock:
            return self._view().state

    def put_state(self, state: State, *, expect: State | None = None) -> None:
        """Replace the head; with ``expect``, only if the stored head is that one."""
        with self._lock:
            current = self._view().state
            if expect is not None and current != expect:
                # Inside a transaction the write lock is held: nobody writes between.
                raise HeadConflictError(f"the head moved from size {expect.size} to "
                                        f"{current.size} under this writer: nothing was stored")
            data = self._writing()
            data.state = State(int(state.size), state.checkpoint, int(state.id_hwm))

    def put_checkpoint(self, size: int, note: str) -> None:
        """Keep a checkpoint in the history (one per size: a second replaces the first)."""
        with self._lock:
            data = self._writing()
            self._own(data, "checkpoints")
            data.checkpoints[int(size)] = note

    def iter_checkpoints(self) -> Iterator[KeptCheckpoint]:
        """The checkpoint history in order of size."""
        with self._lock:
            kept = self._view().checkpoints
            return iter([KeptCheckpoint(s, kept[s]) for s in sorted(kept)])

    def meta(self) -> dict[str, str]:
        """The settings (a copy: the caller's to change)."""
        with self._lock:
            return dict(self._view().meta)

    def set_meta(self, items: dict[str, str]) -> None:
        """Write settings."""
        with self._lock:
            data = self._writing()
            self._own(data, "meta")
            data.meta.update(items)

    def delete_meta(self, key: str) -> None:
        """Remove a setting (absent: nothing happens)."""
        with self._lock:
            data = self._writing()
            self._own(data, "meta")
            data.meta.pop(key, None)

    # -- SubjectKeys --------------------------------------------------------------------------

    def subject_keys_by_ref(self, refs: Iterable[bytes]) -> dict[bytes, SubjectKey]:
        """The key of each subject reference that has one."""
        with self._lock:
            data = self._view()
            out: dict[bytes, SubjectKey] = {}
            for ref in refs:
                kid = data.key_refs.get(ref)
                if kid is not None:
                    out[bytes(ref)] = data.keys[kid]
            return out

    def subject_keys_by_kid(self, kids: Iterable[bytes]) -> dict[bytes, SubjectKey]:
        """The key of each key id still present."""
        with self._lock:
            keys = self._view().keys
            return {bytes(k): keys[k] for k in kids if k in keys}

    def put_subject_keys(self, rows: list[SubjectKey]) -> None:
        """Insert keys; a second key for a reference or a key id fails, storing none."""
        with self._lock:
            data = self._writing()
            kids: set[bytes] = set()
            refs: set[bytes] = set()
            new: list[SubjectKey] = []
            for row in rows:
                key = SubjectKey(bytes(row.kid), bytes(row.ref), bytes(row.wrapped))
                if key.kid in data.keys or key.kid in kids:
                    raise StorageError("write failed: a subject key with this id exists")
                if key.ref in data.key_refs or key.ref in refs:
                    raise StorageError("write failed: this subject already has a key")
                kids.add(key.kid)
                refs.add(key.ref)
                new.append(key)
            self._own(data, "keys", "key_refs")
            for key in new:
                data.keys[key.kid] = key
                data.key_refs[key.ref] = key.kid

    def delete_subject_key(self, kid: bytes) -> None:
        """Destroy a subject key (absent: nothing happens)."""
        with self._lock:
            data = self._writing()
            self._own(data, "keys", "key_refs")
            gone = data.keys.pop(kid, None)
            if gone is not None:
                del data.key_refs[gone.ref]

    def purge_deleted(self, wait_s: float = 2.0) -> bool:
        """Wait up to ``wait_s`` for snapshots pinning a version that still holds a deleted
        key; False when one still does (it goes when that snapshot ends)."""
        with self._lock:
            self._check_open()
        shared = self._shared
        deadline = time.monotonic() + wait_s
        with shared.changed:
            while True:
                live = shared.committed.keys
                if not any(_holds_deleted(pinned.keys, live) for pinned in shared.pins.values()):
                    return True
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                shared.changed.wait(left)

    def put_hold(self, ref: bytes, reason: str, created: str) -> int:
        """Record a legal hold; its number is one more than the last one's (1 for the first)."""
        with self._lock:
            data = self._writing()
            self._own(data, "holds")
            number = data.holds[-1].number + 1 if data.holds else 1
            data.holds.append(Hold(number, bytes(ref), reason, created, None))
            return number

    def release_holds(self, ref: bytes, released: str) -> None:
        """Release every open hold on ``ref``."""
        with self._lock:
            data = self._writing()
            self._own(data, "holds")
            data.holds[:] = [h._replace(released=released)
                             if h.ref == ref and h.released is None else h for h in data.holds]

    def holds(self, ref: bytes | None = None, *, open_only: bool = True) -> list[Hold]:
        """Legal holds (of one subject, or all), oldest first."""
        with self._lock:
            return [h for h in self._view().holds
                    if (ref is None or h.ref == ref) and not (open_only and h.released is not None)]

    # -- BlindRows ----------------------------------------------------------------------------

    def put_blind(self, rows: list[tuple[int, int, int]]) -> None:
        """Insert (segment, token, index) rows; repeats are ignored."""
        with self._lock:
            data = self._writing()
            self._own(data, "blind")
            for key, indexes in _grouped(rows).items():
                data.blind[key] = data.blind.get(key, frozenset()) | indexes

    def delete_blind(self, rows: list[tuple[int, int, int]]) -> None:
        """Delete (segment, token, index) rows (absent ones: nothing happens)."""
        with self._lock:
            data = self._writing()
            self._own(data, "blind")
            for key, indexes in _grouped(rows).items():
                _set_blind(data.blind, key, data.blind.get(key, frozenset()) - indexes)

    def delete_blind_range(self, start: int, end: int) -> None:
        """Delete the rows of entries ``start <= idx < end`` filed under their segments
        (``start >> 12`` to ``(end - 1) >> 12``, as the SQLite store bounds them)."""
        with self._lock:
            data = self._writing()
            self._own(data, "blind")
            first, last = start >> _SEG_SHIFT, (end - 1) >> _SEG_SHIFT
            for key in [k for k in data.blind if first <= k[0] <= last]:
                _set_blind(data.blind, key,
                           frozenset(i for i in data.blind[key] if not start <= i < end))

    def blind_lookup(self, token: int, segments: Iterable[int]) -> list[int]:
        """Indexes carrying ``token``, segment by segment in the order given, ascending."""
        with self._lock:
            blind = self._view().blind
            out: list[int] = []
            for seg in segments:
                out.extend(sorted(blind.get((seg, token), ())))
            return out

    def blind_segment(self, seg: int) -> list[tuple[int, int]]:
        """(token, index) of every row filed under ``seg``, in that order."""
        with self._lock:
            blind = self._view().blind
            return sorted((tok, i) for (s, tok), indexes in blind.items() if s == seg
                          for i in indexes)

    def blind_outside(self, last_seg: int) -> list[tuple[int, int, int]]:
        """Up to 8 rows filed outside segments ``0..last_seg``, by segment and index."""
        with self._lock:
            blind = self._view().blind
            rows = sorted((s, i, tok) for (s, tok), indexes in blind.items()
                          if s < 0 or s > last_seg for i in indexes)
            return [(s, tok, i) for s, i, tok in rows[:_OUTSIDE_ROWS]]

    def put_blind_pending(self, rows: list[tuple[int, bytes]]) -> None:
        """Insert or replace (start, packed pairs) rows."""
        with self._lock:
            data = self._writing()
            self._own(data, "pending")
            data.pending.update((int(s), bytes(d)) for s, d in rows)

    def blind_pending(self) -> list[tuple[int, bytes]]:
        """Every pending row, by start."""
        with self._lock:
            return sorted(self._view().pending.items())

    def blind_pending_start(self) -> int | None:
        """The smallest pending start (None when there are none)."""
        with self._lock:
            return min(self._view().pending, default=None)

    def delete_blind_pending(self, starts: list[int]) -> None:
        """Remove pending rows."""
        with self._lock:
            data = self._writing()
            self._own(data, "pending")
            for start in starts:
                data.pending.pop(start, None)

    # -- Retirement ---------------------------------------------------------------------------

    def put_retired(self, rows: list[RetiredRange]) -> None:
        """Record retired ranges; a start already recorded (or given twice) fails, storing
        none (SQLite's primary key refuses it)."""
        with self._lock:
            data = self._writing()
            new: dict[int, RetiredRange] = {}
            for row in rows:
                r = RetiredRange(int(row.start), int(row.end), int(row.receipt), str(row.kind))
                if r.start in data.retired or r.start in new:
                    raise StorageError(f"write failed: a retired range starts at {r.start}")
                new[r.start] = r
            self._own(data, "retired")
            data.retired.update(new)

    def delete_retired(self, start: int, end: int) -> None:
        """Forget the retired ranges lying inside ``[start, end)``."""
        with self._lock:
            data = self._writing()
            self._own(data, "retired")
            for key in [k for k, r in data.retired.items() if start <= r.start and r.end <= end]:
                del data.retired[key]

    def retired(self) -> list[RetiredRange]:
        """Every retired range, by start."""
        with self._lock:
            table = self._view().retired
            return [table[s] for s in sorted(table)]


def _leaf(chunk: Chunk, k: int) -> bytes | None:
    """The ``k``-th leaf of a chunk, reading its framing as the SQLite store's ``entry_at``:
    None when the length table is cut short, the bytes there are when the leaf is."""
    head = chunk.data[:4 * chunk.count]
    if len(head) != 4 * chunk.count:
        return None
    lens = struct.unpack(f"<{chunk.count}I", head)
    offset = 4 * chunk.count + sum(lens[:k])
    return chunk.data[offset:offset + lens[k]]


def _holds_deleted(pinned: dict[bytes, SubjectKey], live: dict[bytes, SubjectKey]) -> bool:
    """Whether a pinned key table still holds a key the committed one no longer has."""
    return pinned is not live and any(kid not in live for kid in pinned)


def _grouped(rows: Iterable[tuple[int, int, int]]) -> dict[tuple[int, int], frozenset[int]]:
    out: dict[tuple[int, int], set[int]] = {}
    for seg, tok, idx in rows:
        out.setdefault((int(seg), int(tok)), set()).add(int(idx))
    return {k: frozenset(v) for k, v in out.items()}


def _set_blind(blind: dict[tuple[int, int], frozenset[int]], key: tuple[int, int],
               indexes: frozenset[int]) -> None:
    if indexes:
        blind[key] = indexes
    else:
        blind.pop(key, None)


__all__ = ["MemoryStore"]
