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
5. no stored tree data may extend past the size.
"""

from __future__ import annotations

import hmac
import struct
from collections.abc import Callable
from dataclasses import dataclass
from hashlib import sha256

import msgspec

from sealtrail.core import b64
from sealtrail.core.checkpoint import Checkpoint, open_checkpoint
from sealtrail.core.errors import StorageError, TamperError, VerificationError
from sealtrail.core.merkle import compact
from sealtrail.core.merkle.hashing import HASH_SIZE
from sealtrail.core.note import Verifier
from sealtrail.log.tree import BLOCK
from sealtrail.store.protocol import Chunk, Store


@dataclass(frozen=True, slots=True)
class VerifyReport:
    """What a successful verification covered."""

    size: int
    root: bytes
    checkpoints: int
    trusted_size: int | None

    def summary(self) -> str:
        """One line for people."""
        trusted = (f"; extends the trusted checkpoint at size {self.trusted_size}"
                   if self.trusted_size is not None else "")
        return (f"OK: {self.size} entries, root {b64.encode(self.root)}, "
                f"{self.checkpoints} signed checkpoints consistent{trusted}")


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


class _LeafId(msgspec.Struct):
    id: str


_ids_decoder = msgspec.json.Decoder(list[_LeafId])


def _check_ids(chunk: Chunk, leaves: list[bytes], size: int) -> None:
    """The id index stored with a chunk must name the events in it (it drives exactly-once).

    One decode per chunk reads every leaf's top-level id; a leaf that is not an event with an
    id is reported here only if its hash matched (otherwise step 3 names it as changed).
    """
    if not chunk.start + chunk.count <= chunk.batch_end <= size:
        raise TamperError("extra", chunk.start, f"a row claims it was committed at size "
                          f"{chunk.batch_end}")
    try:
        ids = _ids_decoder.decode(b"[" + b",".join(leaves) + b"]")
        text = "".join(x.id for x in ids).replace("-", "")
        ok = len(ids) == len(leaves) and text == chunk.ids.hex()
    except (msgspec.DecodeError, msgspec.ValidationError):
        ok = False
    if not ok:
        # Name the first entry whose stored id differs (the leaf hashes are checked later).
        for k, leaf in enumerate(leaves):
            try:
                ident = _ids_decoder.decode(b"[" + leaf + b"]")[0].id.replace("-", "")
            except (msgspec.DecodeError, msgspec.ValidationError):
                ident = ""
            if ident != chunk.ids[16 * k:16 * k + 16].hex():
                raise TamperError("changed", chunk.start + k, "the id index disagrees with the "
                                  "entry (exactly-once depends on it)")
        raise TamperError("changed", chunk.start, "the id index has the wrong length")


def _signed_heads(store: Store, verifier: Verifier, origin: str,
                  head_note: str | None, size: int) -> dict[int, bytes]:
    heads: dict[int, bytes] = {}
    notes = [*store.iter_checkpoints(), (size, head_note)]
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


def verify_log(store: Store, verifier: Verifier, origin: str, *,
               trusted_checkpoint: str | None = None,
               progress: Callable[[int, int], None] | None = None) -> VerifyReport:
    """Verify everything stored for one log; raise TamperError naming the first problem."""
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
        stops = sorted(targets)
        levels = _StoredLevels(store)
        done, last = 0, list[bytes]()
        stop_i = 0

        def check_stop() -> None:
            nonlocal stop_i
            while stop_i < len(stops) and stops[stop_i] == done:
                root = compact.root_from_edge(done, last)
                for label, want in targets[done]:
                    if not hmac.compare_digest(root, want):
                        prev = stops[stop_i - 1] if stop_i else 0
                        if label == "trusted":
                            # The signed checkpoints below ``done`` matched, but whoever forked
                            # the log holds its key and re-signed them: they bound nothing, so
                            # the rewrite may start anywhere below ``done``.
                            raise TamperError("forked", 0, f"the first {done} entries do not "
                                              "match the trusted checkpoint: the log was "
                                              f"rewritten below index {done}")
                        raise TamperError("changed", prev, "entries and tree hashes were "
                                          f"rewritten together somewhere in [{prev}, {done}): "
                                          f"the root no longer matches the checkpoint signed "
                                          f"for size {done}")
                stop_i += 1

        check_stop()
        # 2-4. Stream the entries.
        for chunk in store.iter_all_chunks():
            if chunk.start < 0:
                raise TamperError("extra", 0, f"a row claims entries at negative index "
                                  f"{chunk.start}")
            if chunk.start >= size:
                raise TamperError("extra", chunk.start, f"entries past the log size {size}")
            if chunk.start > done:
                raise TamperError("missing", done,
                                  f"entries {done}..{chunk.start - 1} are missing")
            if chunk.start < done:
                raise TamperError("extra", chunk.start, "an entry overlaps another (inserted row)")
            if chunk.count <= 0 or chunk.start + chunk.count > size:
                raise TamperError("extra", max(chunk.start, size - 1),
                                  "a row holds entries past the log size")
            data = chunk.data
            try:
                lens = struct.unpack_from(f"<{chunk.count}I", data)
            except struct.error as exc:
                raise TamperError("changed", chunk.start, "entry framing is broken") from exc
            pos = 4 * chunk.count
            if pos + sum(lens) != len(data):
                raise TamperError("changed", chunk.start, "entry framing is broken")
            leaves: list[bytes] = []
            for n in lens:
                leaves.append(data[pos:pos + n])
                pos += n
            hashes = [sha256(b"\x00" + leaf).digest() for leaf in leaves]
            k = 0
            while k < len(hashes):
                # Feed up to the next checkpoint boundary, then check that root.
                nxt = stops[stop_i] if stop_i < len(stops) else size
                part = hashes[k:k + max(1, min(len(hashes) - k, nxt - done))]
                new_levels, last = compact.extend(done, last, part)
                for level, (first, nodes) in enumerate(new_levels):
                    got = b"".join(nodes)
                    stored = levels.slice(level, first, len(nodes))
                    if got != stored:
                        j = _first_diff(got, stored)
                        leaf_index = (first + j) << level
                        if level == 0:
                            other = _find_leaf_hash(store, nodes[j], size)
                            if other is not None and other != first + j:
                                raise TamperError("reordered", first + j, f"this entry was "
                                                  f"committed at index {other}")
                            raise TamperError("changed", first + j, "the entry's bytes differ "
                                              "from its committed leaf hash")
                        raise TamperError("tree", leaf_index, f"stored tree hash ({level}, "
                                          f"{first + j}) differs from the rebuilt tree")
                done += len(part)
                k += len(part)
                check_stop()
            _check_ids(chunk, leaves, size)
            if progress is not None:
                progress(done, size)
        if done != size:
            raise TamperError("missing", done, f"entries {done}..{size - 1} are missing")
        # 5. No tree data past the size: the last block of each level ends exactly where the
        #    tree's complete nodes end, and no level beyond the tree's height has blocks.
        for level, last_block, length in store.node_extent():
            count = size >> level
            want_block, want_len = ((count - 1) // BLOCK, ((count - 1) % BLOCK + 1) * HASH_SIZE)
            if count == 0 or (last_block, length) != (want_block, want_len):
                raise TamperError("extra", size, f"tree hashes past the log size at level {level}")
        if stop_i != len(stops):  # pragma: no cover - every stop is <= size
            raise StorageError("verification did not reach every checkpoint")
        root = compact.root_from_edge(size, last)
        return VerifyReport(size, root, len(heads), trusted.size if trusted else None)
