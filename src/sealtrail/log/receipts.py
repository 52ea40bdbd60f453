"""Retention receipts: the log's own record of every entry body it removed or moved away.

Retention (``log/retention.py``) never deletes an entry from the tree. It empties the entry's
leaf bytes in storage (a zero-length leaf: no real leaf is empty) and keeps its leaf hash, so
the tree, every checkpoint and every proof for the remaining entries stay valid. In the same
transaction it appends a receipt event and records the retired ranges in the ``retired`` table.

The receipt is an ordinary event, covered by the next signed checkpoint like any other:

- ``action``: ``retention.purge`` (bodies destroyed) or ``retention.archive`` (moved to an
  archive file, restorable);
- ``target``: ``{"type": "entries", "id": "<kind>:<count>:<ranges>:<root>:<ids>"}`` where
  ``ranges`` is the hex SHA-256 of the retired ranges packed as little-endian uint64 pairs
  ``start, end`` and ``root`` the hex RFC 6962 root of the retired leaf hashes in index order
  (the *leaf-range root*: it commits to exactly which entries were retired), and ``ids`` the
  hex SHA-256 of their 16-byte ids (which stay in the id index; absent in older receipts).

``archive restore`` (``log/archive.py``) appends a ``retention.restore`` receipt whose
``target.id`` is the range brought back, ``<start>-<end>``, in clear.

``verify`` (step 6, :func:`check_retired`) *replays* every receipt in log order — purges and
archives retire ranges, restores bring archived ones back, a purge of an archived segment
replaces it — and requires:

- that each row of the ``retired`` table belongs to a receipt entry that says so (same count,
  same ranges digest, same leaf-range root, recorded after the range);
- that the replay leaves exactly the ``retired`` table: a purge or archive whose rows were
  deleted (the bodies put back by hand) is named, and so is a restored range recorded as
  retired again. The ranges of a receipt are its rows, checked against its digest; an archive
  that was later restored or purged has no rows left, and its range is the one the restore
  receipt or the purge row names, again checked against its digest;
- that every empty leaf lies in a retired range and every retired range is wholly empty.

Receipts are found by verification itself (:func:`receipt_indexes` on every chunk it reads),
or by one more read of the log when it did not collect them. Only the engine can append them
(``core/reserved.py``), and the tree binds them, so the replay rests on authentic records.
An operator who empties entries by hand, puts them back, or edits the table, is named by
``verify``. These fields (``action``, ``target.type``, ``target.id``) must stay readable
without keys, so retention refuses to run on a log whose policy seals ``target.id`` or
``target.type``.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Final

import msgspec

from sealtrail.core.errors import TamperError
from sealtrail.core.merkle import compact
from sealtrail.core.merkle.hashing import EMPTY_ROOT, HASH_SIZE
from sealtrail.store.protocol import Chunk, Store

KINDS: Final = ("purge", "archive")
RECEIPT_ACTIONS: Final = ("retention.purge", "retention.archive", "retention.restore")
_TARGET = re.compile(
    r"(purge|archive):(\d{1,12}):([0-9a-f]{64}):([0-9a-f]{64})(?::([0-9a-f]{64}))?\Z")
_RESTORE = re.compile(r"(\d{1,15})-(\d{1,15})\Z")
_BLOCK: Final = 63  # node block width (log/tree.py)


@dataclass(frozen=True, slots=True)
class ReceiptBody:
    """What a retention receipt commits to."""

    kind: str
    count: int
    ranges_digest: bytes
    root: bytes
    # SHA-256 of the retired entries' 16-byte ids in index order: the ids stay in the id
    # index after the bodies go, and exactly-once answers retries from them, so the receipt
    # binds them too (receipts written before this carry none).
    ids: bytes | None = None

    def target_id(self) -> str:
        """The receipt event's ``target.id``."""
        ids = f":{self.ids.hex()}" if self.ids is not None else ""
        return f"{self.kind}:{self.count}:{self.ranges_digest.hex()}:{self.root.hex()}{ids}"

    @classmethod
    def parse(cls, text: str) -> ReceiptBody | None:
        """The body of a ``target.id``; None when it is not one."""
        m = _TARGET.match(text)
        if m is None:
            return None
        return cls(m.group(1), int(m.group(2)), bytes.fromhex(m.group(3)),
                   bytes.fromhex(m.group(4)), bytes.fromhex(m.group(5)) if m.group(5) else None)


