"""The fast Merkle core (compact range, planner, verifier) and the engine against the RFC text.

:mod:`tests.reference_tree` implements RFC 6962 §2.1 recursively with hashlib alone. Here every
tree size up to 300 is checked exhaustively (every root, every audit path, every consistency
proof), larger sizes under Hypothesis, and a real :class:`~sealtrail.AuditLog` on disk is checked
against the reference computed from the leaf bytes it gives back.
"""

from __future__ import annotations

import itertools
import random
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st
from tests.reference_tree import ReferenceTree, rfc_leaf_hash

from sealtrail.core.checkpoint import open_checkpoint
from sealtrail.core.merkle import compact
from sealtrail.core.merkle.hashing import fold_right, leaf_hash
from sealtrail.core.merkle.nodes import Node, range_nodes, root_nodes
from sealtrail.core.merkle.proof import Range, plan_consistency, plan_inclusion
from sealtrail.core.merkle.verify import verify_consistency, verify_inclusion
from sealtrail.log.auditlog import AuditLog

MAX = 300
_rng = random.Random(6962)
ENTRIES: list[bytes] = [_rng.randbytes(_rng.randrange(0, 40)) for _ in range(MAX)]
REF = ReferenceTree(ENTRIES)
HASHES: list[bytes] = [leaf_hash(e) for e in ENTRIES]


def _random_splits(total: int, rng: random.Random) -> list[int]:
    """Batch sizes summing to ``total``: a mix of singles, small and large batches."""
    out: list[int] = []
    left = total
    while left:
        n = min(left, rng.choice([1, 1, 2, 3, rng.randrange(1, 20), rng.randrange(1, 300)]))
        out.append(n)
        left -= n
    return out


def _node_mth(ref: ReferenceTree, node: Node) -> bytes:
    return ref.mth(node.start, node.end)


def _fold_range(ref: ReferenceTree, a: int, b: int) -> bytes:
    """MTH(D[a:b]) the way the engine computes it: fold_right over the complete nodes tiling it."""
    return fold_right([_node_mth(ref, n) for n in range_nodes(a, b)])


# -- roots ---------------------------------------------------------------------------------


def test_roots_every_size_from_scratch() -> None:
    """For every size 1..300, one compact.extend from empty gives the reference MTH."""
    for n in range(1, MAX + 1):
        _, edge = compact.extend(0, [], HASHES[:n])
        assert compact.root_from_edge(n, edge) == REF.root(n), n


def test_roots_every_size_one_leaf_at_a_time() -> None:
    """Appending one leaf at a time, the root after each append is the reference MTH."""
    edge: list[bytes] = []
    for n in range(MAX):
        _, edge = compact.extend(n, edge, [HASHES[n]])
        assert compact.root_from_edge(n + 1, edge) == REF.root(n + 1), n + 1


def test_roots_in_random_batches_and_nodes_complete() -> None:
    """In random batch splits every root matches and every complete node is emitted once, right."""
    for seed in range(8):
        rng = random.Random(seed)
        edge: list[bytes] = []
        size = 0
        emitted: dict[Node, bytes] = {}
        for batch in _random_splits(MAX, rng):
            levels, edge = compact.extend(size, edge, HASHES[size:size + batch])
            for level, (first, hashes) in enumerate(levels):
                for j, h in enumerate(hashes):
                    node = Node(level, first + j)
                    assert node not in emitted, node
                    emitted[node] = h
            size += batch
            assert compact.root_from_edge(size, edge) == REF.root(size), (seed, size)
            for level, h in enumerate(edge):
                assert h == _node_mth(REF, Node(level, (size >> level) - 1))
        complete = {Node(level, k) for level in range(MAX.bit_length())
                    for k in range(MAX >> level)}
        assert set(emitted) == complete
        for node, h in emitted.items():
            assert h == _node_mth(REF, node), node


def test_root_nodes_fold_to_root() -> None:
    """root_nodes(n) tiles [0, n) with complete subtrees whose fold is the reference MTH."""
    for n in range(MAX + 1):
        nodes = root_nodes(n)
        assert [x.end for x in nodes[:-1]] == [x.start for x in nodes[1:]]
        assert fold_right([_node_mth(REF, x) for x in nodes]) == REF.root(n)


# -- proofs --------------------------------------------------------------------------------


def test_planned_inclusion_equals_reference_path() -> None:
    """For every size 1..300 and index, the planned path is the reference PATH and verifies."""
    for n in range(1, MAX + 1):
        root = REF.root(n)
        for m in range(n):
            proof = [REF.mth(a, b) for a, b in plan_inclusion(m, n)]
            assert proof == REF.path(m, n), (m, n)
            verify_inclusion(m, n, HASHES[m], proof, root)


def test_planned_consistency_equals_reference_proof() -> None:
    """For every 0 < m <= n <= 300, the planned proof is the reference PROOF and verifies."""
    for n in range(1, MAX + 1):
        root = REF.root(n)
        for m in range(1, n + 1):
            proof = [REF.mth(a, b) for a, b in plan_consistency(m, n)]
            assert proof == REF.proof(m, n), (m, n)
            verify_consistency(m, n, REF.root(m), root, proof)


