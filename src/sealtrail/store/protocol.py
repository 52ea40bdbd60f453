"""The storage contract the log engine relies on, split by the consistency each part needs.

Data model (what a store keeps, not how):

- :class:`EntryLog` — append-only bulk data. *chunks*: runs of consecutive entries
  ``[start, start + count)`` written by one commit, never crossing a 256-entry bundle boundary
  (so a chunk holds at most :data:`MAX_CHUNK` entries, and reads may rely on it);
  each carries the 16-byte ids of its events and the tree size its commit reached
  (``batch_end``, for exact duplicate receipts). *node blocks*: the hashes of complete
  subtrees, 63 per block: block ``b`` of level ``L`` holds nodes ``(L, 63*b) .. (L, 63*b + 62)``;
  level 0 holds leaf hashes. *id index*: which chunks hold UUIDv7 ids of a given time bucket
  (no row per event), and exact rows for the other ids. Rows are only ever added, except the
  leaf framing retention empties (:meth:`EntryLog.replace_chunk_data`).
- :class:`Head` — the one piece that needs compare-and-swap: the committed tree size, its
  signed checkpoint and the highest UUIDv7 millisecond seen (:class:`State`), the checkpoint
  history, and the log's settings (meta).
- :class:`SubjectKeys` — per-subject keys (erasure deletes one, and
  :meth:`SubjectKeys.purge_deleted` makes sure no old copy survives in the store's files) and
  legal holds.
- :class:`BlindRows` — the blind (keyed-token) index of sealed fields, derived from the entries.
- :class:`Retirement` — the ranges retention purged or archived.
- :class:`Store` — all of them inside one unit of work (:meth:`Store.transaction`), plus what
  the engine needs to share a store with other processes: a marker that moves when another
  writer commits, an independent reader, a way for worker processes to open it.

Writes happen inside :meth:`Store.transaction`, which takes the store's write lock, so a reader
of ``state()`` inside it sees the last committed size even when other processes append. Rows
come back as named, immutable records (:class:`Chunk`, :class:`State`, :class:`Hold`,
:class:`RetiredRange`, :class:`KeptCheckpoint`, :class:`SubjectKey`); the bulk rows the engine
writes per event (id index, blind index) stay plain tuples, documented where they are taken.
``tests/contract/`` holds the behaviour every adapter must show.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Final, NamedTuple, Protocol

from sealtrail.core.errors import StorageError

MAX_CHUNK: Final = 256  # entries in one chunk at most: chunks never cross a bundle boundary


@dataclass(frozen=True, slots=True)
class Chunk:
    """Consecutive entries written by one commit.

    ``data`` frames the leaves: ``count`` little-endian uint32 lengths, then the leaf bytes.
    :meth:`pack` and :meth:`leaves` are the only code that writes or reads that framing.
    ``ids`` holds the entries' 16-byte ids end to end; :meth:`id_at`, :meth:`id_span` and
    :meth:`id_list` read them.
    """

    start: int
    count: int
    batch_end: int
    ids: bytes
    data: bytes

    def id_at(self, k: int) -> bytes:
        """The 16-byte id of the chunk's ``k``-th entry (index ``start + k``)."""
        return self.ids[16 * k:16 * k + 16]

    def id_span(self, lo: int, hi: int) -> bytes:
        """The ids of the chunk's entries ``lo .. hi - 1``, end to end."""
        return self.ids[16 * lo:16 * hi]

    def id_list(self, first: int = 0) -> list[bytes]:
        """The ids of the chunk's entries from its ``first``-th on."""
        ids = self.ids
        return [ids[16 * k:16 * k + 16] for k in range(first, self.count)]

    @classmethod
    def pack(cls, start: int, batch_end: int, ids: list[bytes], leaves: list[bytes]) -> Chunk:
        """A chunk of ``leaves`` starting at index ``start``."""
        data = struct.pack(f"<{len(leaves)}I", *map(len, leaves)) + b"".join(leaves)
        return cls(start, len(leaves), batch_end, b"".join(ids), data)

    def leaves(self) -> list[bytes]:
        """The leaf bytes; raises ValueError when the framing does not add up."""
        try:
            lens = struct.unpack_from(f"<{self.count}I", self.data)
        except struct.error as exc:
            raise ValueError("entry framing is broken") from exc
        pos = 4 * self.count
        if self.count < 0 or pos + sum(lens) != len(self.data):
            raise ValueError("entry framing is broken")
        out = []
        for n in lens:
            out.append(self.data[pos:pos + n])
            pos += n
        return out


@dataclass(frozen=True, slots=True)
class State:
    """The committed head of the log."""

    size: int
    checkpoint: str | None
    id_hwm: int


