"""Sequencing one commit: plan the new entries in memory, then write them in one go.

Planning is pure (no store access): each request's prepared leaves (sealed, encoded and
hashed by :mod:`sealtrail.log.ingest`) get their indexes (:meth:`BatchPlan.add`), a request
that fails is taken out again (:meth:`BatchPlan.undo`), and :func:`plan_commit` extends the
tree and cuts the entries into bundle-aligned chunks with their id-index rows. :func:`write`
then puts the whole commit into the store inside the caller's transaction, the head last, by
compare-and-swap on the head the commit started from.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sealtrail.core.receipt import Receipt
from sealtrail.log.idindex import rows_of
from sealtrail.log.tree import BUNDLE, TreeEdge, crosses_anchor
from sealtrail.store.protocol import Chunk, State, Store

# What a request's event became: (id text, its index or -1 when an earlier receipt answers
# it, whether it is a duplicate).
Slot = tuple[str, int, bool]


@dataclass(slots=True)
class BatchPlan:
    """One commit's new entries, planned in memory before anything is written."""

    start: int                                   # the index of the first new entry
    leaves: list[bytes] = field(default_factory=list)
    hashes: list[bytes] = field(default_factory=list)
    ids: list[bytes] = field(default_factory=list)
    pending: dict[bytes, int] = field(default_factory=dict)  # id -> its index in this batch

    def mark(self) -> int:
        """Where the plan stands (give it to :meth:`undo`)."""
        return len(self.leaves)

    def undo(self, mark: int) -> None:
        """Take out everything added since ``mark`` (a request that failed)."""
        for ident in self.ids[mark:]:
            self.pending.pop(ident, None)
        del self.leaves[mark:], self.hashes[mark:], self.ids[mark:]

    def add(self, ids: list[bytes], texts: list[str], leaves: list[bytes],
            hashes: list[bytes], *, found: dict[bytes, Receipt]) -> list[Slot]:
        """Give one request's prepared leaves their places: an id the log holds (``found``)
        or this batch already placed is a duplicate; every other leaf gets the next index."""
        slots: list[Slot] = []
        pending = self.pending
        for ident, text, leaf, hashed in zip(ids, texts, leaves, hashes, strict=True):
            if ident in found:
                slots.append((text, -1, True))
                continue
            if ident in pending:
                slots.append((text, pending[ident], True))
                continue
            at = self.start + len(self.leaves)
            pending[ident] = at
            slots.append((text, at, False))
            self.leaves.append(leaf)
            self.hashes.append(hashed)
            self.ids.append(ident)
        return slots


@dataclass(frozen=True, slots=True)
class Commit:
    """Everything one commit writes, computed from a plan and the tree before it."""

    before: TreeEdge
    edge: TreeEdge                            # the tree after the commit
    blocks: dict[tuple[int, int], bytes]      # node blocks that gained nodes
    chunks: list[Chunk]
    buckets: list[tuple[int, int]]            # (time bucket, chunk start) rows
    exact: list[tuple[bytes, int]]            # exact id rows (non-UUIDv7 and late ids)
    id_hwm: int                               # the highest UUIDv7 millisecond held


def plan_commit(plan: BatchPlan, edge: TreeEdge, id_hwm: int, late_ms: int | None) -> Commit:
    """The tree extended by the plan's leaf hashes, the entries cut at bundle boundaries
    (a chunk never crosses one) and the id-index rows of each chunk. Pure."""
    new_edge, blocks = edge.append(plan.hashes) if plan.hashes else (edge, {})
    chunks: list[Chunk] = []
    buckets: set[tuple[int, int]] = set()
    exact: list[tuple[bytes, int]] = []
    leaves, ids, start = plan.leaves, plan.ids, plan.start
    pos = 0
    while pos < len(leaves):
        cstart = start + pos
        n = min(len(leaves) - pos, BUNDLE - cstart % BUNDLE)
        pids = ids[pos:pos + n]
        chunks.append(Chunk.pack(cstart, new_edge.size, pids, leaves[pos:pos + n]))
        rows, exact_rows, latest = rows_of(cstart, b"".join(pids), late_ms)
        buckets |= rows
        exact.extend(exact_rows)
        id_hwm = max(id_hwm, latest)
        pos += n
    return Commit(edge, new_edge, blocks, chunks, sorted(buckets), exact, id_hwm)


def write(store: Store, commit: Commit, note: str, expect: State) -> None:
    """Write a commit with its signed checkpoint ``note`` (inside the caller's transaction):
    entries, tree blocks, id index, the checkpoint history when the commit crosses an anchor,
    and last the head, only if it is still ``expect`` (HeadConflictError otherwise)."""
    store.put_chunks(commit.chunks)
    store.put_node_blocks(commit.blocks)
    if commit.buckets:
        store.put_buckets(commit.buckets)
    if commit.exact:
        store.put_other_ids(commit.exact)
    size = commit.edge.size
    if crosses_anchor(commit.before.size, size):
        store.put_checkpoint(size, note)
    store.put_state(State(size, note, commit.id_hwm), expect=expect)
