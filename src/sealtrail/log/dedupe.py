"""Exactly-once: which ids of a batch the log already holds.

An append whose id the log holds is answered with the original receipt. Finding them must
cost the same whatever the id's time and the log's size:

- ids of recent entries are in memory (:class:`RecentIds`), and a UUIDv7 id newer than
  everything the log ever held is surely new (no read);
- other UUIDv7 ids are found through their time bucket (:mod:`sealtrail.log.idindex`): the
  chunks that hold ids of that bucket;
- every id the buckets may miss (non-UUIDv7, late UUIDv7) has an exact row, looked up only
  when the Bloom filter in front of that index (:mod:`sealtrail.log.idfilter`) says it may be
  there.

Every hit is confirmed against the entry itself: a duplicate answer drops the event, so an id
index edited behind the log's back must not be able to cause it.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable

from sealtrail.core import canonical
from sealtrail.core.errors import TamperError
from sealtrail.core.merkle.nodes import Node
from sealtrail.core.receipt import Receipt
from sealtrail.log.idfilter import ExactIdFilter
from sealtrail.log.idindex import BUCKET_SHIFT, LATE_MS, rows_of
from sealtrail.log.recent_ids import CAPACITY, RecentIds
from sealtrail.log.tree import read_nodes
from sealtrail.store.protocol import Chunk, Store


def _leaf_id(leaf: bytes) -> str | None:
    """The ``id`` of a stored leaf (None when it has none or is not a JSON object)."""
    try:
        obj: object = canonical.leaf_object(leaf)
    except ValueError:  # msgspec's DecodeError is one
        return None
    value = obj.get("id") if isinstance(obj, dict) else None
    return value if isinstance(value, str) else None


class IdLookup:
    """The exactly-once lookup of one log, over its store (one per engine, used under the
    engine's commit: the write lock is held while it reads)."""

    def __init__(self, store: Store, size: int, id_hwm: int) -> None:
        self._store = store
        self._recent = RecentIds(size, id_hwm)
        # Built at the first lookup that needs the exact id index.
        self._filter: ExactIdFilter | None = None

    def follow(self, old: int, state_size: int, id_hwm: int) -> None:
        """Another process appended from ``old`` to ``state_size`` (or the head is new to
        us): take in the recent ids from the store, or start over when they are too many."""
        recent = self._recent
        if old == recent.end and old < state_size <= old + CAPACITY:
            for chunk in self._store.iter_chunks(old, state_size):
                skip = max(0, old - chunk.start)
                recent.extend(chunk.start + skip, chunk.id_list(skip))
        else:
            self._recent = RecentIds(state_size, id_hwm)

    def committed(self, start: int, new_ids: list[bytes], exact_rows: list[tuple[bytes, int]],
                  size: int) -> None:
        """This engine committed entries ``start ..`` with these ids (after the commit)."""
        self._recent.extend(start, new_ids)
        flt = self._filter
        if flt is not None and flt.covered == start:
            flt.add_all(ident for ident, _ in exact_rows)
            flt.covered = size
        elif flt is not None:
            self._filter = None

    def _exact_filter(self, size: int) -> ExactIdFilter:
        """The filter in front of the exact id index, covering the whole log: built from the
        stored rows at first use, then given the ids of entries other processes appended
        since it last looked — by the version 2 rule whatever the log's version, which holds
        the rows of either."""
        flt = self._filter
        if flt is None or flt.covered > size:
            flt = ExactIdFilter(size, (ident for ident, _ in self._store.iter_other_ids()))
        elif flt.covered < size:
            for chunk in self._store.iter_chunks(flt.covered, size):
                flt.add_all(ident for ident, idx in rows_of(chunk.start, chunk.ids, LATE_MS)[1]
                            if idx >= flt.covered)
            flt.covered = size
        self._filter = flt
        return flt

    def existing(self, requests: Iterable[tuple[list[bytes], frozenset[bytes]]], size: int
                 ) -> dict[bytes, Receipt]:
        """Receipts of the ids (each request's ids, minus those the engine just generated)
        that the log of ``size`` entries already holds, reading the store only for ids that
        may be there."""
        recent = self._recent
        known, floor = recent.known, recent.floor_ms
        v7: dict[int, set[bytes]] = {}
        other: list[bytes] = []
        hits: dict[bytes, tuple[int, int]] = {}
        for ids, generated in requests:
            for ident in ids:
                if ident in generated:
                    continue
                idx = known.get(ident)
                if idx is not None:
                    hits[ident] = (idx, -1)
                    continue
                if ident[6] >> 4 == 7:  # UUIDv7: its time decides (RecentIds.surely_absent)
                    ms = int.from_bytes(ident[:6], "big")
                    if ms > floor:
                        continue
                    v7.setdefault(ms >> BUCKET_SHIFT, set()).add(ident)
                # Any id the bucket rows may miss has an exact row (log/idindex.py): a late
                # UUIDv7 one is looked up there too, whatever this process takes the log's
                # id-index version to be.
                other.append(ident)
        store = self._store
        if v7:
            wanted = set().union(*v7.values())
            for chunk in store.chunks_at(store.chunk_starts_for_buckets(v7)):
                for k in range(chunk.count):
                    ident = chunk.id_at(k)
                    if ident in wanted:
                        hits[ident] = (chunk.start + k, chunk.batch_end)
        if other:
            other = self._exact_filter(size).maybe_held(other)
        if other:
            for ident, idx in store.find_other_ids(other).items():
                hits[ident] = (idx, -1)
        if not hits:
            return {}
        self._confirm(hits)
        nodes = read_nodes(store, [Node(0, idx) for idx, _ in hits.values()])
        return {ident: Receipt(str(uuid.UUID(bytes=ident)), idx, nodes[Node(0, idx)],
                               batch_end, True)
                for ident, (idx, batch_end) in hits.items()}

    def _confirm(self, hits: dict[bytes, tuple[int, int]]) -> None:
        """Check each hit against its entry (reading each chunk once) and fill in the size
        its commit reached; TamperError when the index and the entry disagree."""
        found: Chunk | None = None
        leaves: list[bytes] = []
        for ident, (idx, _) in sorted(hits.items(), key=lambda hit: hit[1][0]):
            if found is None or not found.start <= idx < found.start + found.count:
                found = next(self._store.iter_chunks(idx, idx + 1), None)
                try:
                    leaves = found.leaves() if found is not None else []
                except ValueError:
                    leaves = []
            k = idx - found.start if found is not None else -1
            if found is None or not 0 <= k < len(leaves):
                raise TamperError("changed", idx, "the id index disagrees with the entry: "
                                  "refusing to append; run sealtrail verify")
            # The chunk's own id column (which verify holds to the entries) must name it too:
            # for an entry whose body retention removed, it is all that is left of the event.
            if found.id_at(k) != ident or (
                    leaves[k] and _leaf_id(leaves[k]) != str(uuid.UUID(bytes=ident))):
                raise TamperError("changed", idx, "the id index disagrees with the entry: "
                                  "refusing to append; run sealtrail verify")
            hits[ident] = (idx, found.batch_end)