class Hold(NamedTuple):
    """A legal hold on a data subject (its reason sealed under the subject's key)."""

    number: int
    ref: bytes
    reason: str
    created: str
    released: str | None


class RetiredRange(NamedTuple):
    """Entries ``[start, end)`` whose bodies retention removed, and the receipt entry saying so
    (``kind``: ``purge`` or ``archive``)."""

    start: int
    end: int
    receipt: int
    kind: str


class KeptCheckpoint(NamedTuple):
    """A signed checkpoint kept in the head's history (the first one and each 1024 crossed)."""

    size: int
    note: str


class SubjectKey(NamedTuple):
    """A data subject's wrapped key: its id, the subject's reference, the wrapped bytes."""

    kid: bytes
    ref: bytes
    wrapped: bytes


class HeadConflictError(StorageError):
    """The head was not the one a writer read: another writer published first (fencing)."""


class EntryLog(Protocol):
    """Append-only entries, tree node blocks and the id index."""

    def put_chunks(self, chunks: list[Chunk]) -> None:
        """Insert chunks (inside a transaction); a clash with an existing start fails."""

    def iter_chunks(self, start: int = 0, end: int | None = None) -> Iterator[Chunk]:
        """Chunks overlapping ``[start, end)`` in order of start (of rows holding more than
        :data:`MAX_CHUNK` entries, which the engine never writes, those starting more than
        that before ``start`` may be missed)."""

    def iter_all_chunks(self) -> Iterator[Chunk]:
        """Every chunk row in order of start, including rows outside ``[0, size)``."""

    def iter_chunks_desc(self, before: int) -> Iterator[Chunk]:
        """Chunks starting in ``[0, before)``, newest first."""

    def stray_chunk(self, size: int) -> int | None:
        """The start of a row outside ``[0, size)``, if there is one."""

    def chunks_at(self, starts: Iterable[int]) -> list[Chunk]:
        """The chunks with these starts."""

    def entry_at(self, index: int) -> bytes | None:
        """One leaf by index (None when no row holds it; empty when retired). Where rows
        overlap (never written by the engine), the one starting last among those holding the
        index is read."""

    def replace_chunk_data(self, rows: list[tuple[int, bytes]]) -> None:
        """Rewrite the leaf framing of existing chunks, by start (retention only)."""

    def node_blocks(self, keys: Iterable[tuple[int, int]]) -> dict[tuple[int, int], bytes]:
        """The stored node blocks among ``keys`` (level, block)."""

    def iter_node_blocks(self, level: int) -> Iterator[tuple[int, bytes]]:
        """All blocks of one level in block order: (block, data)."""

    def node_extent(self) -> list[tuple[int, int, int]]:
        """(level, last block, its length in bytes) for every level that has blocks. An
        adapter that can hold blocks at a negative level or number (only an edit makes them)
        lists those too, so ``verify`` reports them."""

    def put_node_blocks(self, blocks: dict[tuple[int, int], bytes]) -> None:
        """Insert or replace node blocks (inside a transaction)."""

    def chunk_starts_for_buckets(self, buckets: Iterable[int]) -> list[int]:
        """Starts of chunks holding UUIDv7 ids in any of the time buckets."""

    def put_buckets(self, rows: list[tuple[int, int]]) -> None:
        """Record (bucket, chunk start) pairs (inside a transaction; repeats are ignored)."""

    def find_other_ids(self, ids: list[bytes]) -> dict[bytes, int]:
        """Index of each id already stored that has an exact row (non-UUIDv7 or late)."""

    def put_other_ids(self, rows: list[tuple[bytes, int]]) -> None:
        """Record exact (id, index) rows: non-UUIDv7 and late ids (inside a transaction)."""

    def iter_id_buckets(self) -> Iterator[tuple[int, int]]:
        """Every (bucket, chunk start) row of the UUIDv7 id index, in key order."""

    def iter_other_ids(self) -> Iterator[tuple[bytes, int]]:
        """Every (id, index) row of the exact id index."""


class Head(Protocol):
    """The head (compare-and-swap), its checkpoint history and the log's settings."""

    def state(self) -> State:
        """The committed head."""

    def put_state(self, state: State, *, expect: State | None = None) -> None:
        """Replace the head (inside a transaction). With ``expect``, only if the stored head
        is still that one: otherwise HeadConflictError, and the transaction must not commit."""

    def put_checkpoint(self, size: int, note: str) -> None:
        """Keep a checkpoint in the history (inside a transaction)."""

    def iter_checkpoints(self) -> Iterator[KeptCheckpoint]:
        """The checkpoint history in order of size."""

    def meta(self) -> dict[str, str]:
        """Key/value settings (format version, origin, signed settings, notes...)."""

    def set_meta(self, items: dict[str, str]) -> None:
        """Write settings (inside a transaction)."""

    def delete_meta(self, key: str) -> None:
        """Remove a setting (inside a transaction)."""


