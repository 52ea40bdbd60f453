"""Appending to an RFC 6962 tree held as its right edge (a compact range).

For a tree of ``size`` leaves, ``last[L]`` is the hash of the newest complete node of level ``L``,
i.e. node ``(L, (size >> L) - 1)``; it exists for every level with ``size >> L >= 1``. That is
all an appender needs: the root is the fold of ``last[L]`` over the set bits of ``size``, and new
leaves combine with ``last`` to produce every new complete node, level by level, in bulk.
"""

from __future__ import annotations

from sealtrail.core.merkle.hashing import EMPTY_ROOT, node_hash, pair_hashes


def root_from_edge(size: int, last: list[bytes]) -> bytes:
    """The root of a tree of ``size`` leaves from its newest complete nodes per level."""
    if size == 0:
        return EMPTY_ROOT
    acc: bytes | None = None
    for level in range(size.bit_length()):
        if (size >> level) & 1:
            acc = last[level] if acc is None else node_hash(last[level], acc)
    if acc is None:  # pragma: no cover - size > 0 has a set bit
        raise AssertionError("unreachable")
    return acc


def extend(size: int, last: list[bytes],
           leaves: list[bytes]) -> tuple[list[tuple[int, list[bytes]]], list[bytes]]:
    """Add leaf hashes to a tree; return the new complete nodes of each level and the new edge.

    The result's element ``L`` is ``(first_index, hashes)``: the level-``L`` nodes completed by
    this append, consecutive from ``first_index``.
    """
    new_last = list(last)
    levels: list[tuple[int, list[bytes]]] = []
    start, new = size, leaves
    level = 0
    while new:
        levels.append((start, new))
        parents: list[bytes] = []
        i = 0
        if start & 1:
            # The first new node is a right child; its left sibling is the old edge node.
            parents.append(node_hash(new_last[level], new[0]))
            i = 1
        parents.extend(pair_hashes(new, i))
        if level < len(new_last):
            new_last[level] = new[-1]
        else:
            new_last.append(new[-1])
        first_odd = start if start & 1 else start + 1
        start = first_odd >> 1
        new = parents
        level += 1
    return levels, new_last