def test_range_nodes_fold_to_reference_for_planned_ranges() -> None:
    """Every range either planner asks for is tiled by complete aligned nodes folding to its MTH."""
    ranges: set[Range] = set()
    for n in range(1, MAX + 1):
        for m in range(n):
            ranges.update(plan_inclusion(m, n))
            ranges.update(plan_consistency(m + 1, n))
    assert len(ranges) > 1000
    for a, b in ranges:
        nodes = range_nodes(a, b)
        assert nodes[0].start == a
        assert nodes[-1].end == b
        assert [x.end for x in nodes[:-1]] == [x.start for x in nodes[1:]]
        assert all(x.level >= y.level for x, y in itertools.pairwise(nodes))
        assert _fold_range(REF, a, b) == REF.mth(a, b), (a, b)


@settings(max_examples=50, deadline=None)
@given(seed=st.integers(0, 2**32), size=st.integers(1, 5000), data=st.data())
def test_large_random_trees(seed: int, size: int, data: st.DataObject) -> None:
    """For random trees of up to 5000 leaves, roots, paths and consistency proofs match the RFC."""
    rng = random.Random(seed)
    entries = [rng.randbytes(rng.randrange(0, 64)) for _ in range(size)]
    ref = ReferenceTree(entries)
    hashes: list[bytes] = [leaf_hash(e) for e in entries]
    edge: list[bytes] = []
    done = 0
    for batch in _random_splits(size, rng):
        _, edge = compact.extend(done, edge, hashes[done:done + batch])
        done += batch
        assert compact.root_from_edge(done, edge) == ref.root(done)
    root = ref.root(size)
    for m in data.draw(st.lists(st.integers(0, size - 1), min_size=1, max_size=8)):
        proof = [_fold_range(ref, a, b) for a, b in plan_inclusion(m, size)]
        assert proof == ref.path(m, size)
        verify_inclusion(m, size, hashes[m], proof, root)
    for m in data.draw(st.lists(st.integers(1, size), min_size=1, max_size=8)):
        proof = [_fold_range(ref, a, b) for a, b in plan_consistency(m, size)]
        assert proof == ref.proof(m, size)
        verify_consistency(m, size, ref.root(m), root, proof)


# -- the real engine -----------------------------------------------------------------------


def _event(i: int) -> dict[str, object]:
    return {"actor": {"id": f"user-{i % 7}"}, "action": "doc.read", "outcome": "success",
            "metadata": {"i": i, "pad": "x" * (i % 13)}}


def _check_log(log: AuditLog, n: int, rng: random.Random) -> None:
    """Proofs and roots served by the log equal the reference over the leaves it reads back."""
    entries = [e.leaf for e in log.entries(0)]
    assert len(entries) == n == log.size
    ref = ReferenceTree(entries)
    cp = open_checkpoint(log.checkpoint().note, log.verifier, origin=log.origin)
    assert cp.size == n
    assert cp.root == ref.root(n)
    sizes = sorted({1, n, n - 1 or 1, *(rng.randrange(1, n + 1) for _ in range(3))})
    for size in sizes:
        assert log.root_at(size) == ref.root(size)
    for i in range(n):
        proof = log.prove_inclusion(i)
        assert proof.leaf_hash == rfc_leaf_hash(entries[i])
        assert list(proof.audit_path) == ref.path(i, n)
        assert proof.root_hash == ref.root(n)
        assert proof.checkpoint == log.checkpoint().note
        proof.verify()
    for size in sizes:
        for i in rng.sample(range(size), min(size, 10)):
            proof = log.prove_inclusion(i, size)
            assert list(proof.audit_path) == ref.path(i, size)
            assert proof.root_hash == ref.root(size)
            proof.verify()
    for m in range(n + 1):
        con = log.prove_consistency(m)
        assert list(con.consistency) == (ref.proof(m, n) if m else [])
        assert con.first_root == ref.root(m)
        assert con.second_root == ref.root(n)
        con.verify()
    for second in sizes:
        for m in rng.sample(range(second + 1), min(second + 1, 10)):
            con = log.prove_consistency(m, second)
            assert list(con.consistency) == (ref.proof(m, second) if m else [])
            con.verify()


def test_audit_log_proofs_match_reference(tmp_path: Path) -> None:
    """A real AuditLog's proofs and roots at sizes 1, 2, 3, 255-257, 1000, 1024 match the RFC."""
    rng = random.Random(257)
    with AuditLog.open(tmp_path, "ref") as log:
        assert log.root_at(0) == ReferenceTree([]).root(0)
        done = 0
        for target in (1, 2, 3, 255, 256, 257, 1000):
            for batch in _random_splits(target - done, rng):
                if batch == 1 and rng.random() < 0.5:
                    log.append(_event(done))
                else:
                    log.append_many([_event(done + k) for k in range(batch)])
                done += batch
            _check_log(log, target, rng)
    # Reopened from disk, the tree edge reloads and the same checks hold.
    with AuditLog.open(tmp_path, "ref", create=False) as log:
        log.append_many([_event(1000 + k) for k in range(24)])
        _check_log(log, 1024, rng)
