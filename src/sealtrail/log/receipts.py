"""Retention receipts: the log's own record of every entry body it removed or moved away.

Retention (``log/retention.py``) never deletes an entry from the tree. It empties the entry's
leaf bytes in storage (a zero-length leaf: no real leaf is empty) and keeps its leaf hash, so
the tree, every checkpoint and every proof for the remaining entries stay valid. In the same
transaction it appends a receipt event and records the retired ranges in the ``retired`` table.

The receipt is an ordinary event, covered by the next signed checkpoint like any other:

- ``action``: ``retention.purge`` (bodies destroyed) or ``retention.archive`` (moved to an
  archive file, restorable);
- ``target``: ``{"type": "entries", "id": "<kind>:<count>:<ranges>:<root>"}`` where
  ``ranges`` is the hex SHA-256 of the retired ranges packed as little-endian uint64 pairs
  ``start, end`` and ``root`` the hex RFC 6962 root of the retired leaf hashes in index order
  (the *leaf-range root*: it commits to exactly which entries were retired).

``verify`` checks (:func:`check_retired`) that every empty leaf lies in a recorded range, that
each recorded range belongs to a receipt entry that says so (same count, same ranges digest,
same leaf-range root, recorded after the range), and that purged ranges are really empty.
An operator who empties entries by hand, or edits the table, is named by ``verify``.
These fields (``action``, ``target.type``, ``target.id``) must stay readable without keys, so
retention refuses to run on a log whose policy seals ``target.id`` or ``target.type``.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import struct
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

import msgspec

from sealtrail.core.errors import TamperError
from sealtrail.core.merkle import compact
from sealtrail.core.merkle.hashing import EMPTY_ROOT, HASH_SIZE
from sealtrail.store.protocol import Store

KINDS: Final = ("purge", "archive")
_TARGET = re.compile(r"(purge|archive):(\d{1,12}):([0-9a-f]{64}):([0-9a-f]{64})\Z")
_BLOCK: Final = 63  # node block width (log/tree.py)


@dataclass(frozen=True, slots=True)
class ReceiptBody:
    """What a retention receipt commits to."""

    kind: str
    count: int
    ranges_digest: bytes
    root: bytes

    def target_id(self) -> str:
        """The receipt event's ``target.id``."""
        return f"{self.kind}:{self.count}:{self.ranges_digest.hex()}:{self.root.hex()}"

    @classmethod
    def parse(cls, text: str) -> ReceiptBody | None:
        """The body of a ``target.id``; None when it is not one."""
        m = _TARGET.match(text)
        if m is None:
            return None
        return cls(m.group(1), int(m.group(2)), bytes.fromhex(m.group(3)),
                   bytes.fromhex(m.group(4)))


def ranges_digest(ranges: Iterable[tuple[int, int]]) -> bytes:
    """SHA-256 of the ranges as little-endian uint64 ``start, end`` pairs, in order."""
    h = hashlib.sha256()
    for start, end in ranges:
        h.update(struct.pack("<QQ", start, end))
    return h.digest()


def leaf_hashes(store: Store, ranges: Iterable[tuple[int, int]]) -> Iterable[bytes]:
    """The stored leaf hashes of ``ranges`` in index order (reads level-0 node blocks)."""
    cache: tuple[int, bytes] = (-1, b"")
    for start, end in ranges:
        for idx in range(start, end):
            block = idx // _BLOCK
            if cache[0] != block:
                cache = (block, store.node_blocks([(0, block)]).get((0, block), b""))
            off = (idx % _BLOCK) * HASH_SIZE
            yield cache[1][off:off + HASH_SIZE]


def range_root(store: Store, ranges: list[tuple[int, int]]) -> bytes:
    """The RFC 6962 root over the leaf hashes of ``ranges`` (the leaf-range root)."""
    size, last = 0, list[bytes]()
    batch: list[bytes] = []
    for h in leaf_hashes(store, ranges):
        batch.append(h)
        if len(batch) == 4096:
            _, last = compact.extend(size, last, batch)
            size += len(batch)
            batch = []
    if batch:
        _, last = compact.extend(size, last, batch)
        size += len(batch)
    return compact.root_from_edge(size, last) if size else EMPTY_ROOT


