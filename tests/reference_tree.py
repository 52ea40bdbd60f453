"""An independent, deliberately dumb RFC 6962 Merkle tree, straight from RFC 6962 §2.1.

It uses :mod:`hashlib` directly and nothing from ``sealtrail``, so the tests can check the fast
implementation against the text of the RFC. ``D[lo:hi]`` is represented by the pair of indices
into one fixed list of entries; MTH results are memoised per range, which changes nothing but the
running time (the same range always has the same hash).

- MTH (§2.1): ``MTH({}) = SHA-256()``, ``MTH({d0}) = SHA-256(0x00 || d0)``,
  ``MTH(D[n]) = SHA-256(0x01 || MTH(D[0:k]) || MTH(D[k:n]))`` with ``k`` the largest power of
  two smaller than ``n``.
- PATH (§2.1.1) and PROOF/SUBPROOF (§2.1.2) follow the RFC's recursive definitions.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence


def rfc_leaf_hash(entry: bytes) -> bytes:
    """SHA-256(0x00 || entry)."""
    return hashlib.sha256(b"\x00" + entry).digest()


def rfc_node_hash(left: bytes, right: bytes) -> bytes:
    """SHA-256(0x01 || left || right)."""
    return hashlib.sha256(b"\x01" + left + right).digest()


def split_point(n: int) -> int:
    """The largest power of two strictly smaller than ``n`` (``n > 1``), by counting up."""
    k = 1
    while k * 2 < n:
        k *= 2
    return k


class ReferenceTree:
    """RFC 6962 MTH, PATH and PROOF over a fixed list of entries."""

    def __init__(self, entries: Sequence[bytes]) -> None:
        self.entries = list(entries)
        self._mth: dict[tuple[int, int], bytes] = {}

    def __len__(self) -> int:
        return len(self.entries)

    def mth(self, lo: int, hi: int) -> bytes:
        """MTH(D[lo:hi])."""
        if not 0 <= lo <= hi <= len(self.entries):
            raise ValueError(f"bad range [{lo}, {hi})")
        cached = self._mth.get((lo, hi))
        if cached is not None:
            return cached
        n = hi - lo
        if n == 0:
            out = hashlib.sha256(b"").digest()
        elif n == 1:
            out = rfc_leaf_hash(self.entries[lo])
        else:
            k = split_point(n)
            out = rfc_node_hash(self.mth(lo, lo + k), self.mth(lo + k, hi))
        self._mth[(lo, hi)] = out
        return out

    def root(self, n: int) -> bytes:
        """MTH(D[0:n])."""
        return self.mth(0, n)

    def path(self, m: int, n: int) -> list[bytes]:
        """PATH(m, D[0:n]): the audit path of leaf ``m`` in the tree of the first ``n`` entries."""
        if not 0 <= m < n <= len(self.entries):
            raise ValueError(f"no path for leaf {m} in size {n}")
        return self._path(m, 0, n)

    def _path(self, m: int, lo: int, hi: int) -> list[bytes]:
        """PATH(m, D[lo:hi]), with ``m`` relative to ``lo``."""
        n = hi - lo
        if n == 1:
            return []
        k = split_point(n)
        if m < k:
            return [*self._path(m, lo, lo + k), self.mth(lo + k, hi)]
        return [*self._path(m - k, lo + k, hi), self.mth(lo, lo + k)]

    def proof(self, m: int, n: int) -> list[bytes]:
        """PROOF(m, D[0:n]) for ``0 < m <= n``: SUBPROOF(m, D[0:n], true)."""
        if not 0 < m <= n <= len(self.entries):
            raise ValueError(f"no consistency proof for {m} -> {n}")
        return self._subproof(m, 0, n, b=True)

    def _subproof(self, m: int, lo: int, hi: int, *, b: bool) -> list[bytes]:
        """SUBPROOF(m, D[lo:hi], b)."""
        n = hi - lo
        if m == n:
            return [] if b else [self.mth(lo, hi)]
        k = split_point(n)
        if m <= k:
            return [*self._subproof(m, lo, lo + k, b=b), self.mth(lo + k, hi)]
        return [*self._subproof(m - k, lo + k, hi, b=False), self.mth(lo, lo + k)]