def ranges_digest(ranges: Iterable[tuple[int, int]]) -> bytes:
    """SHA-256 of the ranges as little-endian uint64 ``start, end`` pairs, in order."""
    h = hashlib.sha256()
    for start, end in ranges:
        h.update(struct.pack("<QQ", start, end))
    return h.digest()


def ids_digest(store: Store, ranges: Iterable[tuple[int, int]]) -> bytes:
    """SHA-256 of the stored 16-byte ids of the entries in ``ranges``, in index order."""
    h = hashlib.sha256()
    for start, end in ranges:
        for chunk in store.iter_chunks(start, end):
            lo = max(start, chunk.start) - chunk.start
            hi = min(end, chunk.start + chunk.count) - chunk.start
            if hi > lo:
                h.update(chunk.id_span(lo, hi))
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
    reason: str | None = None


_receipt_decoder = msgspec.json.Decoder(_ReceiptEvent)
_NEEDLE: Final = b'"retention.'
# What the receipts' reasons say for people (the ranges are not in their targets); used only
# to name an index when the table no longer says, and a single range only after its digest
# matched.
_REASON_SPAN = re.compile(r"entries (\d{1,15})\.\.(\d{1,15})")
_REASON_RANGES = re.compile(r"in (\d{1,12}) ranges from index (\d{1,15}) to (\d{1,15})")


def receipt_indexes(chunk: Chunk) -> list[int]:
    """Indexes of the retention receipts (purge, archive, restore) among a chunk's entries.

    Verification streams every chunk; calling this on each is what lets step 6 replay every
    receipt without a scan of its own (a byte search skips chunks without one).
    """
    if _NEEDLE not in chunk.data:
        return []
    try:
        leaves = chunk.leaves()
    except ValueError:
        return []  # broken framing: step 3 names it
    out = []
    for k, leaf in enumerate(leaves):
        if _NEEDLE in leaf and _receipt_of(leaf) is not None:
            out.append(chunk.start + k)
    return out


def _receipt_of(leaf: bytes) -> _ReceiptEvent | None:
    try:
        ev = _receipt_decoder.decode(leaf)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None
    return ev if ev.action in RECEIPT_ACTIONS else None


def restore_span(target_id: str) -> tuple[int, int] | None:
    """The range a ``retention.restore`` receipt brought back (its ``target.id``,
    ``<start>-<end>``); None when it is not one."""
    m = _RESTORE.match(target_id)
    if m is None:
        return None
    start, end = int(m.group(1)), int(m.group(2))
    return (start, end) if start < end else None


