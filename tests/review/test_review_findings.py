"""Review findings, kept as regression tests: each once demonstrated a problem, now fixed.

The attacker in these tests can write ``log.db`` but does not hold the signing key. Their tool
is the store itself (or raw SQL), exactly what anyone with file access has.
"""

from __future__ import annotations

import sqlite3
import struct
import threading
import uuid
from collections.abc import Generator, Iterable
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path

import msgspec
import pytest

from sealtrail.core import canonical
from sealtrail.core.errors import SealtrailError, TamperError, ValidationError
from sealtrail.core.event import validate_event
from sealtrail.core.merkle.hashing import leaf_hash
from sealtrail.core.timefmt import format_time
from sealtrail.core.uuid7 import uuid7_texts
from sealtrail.log.auditlog import AuditLog
from sealtrail.log.tree import BLOCK, TreeEdge
from sealtrail.store.protocol import Chunk, State
from sealtrail.store.sqlite import SQLiteStore

FIXED = datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC)
LOG = "default"


def clock() -> datetime:
    """The fixed clock of every log here."""
    return FIXED


def event(n: int) -> dict[str, object]:
    """A small valid event."""
    return {"actor": {"id": f"user-{n}"}, "action": "doc.read", "outcome": "success",
            "target": {"type": "doc", "id": f"doc-{n}"}}


def forged_leaf(ident: str, tag: str) -> bytes:
    """Leaf bytes of an event the log never received, encoded exactly as the log would."""
    ev = validate_event({"id": ident, "actor": {"id": "mallory"}, "action": "money.transfer",
                         "outcome": "success", "metadata": {"forged": tag}})
    stamp = format_time(FIXED)
    return canonical.encode_leaf(msgspec.structs.replace(ev, time=stamp, received_at=stamp))


def frame(leaves: list[bytes]) -> bytes:
    """Chunk data: uint32 lengths, then the leaves."""
    return struct.pack(f"<{len(leaves)}I", *map(len, leaves)) + b"".join(leaves)


def db_path(data: Path) -> Path:
    """The log's SQLite file."""
    return data / LOG / "log.db"


def make_log(data: Path, singles: int) -> list[str]:
    """A log of ``singles`` single appends; every head note seen, by size (index = size)."""
    notes: list[str] = []
    with AuditLog.open(data, LOG, clock=clock) as log:
        notes.append(log.checkpoint().note)
        for n in range(singles):
            log.append(event(n))
            notes.append(log.checkpoint().note)
        log.verify()
    return notes


def all_leaves(store: SQLiteStore) -> list[bytes]:
    """Every stored leaf, in order."""
    out: list[bytes] = []
    for chunk in store.iter_chunks(0, None):
        lens = struct.unpack_from(f"<{chunk.count}I", chunk.data)
        pos = 4 * chunk.count
        for n in lens:
            out.append(chunk.data[pos:pos + n])
            pos += n
    return out


def append_forged_entry(data: Path) -> bytes:
    """Attacker: add one forged entry after the head, with a consistent tree; keep the old note.

    Only ``state.size`` moves; the head checkpoint still signs the old size. Returns the leaf.
    """
    leaf = forged_leaf(str(uuid.uuid4()), "inserted")
    with closing(SQLiteStore(db_path(data))) as store:
        state = store.state()
        edge = TreeEdge.load(store, state.size)
        _, blocks = edge.append([leaf_hash(leaf)])
        with store.transaction():
            store.put_chunks([Chunk(state.size, 1, state.size + 1,
                                    uuid.uuid4().bytes, frame([leaf]))])
            store.put_node_blocks(blocks)
            store.put_state(State(state.size + 1, state.checkpoint, state.id_hwm))
    return leaf


# -- F1: the log signs whatever tree it finds on disk -----------------------------------------