class SubjectKeys(Protocol):
    """Per-subject keys and legal holds."""

    def subject_keys_by_ref(self, refs: Iterable[bytes]) -> dict[bytes, SubjectKey]:
        """The key of each subject reference that has one."""

    def subject_keys_by_kid(self, kids: Iterable[bytes]) -> dict[bytes, SubjectKey]:
        """The key of each key id still present (an erased key is absent)."""

    def put_subject_keys(self, rows: list[SubjectKey]) -> None:
        """Insert keys (inside a transaction); a second key for a reference or id fails."""

    def delete_subject_key(self, kid: bytes) -> None:
        """Destroy a subject key (inside a transaction)."""

    def purge_deleted(self, wait_s: float = 2.0) -> bool:
        """Make sure nothing deleted (an erased key) survives in the store's files or logs;
        False when a reader kept an old copy past ``wait_s`` (the next purge removes it)."""

    def put_hold(self, ref: bytes, reason: str, created: str) -> int:
        """Record a legal hold (inside a transaction); returns its number."""

    def release_holds(self, ref: bytes, released: str) -> None:
        """Release every open hold on ``ref`` (inside a transaction)."""

    def holds(self, ref: bytes | None = None, *, open_only: bool = True) -> list[Hold]:
        """Legal holds (of one subject, or all), oldest first."""


class BlindRows(Protocol):
    """The blind index: (segment, token, index) rows, and the segment being filled."""

    def put_blind(self, rows: list[tuple[int, int, int]]) -> None:
        """Insert (segment, token, index) rows (inside a transaction; repeats are ignored)."""

    def delete_blind(self, rows: list[tuple[int, int, int]]) -> None:
        """Delete (segment, token, index) rows (inside a transaction)."""

    def delete_blind_range(self, start: int, end: int) -> None:
        """Delete the rows of entries ``start <= idx < end`` (inside a transaction)."""

    def blind_lookup(self, token: int, segments: Iterable[int]) -> list[int]:
        """Indexes carrying ``token`` in the given segments, segment by segment in the order
        given, ascending within one."""

    def blind_segment(self, seg: int) -> list[tuple[int, int]]:
        """(token, index) of every row filed under segment ``seg`` (verification)."""

    def blind_outside(self, last_seg: int) -> list[tuple[int, int, int]]:
        """A few (segment, token, index) rows filed outside segments ``0..last_seg``."""

    def put_blind_pending(self, rows: list[tuple[int, bytes]]) -> None:
        """Insert or replace (start, packed pairs) rows of the segment being filled."""

    def blind_pending(self) -> list[tuple[int, bytes]]:
        """Every pending (start, packed pairs) row, by start."""

    def blind_pending_start(self) -> int | None:
        """The smallest start among pending rows (None when there are none)."""

    def delete_blind_pending(self, starts: list[int]) -> None:
        """Remove pending rows (inside a transaction)."""


class Retirement(Protocol):
    """Ranges of entries retention purged or archived."""

    def put_retired(self, rows: list[RetiredRange]) -> None:
        """Record retired ranges (inside a transaction)."""

    def delete_retired(self, start: int, end: int) -> None:
        """Forget retired ranges inside ``[start, end)`` (a restored archive segment)."""

    def retired(self) -> list[RetiredRange]:
        """Every retired range, by start."""


class Store(EntryLog, Head, SubjectKeys, BlindRows, Retirement, Protocol):
    """Persistence for one log: every part inside one unit of work."""

    @property
    def location(self) -> str:
        """Where the store is, for messages (a file name, a database URL without secrets)."""

    def transaction(self) -> AbstractContextManager[None]:
        """Exclusive write transaction; durable when the block exits normally, nothing kept
        when it raises."""

    def savepoint(self) -> AbstractContextManager[None]:
        """A nested part of the current transaction, undone alone if the block raises."""

    @property
    def in_transaction(self) -> bool:
        """Whether this handle is inside a write transaction (holds the write lock)."""

    def snapshot(self) -> AbstractContextManager[None]:
        """A read transaction: every read inside sees one committed state."""

    def change_marker(self) -> int:
        """A number that changes whenever another handle commits (caches compare it)."""

    def replaced(self) -> bool:
        """True when what this handle opened is no longer what its location holds (a file
        moved away or put back from a copy under a running process)."""

    def reader(self) -> Store:
        """An independent read-only handle on the same data (closed by the caller), so a
        long read never holds up writers."""

    def opener(self) -> Callable[[], Store] | None:
        """A picklable function that opens a read-only handle in another process (parallel
        verification), or None when the data cannot be reached from one."""

    def close(self) -> None:
        """Release the store."""
