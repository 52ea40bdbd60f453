"""Full verification of a stored log.

Every leaf is rehashed, the tree rebuilt, every checkpoint checked.

Streams the entries in order holding O(log n) hashes (plus one 2 KiB block per level), so memory
stays flat in the log's size. The steps (markers below):

1. every stored checkpoint (history and head) must carry a valid signature by the log's key,
   for the log's origin, for a size no larger than the log; a trusted checkpoint kept by the
   verifier must not be larger than the log;
2. entries must be contiguous from 0 to the size: a gap is *missing*, an overlap or an entry past
   the size is *extra*;
3. each leaf is rehashed and compared with the stored leaf hash (*changed*; *reordered* when the
   hash belongs to another index); each rebuilt node is compared with the stored node (*tree*);
4. at each checkpoint's size the rebuilt root must equal the signed root: this is what makes
   rewriting entries *and* tree hashes together detectable, and checks that each checkpoint is
   consistent with the next (both are roots of one sequence of leaves);
5. no stored tree data may extend past the size;
6. every emptied entry was retired by a receipt the log recorded (log/receipts.py), and the id
   index holds exactly the rows the entries' ids make (log/idindex.py);
7. every stored setting equals what the log's key signed at creation and what the log's own
   entries set since (log/settings.py): editing the settings table is tampering.

Steps 1-4 also take the head memory (log/headmemory.py), the newest head this machine saw the
log sign, as a target: a log smaller than it was *rolled back*; one whose first entries do
not give its root was *forked*.
"""

from __future__ import annotations

import contextlib
import hmac
import multiprocessing
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import msgspec

from sealtrail.core import b64
from sealtrail.core.checkpoint import Checkpoint, open_checkpoint
from sealtrail.core.errors import StorageError, TamperError, VerificationError
from sealtrail.core.merkle import compact
from sealtrail.core.merkle.hashing import (
    EMPTY_ROOT,
    HASH_SIZE,
    fold_right,
    leaf_hash,
    leaf_hashes,
)
from sealtrail.core.note import Verifier
from sealtrail.log.idindex import RowDigest, late_window, rows_of
from sealtrail.log.receipts import check_retired, receipt_indexes
from sealtrail.log.settings import SETTING_ACTIONS, SettingRecord, check_stored
from sealtrail.log.tree import BLOCK, TreeEdge, crosses_anchor
from sealtrail.store.protocol import Chunk, Store


@dataclass(frozen=True, slots=True)
class VerifyReport:
    """What a successful verification covered."""

    size: int
    root: bytes
    checkpoints: int
    trusted_size: int | None
    retired: int = 0
    head: str | None = None      # the signed head note verified (what the head memory keeps)

    def summary(self) -> str:
        """One line for people."""
        trusted = (f"; extends the trusted checkpoint at size {self.trusted_size}"
                   if self.trusted_size is not None else "")
        retired = (f"; {self.retired} entries retired by retention receipts (their leaf "
                   "hashes verified)" if self.retired else "")
        return (f"OK: {self.size} entries, root {b64.encode(self.root)}, "
                f"{self.checkpoints} signed checkpoints consistent{trusted}{retired}")


