"""RFC 6962 vectors from transparency-dev/merkle and Trillian against sealtrail's Merkle core.

The vectors (``data/rfc6962.json``, see ``data/PROVENANCE.md``) are checked four ways: our leaf
hash, our roots (compact range and reference tree), our verifiers on their proofs, and our
planner reproducing their proofs. Every tampering of a valid proof (one flipped bit anywhere,
a wrong index or size, a hash too many or too few) must make verification raise.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from tests.reference_tree import ReferenceTree

from sealtrail.core.errors import ConsistencyError, InclusionError, VerificationError
from sealtrail.core.merkle import compact
from sealtrail.core.merkle.hashing import EMPTY_ROOT, fold_right, leaf_hash
from sealtrail.core.merkle.nodes import Node, range_nodes
from sealtrail.core.merkle.proof import Range, plan_consistency, plan_inclusion
from sealtrail.core.merkle.verify import (
    root_from_inclusion_proof,
    verify_consistency,
    verify_inclusion,
)

DATA = Path(__file__).parent / "data" / "rfc6962.json"


@dataclass(frozen=True)
class InclusionVector:
    """One published audit path."""

    index: int
    size: int
    path: tuple[bytes, ...]
    root: bytes


@dataclass(frozen=True)
class ConsistencyVector:
    """One published consistency proof."""

    first: int
    second: int
    proof: tuple[bytes, ...]
    first_root: bytes
    second_root: bytes


def _load() -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(DATA.read_text(encoding="utf-8"))
    return doc


DOC = _load()
LEAVES: list[bytes] = [bytes.fromhex(x) for x in DOC["leaves"]]
LEAF_HASHES: list[bytes] = [bytes.fromhex(x) for x in DOC["leaf_hashes"]]
ROOTS: dict[int, bytes] = {int(k): bytes.fromhex(v) for k, v in DOC["roots"].items()}
INCLUSION: list[InclusionVector] = [
    InclusionVector(v["leaf_index"], v["tree_size"],
                    tuple(bytes.fromhex(h) for h in v["audit_path"]), bytes.fromhex(v["root"]))
    for v in DOC["inclusion"]]
CONSISTENCY: list[ConsistencyVector] = [
    ConsistencyVector(v["first"], v["second"],
                      tuple(bytes.fromhex(h) for h in v["consistency"]),
                      bytes.fromhex(v["first_root"]), bytes.fromhex(v["second_root"]))
    for v in DOC["consistency"]]
REF = ReferenceTree(LEAVES)


def _inc_id(v: InclusionVector) -> str:
    return f"leaf{v.index}-of-{v.size}"


def _con_id(v: ConsistencyVector) -> str:
    return f"{v.first}-to-{v.second}"


def _flips(data: bytes) -> Iterator[bytes]:
    """Every single-bit change of ``data``."""
    for i in range(len(data)):
        for bit in range(8):
            yield data[:i] + bytes([data[i] ^ (1 << bit)]) + data[i + 1:]


def _stored_nodes(size: int) -> dict[Node, bytes]:
    """Every complete node of the tree of the first ``size`` vector leaves, from compact.extend."""
    levels, _ = compact.extend(0, [], [leaf_hash(e) for e in LEAVES[:size]])
    return {Node(level, first + j): h
            for level, (first, hashes) in enumerate(levels) for j, h in enumerate(hashes)}


def _fetch(nodes: dict[Node, bytes], ranges: list[Range]) -> list[bytes]:
    """The hash of each planned range, folded from stored complete nodes."""
    return [fold_right([nodes[n] for n in range_nodes(a, b)]) for a, b in ranges]


def _sides(m: int, n: int) -> list[bool]:
    """For PATH(m, D[n]) (RFC 6962 §2.1.1), bottom-up: is each sibling on the left?"""
    if n == 1:
        return []
    k = 1
    while k * 2 < n:
        k *= 2
    if m < k:
        return [*_sides(m, k), False]
    return [*_sides(m - k, n - k), True]


# -- hashes and roots ----------------------------------------------------------------------


def test_leaf_hashes_match() -> None:
    """Our leaf_hash reproduces every published leaf hash."""
    assert [leaf_hash(e) for e in LEAVES] == LEAF_HASHES


def test_empty_root_matches() -> None:
    """The empty tree's root is the published SHA-256 of nothing, from every implementation."""
    empty = bytes.fromhex(DOC["empty_root"])
    assert empty == EMPTY_ROOT
    assert compact.root_from_edge(0, []) == empty
    assert ReferenceTree([]).root(0) == empty
    assert fold_right([]) == empty


