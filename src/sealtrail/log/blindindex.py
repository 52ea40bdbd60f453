"""The blind index on disk: (segment, token, entry) rows, written in two steps.

Rows inserted one by one at random token positions cost a B-tree page write each (the design
notes measured ~18 µs per event). So a commit writes its rows as *one* pending row (little-endian
int64 pairs ``token, index``), appended like the entries; when the log passes a segment
boundary (every 4096 entries), the pending pairs of the finished segments are sorted and
inserted into ``blind`` in key order, filling fresh pages sequentially. A lookup reads the
sorted rows segment by segment and scans the pending rows (at most about one segment).
"""

from __future__ import annotations

import struct
from typing import Final

from sealtrail.store.protocol import BlindRows

SEG_SHIFT: Final = 12          # segment: 4096 entries
_PAIR: Final = struct.Struct("<qq")


def _pack(pairs: list[tuple[int, int]]) -> bytes:
    return struct.pack(f"<{2 * len(pairs)}q", *(x for pair in pairs for x in pair))


def _unpack(data: bytes) -> list[tuple[int, int]]:
    flat = struct.unpack(f"<{len(data) // 8}q", data)
    return list(zip(flat[0::2], flat[1::2], strict=True))


class BlindIndex:
    """Blind-index rows of one log, over its store."""

    def __init__(self, store: BlindRows) -> None:
        self._store = store

    def add(self, rows: list[tuple[int, int, int]], end: int) -> None:
        """Add (segment, token, index) rows of one commit whose entries end at ``end``
        (inside its transaction); fold finished segments into the sorted table."""
        if rows:
            pairs = [(tok, idx) for _, tok, idx in rows]
            self._store.put_blind_pending([(min(idx for _, idx in pairs), _pack(pairs))])
        boundary = (end >> SEG_SHIFT) << SEG_SHIFT
        first = self._store.blind_pending_start()
        if first is not None and first < boundary:
            self._fold(self._store.blind_pending(), boundary)

    def _fold(self, pending: list[tuple[int, bytes]], boundary: int) -> None:
        done: list[tuple[int, int, int]] = []
        keep: list[tuple[int, int]] = []
        for _, data in pending:
            for tok, idx in _unpack(data):
                if idx < boundary:
                    done.append((idx >> SEG_SHIFT, tok, idx))
                else:
                    keep.append((tok, idx))
        done.sort()
        self._store.put_blind(done)
        self._store.delete_blind_pending([start for start, _ in pending])
        if keep:
            self._store.put_blind_pending([(min(idx for _, idx in keep), _pack(keep))])

    def add_sorted(self, rows: list[tuple[int, int, int]]) -> None:
        """Insert rows straight into the sorted table (backfill of old entries)."""
        self._store.put_blind(sorted(rows))

    def lookup(self, token: int, end: int, limit: int | None = None) -> list[int]:
        """Indexes below ``end`` carrying ``token``, newest first (at most ``limit``)."""
        pending: set[int] = set()
        needle = struct.pack("<q", token)
        for _, data in self._store.blind_pending():
            pos = data.find(needle)
            while pos >= 0:
                if pos % 16 == 0:
                    pending.add(_PAIR.unpack_from(data, pos)[1])
                pos = data.find(needle, pos + 1)
        out: list[int] = []
        for seg in range((end - 1) >> SEG_SHIFT, -1, -1):
            here = set(self._store.blind_lookup(token, [seg]))
            here.update(i for i in pending if i >> SEG_SHIFT == seg)
            out.extend(sorted((i for i in here if i < end), reverse=True))
            if limit is not None and len(out) >= limit:
                return out[:limit]
        return out

    def delete(self, rows: list[tuple[int, int, int]]) -> None:
        """Remove (segment, token, index) rows wherever they are (erasure)."""
        self._store.delete_blind(rows)
        gone = {(tok, idx) for _, tok, idx in rows}
        changed: list[tuple[int, bytes]] = []
        emptied: list[int] = []
        for start, data in self._store.blind_pending():
            pairs = _unpack(data)
            kept = [p for p in pairs if p not in gone]
            if len(kept) != len(pairs):
                if kept:
                    changed.append((start, _pack(kept)))
                else:
                    emptied.append(start)
        if changed:
            self._store.put_blind_pending(changed)
        if emptied:
            self._store.delete_blind_pending(emptied)
