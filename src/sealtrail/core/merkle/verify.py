"""Verifying inclusion and consistency proofs (RFC 9162 §2.1.3.2 and §2.1.4.2).

Each ``root_from_*`` computes; each ``verify_*`` raises :class:`InclusionError` or
:class:`ConsistencyError` (carrying expected and calculated roots) and returns ``None``.

Edge cases, decided explicitly (as transparency-dev/merkle does):
- inclusion: ``index >= size`` fails; every hash must be 32 bytes; proof length must be exact.
- consistency: ``first == second`` verifies only with an empty proof and equal roots;
  ``first == 0`` verifies only with an empty proof (nothing can be proven about an empty tree,
  and anything is consistent with it); ``first > second`` fails.
"""

from __future__ import annotations

import hmac
from collections.abc import Sequence

from sealtrail.core.errors import ConsistencyError, InclusionError
from sealtrail.core.merkle.hashing import HASH_SIZE, node_hash


def _inner_border(index: int, size: int) -> tuple[int, int]:
    """Split an inclusion path into ``inner`` (below the right border) and ``border`` hashes."""
    inner = (index ^ (size - 1)).bit_length()
    border = bin(index >> inner).count("1")
    return inner, border


def root_from_inclusion_proof(index: int, size: int, leaf: bytes,
                              proof: Sequence[bytes]) -> bytes:
    """The root an audit path implies; raises InclusionError if the proof is malformed."""
    if size <= 0 or not 0 <= index < size:
        raise InclusionError(f"leaf index {index} is outside a tree of size {size}")
    if len(leaf) != HASH_SIZE:
        raise InclusionError(f"leaf hash has {len(leaf)} bytes, want {HASH_SIZE}")
    inner, border = _inner_border(index, size)
    if len(proof) != inner + border:
        raise InclusionError(f"proof for index {index} in size {size} needs {inner + border} "
                             f"hashes, has {len(proof)}")
    for i, h in enumerate(proof):
        if len(h) != HASH_SIZE:
            raise InclusionError(f"proof hash {i} has {len(h)} bytes, want {HASH_SIZE}")
    # RFC 9162 §2.1.3.2 step 4, in the equivalent two-phase form: the first ``inner`` hashes
    # chain by the index bits, the rest (the right border) always hash on the left.
    r = leaf
    for i in range(inner):
        r = node_hash(proof[i], r) if (index >> i) & 1 else node_hash(r, proof[i])
    for h in proof[inner:]:
        r = node_hash(h, r)
    return r


def verify_inclusion(index: int, size: int, leaf: bytes, proof: Sequence[bytes],
                     root: bytes) -> None:
    """Raise InclusionError unless ``proof`` shows ``leaf`` at ``index`` in the tree ``root``."""
    calculated = root_from_inclusion_proof(index, size, leaf, proof)
    if not hmac.compare_digest(calculated, root):
        raise InclusionError(f"inclusion proof for index {index} in size {size} does not lead "
                             "to the root", expected=root, calculated=calculated)


def roots_from_consistency_proof(first: int, second: int, first_root: bytes,
                                 proof: Sequence[bytes]) -> tuple[bytes, bytes]:
    """The (first, second) roots implied by a consistency proof, per RFC 9162 §2.1.4.2."""
    if not 0 < first < second:
        raise ConsistencyError(f"no consistency proof exists for sizes {first} -> {second}")
    if len(first_root) != HASH_SIZE:
        raise ConsistencyError(f"first root has {len(first_root)} bytes, want {HASH_SIZE}")
    for i, h in enumerate(proof):
        if len(h) != HASH_SIZE:
            raise ConsistencyError(f"proof hash {i} has {len(h)} bytes, want {HASH_SIZE}")
    # Step 1-2: an empty path fails; a power-of-two first size is its own first node.
    if not proof:
        raise ConsistencyError("empty consistency proof")
    path = list(proof)
    if first & (first - 1) == 0:
        path.insert(0, first_root)
    fn, sn = first - 1, second - 1
    # Steps 3-4.
    while fn & 1:
        fn >>= 1
        sn >>= 1
    # Step 5.
    fr = sr = path[0]
    # Step 6.
    for c in path[1:]:
        if sn == 0:
            raise ConsistencyError("consistency proof is too long")
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while fn & 1 == 0 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    # Step 7 (the root comparison is the caller's).
    if sn != 0:
        raise ConsistencyError("consistency proof is too short")
    return fr, sr


def verify_consistency(first: int, second: int, first_root: bytes, second_root: bytes,
                       proof: Sequence[bytes]) -> None:
    """Raise ConsistencyError unless ``proof`` shows tree ``second_root`` extends ``first_root``."""
    if first < 0 or second < first:
        raise ConsistencyError(f"no consistency proof exists for sizes {first} -> {second}")
    if first in (second, 0):
        if proof:
            raise ConsistencyError(f"sizes {first} -> {second} take an empty proof, got "
                                   f"{len(proof)} hashes")
        if first == second and not hmac.compare_digest(first_root, second_root):
            raise ConsistencyError(f"two different roots for the same size {first}",
                                   expected=first_root, calculated=second_root)
        return
    fr, sr = roots_from_consistency_proof(first, second, first_root, proof)
    if not hmac.compare_digest(fr, first_root):
        raise ConsistencyError(f"consistency proof {first} -> {second} does not lead to the "
                               "first root", expected=first_root, calculated=fr)
    if not hmac.compare_digest(sr, second_root):
        raise ConsistencyError(f"consistency proof {first} -> {second} does not lead to the "
                               "second root", expected=second_root, calculated=sr)
