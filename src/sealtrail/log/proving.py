"""Proofs and tiles of one log, over its store and the checkpoint it signed.

Planning a proof is pure (:mod:`sealtrail.core.merkle.proof` names the node ranges); this module
fetches the planned nodes from the stored blocks and never hands out a proof whose root differs
from the signed checkpoint it claims. Each function takes the store and the latest signed
checkpoint, so it holds no state of its own.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable, Iterator

from sealtrail.core.checkpoint import Checkpoint, SignedCheckpoint
from sealtrail.core.errors import ConfigError, TamperError
from sealtrail.core.merkle.hashing import fold_right
from sealtrail.core.merkle.nodes import Node, range_nodes
from sealtrail.core.merkle.proof import plan_consistency, plan_inclusion
from sealtrail.core.proofs import ConsistencyProof, InclusionProof
from sealtrail.core.tiles import TILE_HEIGHT, TILE_WIDTH, TileRef
from sealtrail.log.tree import BLOCK, block_of, node_in, range_hashes, read_nodes
from sealtrail.store.protocol import EntryLog

_PATH_CACHE_BLOCKS = 65536  # about 130 MB at most; a sorted export rarely refills


def check_root(root: bytes, cp: Checkpoint) -> None:
    """Never hand out a proof whose root differs from the signed checkpoint it claims."""
    if not hmac.compare_digest(root, cp.root):
        raise TamperError("tree", 0, f"the stored tree's root at size {cp.size} differs from "
                          "the signed checkpoint: run sealtrail verify")


def root_at(store: EntryLog, size: int) -> bytes:
    """The root of the first ``size`` entries, from stored nodes."""
    return range_hashes(store, [(0, size)])[0]


def find_leaf(store: EntryLog, size: int, leaf_hash_value: bytes) -> int | None:
    """The index of the entry with this leaf hash, searching the stored level-0 hashes
    (a C-speed scan of 32-byte hashes, 63 per row: no leaf is read or hashed)."""
    for block, data in store.iter_node_blocks(0):
        pos = data.find(leaf_hash_value)
        while pos >= 0:
            if pos % 32 == 0:
                index = block * BLOCK + pos // 32
                return index if index < size else None
            pos = data.find(leaf_hash_value, pos + 1)
    return None


def tile(store: EntryLog, head: SignedCheckpoint, ref: TileRef) -> bytes:
    """The bytes of one C2SP tlog-tiles tile or entry bundle of the tree ``head`` signs.

    ConfigError when the tile reaches past the tree (a client asks again later).
    """
    size = head.checkpoint.size
    start = ref.index * TILE_WIDTH
    end = start + ref.width
    if ref.level is None:
        if end > size:
            raise ConfigError(f"entry bundle {ref.format()} reaches past size {size}")
        out: list[bytes] = []
        for chunk in store.iter_chunks(start, end):
            for k, leaf in enumerate(chunk.leaves()):
                if start <= chunk.start + k < end:
                    out.append(len(leaf).to_bytes(2, "big") + leaf)
        return b"".join(out)
    height = TILE_HEIGHT * ref.level
    if end << height > size:
        raise ConfigError(f"tile {ref.format()} reaches past size {size}")
    nodes = read_nodes(store, [Node(height, i) for i in range(start, end)])
    return b"".join(nodes[Node(height, i)] for i in range(start, end))


def prove_inclusion(store: EntryLog, head: SignedCheckpoint, index: int,
                    size: int | None = None) -> InclusionProof:
    """An audit path for entry ``index`` in the tree of ``size`` entries (default: the
    head's). At the head's size the proof carries the signed checkpoint (verifies offline)."""
    latest = head.checkpoint.size
    size = latest if size is None else size
    if not 0 < size <= latest:
        raise ConfigError(f"size {size} must be in 1..{latest}")
    if not 0 <= index < size:
        raise ConfigError(f"index {index} must be in 0..{size - 1}")
    ranges = plan_inclusion(index, size)
    hashes = range_hashes(store, [(index, index + 1), *ranges, (0, size)])
    note = None
    if size == latest:
        check_root(hashes[-1], head.checkpoint)
        note = head.note
    return InclusionProof(index, size, hashes[0], tuple(hashes[1:-1]), hashes[-1], note)


def inclusion_paths(store: EntryLog, head: SignedCheckpoint, indexes: Iterable[int], size: int
                    ) -> Iterator[tuple[int, tuple[bytes, ...]]]:
    """Audit paths of many entries in the tree of ``size`` entries (the head's size or
    smaller), reading each stored node block once (bulk exports: a bundle of 100k proofs
    shares most of its nodes). At the head's size its root is checked first."""
    latest = head.checkpoint.size
    if not 0 < size <= latest:
        raise ConfigError(f"size {size} must be in 1..{latest}")
    if size == latest:
        check_root(root_at(store, size), head.checkpoint)
    cache: dict[tuple[int, int], bytes] = {}
    for index in indexes:
        if not 0 <= index < size:
            raise ConfigError(f"index {index} must be in 0..{size - 1}")
        plans = [range_nodes(a, b) for a, b in plan_inclusion(index, size)]
        need = {block_of(n) for plan in plans for n in plan} - cache.keys()
        if need:
            if len(cache) > _PATH_CACHE_BLOCKS:
                cache.clear()
            cache.update(store.node_blocks(need))
        yield index, tuple(fold_right([node_in(cache, n) for n in plan]) for plan in plans)


def prove_consistency(store: EntryLog, head: SignedCheckpoint, first: int,
                      second: int | None = None) -> ConsistencyProof:
    """A consistency proof from size ``first`` to ``second`` (default: the head's)."""
    latest = head.checkpoint.size
    second = latest if second is None else second
    if not 0 <= first <= second <= latest:
        raise ConfigError(f"need 0 <= first <= second <= {latest}, got {first}, {second}")
    ranges = plan_consistency(first, second)
    hashes = range_hashes(store, [(0, first), (0, second), *ranges])
    if second == latest:
        check_root(hashes[1], head.checkpoint)
    return ConsistencyProof(first, second, hashes[0], hashes[1], tuple(hashes[2:]))
