"""RFC 6962 §2.1 hashing with domain separation (RFC 9162 §2.1.1).

``leaf = SHA-256(0x00 || entry)``, ``node = SHA-256(0x01 || left || right)``, and the empty tree's
root is ``SHA-256("")``. The functions here are the only place sealtrail hashes tree data; the
bulk forms (:func:`leaf_hashes`, :func:`pair_hashes`) serve the hot loops of append and verify,
which would otherwise pay a function call per hash (about a tenth of a verification).
"""

from __future__ import annotations

from collections.abc import Iterable
from hashlib import sha256
from typing import Final, NewType

HASH_SIZE = 32
_LEAF: Final = b"\x00"
_NODE: Final = b"\x01"

LeafHash = NewType("LeafHash", bytes)
RootHash = NewType("RootHash", bytes)

EMPTY_ROOT = RootHash(sha256(b"").digest())


def leaf_hash(entry: bytes) -> LeafHash:
    """The RFC 6962 leaf hash of one entry's exact bytes."""
    return LeafHash(sha256(_LEAF + entry).digest())


def node_hash(left: bytes, right: bytes) -> bytes:
    """The RFC 6962 interior node hash of two child hashes."""
    return sha256(_NODE + left + right).digest()


def leaf_hashes(entries: Iterable[bytes]) -> list[bytes]:
    """:func:`leaf_hash` of each entry, in order."""
    return [sha256(_LEAF + entry).digest() for entry in entries]


def pair_hashes(nodes: list[bytes], first: int = 0) -> list[bytes]:
    """:func:`node_hash` of the consecutive pairs ``nodes[first], nodes[first + 1]``, then
    ``nodes[first + 2], nodes[first + 3]``...; a last node without a partner is left out."""
    return [sha256(_NODE + nodes[j] + nodes[j + 1]).digest()
            for j in range(first, len(nodes) - 1, 2)]


def fold_right(nodes: list[bytes]) -> bytes:
    """Combine complete subtree hashes, largest (leftmost) first, into the root of their union.

    RFC 6962 places a tree's unbalanced part on the right: MTH(D[a:b]) for a range that
    decomposes into complete subtrees s1 > s2 > ... > sk is H(s1, H(s2, ... H(sk-1, sk))).
    """
    if not nodes:
        return EMPTY_ROOT
    acc = nodes[-1]
    for node in reversed(nodes[:-1]):
        acc = node_hash(node, acc)
    return acc