@pytest.mark.parametrize("size", sorted(ROOTS))
def test_roots_match_via_compact_range(size: int) -> None:
    """compact.extend + root_from_edge gives the published root of every prefix, in any batching."""
    hashes: list[bytes] = [leaf_hash(e) for e in LEAVES[:size]]
    _, edge = compact.extend(0, [], hashes)
    assert compact.root_from_edge(size, edge) == ROOTS[size]
    # One leaf at a time, too.
    edge2: list[bytes] = []
    for i, h in enumerate(hashes):
        _, edge2 = compact.extend(i, edge2, [h])
    assert compact.root_from_edge(size, edge2) == ROOTS[size]


@pytest.mark.parametrize("size", sorted(ROOTS))
def test_roots_match_via_reference_tree(size: int) -> None:
    """The independent reference tree gives the published root of every prefix."""
    assert REF.root(size) == ROOTS[size]


# -- their proofs, our verifier -------------------------------------------------------------


@pytest.mark.parametrize("v", INCLUSION, ids=_inc_id)
def test_inclusion_vectors_verify(v: InclusionVector) -> None:
    """Each published audit path verifies, and the reference PATH agrees with it."""
    verify_inclusion(v.index, v.size, LEAF_HASHES[v.index], v.path, v.root)
    assert root_from_inclusion_proof(v.index, v.size, LEAF_HASHES[v.index], v.path) == v.root
    assert v.root == ROOTS[v.size]
    assert REF.path(v.index, v.size) == list(v.path)


@pytest.mark.parametrize("v", CONSISTENCY, ids=_con_id)
def test_consistency_vectors_verify(v: ConsistencyVector) -> None:
    """Each published consistency proof verifies, and the reference PROOF agrees with it."""
    verify_consistency(v.first, v.second, v.first_root, v.second_root, v.proof)
    assert v.first_root == ROOTS[v.first]
    assert v.second_root == ROOTS[v.second]
    assert REF.proof(v.first, v.second) == list(v.proof)


# -- our planner reproduces their proofs ----------------------------------------------------


@pytest.mark.parametrize("v", INCLUSION, ids=_inc_id)
def test_planned_inclusion_reproduces_vector(v: InclusionVector) -> None:
    """plan_inclusion's ranges, as stored nodes or reference MTHs, are the published path."""
    ranges = plan_inclusion(v.index, v.size)
    assert _fetch(_stored_nodes(v.size), ranges) == list(v.path)
    assert [REF.mth(a, b) for a, b in ranges] == list(v.path)


@pytest.mark.parametrize("v", CONSISTENCY, ids=_con_id)
def test_planned_consistency_reproduces_vector(v: ConsistencyVector) -> None:
    """plan_consistency's ranges, as stored nodes or reference MTHs, are the published proof."""
    ranges = plan_consistency(v.first, v.second)
    assert _fetch(_stored_nodes(v.second), ranges) == list(v.proof)
    assert [REF.mth(a, b) for a, b in ranges] == list(v.proof)


# -- tampering with inclusion proofs --------------------------------------------------------


@pytest.mark.parametrize("v", INCLUSION, ids=_inc_id)
def test_inclusion_bit_flips_fail(v: InclusionVector) -> None:
    """Every single-bit change of any path hash, the root or the leaf hash fails verification."""
    leaf = LEAF_HASHES[v.index]
    count = 0
    for i, h in enumerate(v.path):
        for bad in _flips(h):
            path = (*v.path[:i], bad, *v.path[i + 1:])
            with pytest.raises(InclusionError):
                verify_inclusion(v.index, v.size, leaf, path, v.root)
            count += 1
    for bad in _flips(v.root):
        with pytest.raises(InclusionError):
            verify_inclusion(v.index, v.size, leaf, v.path, bad)
        count += 1
    for bad in _flips(leaf):
        with pytest.raises(InclusionError):
            verify_inclusion(v.index, v.size, bad, v.path, v.root)
        count += 1
    assert count == 256 * (len(v.path) + 2)