@pytest.mark.parametrize("process", ["fresh_open", "running_log"])
def test_entry_forged_into_the_db_is_not_signed_by_the_next_append(tmp_path: Path,
                                                                   process: str) -> None:
    """A keyless attacker who appends an entry to log.db must not get it signed by the log.

    ``TreeEdge.load`` (on open) and ``_catch_up`` (in a running log) adopt ``state.size`` and the
    stored right edge without checking them against the signed head, so the next legitimate
    append signs the forged entry. The result even extends a checkpoint the verifier kept.
    """
    data = tmp_path / "data"
    notes = make_log(data, 3)
    trusted = notes[3]
    try:
        if process == "running_log":
            with AuditLog.open(data, LOG, clock=clock, create=False) as log:
                forged = append_forged_entry(data)
                log.append(event(100))
                log.verify(trusted_checkpoint=trusted)
        else:
            forged = append_forged_entry(data)
            with AuditLog.open(data, LOG, clock=clock, create=False) as log:
                log.append(event(100))
                log.verify(trusted_checkpoint=trusted)
    except SealtrailError:
        return  # the log refused to extend an unsigned state, or verify caught it: fixed
    with AuditLog.open(data, LOG, clock=clock, create=False) as log:
        stored = [e.leaf for e in log.entries(3, 4)]
        size = log.size
    assert stored == [forged]
    pytest.fail(f"the forged entry at index 3 is now covered by a valid signed checkpoint "
                f"(size {size}) that extends the trusted checkpoint at size 3")


def test_entry_rewritten_in_the_db_is_not_laundered_by_the_next_append(tmp_path: Path) -> None:
    """Rewriting an entry (and its tree hashes) behind the log's back must stay detectable.

    Before the next append, verify catches it (the head no longer matches). After one
    legitimate append the log has re-signed a root over the rewritten entry, and only the
    history anchors (size 0, the first commit, each 1024) are left to catch it.
    """
    data = tmp_path / "data"
    make_log(data, 6)
    with closing(SQLiteStore(db_path(data))) as store:
        leaves = all_leaves(store)
    leaves[4] = forged_leaf(str(uuid.uuid4()), "rewritten")
    with closing(sqlite3.connect(db_path(data))) as db, db:
        db.execute("UPDATE chunks SET data = ? WHERE start = 4", (frame([leaves[4]]),))
        db.execute("DELETE FROM nodes")
    _, blocks = TreeEdge(0, [], {}).append([leaf_hash(x) for x in leaves])
    with closing(SQLiteStore(db_path(data))) as store, store.transaction():
        store.put_node_blocks(blocks)
    with AuditLog.open(data, LOG, clock=clock, create=False) as log:
        with pytest.raises(TamperError):
            log.verify()  # caught now ...
        try:
            log.append(event(100))
        except SealtrailError:
            return  # the log refused to sign over a tree its head does not commit to: fixed
        log.verify()  # ... and not any more: the rewrite is signed
    pytest.fail("entry 4 was rewritten, and the next append signed the rewritten tree")


# -- F2: rows verify never reads --------------------------------------------------------------


def test_chunk_row_with_a_negative_start_is_caught(tmp_path: Path) -> None:
    """A row at a negative start is flagged by verify and never shown as an entry.

    (Found in review: verify used to start reading at index 0 while newest-first reads returned
    every row, so such a row showed as a second entry 0 and verify passed.)
    """
    data = tmp_path / "data"
    make_log(data, 3)
    leaf = forged_leaf(str(uuid.uuid4()), "negative")
    with closing(SQLiteStore(db_path(data))) as store, store.transaction():
        store.put_chunks([Chunk(-1, 2, 3, uuid.uuid4().bytes * 2, frame([leaf, leaf]))])
    with AuditLog.open(data, LOG, clock=clock, create=False) as log:
        shown = [(e.index, e.leaf) for e in log.entries_reversed()]
        assert (0, leaf) not in shown  # newest-first reads (`sealtrail query`) skip the row
        with pytest.raises(TamperError):
            log.verify()


@pytest.mark.parametrize(("level", "block"), [(0, 2), (4, 0), (20, 0)])
def test_node_block_far_past_the_size_is_extra(tmp_path: Path, level: int, block: int) -> None:
    """Step 5 ('no stored tree data past the size') looks only at the edge block and the next.

    For size 5 it checks blocks (L, 0) and (L, 1) of levels 0..3; a block two past the edge,
    or at a level above ``size.bit_length()``, is never looked at.
    """
    data = tmp_path / "data"
    make_log(data, 5)
    with closing(SQLiteStore(db_path(data))) as store, store.transaction():
        store.put_node_blocks({(level, block): bytes(32 * BLOCK)})
    with AuditLog.open(data, LOG, clock=clock, create=False) as log, \
            pytest.raises(TamperError):
        log.verify()