class _Target(msgspec.Struct):
    id: str | None = None
    type: str | None = None


class _ReceiptEvent(msgspec.Struct):
    action: str = ""
    target: _Target | None = None


_receipt_decoder = msgspec.json.Decoder(_ReceiptEvent)


def _covered(emptied: list[tuple[int, int]], rows: list[tuple[int, int, int, str]]) -> None:
    """Every emptied run lies inside recorded ranges; every purged range is wholly empty."""
    spans = sorted((s, e) for s, e, _, _ in rows)
    j = 0
    for start, end in emptied:
        pos = start
        while pos < end:
            while j < len(spans) and spans[j][1] <= pos:
                j += 1
            if j == len(spans) or spans[j][0] > pos:
                raise TamperError("missing", pos, "the entry's body was removed without a "
                                  "retention receipt (its leaf hash is still in the tree)")
            pos = min(end, spans[j][1])
    empty_at = sorted(emptied)
    for s, e, _, kind in rows:
        if kind != "purge":
            continue
        # A purged range must be empty: a body that reappeared was put back by hand.
        k = _find_run(empty_at, s)
        if k is None or empty_at[k][1] < e:
            raise TamperError("extra", s, f"entries {s}..{e - 1} were purged by a receipt "
                              "but are present again")


def _find_run(runs: list[tuple[int, int]], idx: int) -> int | None:
    lo, hi = 0, len(runs)
    while lo < hi:
        mid = (lo + hi) // 2
        if runs[mid][1] <= idx:
            lo = mid + 1
        else:
            hi = mid
    if lo < len(runs) and runs[lo][0] <= idx:
        return lo
    return None


def _merge(runs: list[tuple[int, int]]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for s, e in sorted(runs):
        if out and out[-1][1] == s:
            out[-1] = (out[-1][0], e)
        else:
            out.append((s, e))
    return out


def check_retired(store: Store, emptied: list[tuple[int, int]], size: int) -> int:
    """Verify step 6 (see the module docstring); returns how many entries are emptied.

    ``emptied`` are the runs of zero-length leaves verification met, in any order.
    """
    rows = store.retired()
    emptied = _merge(emptied)
    if not rows and not emptied:
        return 0
    _covered(emptied, rows)
    by_receipt: dict[int, list[tuple[int, int, str]]] = {}
    for s, e, r, kind in rows:
        if not 0 <= s < e <= size:
            raise TamperError("extra", min(max(s, 0), size), f"a retired range {s}..{e - 1} "
                              f"lies outside the log's {size} entries")
        by_receipt.setdefault(r, []).append((s, e, kind))
    for r, ranges in sorted(by_receipt.items()):
        first = min(s for s, _, _ in ranges)
        leaf = store.entry_at(r) if 0 <= r < size else None
        if not leaf:
            raise TamperError("missing", first, f"entries from {first} are retired by receipt "
                              f"{r}, which is not an entry of the log")
        try:
            ev = _receipt_decoder.decode(leaf)
        except (msgspec.DecodeError, msgspec.ValidationError):
            ev = _ReceiptEvent()
        kinds = {k for _, _, k in ranges}
        body = ReceiptBody.parse(ev.target.id or "") if ev.target is not None else None
        spans = sorted((s, e) for s, e, _ in ranges)
        count = sum(e - s for s, e in spans)
        if (body is None or len(kinds) != 1 or body.kind not in kinds
                or ev.action != f"retention.{body.kind}"
                or ev.target is None or ev.target.type != "entries"):
            raise TamperError("missing", first, f"entry {r} is not the retention receipt "
                              f"the retired ranges from {first} claim")
        if any(e > r for _, e in spans):
            raise TamperError("missing", first, f"receipt {r} retires entries recorded after "
                              "it")
        if (body.count != count
                or not hmac.compare_digest(body.ranges_digest, ranges_digest(spans))):
            raise TamperError("missing", first, f"the retired ranges of receipt {r} differ "
                              "from the ranges it recorded")
        if not hmac.compare_digest(body.root, range_root(store, spans)):
            raise TamperError("changed", first, f"the leaf hashes retired by receipt {r} "
                              "differ from its leaf-range root")
    return sum(e - s for s, e in emptied)
