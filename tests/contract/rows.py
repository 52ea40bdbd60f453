"""Sample rows of every kind, a store seeded with them, everything a store answers through the
protocol (:func:`dump`), and one write of every kind (:data:`WRITES`) that changes that answer:
what the rollback, savepoint and outside-a-transaction tests apply to each."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

from sealtrail.store.protocol import Chunk, RetiredRange, State, Store, SubjectKey


def ident(n: int) -> bytes:
    """A 16-byte id."""
    return n.to_bytes(16, "big")


def chunk(start: int, count: int, batch_end: int | None = None, *, tag: str = "e") -> Chunk:
    """A chunk of ``count`` distinct leaves (``e<index>``) and ids, ending its commit unless
    told otherwise."""
    return Chunk.pack(start, start + count if batch_end is None else batch_end,
                      [ident(1000 + start + k) for k in range(count)],
                      [f"{tag}{start + k}".encode() for k in range(count)])


def retired_framing(count: int) -> bytes:
    """The leaf framing retention leaves: ``count`` empty leaves."""
    return Chunk.pack(0, 0, [], [b""] * count).data


KEYS: Final = {n: SubjectKey(b"kid-%d" % n, b"ref-%d" % n, b"wrapped-%d" % n) for n in (1, 2, 3)}
X1, X2 = ident(0xA1), ident(0xA2)
BASE_STATE: Final = State(5, "checkpoint 5", 7)


def seed(store: Store) -> None:
    """Commit one row of every kind (and a little more), for writes to change."""
    with store.transaction():
        store.set_meta({"origin": "sealtrail/contract", "note": "kept"})
        store.put_state(BASE_STATE)
        store.put_chunks([chunk(0, 2), chunk(2, 3)])
        store.put_node_blocks({(0, 0): b"\x01" * 96, (1, 0): b"\x02" * 64})
        store.put_buckets([(10, 0), (11, 2)])
        store.put_other_ids([(X1, 1)])
        store.put_checkpoint(1, "checkpoint 1")
        store.put_checkpoint(5, "checkpoint 5")
        store.put_subject_keys([KEYS[1], KEYS[2]])
        store.put_hold(KEYS[1].ref, "sealed reason", "2024-01-01T00:00:00Z")
        store.put_blind([(0, 50, 0), (0, 50, 2), (0, 60, 1)])
        store.put_blind_pending([(3, b"pairs 3")])
        store.put_retired([RetiredRange(0, 1, 4, "purge")])


def dump(store: Store) -> dict[str, Any]:
    """Everything the store answers about the seeded rows and the rows :data:`WRITES` add."""
    kids = [k.kid for k in KEYS.values()]
    refs = [k.ref for k in KEYS.values()]
    return {
        "state": store.state(),
        "meta": {k: v for k, v in store.meta().items() if k != "schema"},
        "chunks": list(store.iter_all_chunks()),
        "chunks from 0": list(store.iter_chunks(0)),
        "entries": [store.entry_at(i) for i in range(-1, 8)],
        "nodes": {lv: list(store.iter_node_blocks(lv)) for lv in range(3)},
        "node extent": store.node_extent(),
        "buckets": list(store.iter_id_buckets()),
        "bucket lookup": store.chunk_starts_for_buckets([10, 11, 12]),
        "exact": sorted(store.iter_other_ids()),
        "exact lookup": store.find_other_ids([X1, X2]),
        "checkpoints": list(store.iter_checkpoints()),
        "keys by kid": store.subject_keys_by_kid(kids),
        "keys by ref": store.subject_keys_by_ref(refs),
        "holds": store.holds(open_only=False),
        "blind": {seg: store.blind_segment(seg) for seg in range(3)},
        "blind lookup": [store.blind_lookup(tok, [0, 1]) for tok in (50, 60, 70)],
        "pending": store.blind_pending(),
        "pending start": store.blind_pending_start(),
        "retired": store.retired(),
    }


def _put_state_expecting(store: Store) -> None:
    store.put_state(State(6, "checkpoint 6", 8), expect=BASE_STATE)


def _put_hold(store: Store) -> None:
    store.put_hold(KEYS[2].ref, "another", "2024-01-02T00:00:00Z")


WRITES: Final[dict[str, Callable[[Store], None]]] = {
    "put_chunks": lambda s: s.put_chunks([chunk(5, 1)]),
    "replace_chunk_data": lambda s: s.replace_chunk_data([(2, retired_framing(3))]),
    "put_node_blocks": lambda s: s.put_node_blocks({(0, 1): b"\x03" * 32, (1, 0): b"\x04" * 64}),
    "put_buckets": lambda s: s.put_buckets([(12, 5)]),
    "put_other_ids": lambda s: s.put_other_ids([(X2, 5)]),
    "put_state": lambda s: s.put_state(State(6, "checkpoint 6", 8)),
    "put_state expecting the head": _put_state_expecting,
    "put_checkpoint": lambda s: s.put_checkpoint(6, "checkpoint 6"),
    "set_meta": lambda s: s.set_meta({"note": "changed", "new": "1"}),
    "delete_meta": lambda s: s.delete_meta("note"),
    "put_subject_keys": lambda s: s.put_subject_keys([KEYS[3]]),
    "delete_subject_key": lambda s: s.delete_subject_key(KEYS[1].kid),
    "put_hold": _put_hold,
    "release_holds": lambda s: s.release_holds(KEYS[1].ref, "2024-01-03T00:00:00Z"),
    "put_blind": lambda s: s.put_blind([(1, 70, 4096), (0, 50, 4)]),
    "delete_blind": lambda s: s.delete_blind([(0, 50, 0)]),
    "delete_blind_range": lambda s: s.delete_blind_range(1, 3),
    "put_blind_pending": lambda s: s.put_blind_pending([(3, b"pairs 3 again"), (5, b"pairs 5")]),
    "delete_blind_pending": lambda s: s.delete_blind_pending([3]),
    "put_retired": lambda s: s.put_retired([RetiredRange(2, 4, 5, "archive")]),
    "delete_retired": lambda s: s.delete_retired(0, 1),
}


class AbandonedError(Exception):
    """Raised out of a block by a test, to see what the block leaves behind."""


def abandon_transaction(store: Store, body: Callable[[], object]) -> None:
    """Run ``body`` inside a transaction, then raise AbandonedError out of it."""
    with store.transaction():
        body()
        raise AbandonedError


def abandon_savepoint(store: Store, body: Callable[[], object]) -> None:
    """Run ``body`` inside a savepoint (of the current transaction), then raise
    AbandonedError out of it."""
    with store.savepoint():
        body()
        raise AbandonedError
