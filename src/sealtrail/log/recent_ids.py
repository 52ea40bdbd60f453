"""The ids of the newest entries, so checking a batch for retried events rarely reads the disk.

An append must not store an event id twice, but an index row per event would double the cost of
appending. Instead the log remembers the ids of its newest entries (``[start, size)``) in memory
and, for everything older, the largest UUIDv7 millisecond (``floor_ms``): a UUIDv7 id above that
floor that is not in memory cannot be in the log. Only ids at or below the floor (a retry of an
old event, a client with a slow clock) and non-UUIDv7 ids go to the store's id indexes.
"""

from __future__ import annotations

from collections import deque

from sealtrail.core.uuid7 import uuid7_ms

CAPACITY = 131_072  # about 12 MiB of ids; minutes of traffic at high rates


class RecentIds:
    """Ids of entries ``[start, start + len)`` with their indexes, plus the floor below them."""

    def __init__(self, start: int, floor_ms: int, capacity: int = CAPACITY) -> None:
        self.start = start
        self.floor_ms = floor_ms
        self._capacity = capacity
        self._index: dict[bytes, int] = {}
        self._order: deque[bytes] = deque()

    @property
    def end(self) -> int:
        """One past the newest remembered entry."""
        return self.start + len(self._order)

    @property
    def known(self) -> dict[bytes, int]:
        """The remembered ids and their indexes (read-only by contract: the hot loop of
        checking a batch reads it directly instead of calling :meth:`get`)."""
        return self._index

    def get(self, ident: bytes) -> int | None:
        """The index of a remembered id."""
        return self._index.get(ident)

    def surely_absent(self, ident: bytes) -> bool:
        """True when the id is not in memory and cannot be among the older entries either."""
        if ident in self._index:
            return False
        ms = uuid7_ms(ident)
        return ms is not None and ms > self.floor_ms

    def extend(self, first_index: int, ids: list[bytes]) -> None:
        """Remember the ids of entries ``first_index, first_index + 1, ...`` (appended in order)."""
        if first_index != self.end:
            raise ValueError(f"ids for index {first_index} do not follow {self.end}")
        index, order = self._index, self._order
        for k, ident in enumerate(ids):
            index[ident] = first_index + k
            order.append(ident)
        floor = self.floor_ms
        dropped = len(order) - self._capacity
        for _ in range(max(0, dropped)):
            old = order.popleft()
            del index[old]
            if old[6] >> 4 == 7:  # UUIDv7 (uuid7_ms, inlined: this runs per evicted id)
                ms = int.from_bytes(old[:6], "big")
                floor = max(floor, ms)
        if dropped > 0:
            self.start += dropped
            self.floor_ms = floor
