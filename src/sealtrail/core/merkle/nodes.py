"""Addressing stored tree nodes: which complete subtrees make up a range.

A *node* ``(level, index)`` is the root of the complete subtree over leaves
``[index * 2**level, (index + 1) * 2**level)``. Only complete subtrees are ever stored; the
unbalanced right edge of a tree is recomputed from them (at most log2(n) hashes), so the stored
tree never changes once written and a proof reads O(log n) nodes.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Node:
    """A complete subtree: ``level`` (height) and ``index`` among the nodes of that level."""

    level: int
    index: int

    @property
    def start(self) -> int:
        """First leaf covered."""
        return self.index << self.level

    @property
    def end(self) -> int:
        """One past the last leaf covered."""
        return (self.index + 1) << self.level


def range_nodes(start: int, end: int) -> list[Node]:
    """The complete subtrees that tile ``[start, end)``, left to right, largest first.

    Valid for the ranges RFC 6962 recursion produces (``start`` aligned to a power of two at
    least as large as the range's left part), which is every range a proof asks for; the
    result's root is ``fold_right`` of the node hashes.
    """
    if not 0 <= start <= end:
        raise ValueError(f"bad range [{start}, {end})")
    out: list[Node] = []
    pos = start
    while pos < end:
        # The largest aligned power of two starting at pos that fits in [pos, end).
        level = (end - pos).bit_length() - 1
        if pos:
            level = min(level, (pos & -pos).bit_length() - 1)
        out.append(Node(level, pos >> level))
        pos += 1 << level
    return out


def root_nodes(size: int) -> list[Node]:
    """The complete subtrees whose fold is the root of a tree of ``size`` leaves."""
    return range_nodes(0, size)


def largest_power_of_two_below(n: int) -> int:
    """The k of RFC 6962 §2.1: the largest power of two strictly smaller than ``n`` (n > 1)."""
    return 1 << ((n - 1).bit_length() - 1)
