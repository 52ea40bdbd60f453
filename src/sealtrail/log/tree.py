"""The stored Merkle tree: complete nodes in 63-hash blocks per level, plus the right edge.

Reading a node ``(L, k)`` reads block ``(L, k // 63)``; a proof needs O(log n) nodes, hence
O(log n) rows, and never rehashes the log. Appending writes the blocks that gained nodes (about
two per commit for single appends, a few dozen for a batch of 1000).

Why 63: a block row is 63 * 32 = 2016 bytes plus a few bytes of record header, so exactly two
rows fill a 4 KiB SQLite page (64 hashes would leave room for only one and waste half the
page), and a single append rewrites a small, inline row instead of an overflow chain.
"""

from __future__ import annotations

from dataclasses import dataclass

from sealtrail.core.errors import StorageError
from sealtrail.core.merkle import compact
from sealtrail.core.merkle.hashing import HASH_SIZE, fold_right
from sealtrail.core.merkle.nodes import Node, range_nodes
from sealtrail.store.protocol import EntryLog

ANCHOR_EVERY = 1024  # keep a checkpoint in the history each time the log passes k*1024


def crosses_anchor(before: int, after: int) -> bool:
    """Whether a commit from size ``before`` to ``after`` keeps its checkpoint in the history:
    the first commit, and each one that crosses a multiple of :data:`ANCHOR_EVERY` (the engine
    writes by this rule; verify requires every such checkpoint)."""
    return before == 0 or before // ANCHOR_EVERY != after // ANCHOR_EVERY


BLOCK = 63                  # hashes per stored node block (two rows per 4 KiB page)
BLOCK_BYTES = BLOCK * HASH_SIZE
BUNDLE = 256                # entries per bundle: chunks never cross a bundle boundary


@dataclass(slots=True)
class TreeEdge:
    """The in-memory head of the stored tree: size, newest node per level, partial blocks."""

    size: int
    last: list[bytes]
    partial: dict[int, bytes]  # level -> bytes of that level's last, not yet full block

    @classmethod
    def load(cls, store: EntryLog, size: int) -> TreeEdge:
        """Read the edge of a tree of ``size`` leaves: O(log n) block reads."""
        want: set[tuple[int, int]] = set()
        for level in range(size.bit_length()):
            count = size >> level
            want.add((level, (count - 1) // BLOCK))
            want.add((level, count // BLOCK))
        blocks = store.node_blocks(want)
        last: list[bytes] = []
        partial: dict[int, bytes] = {}
        for level in range(size.bit_length()):
            count = size >> level
            k = count - 1
            block = blocks.get((level, k // BLOCK))
            off = (k % BLOCK) * HASH_SIZE
            if block is None or len(block) < off + HASH_SIZE:
                raise StorageError(f"tree node ({level}, {k}) is missing: run sealtrail verify")
            last.append(block[off:off + HASH_SIZE])
            fill = (count % BLOCK) * HASH_SIZE
            partial[level] = blocks.get((level, count // BLOCK), b"")[:fill] if fill else b""
        return cls(size, last, partial)

    def root(self) -> bytes:
        """The current root."""
        return compact.root_from_edge(self.size, self.last)

    def append(self, leaves: list[bytes]) -> tuple[TreeEdge, dict[tuple[int, int], bytes]]:
        """The edge after adding leaf hashes, and the node blocks to write (not applied here)."""
        levels, new_last = compact.extend(self.size, self.last, leaves)
        partial = dict(self.partial)
        dirty: dict[tuple[int, int], bytes] = {}
        for level, (first, hashes) in enumerate(levels):
            buf = partial.get(level, b"") + b"".join(hashes)
            block = first // BLOCK
            # ``buf`` starts at the beginning of ``block``: full blocks go out whole.
            while len(buf) >= BLOCK_BYTES:
                dirty[(level, block)] = buf[:BLOCK_BYTES]
                buf = buf[BLOCK_BYTES:]
                block += 1
            if buf:
                dirty[(level, block)] = buf
            partial[level] = buf
        return TreeEdge(self.size + len(leaves), new_last, partial), dirty


def block_of(n: Node) -> tuple[int, int]:
    """The (level, block) key of the stored block that holds node ``n``."""
    return n.level, n.index // BLOCK


def node_in(blocks: dict[tuple[int, int], bytes], n: Node) -> bytes:
    """Node ``n`` cut from fetched blocks; StorageError when its block lacks it."""
    block = blocks.get((n.level, n.index // BLOCK))
    off = (n.index % BLOCK) * HASH_SIZE
    if block is None or len(block) < off + HASH_SIZE:
        raise StorageError(f"tree node ({n.level}, {n.index}) is missing: run sealtrail verify")
    return block[off:off + HASH_SIZE]


def read_nodes(store: EntryLog, nodes: list[Node]) -> dict[Node, bytes]:
    """Fetch complete nodes from their blocks; raise StorageError when one is missing."""
    blocks = store.node_blocks({block_of(n) for n in nodes})
    return {n: node_in(blocks, n) for n in nodes}


def range_hashes(store: EntryLog, ranges: list[tuple[int, int]]) -> list[bytes]:
    """The MTH of each leaf range, from stored complete nodes (one read per block touched)."""
    plans = [range_nodes(a, b) for a, b in ranges]
    fetched = read_nodes(store, [n for plan in plans for n in plan])
    return [fold_right([fetched[n] for n in plan]) for plan in plans]
