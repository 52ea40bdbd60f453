"""RFC 6962 §2.1 hashing with domain separation (RFC 9162 §2.1.1).

``leaf = SHA-256(0x00 || entry)``, ``node = SHA-256(0x01 || left || right)``, and the empty tree's
root is ``SHA-256("")``. These three functions are the only place sealtrail hashes tree data.
"""

from __future__ import annotations

from hashlib import sha256
from typing import NewType

HASH_SIZE = 32

LeafHash = NewType("LeafHash", bytes)
RootHash = NewType("RootHash", bytes)

EMPTY_ROOT = RootHash(sha256(b"").digest())


def leaf_hash(entry: bytes) -> LeafHash:
    """The RFC 6962 leaf hash of one entry's exact bytes."""
    return LeafHash(sha256(b"\x00" + entry).digest())


def node_hash(left: bytes, right: bytes) -> bytes:
    """The RFC 6962 interior node hash of two child hashes."""
    return sha256(b"\x01" + left + right).digest()


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
