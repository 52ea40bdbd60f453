"""Planning RFC 6962 proofs as lists of leaf ranges.

RFC 6962 §2.1.1-2.1.2, the same as RFC 9162 §2.1.3.1 and §2.1.4.1.

Planning is pure arithmetic: a proof is a list of subtree ranges ``[a, b)`` whose MTHs the caller
fetches (as complete stored nodes via :func:`~sealtrail.core.merkle.nodes.range_nodes`) and folds.
This keeps storage out of the core, as transparency-dev/merkle's ``proof`` package does.
"""

from __future__ import annotations

from sealtrail.core.merkle.nodes import largest_power_of_two_below

Range = tuple[int, int]


def plan_inclusion(index: int, size: int) -> list[Range]:
    """The subtree ranges of PATH(index, D[0:size]), in proof order (leaf sibling first)."""
    if not 0 <= index < size:
        raise ValueError(f"leaf index {index} is outside a tree of size {size}")
    path: list[Range] = []
    lo, hi, m = 0, size, index
    # PATH(m, D[lo:hi]): descend towards the leaf, collecting the sibling at each split; the
    # recursion emits siblings bottom-up, so reverse at the end.
    while hi - lo > 1:
        k = largest_power_of_two_below(hi - lo)
        if m < k:
            path.append((lo + k, hi))
            hi = lo + k
        else:
            path.append((lo, lo + k))
            lo += k
            m -= k
    path.reverse()
    return path


def plan_consistency(first: int, second: int) -> list[Range]:
    """The subtree ranges of PROOF(first, D[0:second]), in proof order.

    ``first == second`` and ``first == 0`` give an empty proof (nothing to prove).
    """
    if not 0 <= first <= second:
        raise ValueError(f"consistency needs 0 <= first <= second, got {first}, {second}")
    if first in (0, second):
        return []
    out: list[Range] = []
    lo, hi, m, whole = 0, second, first, True
    # SUBPROOF(m, D[lo:hi], whole), unrolled; siblings are emitted bottom-up, so reverse.
    while True:
        if m == hi - lo:
            if not whole:
                out.append((lo, hi))
            break
        k = largest_power_of_two_below(hi - lo)
        if m <= k:
            out.append((lo + k, hi))
            hi = lo + k
        else:
            out.append((lo, lo + k))
            lo += k
            m -= k
            whole = False
    out.reverse()
    return out