def _covered(emptied: list[tuple[int, int]], rows: Sequence[tuple[int, int, int, str]]) -> None:
    """Every emptied run lies inside recorded ranges; every retired range is wholly empty."""
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
    for s, e, r, kind in rows:
        # A retired range must be empty: a body that reappeared was put back by hand (a
        # restore deletes the archive row in the same transaction that refills the range).
        k = _find_run(empty_at, s)
        if k is None or empty_at[k][1] < e:
            what = ("purged" if kind == "purge" else
                    "archived (with no restore receipt since)")
            raise TamperError("extra", s, f"entries {s}..{e - 1} were {what} by receipt {r} "
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


@dataclass(slots=True)
class _Found:
    """One receipt met in the log, as replay needs it."""

    index: int
    kind: str                             # purge, archive or restore
    body: ReceiptBody | None              # purge and archive
    span: tuple[int, int] | None = None   # restore: the range brought back
    hint: tuple[int, int | None] | None = None  # (first index, end if one range) from reason
    spans: list[tuple[int, int]] | None = None  # purge and archive: the ranges, once known


def _found(index: int, ev: _ReceiptEvent) -> _Found | None:
    kind = ev.action.removeprefix("retention.")
    target = ev.target.id if ev.target is not None and ev.target.type == "entries" else None
    if target is None:
        return None
    if kind == "restore":
        span = restore_span(target)
        return None if span is None else _Found(index, kind, None, span)
    body = ReceiptBody.parse(target)
    if body is None or body.kind != kind:
        return None
    hint: tuple[int, int | None] | None = None
    reason = ev.reason or ""
    m = _REASON_RANGES.search(reason)
    if m is not None:
        first, last = int(m.group(2)), int(m.group(3))
        hint = (first, last + 1 if m.group(1) == "1" else None)
    else:
        m = _REASON_SPAN.search(reason)
        if m is not None:
            hint = (int(m.group(1)), int(m.group(2)) + 1)
    return _Found(index, kind, body, hint=hint)


def _scan(store: Store, size: int) -> list[int]:
    """Every receipt's index, by reading the log (when verification did not collect them)."""
    out: list[int] = []
    for chunk in store.iter_chunks(0, size):
        out.extend(i for i in receipt_indexes(chunk) if 0 <= i < size)
    return out


def _check_rows(store: Store, size: int, r: int, ranges: list[tuple[int, int, str]]) -> None:
    """The retired rows filed under receipt ``r`` are exactly what that receipt recorded."""
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
        raise TamperError("missing", first, f"receipt {r} retires entries recorded after it")
    if (body.count != count
            or not hmac.compare_digest(body.ranges_digest, ranges_digest(spans))):
        raise TamperError("missing", first, f"the retired ranges of receipt {r} differ "
                          "from the ranges it recorded")
    if not hmac.compare_digest(body.root, range_root(store, spans)):
        raise TamperError("changed", first, f"the leaf hashes retired by receipt {r} "
                          "differ from its leaf-range root")
    if body.ids is not None and not hmac.compare_digest(body.ids, ids_digest(store, spans)):
        raise TamperError("id index", first, f"the ids of the entries retired by receipt {r} "
                          "differ from the ids it recorded (exactly-once answers retries "
                          "from them)")


def _matches(store: Store, rec: _Found, span: tuple[int, int]) -> bool:
    """Whether ``span`` is exactly the one range the receipt recorded (digest, then root)."""
    body = rec.body
    s, e = span
    return (body is not None and 0 <= s < e <= rec.index and body.count == e - s
            and hmac.compare_digest(body.ranges_digest, ranges_digest([span]))
            and hmac.compare_digest(body.root, range_root(store, [span]))
            and (body.ids is None or hmac.compare_digest(body.ids, ids_digest(store, [span]))))


def _resolve(store: Store, found: list[_Found], by_receipt: dict[int, list[tuple[int, int]]]
             ) -> None:
    """The ranges of every purge and archive receipt: from the ``retired`` rows filed under it
    (already checked against it), else — an archive later restored or purged — from the
    restore receipt or purge rows that took it over, checked against its ranges digest."""
    later: list[tuple[int, tuple[int, int]]] = []  # (index, span) of restores and purges
    for rec in found:
        if rec.span is not None:
            later.append((rec.index, rec.span))
        elif rec.index in by_receipt and len(by_receipt[rec.index]) == 1:
            later.append((rec.index, by_receipt[rec.index][0]))
    for rec in found:
        if rec.body is None:
            continue
        if rec.index in by_receipt:
            rec.spans = by_receipt[rec.index]
            continue
        candidates = [span for at, span in later if at > rec.index] if rec.kind == "archive" \
            else []
        if rec.hint is not None and rec.hint[1] is not None:
            candidates.append((rec.hint[0], rec.hint[1]))
        for span in candidates:
            if _matches(store, rec, span):
                rec.spans = [span]
                break
        if rec.spans is None:
            at = rec.hint[0] if rec.hint is not None else rec.index
            did = "purged" if rec.kind == "purge" else "archived"
            raise TamperError("missing", at, f"receipt {rec.index} {did} "
                              f"{rec.body.count} entries, but the retired table records "
                              "none of them" + (" and no restore receipt brought them back"
                                                if rec.kind == "archive" else "")
                              + ": the retirement was undone by hand")


def _replay(found: list[_Found]) -> tuple[dict[int, tuple[int, int, str]], dict[int, int]]:
    """Replay the receipts in log order: {start: (end, receipt, kind)} of what must be retired
    now, and {start: restore receipt} of ranges brought back (for messages)."""
    state: dict[int, tuple[int, int, str]] = {}
    restored: dict[int, int] = {}
    for rec in found:
        if rec.span is not None:
            s, e = rec.span
            hit = [a for a, (b, _, _) in state.items() if a < e and s < b]
            if not hit or any(state[a][2] != "archive" or a < s or state[a][0] > e
                              for a in hit):
                raise TamperError("missing", s, f"restore receipt {rec.index} brought back "
                                  f"entries {s}..{e - 1}, which no receipt had archived")
            for a in hit:
                del state[a]
                restored[a] = rec.index
            continue
        for s, e in rec.spans or ():
            old = state.get(s)
            if rec.kind == "purge" and old is not None and old[0] == e and old[2] == "archive":
                del state[s]  # an archived segment purged: its purge row replaces it
            if s in state:
                raise TamperError("extra", s, f"receipt {rec.index} retires entries "
                                  f"{s}..{e - 1}, already retired by an earlier receipt")
            state[s] = (e, rec.index, rec.kind)
            restored.pop(s, None)
    prev_end, prev_r = 0, -1
    for s in sorted(state):
        e, r, _ = state[s]
        if s < prev_end:
            raise TamperError("extra", s, f"receipts {prev_r} and {r} both retire entry {s}")
        prev_end, prev_r = e, r
    return state, restored


def check_retired(store: Store, emptied: list[tuple[int, int]], size: int,
                  receipts: Iterable[int] | None = None) -> int:
    """Verify step 6 (see the module docstring); returns how many entries are emptied.

    ``emptied`` are the runs of zero-length leaves verification met, in any order.
    ``receipts`` are the indexes of the retention receipts it met (:func:`receipt_indexes`
    per chunk); without them the log is read once more to find them.
    """
    rows = store.retired()
    emptied = _merge(emptied)
    indexes = set(_scan(store, size) if receipts is None else receipts)
    if not rows and not emptied and not indexes:
        return 0
    by_receipt: dict[int, list[tuple[int, int]]] = {}
    grouped: dict[int, list[tuple[int, int, str]]] = {}
    for s, e, r, kind in rows:
        if not 0 <= s < e <= size:
            raise TamperError("extra", min(max(s, 0), size), f"a retired range {s}..{e - 1} "
                              f"lies outside the log's {size} entries")
        grouped.setdefault(r, []).append((s, e, kind))
    for r, ranges in sorted(grouped.items()):
        _check_rows(store, size, r, ranges)
        by_receipt[r] = sorted((s, e) for s, e, _ in ranges)
    # Replay every receipt in log order: purges and archives retire, restores bring back.
    found: list[_Found] = []
    for r in sorted(indexes | set(grouped)):
        leaf = store.entry_at(r) if 0 <= r < size else None
        ev = _receipt_of(leaf) if leaf else None
        rec = _found(r, ev) if ev is not None else None
        if rec is not None:
            found.append(rec)
    _resolve(store, found, by_receipt)
    state, restored = _replay(found)
    table = {s: (e, r, kind) for s, e, r, kind in rows}
    for s in sorted(set(state) | set(table)):
        want, got = state.get(s), table.get(s)
        if want == got:
            continue
        if got is None and want is not None:
            did = "purged" if want[2] == "purge" else "archived"
            raise TamperError("missing", s, f"entries {s}..{want[0] - 1} were {did} by "
                              f"receipt {want[1]}, but the retired table no longer records "
                              "it: the retirement was undone by hand")
        if got is not None and s in restored and (want is None or want[1] < restored[s]):
            raise TamperError("missing", s, f"entries {s}..{got[0] - 1} were brought back "
                              f"by restore receipt {restored[s]}, but are recorded as retired "
                              "again with no later receipt")
        end = got[0] if got is not None else want[0] if want is not None else s + 1
        raise TamperError("missing", s, f"the retired range {s}..{end - 1} differs from what "
                          "the retention receipts, replayed in order, leave retired")
    _covered(emptied, rows)
    return sum(e - s for s, e in emptied)
