"""The id index: where exactly-once looks for an event id already in the log.

UUIDv7 ids are indexed by time bucket (2**12 ms, about 4 s) and the chunk that holds them —
one ``(bucket, chunk start)`` row per bucket a chunk touches, no row per event; other ids get
an exact ``(id, index)`` row.

A bucket is cheap only while the ids of its time arrive together: ids dated well before the
rest of their commit (an import, a backfill, a spool delivered after an outage, a slow client
clock) would add their chunk to a bucket of long ago, and a bucket that many chunks share makes
each lookup read them all — a cost that grew with the log. So (id index version 2) a UUIDv7 id
more than :data:`LATE_MS` older than the newest id of its own chunk gets an exact row too: a
lookup is then one point query plus the few chunks of its bucket, whatever the id's time and
the log's size. Logs made before keep version 1 (every UUIDv7 id bucketed).

The rows are derived from the chunks alone, so :func:`rows_of` (the one rule the engine writes
by and ``verify`` rebuilds by) says what they must be, and
:class:`RowDigest` compares a whole table with its rebuild in constant memory: a deleted row
lets a retried event be stored twice, an edited one makes appends refuse.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

BUCKET_SHIFT: Final = 12  # UUIDv7 milliseconds per id bucket: 2**12 ms, about 4 s
LATE_MS: Final = 10 * 60_000  # version 2: ids this much older than their chunk's newest: exact
VERSION_META: Final = "id_index"
VERSION: Final = "2"


def late_window(meta: Mapping[str, str]) -> int | None:
    """The late-id window of a log's id index (None: version 1, every UUIDv7 id bucketed)."""
    return LATE_MS if meta.get(VERSION_META) == VERSION else None
_MASK: Final = (1 << 64) - 1


_HEADS: Final = struct.Struct(">Q8x")  # the first 8 bytes of each 16-byte id


def rows_of(start: int, ids: bytes, late_ms: int | None = None
            ) -> tuple[set[tuple[int, int]], list[tuple[bytes, int]], int]:
    """The id-index rows of the entries ``start, start + 1, ...`` whose 16-byte ids are
    concatenated in ``ids`` (one chunk): (bucket rows, exact rows, the latest UUIDv7 time or
    -1). With ``late_ms`` (version 2), UUIDv7 ids more than that older than the chunk's newest
    get exact rows instead of buckets.

    A UUIDv7 is its 48-bit millisecond time, then the version nibble 7 (RFC 9562): both are in
    the id's first 8 bytes, read for all ids at once (verify and every commit run this).
    """
    heads = [h for (h,) in _HEADS.iter_unpack(ids)]
    v7 = [h for h in heads if (h >> 12) & 0xF == 7]
    latest = (max(v7) >> 16) if v7 else -1
    floor = latest - late_ms if late_ms is not None and v7 else -1
    buckets = {((h >> 16) >> BUCKET_SHIFT, start) for h in v7 if (h >> 16) >= floor}
    others: list[tuple[bytes, int]] = []
    if len(v7) != len(heads) or floor > (min(v7) >> 16 if v7 else -1):
        others = [(ids[16 * k:16 * k + 16], start + k) for k, h in enumerate(heads)
                  if (h >> 12) & 0xF != 7 or (h >> 16) < floor]
    return buckets, others, latest


def _h(kind: bytes, key: bytes, value: int) -> int:
    digest = hashlib.sha256(kind + key + value.to_bytes(8, "big", signed=True)).digest()
    return int.from_bytes(digest[:8], "big")


@dataclass(slots=True)
class RowDigest:
    """An order-independent digest of a set of id-index rows (a sum of row hashes, and the
    count): equal tables give equal digests, whatever order they are read in, and digests
    of parts add up (verify's worker processes each rebuild a range)."""

    buckets: int = 0
    bucket_rows: int = 0
    others: int = 0
    other_rows: int = 0
    latest: int = 0       # the latest UUIDv7 time (ms) of any id: the state's ``id_hwm``

    def add_bucket(self, bucket: int, start: int) -> None:
        self.buckets = (self.buckets + _h(b"b", bucket.to_bytes(8, "big", signed=True),
                                          start)) & _MASK
        self.bucket_rows += 1

    def add_other(self, ident: bytes, index: int) -> None:
        self.others = (self.others + _h(b"o", ident, index)) & _MASK
        self.other_rows += 1

    def add_chunk(self, start: int, ids: bytes, late_ms: int | None = None) -> None:
        buckets, others, latest = rows_of(start, ids, late_ms)
        self.latest = max(self.latest, latest)
        for bucket, at in buckets:
            self.add_bucket(bucket, at)
        for ident, index in others:
            self.add_other(ident, index)

    def merge(self, other: RowDigest) -> None:
        self.buckets = (self.buckets + other.buckets) & _MASK
        self.bucket_rows += other.bucket_rows
        self.others = (self.others + other.others) & _MASK
        self.other_rows += other.other_rows
        self.latest = max(self.latest, other.latest)