class _StoredLevels:
    """Random access to stored node blocks, one cached block per level."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._cache: dict[int, tuple[int, bytes]] = {}

    def slice(self, level: int, first: int, count: int) -> bytes:
        out = []
        i = first
        while i < first + count:
            block = i // BLOCK
            cached = self._cache.get(level)
            if cached is None or cached[0] != block:
                data = self._store.node_blocks([(level, block)]).get((level, block), b"")
                cached = (block, data)
                self._cache[level] = cached
            take = min(first + count - i, BLOCK - i % BLOCK)
            off = (i % BLOCK) * HASH_SIZE
            out.append(cached[1][off:off + take * HASH_SIZE])
            i += take
        return b"".join(out)


def _first_diff(a: bytes, b: bytes) -> int:
    """Index of the first differing 32-byte hash."""
    for k in range(0, max(len(a), len(b)), HASH_SIZE):
        if a[k:k + HASH_SIZE] != b[k:k + HASH_SIZE]:
            return k // HASH_SIZE
    return 0


def _find_leaf_hash(store: Store, wanted: bytes, size: int) -> int | None:
    """Where a leaf hash is stored (failure path only: scans level 0)."""
    for block, data in store.iter_node_blocks(0):
        for k in range(0, len(data), HASH_SIZE):
            if data[k:k + HASH_SIZE] == wanted:
                idx = block * BLOCK + k // HASH_SIZE
                return idx if idx < size else None
    return None


class _LeafTarget(msgspec.Struct):
    id: str = ""


class _LeafId(msgspec.Struct):
    id: str
    action: str = ""
    target: _LeafTarget | None = None
    time: str = ""


_ids_decoder = msgspec.json.Decoder(list[_LeafId])


def _setting_record(index: int, x: _LeafId, leaf: bytes) -> SettingRecord | None:
    """The settings-check record of an entry, when it is one that changed a setting (with
    its bytes when its target is not clear: an older version may have sealed it)."""
    if x.action not in SETTING_ACTIONS:
        return None
    target = x.target.id if x.target is not None else ""
    return SettingRecord(index, x.action, target, x.time, b"" if target else leaf)


def _check_ids(chunk: Chunk, leaves: list[bytes], size: int,
               records: list[SettingRecord] | None = None) -> None:
    """The id index stored with a chunk must name the events in it (it drives exactly-once).

    One decode per chunk reads every leaf's top-level id; a leaf that is not an event with an
    id is reported here only if its hash matched (otherwise step 3 names it as changed).
    """
    if not chunk.start + chunk.count <= chunk.batch_end <= size:
        raise TamperError("extra", chunk.start, f"a row claims it was committed at size "
                          f"{chunk.batch_end}")
    positions = list(range(chunk.count))
    if not all(leaves):
        # Retired entries keep their ids in the index but have no body to compare with.
        positions = [k for k, leaf in enumerate(leaves) if leaf]
        leaves = [leaves[k] for k in positions]
        chunk = Chunk(chunk.start, chunk.count, chunk.batch_end,
                      b"".join(chunk.id_at(k) for k in positions), chunk.data)
        if not leaves:
            return
    try:
        ids = _ids_decoder.decode(b"[" + b",".join(leaves) + b"]")
        text = "".join(x.id for x in ids).replace("-", "")
        ok = len(ids) == len(leaves) and text == chunk.ids.hex()
    except (msgspec.DecodeError, msgspec.ValidationError):
        ok = False
    if ok and records is not None:
        # Entries that changed a stored setting, for the settings check (step 7).
        records.extend(r for k, x, leaf in zip(positions, ids, leaves, strict=True)
                       if (r := _setting_record(chunk.start + k, x, leaf)) is not None)
    if not ok:
        # Name the first entry whose stored id differs (the leaf hashes are checked later).
        for k, leaf in enumerate(leaves):
            try:
                ident = _ids_decoder.decode(b"[" + leaf + b"]")[0].id.replace("-", "")
            except (msgspec.DecodeError, msgspec.ValidationError):
                ident = ""
            if ident != chunk.id_at(k).hex():
                raise TamperError("changed", chunk.start + k, "the id index disagrees with the "
                                  "entry (exactly-once depends on it)")
        raise TamperError("changed", chunk.start, "the id index has the wrong length")


def _signed_heads(store: Store, verifier: Verifier, origin: str,
                  head_note: str | None, size: int) -> dict[int, bytes]:
    heads: dict[int, bytes] = {}
    notes: list[tuple[int, str | None]] = [*store.iter_checkpoints(), (size, head_note)]
    for claimed, note in notes:
        if note is None:
            raise TamperError("checkpoint", claimed, "the log head has no checkpoint")
        try:
            cp = open_checkpoint(note, verifier, origin)
        except VerificationError as exc:
            raise TamperError("checkpoint", claimed,
                              f"the stored checkpoint for size {claimed} is bad: {exc}") from exc
        if cp.size != claimed:
            raise TamperError("checkpoint", claimed,
                              f"a stored checkpoint says size {cp.size}, filed under {claimed}")
        if cp.size > size:
            raise TamperError("truncated", size, f"the log has {size} entries but it signed a "
                              f"checkpoint for {cp.size}")
        if cp.size in heads and not hmac.compare_digest(heads[cp.size], cp.root):
            raise TamperError("forked", cp.size, f"two signed roots for size {cp.size}")
        heads[cp.size] = cp.root
    return heads


@dataclass(frozen=True, slots=True)
class _RangeResult:
    """What verifying leaves ``[start, end)`` tells the caller, who checks roots across ranges.

    ``lows[s]`` are the complete subtrees of ``[start, s)`` (largest first) for each checkpoint
    size ``s`` in ``(start, end]``; ``root`` is the range's own subtree hash when the range is
    a whole aligned subtree. ``error`` is the first tamper found, as (kind, index, message).
    """

    start: int
    end: int
    lows: dict[int, list[bytes]]
    root: bytes | None
    error: tuple[str, int, str] | None
    retired: list[tuple[int, int]] = field(default_factory=list)
    settings: list[SettingRecord] = field(default_factory=list)
    receipts: list[int] = field(default_factory=list)
    ids: RowDigest = field(default_factory=RowDigest)
    # Commit sizes (the chunks' batch_end) at the range's first chunk and last chunk, and
    # those inside it where the log crossed a multiple of ANCHOR_EVERY: where it kept a
    # checkpoint in its history.
    first_commit: int = -1
    last_commit: int = -1
    anchors: list[int] = field(default_factory=list)


def _verify_range(store: Store, start: int, end: int, size: int,  # noqa: PLR0917
                  stops: list[int], late_ms: int | None = None) -> _RangeResult:
    """Steps 2-4 for the leaves ``[start, end)``, ``start`` aligned to a power of two >= the range.

    The range is rebuilt as a tree of its own (local index = global index - start): aligned
    subtrees of RFC 6962 trees are RFC 6962 trees, so every stored node inside the range is
    compared at its global position ``local + (start >> level)``.
    """
    try:
        return _verify_range_or_raise(store, start, end, size, stops, late_ms)
    except TamperError as exc:
        return _RangeResult(start, end, {}, None, (exc.kind, exc.index, exc.detail))


def _verify_range_or_raise(store: Store, start: int, end: int, size: int,  # noqa: PLR0917
                           stops: list[int], late_ms: int | None) -> _RangeResult:
    levels = _StoredLevels(store)
    retired: list[tuple[int, int]] = []
    settings: list[SettingRecord] = []
    receipts: list[int] = []
    ids = RowDigest()
    commits: list[int] = []     # first commit, then each new commit size that is an anchor
    prev_commit = -1
    done, last = start, list[bytes]()
    lows: dict[int, list[bytes]] = {}
    pending = [s for s in stops if start < s <= end]
    stop_i = 0
    for chunk in store.iter_chunks(start, end):
        if chunk.start < start and chunk.start + chunk.count <= start:
            continue  # the row before the range (found by the store's "holds start" lookup)
        if chunk.start > done:
            raise TamperError("missing", done, f"entries {done}..{chunk.start - 1} are missing")
        if chunk.start < done:
            raise TamperError("extra", chunk.start, "an entry overlaps another (inserted row)")
        if chunk.count <= 0 or chunk.start + chunk.count > end:
            raise TamperError("extra", max(chunk.start, min(end, size) - 1),
                              "a row holds entries past its range or the log size")
        try:
            leaves = chunk.leaves()
        except ValueError as exc:
            raise TamperError("changed", chunk.start, str(exc)) from exc
        hashes = leaf_hashes(leaves)
        for k, leaf in enumerate(leaves):
            if not leaf:  # retired by retention: its stored leaf hash stands in (checked below)
                idx = chunk.start + k
                hashes[k] = levels.slice(0, idx, 1)
                if retired and retired[-1][1] == idx:
                    retired[-1] = (retired[-1][0], idx + 1)
                else:
                    retired.append((idx, idx + 1))
        k = 0
        while k < len(hashes):
            # Feed up to the next checkpoint size, then record the subtrees that make it up.
            nxt = pending[stop_i] if stop_i < len(pending) else end
            part = hashes[k:k + max(1, min(len(hashes) - k, nxt - done))]
            new_levels, last = compact.extend(done - start, last, part)
            for level, (first_local, nodes) in enumerate(new_levels):
                first = first_local + (start >> level)
                got = b"".join(nodes)
                stored = levels.slice(level, first, len(nodes))
                if got != stored:
                    j = _first_diff(got, stored)
                    if level == 0:
                        other = _find_leaf_hash(store, nodes[j], size)
                        if other is not None and other != first + j:
                            raise TamperError("reordered", first + j, f"this entry was "
                                              f"committed at index {other}")
                        raise TamperError("changed", first + j, "the entry's bytes differ "
                                          "from its committed leaf hash")
                    raise TamperError("tree", (first + j) << level, f"stored tree hash "
                                      f"({level}, {first + j}) differs from the rebuilt tree")
            done += len(part)
            k += len(part)
            while stop_i < len(pending) and pending[stop_i] == done:
                local = done - start
                lows[done] = [last[lv] for lv in range(local.bit_length() - 1, -1, -1)
                              if (local >> lv) & 1]
                stop_i += 1
        _check_ids(chunk, leaves, size, settings)
        receipts.extend(receipt_indexes(chunk))
        ids.add_chunk(chunk.start, chunk.ids, late_ms)
        if chunk.batch_end != prev_commit:
            if prev_commit < 0 or crosses_anchor(prev_commit, chunk.batch_end):
                commits.append(chunk.batch_end)
            prev_commit = chunk.batch_end
    if done != end:
        raise TamperError("missing", done, f"entries {done}..{end - 1} are missing")
    width = end - start
    whole = width & (width - 1) == 0 and start % width == 0
    return _RangeResult(start, end, lows, last[-1] if whole and last else None, None, retired,
                        settings, receipts, ids, commits[0] if commits else -1, prev_commit,
                        commits[1:])


def _range_job(args: tuple[Callable[[], Store], int, int, int, list[int], int | None]
               ) -> _RangeResult:
    """A worker process's share: one range, on a read-only handle of its own."""
    opener, start, end, size, stops, late_ms = args
    store = opener()
    try:
        with store.snapshot():
            return _verify_range(store, start, end, size, stops, late_ms)
    finally:
        store.close()