def _index_size_mutations(index: int, size: int) -> set[tuple[int, int]]:
    out: set[tuple[int, int]] = set()
    for d in (-1, 1):
        out.add((index + d, size))
        out.add((index, size + d))
    for bit in range(8):
        out.add((index ^ (1 << bit), size))
        out.add((index, size ^ (1 << bit)))
    out.update({(size, size), (index, index), (0, 0), (-1, size), (index, 0)})
    out.discard((index, size))
    return out


@pytest.mark.parametrize("v", INCLUSION, ids=_inc_id)
def test_inclusion_wrong_index_or_size_fails(v: InclusionVector) -> None:
    """A wrong leaf_index or tree_size fails, unless it describes the very same hash chain.

    RFC 9162's verifier does not hash the size in, so a claim whose path takes the same
    left/right turns (leaf 5 of 7 vs of 8) computes the same root: the signed checkpoint, not
    the proof, binds the size. Every other mutation must raise.
    """
    leaf = LEAF_HASHES[v.index]
    same_chain = 0
    for index, size in sorted(_index_size_mutations(v.index, v.size)):
        if 0 <= index < size and _sides(index, size) == _sides(v.index, v.size):
            verify_inclusion(index, size, leaf, v.path, v.root)
            same_chain += 1
            continue
        with pytest.raises(InclusionError):
            verify_inclusion(index, size, leaf, v.path, v.root)
    assert same_chain <= 3


@pytest.mark.parametrize("v", INCLUSION, ids=_inc_id)
def test_inclusion_wrong_length_fails(v: InclusionVector) -> None:
    """Appending, prepending or removing a hash, or a short or long hash, fails verification."""
    leaf = LEAF_HASHES[v.index]
    extra = [b"\x00" * 32, leaf, v.root, *v.path]
    bad_paths: list[tuple[bytes, ...]] = []
    for h in extra:
        bad_paths.append((*v.path, h))
        bad_paths.append((h, *v.path))
    for i in range(len(v.path)):
        bad_paths.append((*v.path[:i], *v.path[i + 1:]))
        bad_paths.append((*v.path[:i], v.path[i][:31], *v.path[i + 1:]))
        bad_paths.append((*v.path[:i], v.path[i] + b"\x00", *v.path[i + 1:]))
    for path in bad_paths:
        with pytest.raises(InclusionError):
            verify_inclusion(v.index, v.size, leaf, path, v.root)
    with pytest.raises(InclusionError):
        verify_inclusion(v.index, v.size, leaf[:31], v.path, v.root)


def test_inclusion_raises_carry_values() -> None:
    """A failed inclusion check is a VerificationError carrying expected and calculated roots."""
    v = INCLUSION[0]
    bad_root = bytes(32)
    with pytest.raises(VerificationError) as info:
        verify_inclusion(v.index, v.size, LEAF_HASHES[v.index], v.path, bad_root)
    assert isinstance(info.value, InclusionError)
    assert info.value.expected == bad_root
    assert info.value.calculated == v.root


# -- tampering with consistency proofs ------------------------------------------------------


@pytest.mark.parametrize("v", CONSISTENCY, ids=_con_id)
def test_consistency_bit_flips_fail(v: ConsistencyVector) -> None:
    """Every single-bit change of any proof hash or either root fails verification."""
    for i, h in enumerate(v.proof):
        for bad in _flips(h):
            proof = (*v.proof[:i], bad, *v.proof[i + 1:])
            with pytest.raises(ConsistencyError):
                verify_consistency(v.first, v.second, v.first_root, v.second_root, proof)
    for bad in _flips(v.first_root):
        with pytest.raises(ConsistencyError):
            verify_consistency(v.first, v.second, bad, v.second_root, v.proof)
    for bad in _flips(v.second_root):
        with pytest.raises(ConsistencyError):
            verify_consistency(v.first, v.second, v.first_root, bad, v.proof)


