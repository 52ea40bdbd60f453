"""The storage contract the log engine relies on.

Data model (what a store keeps, not how):

- *chunks*: runs of consecutive entries ``[start, start + count)`` written by one commit, never
  crossing a 256-entry bundle boundary; each carries the 16-byte ids of its events and the tree
  size its commit reached (``batch_end``, for exact duplicate receipts).
- *node blocks*: the hashes of complete subtrees, 63 per block: block ``b`` of level ``L`` holds
  nodes ``(L, 63*b) .. (L, 63*b + 62)``. Level 0 holds leaf hashes.
- *id buckets*: which chunks hold UUIDv7 ids of a given time bucket, so a retried event is found
  without an index row per event; other ids live in an exact per-id table.
- *checkpoints*: signed checkpoint notes kept as history, plus the latest one in the state row.
- *state*: tree size, latest checkpoint, the highest UUIDv7 millisecond seen.

Writes happen inside :meth:`Store.transaction`, which takes the store's write lock, so a reader
of ``state()`` inside it sees the last committed size even when other processes append.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class Chunk:
    """Consecutive entries written by one commit.

    ``data`` frames the leaves: ``count`` little-endian uint32 lengths, then the leaf bytes.
    :meth:`pack` and :meth:`leaves` are the only code that writes or reads that framing.
    ``ids`` holds the entries' 16-byte ids end to end; :meth:`id_at` and :meth:`id_list` read
    them.
    """

    start: int
    count: int
    batch_end: int
    ids: bytes
    data: bytes

    def id_at(self, k: int) -> bytes:
        """The 16-byte id of the chunk's ``k``-th entry (index ``start + k``)."""
        return self.ids[16 * k:16 * k + 16]

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


class Store(Protocol):
    """Persistence for one log."""

    def transaction(self) -> AbstractContextManager[None]:
        """Exclusive write transaction; durable (fsync) when the block exits normally."""

    def snapshot(self) -> AbstractContextManager[None]:
        """A read transaction: every read inside sees one committed state."""

    def meta(self) -> dict[str, str]:
        """Key/value settings written at creation (format version, origin...)."""

    def set_meta(self, items: dict[str, str]) -> None:
        """Write settings (inside a transaction)."""

    def state(self) -> State:
        """The committed head."""

    def put_state(self, state: State) -> None:
        """Replace the head (inside a transaction)."""

    def node_blocks(self, keys: Iterable[tuple[int, int]]) -> dict[tuple[int, int], bytes]:
        """The stored node blocks among ``keys`` (level, block)."""

    def iter_node_blocks(self, level: int) -> Iterator[tuple[int, bytes]]:
        """All blocks of one level in block order."""

    def node_extent(self) -> list[tuple[int, int, int]]:
        """(level, last block, its length in bytes) for every level that has blocks."""

    def put_node_blocks(self, blocks: dict[tuple[int, int], bytes]) -> None:
        """Insert or replace node blocks (inside a transaction)."""

    def put_chunks(self, chunks: list[Chunk]) -> None:
        """Insert chunks (inside a transaction); a clash with an existing start fails."""

    def iter_chunks(self, start: int = 0, end: int | None = None) -> Iterator[Chunk]:
        """Chunks overlapping ``[start, end)`` in order of start."""

    def stray_chunk(self, size: int) -> int | None:
        """The start of a row outside ``[0, size)``, if there is one."""

    def iter_all_chunks(self) -> Iterator[Chunk]:
        """Every chunk row in order of start, including rows outside ``[0, size)``."""

    def iter_chunks_desc(self, before: int) -> Iterator[Chunk]:
        """Chunks starting before ``before``, newest first."""

    def chunk_starts_for_buckets(self, buckets: Iterable[int]) -> list[int]:
        """Starts of chunks holding UUIDv7 ids in any of the time buckets."""

    def chunks_at(self, starts: Iterable[int]) -> list[Chunk]:
        """The chunks with these starts."""

    def put_buckets(self, rows: list[tuple[int, int]]) -> None:
        """Record (bucket, chunk start) pairs (inside a transaction)."""

    def find_other_ids(self, ids: list[bytes]) -> dict[bytes, int]:
        """Index of each id already stored that has an exact row (non-UUIDv7 or late)."""

    def put_other_ids(self, rows: list[tuple[bytes, int]]) -> None:
        """Record exact rows: non-UUIDv7 and late ids (inside a transaction)."""

    def iter_id_buckets(self) -> Iterator[tuple[int, int]]:
        """Every (bucket, chunk start) row of the UUIDv7 id index."""

    def iter_other_ids(self) -> Iterator[tuple[bytes, int]]:
        """Every (id, index) row of the exact index of other ids."""

    def put_checkpoint(self, size: int, note: str) -> None:
        """Keep a checkpoint in the history (inside a transaction)."""

    def iter_checkpoints(self) -> Iterator[tuple[int, str]]:
        """The checkpoint history in order of size."""

    def entry_at(self, index: int) -> bytes | None:
        """One leaf by index (None when no row holds it; empty when retired)."""

    def replace_chunk_data(self, rows: list[tuple[int, bytes]]) -> None:
        """Rewrite the leaf framing of existing chunks (retention only)."""

    def delete_blind_range(self, start: int, end: int) -> None:
        """Delete blind-index rows of entries ``start <= idx < end``."""

    def put_retired(self, rows: list[tuple[int, int, int, str]]) -> None:
        """Record retired ranges (start, end, receipt index, kind)."""

    def delete_retired(self, start: int, end: int) -> None:
        """Forget retired ranges inside ``[start, end)`` (a restored archive segment)."""

    def retired(self) -> list[tuple[int, int, int, str]]:
        """Every retired range (start, end, receipt index, kind), by start."""

    def holds(self, ref: bytes | None = None, *, open_only: bool = True
              ) -> list[tuple[int, bytes, str, str, str | None]]:
        """(number, ref, sealed reason, created, released) of legal holds, oldest first."""

    def close(self) -> None:
        """Release the store."""