RANGE_LEVEL = 16            # parallel verification splits the log into 2**16-leaf subtrees
PARALLEL_MIN = 4 << RANGE_LEVEL


def _default_workers() -> int:
    return min(os.cpu_count() or 1, 8)


def verify_log(store: Store, verifier: Verifier, origin: str, *,
               trusted_checkpoint: str | None = None,
               progress: Callable[[int, int], None] | None = None,
               opener: Callable[[], Store] | None = None, workers: int | None = None,
               remembered: str | None = None,
               open_target: Callable[[SettingRecord], str | None] | None = None
               ) -> VerifyReport:
    """Verify everything stored for one log; raise TamperError naming the first problem.

    With ``opener`` (``Store.opener()``: opens the store in another process) and more than
    one worker, logs of at least
    ``PARALLEL_MIN`` entries are verified by worker processes, one aligned 2**16-leaf subtree
    at a time; the subtrees' roots are then combined and checked here exactly as one pass
    would (``tests/faults`` run every tampering both ways).

    ``open_target`` reads a setting entry's sealed target with the log's keyring (see
    :func:`sealtrail.log.settings.check_stored`).
    """
    with store.snapshot():
        state = store.state()
        size = state.size
        # 1. Signed checkpoints.
        heads = _signed_heads(store, verifier, origin, state.checkpoint, size)
        targets: dict[int, list[tuple[str, bytes]]] = {}
        for s, root in heads.items():
            targets.setdefault(s, []).append(("signed", root))
        trusted: Checkpoint | None = None
        if trusted_checkpoint is not None:
            trusted = open_checkpoint(trusted_checkpoint, verifier, origin)
            if trusted.size > size:
                raise TamperError("truncated", size, f"the log has {size} entries; the trusted "
                                  f"checkpoint shows {trusted.size}")
            targets.setdefault(trusted.size, []).append(("trusted", trusted.root))
        if remembered is not None:
            # The head memory (log/headmemory.py): the newest head this machine saw signed.
            mem = open_checkpoint(remembered, verifier, origin)
            if mem.size > size:
                raise TamperError("rolled back", size, f"the log has {size} entries but this "
                                  f"machine saw it sign a head of {mem.size} entries: entries "
                                  "were removed and an older head put back")
            targets.setdefault(mem.size, []).append(("remembered", mem.root))
        targets.setdefault(size, [])
        stops = sorted(targets)
        # 2. Rows no range reaches: before 0 or past the size.
        stray = store.stray_chunk(size)
        if stray is not None:
            raise TamperError("extra", max(0, min(stray, size)), f"a row claims entries at "
                              f"index {stray}, outside the log's {size} entries")
        n_workers = workers if workers is not None else _default_workers()
        span = 1 << RANGE_LEVEL
        if opener is not None and n_workers > 1 and size >= PARALLEL_MIN:
            bounds = [(a, min(a + span, size)) for a in range(0, size, span)]
        else:
            bounds = [(0, size)] if size else []
        upper_last: list[bytes] = []   # edge of the tree whose leaves are whole ranges
        upper_size = 0
        root = EMPTY_ROOT
        prev_stop = 0

        checked: set[int] = set()

        def check(s: int, got: bytes) -> None:
            nonlocal prev_stop
            checked.add(s)
            for label, want in targets[s]:
                if not hmac.compare_digest(got, want):
                    if label == "remembered":
                        raise TamperError("forked", 0, f"the first {s} entries do not give the "
                                          "root this machine saw the log sign for that size: "
                                          f"the log was rewritten below index {s}")
                    if label == "trusted":
                        # The signed checkpoints below ``s`` matched, but whoever forked the log
                        # holds its key and re-signed them: they bound nothing, so the rewrite
                        # may start anywhere below ``s``.
                        raise TamperError("forked", 0, f"the first {s} entries do not match the "
                                          f"trusted checkpoint: the log was rewritten below "
                                          f"index {s}")
                    raise TamperError("changed", prev_stop, "entries and tree hashes were "
                                      f"rewritten together somewhere in [{prev_stop}, {s}): the "
                                      f"root no longer matches the checkpoint signed for size {s}")
            prev_stop = s

        if 0 in targets:
            check(0, EMPTY_ROOT)
        # 3-4. Leaves, ids and stored nodes per range; checkpoint roots across ranges.
        levels = _StoredLevels(store)
        emptied: list[tuple[int, int]] = []
        settings: list[SettingRecord] = []
        found: list[int] = []
        ids = RowDigest()
        anchors: list[int] = []
        last_commit = 0 if size else -1
        late_ms = late_window(store.meta())  # the log's id-index rule (log/idindex.py)
        for result in _run_ranges(store, opener, bounds, size=size, stops=stops,
                                  workers=n_workers, late_ms=late_ms):
            if result.error is not None:
                raise TamperError(*result.error)
            emptied.extend(result.retired)
            settings.extend(result.settings)
            found.extend(result.receipts)
            ids.merge(result.ids)
            if result.first_commit >= 0:
                if last_commit == 0 or crosses_anchor(last_commit, result.first_commit):
                    anchors.append(result.first_commit)
                anchors.extend(result.anchors)
                last_commit = result.last_commit
            a = result.start
            units = a >> RANGE_LEVEL if len(bounds) > 1 else 0
            ups = [upper_last[lv] for lv in range(units.bit_length() - 1, -1, -1)
                   if (units >> lv) & 1]
            for s in sorted(result.lows):
                got = fold_right(ups + result.lows[s])
                check(s, got)
                if s == size:
                    root = got
            if len(bounds) > 1 and result.end - result.start == span:
                if result.root is None:  # pragma: no cover - a whole range always has a root
                    raise StorageError(f"range {result.start} came back without its root")
                new_levels, upper_last = compact.extend(upper_size, upper_last, [result.root])
                upper_size += 1
                for lv, (first, nodes) in enumerate(new_levels[1:], start=1):
                    level = lv + RANGE_LEVEL
                    stored = levels.slice(level, first, len(nodes))
                    if b"".join(nodes) != stored:
                        j = _first_diff(b"".join(nodes), stored)
                        raise TamperError("tree", (first + j) << level, f"stored tree hash "
                                          f"({level}, {first + j}) differs from the rebuilt tree")
            if progress is not None:
                progress(result.end, size)
        if checked != set(stops):  # never pass with a checkpoint left unchecked
            missed = sorted(set(stops) - checked)
            raise StorageError(f"verification did not reach the checkpoints at {missed[:5]}")
        # 5. No tree data past the size: the last block of each level ends exactly where the
        #    tree's complete nodes end, and no level beyond the tree's height has blocks.
        for level, last_block, length in store.node_extent():
            if level < 0 or last_block < 0:
                raise TamperError("extra", size, f"tree hashes at level {level}, block "
                                  f"{last_block}: no tree has nodes there")
            count = size >> level
            want_block, want_len = ((count - 1) // BLOCK, ((count - 1) % BLOCK + 1) * HASH_SIZE)
            if count == 0 or (last_block, length) != (want_block, want_len):
                raise TamperError("extra", size, f"tree hashes past the log size at level {level}")
        # 6. Every emptied entry was retired by a receipt the log itself recorded.
        retired = check_retired(store, emptied, size, found)
        # 5b. The history keeps a checkpoint at every size where the log kept one.
        kept = {kept.size for kept in store.iter_checkpoints()}
        missing_anchor = next((s for s in [0, *anchors] if s <= size and s not in kept), None)
        if missing_anchor is not None:
            raise TamperError("checkpoint", missing_anchor, "the signed checkpoint the log "
                              f"kept for size {missing_anchor} is missing from its history")
        # 6b. The id index is exactly what the entries' ids make (exactly-once rests on it).
        check_id_index(store, ids, size, late_ms)
        # 7. Every stored setting is what the log's key signed and its entries set.
        check_stored(store.meta(), stored_holds(store), settings, verifier, origin,
                     open_target=open_target)
        return VerifyReport(size, root, len(heads), trusted.size if trusted else None, retired,
                            state.checkpoint)


# Every action that changes a stored setting, as it appears quoted in a leaf: one list
# (SETTING_ACTIONS), so a setting added there is never skipped by the byte search here.
_SETTING_MARKS = tuple(sorted(f'"{action}"'.encode() for action in SETTING_ACTIONS))
_one_decoder = msgspec.json.Decoder(_LeafId)


def stored_holds(store: Store) -> list[tuple[int, bytes, str, str | None]]:
    """The stored legal holds as :func:`check_stored` compares them: (number, subject ref,
    created, released)."""
    return [(h.number, h.ref, h.created, h.released) for h in store.holds(open_only=False)]


def setting_records(store: Store, size: int, start: int = 0) -> list[SettingRecord]:
    """The entries that changed a stored setting, in log order, read from the entries alone
    (a byte search skips every chunk that holds none): what :func:`check_stored` replays
    before an irreversible step (a purge, an erasure) trusts a stored copy. ``start``: only
    entries from there (the caller holds the records before it)."""
    out: list[SettingRecord] = []
    for chunk in store.iter_chunks(start, size):
        if not any(mark in chunk.data for mark in _SETTING_MARKS):
            continue
        try:
            leaves = chunk.leaves()
        except ValueError as exc:
            raise TamperError("changed", chunk.start, str(exc)) from exc
        for k, leaf in enumerate(leaves):
            if (chunk.start + k < start or not leaf
                    or not any(mark in leaf for mark in _SETTING_MARKS)):
                continue
            try:
                x = _one_decoder.decode(leaf)
            except (msgspec.DecodeError, msgspec.ValidationError) as exc:
                raise TamperError("changed", chunk.start + k, "an entry is not an event") from exc
            record = _setting_record(chunk.start + k, x, leaf)
            if record is not None:
                out.append(record)
    return out


def check_id_index(store: Store, expected: RowDigest, size: int, late_ms: int | None = None
                   ) -> None:
    """Compare the stored id index with its rebuild (``expected``, from every chunk); on a
    difference, find the first chunk whose rows differ and raise TamperError naming it."""
    hwm = store.state().id_hwm
    if hwm != expected.latest:
        raise TamperError("id index", size, f"the id index's high-water mark is {hwm}, the "
                          f"latest id time in the log {expected.latest} (exactly-once takes "
                          "later ids as new without looking)")
    stored = RowDigest(latest=expected.latest)
    for bucket, start in store.iter_id_buckets():
        stored.add_bucket(bucket, start)
    for ident, index in store.iter_other_ids():
        stored.add_other(ident, index)
    if stored == expected:
        return
    # Failure path: group the stored rows by chunk and walk the chunks in order.
    by_start: dict[int, set[tuple[int, int]]] = {}
    for bucket, start in store.iter_id_buckets():
        by_start.setdefault(start, set()).add((bucket, start))
    others = dict(store.iter_other_ids())
    for chunk in store.iter_chunks(0, size):
        buckets, other_rows, _ = rows_of(chunk.start, chunk.ids, late_ms)
        if by_start.pop(chunk.start, set()) != buckets:
            raise TamperError("id index", chunk.start, "the id index rows of the entries from "
                              f"{chunk.start} were deleted, added or edited (exactly-once "
                              "depends on them: a retried event could be stored twice)")
        for ident, index in other_rows:
            if others.pop(ident, None) != index:
                raise TamperError("id index", index, "the id index row of this entry's id "
                                  "was deleted or edited (exactly-once depends on it)")
    where = min([*by_start, *others.values(), size])
    raise TamperError("id index", where, "the id index has rows for entries the log does not "
                      "hold")


def _run_ranges(store: Store, opener: Callable[[], Store] | None,
                bounds: list[tuple[int, int]], *,
                size: int, stops: list[int], workers: int, late_ms: int | None
                ) -> Iterator[_RangeResult]:
    """Range results in order: in this process for one range, else from worker processes."""
    if len(bounds) <= 1:
        for a, b in bounds:
            yield _verify_range(store, a, b, size, stops, late_ms)
        return
    if opener is None:
        raise ValueError("ranges in worker processes need a store opener")
    jobs = [(opener, a, b, size, [s for s in stops if a < s <= b], late_ms)
            for a, b in bounds]
    # spawn, not fork: the caller may be a threaded service, and forking threads is unsafe.
    with multiprocessing.get_context("spawn").Pool(workers) as pool:
        results = pool.imap(_range_job, jobs)
        try:
            yield from results
        finally:
            # The caller may stop at the first tampered range. Terminating a pool whose task
            # feeder is still queueing can deadlock in CPython (the feeder thread never
            # joins), so let the queued ranges finish — each is bounded — and close cleanly.
            with contextlib.suppress(Exception):  # a worker's error was raised already
                for _ in results:
                    pass
            pool.close()
            pool.join()


@dataclass(frozen=True, slots=True)
class Increment:
    """Where an incremental check starts: a verified tree size and the tree's edge there."""

    size: int
    last: tuple[bytes, ...]


def increment_at(store: Store, size: int) -> Increment:
    """The edge of the stored tree at ``size`` (taken right after a full verification)."""
    edge = TreeEdge.load(store, size)
    return Increment(size, tuple(edge.last))


def verify_increment(store: Store, verifier: Verifier, origin: str,
                     since: Increment) -> Increment:
    """Check only what was appended since ``since``: the new leaves, folded onto the verified
    edge, must give the root the head checkpoint signs. O(new entries), so the service runs it
    every few seconds between full verifications (which re-check everything older)."""
    with store.snapshot():
        state = store.state()
        if state.size < since.size:
            raise TamperError("truncated", state.size, f"the log shrank from {since.size} "
                              f"verified entries to {state.size}")
        try:
            head = open_checkpoint(state.checkpoint or "", verifier, origin)
        except VerificationError as exc:
            raise TamperError("checkpoint", state.size, f"the head checkpoint is bad: {exc}"
                              ) from exc
        if head.size != state.size:
            raise TamperError("checkpoint", state.size, f"the head checkpoint is for size "
                              f"{head.size}, the log has {state.size} entries")
        hashes: list[bytes] = []
        levels = _StoredLevels(store)
        for chunk in store.iter_chunks(since.size, state.size):
            try:
                leaves = chunk.leaves()
            except ValueError as exc:
                raise TamperError("changed", chunk.start, str(exc)) from exc
            for k, leaf in enumerate(leaves):
                idx = chunk.start + k
                if idx < since.size:
                    continue  # the row that holds ``since.size`` starts before it
                expected = since.size + len(hashes)
                if idx < expected:
                    raise TamperError("extra", idx, "an entry overlaps another (inserted row)")
                if idx > expected:
                    raise TamperError("missing", expected, f"entries {expected}..{idx - 1} "
                                      "are missing")
                # A retired leaf stands in with its stored hash (its receipt is checked by
                # the next full verification).
                hashes.append(leaf_hash(leaf) if leaf
                              else levels.slice(0, idx, 1))
        if since.size + len(hashes) != state.size:
            raise TamperError("missing", since.size + len(hashes), "entries appended since the "
                              "last verification are missing")
        if not hashes:
            root = compact.root_from_edge(since.size, list(since.last)) if since.size \
                else EMPTY_ROOT
            last = list(since.last)
        else:
            _, last = compact.extend(since.size, list(since.last), hashes)
            root = compact.root_from_edge(state.size, last)
        if not hmac.compare_digest(root, head.root):
            raise TamperError("changed", since.size, "the entries appended since the last "
                              f"verification (from index {since.size}) do not give the root "
                              f"the checkpoint for size {state.size} signs")
        return Increment(state.size, tuple(last))