@pytest.mark.parametrize("v", CONSISTENCY, ids=_con_id)
def test_consistency_wrong_sizes_fail(v: ConsistencyVector) -> None:
    """Claiming other sizes (±1, flipped bits, swapped, 0) fails unless the hash chain is the same.

    The proof is in effect the audit path of the old tree's last leaf (``first - 1``) in the new
    tree, so a second size whose path to that leaf takes the same turns (1 -> 7 vs 1 -> 8)
    computes the same roots: only the signed checkpoint binds the size. A wrong ``first`` always
    fails, and so does every other claim except the empty-tree case of merkle/verify.py.
    """
    claims: set[tuple[int, int]] = {(v.second, v.first), (0, v.second), (v.first, 0)}
    for d in (-1, 1):
        claims.add((v.first + d, v.second))
        claims.add((v.first, v.second + d))
    for bit in range(8):
        claims.add((v.first ^ (1 << bit), v.second))
        claims.add((v.first, v.second ^ (1 << bit)))
    claims.discard((v.first, v.second))
    for first, second in sorted(claims):
        if first == 0 and second >= 0 and not v.proof:
            # Anything is consistent with the empty tree (see merkle/verify.py).
            verify_consistency(first, second, v.first_root, v.second_root, v.proof)
        elif first == v.first and 0 < first < second and (
                _sides(first - 1, second) == _sides(first - 1, v.second)):
            verify_consistency(first, second, v.first_root, v.second_root, v.proof)
        else:
            with pytest.raises(ConsistencyError):
                verify_consistency(first, second, v.first_root, v.second_root, v.proof)


@pytest.mark.parametrize("v", CONSISTENCY, ids=_con_id)
def test_consistency_wrong_length_fails(v: ConsistencyVector) -> None:
    """Appending, prepending or removing a hash, or a short or long hash, fails verification."""
    extra = [b"\x00" * 32, v.first_root, v.second_root, *v.proof]
    bad: list[tuple[bytes, ...]] = []
    for h in extra:
        bad.append((*v.proof, h))
        bad.append((h, *v.proof))
    for i in range(len(v.proof)):
        bad.append((*v.proof[:i], *v.proof[i + 1:]))
        bad.append((*v.proof[:i], v.proof[i][:31], *v.proof[i + 1:]))
        bad.append((*v.proof[:i], v.proof[i] + b"\x00", *v.proof[i + 1:]))
    for proof in bad:
        with pytest.raises(ConsistencyError):
            verify_consistency(v.first, v.second, v.first_root, v.second_root, proof)


def test_consistency_same_size_edge_cases() -> None:
    """first == second verifies only with an empty proof and equal roots."""
    root = ROOTS[8]
    verify_consistency(8, 8, root, root, [])
    with pytest.raises(ConsistencyError):
        verify_consistency(8, 8, root, root, [root])
    with pytest.raises(ConsistencyError):
        verify_consistency(8, 8, root, ROOTS[7], [])
    assert plan_consistency(8, 8) == []


def test_consistency_from_empty_edge_cases() -> None:
    """first == 0 verifies only with an empty proof, whatever the roots; first > second fails."""
    verify_consistency(0, 8, EMPTY_ROOT, ROOTS[8], [])
    verify_consistency(0, 0, EMPTY_ROOT, EMPTY_ROOT, [])
    with pytest.raises(ConsistencyError):
        verify_consistency(0, 8, EMPTY_ROOT, ROOTS[8], [ROOTS[8]])
    with pytest.raises(ConsistencyError):
        verify_consistency(8, 7, ROOTS[8], ROOTS[7], [])
    with pytest.raises(ConsistencyError):
        verify_consistency(-1, 7, ROOTS[8], ROOTS[7], [])
    assert plan_consistency(0, 8) == []
