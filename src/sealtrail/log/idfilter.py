"""A filter in front of the exact id index: most ids exactly-once asks about are new.

Ids dated well before their commit (imports, backfills, spools delivered after an outage)
and ids that are not UUIDv7 are found through exact rows (log/idindex.py), and almost every
such lookup is for an id the log does not hold. Asking SQLite costs a B-tree descent per id
and per level of the exact index (about a microsecond each, growing with the log), so a
filter answers "surely not here" first, in memory: a Bloom filter of 64-bit blocks (one word
read per id and part), 2 bytes per row of room (2 to 4 per row held), about 1 % false
"maybe" per part (parts double in size as rows come: log2(rows / 65536) of them).

The filter only ever holds too much, never too little: it is built from the stored rows,
takes the rows of this process's commits after they are durable, and reads the ids of
entries other processes appended before it answers (``covered`` is how far the log is in
it). A "maybe" goes to the database; a false one costs a lookup, never an answer.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterable
from typing import Final

_FIRST: Final = 1 << 16     # rows the first part holds; each next part holds twice as many
_ROWS_PER_WORD: Final = 4   # 16 bits per row; 5 bits set per row, all in one 64-bit word
_U64: Final = (1 << 64) - 1


class ExactIdFilter:
    """The ids of the exact index rows of entries ``[0, covered)`` (and possibly more)."""

    def __init__(self, covered: int, ids: Iterable[bytes] = ()) -> None:
        self.covered = covered
        self._parts: list[array[int]] = []
        self._room = 0
        self._next = _FIRST
        self.add_all(ids)

    def add_all(self, ids: Iterable[bytes]) -> None:
        """Hold these ids too.

        Positions come from Python's ``hash`` of the id bytes: SipHash keyed at random per
        process, so clients choosing ids cannot aim them at the filter's words (a crowded
        word would only make lookups go to the database, never change an answer).
        """
        part, room = (self._parts[-1], self._room) if self._parts else (None, 0)
        for ident in ids:
            if room == 0 or part is None:
                part = array("Q", bytes(8 * (self._next // _ROWS_PER_WORD)))
                self._parts.append(part)
                room, self._next = self._next, self._next * 2
            room -= 1
            h = hash(ident) & _U64
            part[(h & 0xFFFFFFFF) % len(part)] |= (
                (1 << ((h >> 32) & 63)) | (1 << ((h >> 38) & 63)) | (1 << ((h >> 44) & 63))
                | (1 << ((h >> 50) & 63)) | (1 << ((h >> 56) & 63)))
        self._room = room

    def maybe_held(self, ids: Iterable[bytes]) -> list[bytes]:
        """The ids that may be held (ask the database); the others surely are not."""
        parts = [(part, len(part)) for part in self._parts]
        out: list[bytes] = []
        for ident in ids:
            h = hash(ident) & _U64
            mask = ((1 << ((h >> 32) & 63)) | (1 << ((h >> 38) & 63))
                    | (1 << ((h >> 44) & 63)) | (1 << ((h >> 50) & 63))
                    | (1 << ((h >> 56) & 63)))
            low = h & 0xFFFFFFFF
            for part, words in parts:
                if part[low % words] & mask == mask:
                    out.append(ident)
                    break
        return out

    @property
    def nbytes(self) -> int:
        """Memory held by the filter's bits."""
        return sum(8 * len(part) for part in self._parts)