def test_retry_after_id_column_edit_is_not_stored_twice(tmp_path: Path) -> None:
    """The ``ids`` column drives exactly-once, but verify never checks it against the leaves.

    After an edit of one id in ``chunks.ids``, verify still passes, and a retry of that event
    (a UUIDv7 at or below the floor, so it is looked up in the store) is stored a second time.
    """
    data = tmp_path / "data"
    ((ident, raw),) = uuid7_texts(1_700_000_000_000, bytes(range(10)))
    first = {**event(7), "id": ident}
    with AuditLog.open(data, LOG, clock=clock) as log:
        log.append(event(0))
        original = log.append(first)
        log.append(event(1))
    with closing(sqlite3.connect(db_path(data))) as db, db:
        row = db.execute("SELECT ids FROM chunks WHERE start = ?", (original.index,)).fetchone()
        assert bytes(row[0]) == raw
        db.execute("UPDATE chunks SET ids = ? WHERE start = ?",
                   (uuid.uuid4().bytes, original.index))
    with AuditLog.open(data, LOG, clock=clock, create=False) as log:
        verified = True
        try:
            log.verify()
        except TamperError:
            verified = False
        again = log.append(first)
        assert not verified or again.duplicate, (
            f"verify passed, and the retry of {ident} was stored again at index {again.index} "
            f"(first at {original.index})")


# -- F3: proofs served that disagree with the checkpoint they carry ---------------------------


def test_inclusion_proof_root_matches_the_checkpoint_it_carries(tmp_path: Path) -> None:
    """``prove_inclusion`` takes the root from stored nodes and the note from the state row.

    When a stored node is edited the proof still verifies (``InclusionProof.verify`` checks the
    path against the proof's own ``root_hash``), while the note it carries signs another root.
    The engine should refuse (it can compare the two at no cost).
    """
    data = tmp_path / "data"
    make_log(data, 5)
    with closing(SQLiteStore(db_path(data))) as store, store.transaction():
        blk = store.node_blocks([(2, 0)])[(2, 0)]
        store.put_node_blocks({(2, 0): bytes(32) + blk[32:]})
    with AuditLog.open(data, LOG, clock=clock, create=False) as log:
        cp = log.checkpoint().checkpoint
        try:
            proof = log.prove_inclusion(4)
        except SealtrailError:
            return
        proof.verify()  # passes: self-consistent
        assert proof.root_hash == cp.root, "served proof's root differs from its checkpoint"


# -- F4: a suspended reader blocks every writer -----------------------------------------------


def test_a_paused_entries_iterator_does_not_block_appends(tmp_path: Path) -> None:
    """``iter_chunks`` holds the store's RLock across ``yield``.

    A consumer that pauses mid-iteration (a slow HTTP client streaming an export) blocks every
    append from another thread until the iterator is exhausted or garbage collected.
    """
    data = tmp_path / "data"
    make_log(data, 3)
    with AuditLog.open(data, LOG, clock=clock, create=False) as log:
        it = log.entries(0)
        assert isinstance(it, Generator)
        next(it)
        done = threading.Event()

        def writer() -> None:
            log.append(event(50))
            done.set()

        t = threading.Thread(target=writer, daemon=True)
        t.start()
        finished = done.wait(timeout=3.0)
        it.close()  # release the lock so the writer (and the test) can finish
        t.join(timeout=10.0)
        assert finished, "append blocked while another thread held a paused entries() iterator"


# -- F5: one far-future UUIDv7 turns off the in-memory dedup fast path for good -----------------


def test_a_far_future_client_id_does_not_disable_the_fast_path(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A UUIDv7 id dated far ahead of the log's clock is refused, so it cannot raise the floor.

    (Found in review: one id dated in the year 10889 set the floor of every later
    ``RecentIds``, so after a restart every client-supplied UUIDv7 cost a store lookup.)
    """
    data = tmp_path / "data"
    ((future, _),) = uuid7_texts((1 << 48) - 1, bytes(10))
    with AuditLog.open(data, LOG, clock=clock) as log:
        log.append(event(1))
        with pytest.raises(ValidationError) as info:
            log.append({**event(0), "id": future})
        assert info.value.field == "events[0].id"
        assert log.size == 1
    now_ms = int(FIXED.timestamp() * 1000)
    fresh = uuid7_texts(now_ms + 1, bytes(range(200)))
    with AuditLog.open(data, LOG, clock=clock, create=False) as log:
        lookups: list[int] = []
        real = log.store.chunk_starts_for_buckets

        def spy(buckets: Iterable[int]) -> list[int]:
            lookups.append(1)
            return real(buckets)

        monkeypatch.setattr(log.store, "chunk_starts_for_buckets", spy)
        for k, (text, _) in enumerate(fresh):
            log.append({**event(k), "id": text})
    assert not lookups, f"{len(lookups)} of {len(fresh)} fresh ids were looked up in the store"
