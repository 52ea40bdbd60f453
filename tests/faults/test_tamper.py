"""Tampering with a closed log's SQLite file directly: ``verify`` must name the kind and index.

A template log of a few thousand entries (single appends and batches, so many chunks, several
checkpoints in the history and several node blocks per level) is built once per module; each test
copies it, edits ``log.db`` with :mod:`sqlite3` the way an attacker with file access would, then
checks the :class:`TamperError` that verification raises.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import struct
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partialmethod
from pathlib import Path

import pytest

from sealtrail.core.checkpoint import Checkpoint
from sealtrail.core.errors import TamperError
from sealtrail.core.merkle.hashing import HASH_SIZE, leaf_hash
from sealtrail.core.note import Signer
from sealtrail.log import keys
from sealtrail.log import verify as verify_module
from sealtrail.log.auditlog import AuditLog
from sealtrail.log.headmemory import FILE, FORMAT
from sealtrail.log.tree import BLOCK, TreeEdge
from sealtrail.store.sqlite import SQLiteStore

FIXED = datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC)
LOG = "default"
ROUNDS = 30
SINGLES = 5
BATCH = 97


def clock() -> datetime:
    """The fixed clock every log in this module uses."""
    return FIXED


def event(n: int, tag: str = "orig") -> dict[str, object]:
    """A small valid event, distinct for each ``n``."""
    return {"actor": {"id": f"user-{n}"}, "action": "doc.read", "outcome": "success",
            "target": {"type": "doc", "id": f"{tag}-{n}"}}


@dataclass(frozen=True, slots=True)
class Template:
    """The pristine log: where it is and what it signed along the way."""

    data_dir: Path
    size: int
    notes: dict[int, str]  # every checkpoint note seen after a commit, by size
    history: tuple[int, ...]  # sizes kept in the checkpoints table


ORIGINAL_VERIFY = AuditLog.verify


@pytest.fixture(autouse=True, params=["one-pass", "parallel"])
def verify_mode(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every tampering is caught the same way by one pass and by worker processes.

    In parallel mode the log is cut into 256-leaf subtrees (bundles), verified by two spawned
    worker processes.
    """
    mode: str = request.param
    if mode == "parallel":
        monkeypatch.setattr(verify_module, "RANGE_LEVEL", 8)
        monkeypatch.setattr(verify_module, "PARALLEL_MIN", 0)
        monkeypatch.setattr(AuditLog, "verify", partialmethod(ORIGINAL_VERIFY, workers=2))
    return mode


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Template:
    """Build the pristine log once: 30 rounds of 5 single appends and one batch of 97."""
    data_dir = tmp_path_factory.mktemp("template")
    notes: dict[int, str] = {}
    n = 0
    with AuditLog.open(data_dir, LOG, clock=clock) as log:
        for _ in range(ROUNDS):
            for _ in range(SINGLES):
                log.append(event(n))
                n += 1
                notes[log.size] = log.checkpoint().note
            log.append_many([event(n + k) for k in range(BATCH)])
            n += BATCH
            notes[log.size] = log.checkpoint().note
        log.verify()
        size = log.size
        history = tuple(s for s, _ in log.store.iter_checkpoints())
    return Template(data_dir, size, notes, history)


@pytest.fixture
def copy(template: Template, tmp_path: Path) -> Path:
    """A private copy of the template data directory for one test to tamper with."""
    dst = tmp_path / "data"
    shutil.copytree(template.data_dir, dst)
    return dst


def db_path(data_dir: Path) -> Path:
    """The SQLite file of the test log."""
    return data_dir / LOG / "log.db"


@contextmanager
def edit(data_dir: Path) -> Iterator[sqlite3.Connection]:
    """A raw connection to the log file, committed on success (the attacker's tool)."""
    with closing(sqlite3.connect(db_path(data_dir))) as db, db:
        yield db


def verify_error(data_dir: Path, trusted: str | None = None) -> TamperError:
    """Open the log, verify, and return the TamperError it must raise."""
    with AuditLog.open(data_dir, LOG, create=False, clock=clock) as log, \
            pytest.raises(TamperError) as info:
        log.verify(trusted_checkpoint=trusted)
    err = info.value
    # Every error is informative: kind and index in the text, plus an explanation.
    text = str(err)
    assert text.startswith(f"{err.kind} at index {err.index}: ")
    assert len(text) > len(f"{err.kind} at index {err.index}: ") + 20
    return err


def chunks(db: sqlite3.Connection) -> list[tuple[int, int, bytes]]:
    """(start, count, data) of every chunk row, by start."""
    return [(int(s), int(c), bytes(d)) for s, c, d in
            db.execute("SELECT start, count, data FROM chunks ORDER BY start")]


def split(count: int, data: bytes) -> list[bytes]:
    """The leaves framed in one chunk's data."""
    lens = struct.unpack_from(f"<{count}I", data)
    out, pos = [], 4 * count
    for n in lens:
        out.append(data[pos:pos + n])
        pos += n
    return out


def frame(leaves: list[bytes]) -> bytes:
    """Chunk data for ``leaves``: uint32 lengths then the bytes."""
    return struct.pack(f"<{len(leaves)}I", *map(len, leaves)) + b"".join(leaves)


def batch_chunk(db: sqlite3.Connection, min_count: int = 10) -> tuple[int, int, bytes]:
    """A chunk in the middle of the log written by a batch (many entries)."""
    big = [c for c in chunks(db) if c[1] >= min_count]
    return big[len(big) // 2]


def single_chunks(db: sqlite3.Connection) -> list[tuple[int, int, bytes]]:
    """Chunks written by single appends."""
    return [c for c in chunks(db) if c[1] == 1]


def get_node(data_dir: Path, level: int, index: int) -> bytes | None:
    """The stored hash of node (level, index), if that complete node is stored."""
    block, off = index // BLOCK, (index % BLOCK) * HASH_SIZE
    with closing(SQLiteStore(db_path(data_dir))) as store:
        data = store.node_blocks([(level, block)]).get((level, block))
    if data is None or len(data) < off + HASH_SIZE:
        return None
    return data[off:off + HASH_SIZE]


def set_node(data_dir: Path, level: int, index: int, value: bytes) -> None:
    """Overwrite the stored hash of node (level, index) in its block."""
    block, off = index // BLOCK, (index % BLOCK) * HASH_SIZE
    with closing(SQLiteStore(db_path(data_dir))) as store, store.transaction():
        data = store.node_blocks([(level, block)])[(level, block)]
        assert len(data) >= off + HASH_SIZE
        store.put_node_blocks({(level, block): data[:off] + value + data[off + HASH_SIZE:]})


def flip(data: bytes, pos: int) -> bytes:
    """``data`` with one bit flipped at byte ``pos``."""
    return data[:pos] + bytes([data[pos] ^ 0x01]) + data[pos + 1:]


def rebuild_tree(data_dir: Path, k: int) -> bytes:
    """Replace every stored tree hash by the tree of the first ``k`` stored entries; its root.

    This is what an attacker who rewrites entries does to keep the tree consistent with them.
    """
    with edit(data_dir) as db:
        hashes = [bytes(leaf_hash(leaf)) for _, count, data in chunks(db)
                  for leaf in split(count, data)][:k]
        db.execute("DELETE FROM nodes")
    assert len(hashes) == k
    edge, blocks = TreeEdge(0, [], {}).append(hashes)
    with closing(SQLiteStore(db_path(data_dir))) as store, store.transaction():
        store.put_node_blocks(blocks)
    return edge.root()


def truncate(data_dir: Path, k: int, *, keep_history: bool) -> None:
    """Cut the log back to ``k`` entries cleanly and re-sign the head with the log's own key.

    Chunks, id index rows and tree nodes past ``k`` go; the state gets a fresh checkpoint for
    ``k``. With ``keep_history`` the checkpoint history rows past ``k`` are left behind.
    """
    with edit(data_dir) as db:
        assert db.execute("SELECT 1 FROM chunks WHERE start = ?", (k,)).fetchone()
        db.execute("DELETE FROM chunks WHERE start >= ?", (k,))
        db.execute("DELETE FROM id_buckets WHERE start >= ?", (k,))
        db.execute("DELETE FROM exact_ids WHERE idx >= ?", (k,))
        if not keep_history:
            db.execute("DELETE FROM checkpoints WHERE size > ?", (k,))
        (origin,) = db.execute("SELECT value FROM meta WHERE key = 'origin'").fetchone()
    root = rebuild_tree(data_dir, k)
    signer = keys.load_signer(data_dir / LOG)
    note = signer.sign(Checkpoint(str(origin), k, root).format())
    with edit(data_dir) as db:
        db.execute("UPDATE state SET size = ?, checkpoint = ?", (k, note))
    # Holding the key, the attacker also rewrites this machine's head memory (it is only as
    # strong as the key): what is left to catch them is a checkpoint kept elsewhere.
    (data_dir / LOG / FILE).write_text(json.dumps({"format": FORMAT, "origin": str(origin),
                                                   "note": note}))


def chunk_start_near(data_dir: Path, target: int) -> int:
    """The first chunk start at or after ``target``."""
    with edit(data_dir) as db:
        (start,) = db.execute("SELECT min(start) FROM chunks WHERE start >= ?",
                              (target,)).fetchone()
    return int(start)


# -- baseline ---------------------------------------------------------------------------------


def test_untouched_log_verifies(template: Template, copy: Path) -> None:
    """An untouched log verifies, covering every entry and every kept checkpoint."""
    with AuditLog.open(copy, LOG, create=False, clock=clock) as log:
        report = log.verify()
        assert report.size == template.size == ROUNDS * (SINGLES + BATCH)
        assert report.checkpoints == len(template.history) + 1
        assert report.root == log.checkpoint().checkpoint.root
        assert "OK" in report.summary()
        mid = max(s for s in template.notes if s < template.size // 2)
        assert log.verify(trusted_checkpoint=template.notes[mid]).trusted_size == mid
    # The template is what the tests claim: many chunks, a history, several blocks per level.
    with edit(copy) as db:
        assert len(chunks(db)) > 100
    with closing(SQLiteStore(db_path(copy))) as store:
        assert len(list(store.iter_node_blocks(0))) > 5
        assert len(list(store.iter_node_blocks(1))) > 2
    assert len(template.history) >= 3


# -- entries ----------------------------------------------------------------------------------


@pytest.mark.parametrize("where", ["single", "batch-first", "batch-middle", "batch-last"])
def test_byte_flip_in_one_leaf_is_changed_at_its_index(copy: Path, where: str) -> None:
    """Flipping one bit inside one entry's leaf is reported as changed at that exact index."""
    with edit(copy) as db:
        if where == "single":
            start, count, data = single_chunks(db)[40]
            k = 0
        else:
            start, count, data = batch_chunk(db)
            k = {"batch-first": 0, "batch-middle": count // 2, "batch-last": count - 1}[where]
        leaves = split(count, data)
        pos = 4 * count + sum(map(len, leaves[:k])) + len(leaves[k]) // 2
        db.execute("UPDATE chunks SET data = ? WHERE start = ?", (flip(data, pos), start))
    err = verify_error(copy)
    assert (err.kind, err.index) == ("changed", start + k)
    assert "committed leaf hash" in str(err)


def test_broken_framing_is_changed_at_the_chunk(copy: Path) -> None:
    """Editing a length prefix so the framing no longer adds up is changed at the chunk start."""
    with edit(copy) as db:
        start, _, data = batch_chunk(db)
        db.execute("UPDATE chunks SET data = ? WHERE start = ?", (flip(data, 4), start))
    err = verify_error(copy)
    assert (err.kind, err.index) == ("changed", start)
    assert "framing" in str(err)


@pytest.mark.parametrize("which", ["first", "middle", "batch"])
def test_deleted_chunk_row_is_missing(copy: Path, which: str) -> None:
    """Deleting one chunk row is reported as missing at the first entry it held."""
    with edit(copy) as db:
        rows = chunks(db)
        start = {"first": 0, "middle": single_chunks(db)[60][0],
                 "batch": batch_chunk(db)[0]}[which]
        end = start + next(c for s, c, _ in rows if s == start)
        db.execute("DELETE FROM chunks WHERE start = ?", (start,))
    err = verify_error(copy)
    assert (err.kind, err.index) == ("missing", start)
    assert f"{start}..{end - 1}" in str(err)


def test_swapped_chunk_rows_are_reordered(copy: Path) -> None:
    """Swapping the data of two single-entry chunk rows is reordered at the earlier index."""
    with edit(copy) as db:
        singles = single_chunks(db)
        (a, _, da), (b, _, db_) = singles[20], singles[90]
        db.execute("UPDATE chunks SET data = ? WHERE start = ?", (db_, a))
        db.execute("UPDATE chunks SET data = ? WHERE start = ?", (da, b))
    err = verify_error(copy)
    assert (err.kind, err.index) == ("reordered", a)
    assert f"committed at index {b}" in str(err)


def test_swapped_batch_rows_break_framing(copy: Path) -> None:
    """Swapping the data of two chunk rows of different counts is changed at the earlier one."""
    with edit(copy) as db:
        (a, _, da) = batch_chunk(db)
        (b, _, db_) = single_chunks(db)[-1]
        assert a < b
        db.execute("UPDATE chunks SET data = ? WHERE start = ?", (db_, a))
        db.execute("UPDATE chunks SET data = ? WHERE start = ?", (da, b))
    err = verify_error(copy)
    assert (err.kind, err.index) == ("changed", a)


def test_swapped_entries_inside_a_chunk_are_reordered(copy: Path) -> None:
    """Swapping two entries inside one chunk, framing kept, is reordered at the first of them."""
    with edit(copy) as db:
        start, count, data = batch_chunk(db)
        leaves = split(count, data)
        i, j = 3, count - 5
        leaves[i], leaves[j] = leaves[j], leaves[i]
        db.execute("UPDATE chunks SET data = ? WHERE start = ?", (frame(leaves), start))
    err = verify_error(copy)
    assert (err.kind, err.index) == ("reordered", start + i)
    assert f"committed at index {start + j}" in str(err)


def test_inserted_row_past_the_size_is_extra(template: Template, copy: Path) -> None:
    """A chunk row added after the last entry is extra at the log size."""
    with edit(copy) as db:
        leaf = chunks(db)[-1][2]
        db.execute("INSERT INTO chunks VALUES (?, 1, ?, ?, ?)",
                   (template.size, template.size + 1, os.urandom(16), leaf))
    err = verify_error(copy)
    assert (err.kind, err.index) == ("extra", template.size)


def test_inserted_overlapping_row_is_extra(copy: Path) -> None:
    """A chunk row inserted inside another chunk's range is extra at its start."""
    with edit(copy) as db:
        start, count, data = batch_chunk(db)
        one = frame(split(count, data)[:1])
        db.execute("INSERT INTO chunks VALUES (?, 1, ?, ?, ?)",
                   (start + 7, start + count, os.urandom(16), one))
    err = verify_error(copy)
    assert (err.kind, err.index) == ("extra", start + 7)
    assert "overlap" in str(err)


def test_inserted_entry_shifting_the_rest_is_caught(copy: Path) -> None:
    """An entry spliced into a chunk (pushing its last entry out) is caught at the splice."""
    with edit(copy) as db:
        start, count, data = batch_chunk(db)
        leaves = split(count, data)
        forged = leaves[10].replace(b"user-", b"user-x")
        db.execute("UPDATE chunks SET data = ? WHERE start = ?",
                   (frame([*leaves[:10], forged, *leaves[10:-1]]), start))
    err = verify_error(copy)
    assert (err.kind, err.index) == ("changed", start + 10)


# -- truncation and forks ---------------------------------------------------------------------


def test_deleted_tail_rows_are_missing(template: Template, copy: Path) -> None:
    """Deleting the last chunk rows while the state keeps its size is missing at the cut."""
    cut = chunk_start_near(copy, template.size - 150)
    with edit(copy) as db:
        db.execute("DELETE FROM chunks WHERE start >= ?", (cut,))
    err = verify_error(copy)
    assert (err.kind, err.index) == ("missing", cut)
    assert f"{cut}..{template.size - 1}" in str(err)


def test_truncation_resigned_is_caught_by_a_kept_checkpoint(template: Template,
                                                            copy: Path) -> None:
    """A clean truncation re-signed with the log's key is truncated against a kept checkpoint."""
    kept = template.notes[template.size]
    cut = chunk_start_near(copy, template.size - 700)
    truncate(copy, cut, keep_history=False)
    with AuditLog.open(copy, LOG, create=False, clock=clock) as log:
        assert log.verify().size == cut  # self-consistent: only a kept checkpoint can tell
    err = verify_error(copy, trusted=kept)
    assert (err.kind, err.index) == ("truncated", cut)
    assert str(template.size) in str(err)


def test_truncation_resigned_is_caught_by_the_history(template: Template, copy: Path) -> None:
    """A re-signed truncation that leaves later history rows is truncated without a kept note."""
    last_anchor = max(template.history)
    cut = chunk_start_near(copy, last_anchor - 300)
    truncate(copy, cut, keep_history=True)
    err = verify_error(copy)
    assert (err.kind, err.index) == ("truncated", cut)
    assert f"checkpoint for {last_anchor}" in str(err)


@pytest.mark.parametrize("back", [50, 900])
def test_fork_regrown_past_a_kept_checkpoint_is_forked(template: Template, copy: Path,
                                                       back: int) -> None:
    """Truncating, re-signing and re-growing past a kept checkpoint is forked against it."""
    m = max(s for s in template.notes if s <= template.size - 400)
    kept = template.notes[m]
    cut = chunk_start_near(copy, m - back)
    truncate(copy, cut, keep_history=False)
    with AuditLog.open(copy, LOG, create=False, clock=clock) as log:
        n = 0
        while log.size <= template.size:
            log.append_many([event(n + k, tag="fork") for k in range(40)])
            log.append(event(n + 40, tag="fork"))
            n += 41
        assert log.verify().size > m  # the fork is self-consistent
    err = verify_error(copy, trusted=kept)
    assert err.kind == "forked"
    assert err.index <= cut  # the reported range starts at or before the rewrite
    assert f"below index {m}" in str(err)


# -- tree hashes ------------------------------------------------------------------------------


def test_flipped_level0_hash_is_caught_at_its_index(copy: Path) -> None:
    """Flipping a stored leaf hash is reported (changed or tree) at that exact index."""
    index = 1000
    node = get_node(copy, 0, index)
    assert node is not None
    set_node(copy, 0, index, flip(node, 5))
    err = verify_error(copy)
    assert err.kind in {"changed", "tree"}
    assert err.index == index


@pytest.mark.parametrize(("level", "node_index"), [(3, 200), (1, 700), (8, 5)])
def test_flipped_inner_hash_is_tree(copy: Path, level: int, node_index: int) -> None:
    """Flipping a stored inner node hash is tree at the first leaf under that node."""
    node = get_node(copy, level, node_index)
    assert node is not None
    set_node(copy, level, node_index, flip(node, 0))
    err = verify_error(copy)
    assert (err.kind, err.index) == ("tree", node_index << level)
    assert f"({level}, {node_index})" in str(err)


def test_tree_hash_past_the_size_is_extra(template: Template, copy: Path) -> None:
    """A tree hash appended to the last level-0 block, past the log size, is extra at the size."""
    block = template.size // BLOCK
    with closing(SQLiteStore(db_path(copy))) as store, store.transaction():
        data = store.node_blocks([(0, block)])[(0, block)]
        store.put_node_blocks({(0, block): data + os.urandom(HASH_SIZE)})
    err = verify_error(copy)
    assert (err.kind, err.index) == ("extra", template.size)


def test_tree_block_past_the_size_is_extra(template: Template, copy: Path) -> None:
    """A whole tree block stored after the last one (a truncation's leftover) is extra."""
    block = template.size // BLOCK + 1
    with closing(SQLiteStore(db_path(copy))) as store, store.transaction():
        store.put_node_blocks({(0, block): os.urandom(BLOCK * HASH_SIZE)})
    err = verify_error(copy)
    assert (err.kind, err.index) == ("extra", template.size)


def test_leaf_and_all_its_tree_hashes_rewritten_is_caught_by_the_root(
        template: Template, copy: Path) -> None:
    """Rewriting a leaf and every tree hash consistently is changed, via the signed root."""
    index = 1500
    with edit(copy) as db:
        start, count, data = next(c for c in chunks(db) if c[0] <= index < c[0] + c[1])
        leaves = split(count, data)
        k = index - start
        leaves[k] = leaves[k].replace(b"doc.read", b"doc.wipe")
        db.execute("UPDATE chunks SET data = ? WHERE start = ?", (frame(leaves), start))
    old_leaf_hash = get_node(copy, 0, index)
    rebuild_tree(copy, template.size)
    assert get_node(copy, 0, index) not in {None, old_leaf_hash}
    err = verify_error(copy)
    assert err.kind == "changed"
    following = min(s for s in (*template.history, template.size) if s > index)
    preceding = max(s for s in template.history if s <= index)
    assert err.index == preceding  # the start of the range [preceding, following)
    assert f"[{preceding}, {following})" in str(err)


# -- checkpoints ------------------------------------------------------------------------------


def test_edited_history_checkpoint_text_is_checkpoint(template: Template, copy: Path) -> None:
    """Editing the text of a kept checkpoint breaks its signature: checkpoint at its size."""
    size = sorted(template.history)[-2]
    with edit(copy) as db:
        (note,) = db.execute("SELECT note FROM checkpoints WHERE size = ?", (size,)).fetchone()
        lines = str(note).split("\n")
        lines[2] = lines[2][:-5] + ("A" if lines[2][-5] != "A" else "B") + lines[2][-4:]
        db.execute("UPDATE checkpoints SET note = ? WHERE size = ?", ("\n".join(lines), size))
    err = verify_error(copy)
    assert (err.kind, err.index) == ("checkpoint", size)
    assert f"checkpoint for size {size} is bad" in str(err)


def test_history_checkpoint_filed_under_another_size_is_checkpoint(template: Template,
                                                                   copy: Path) -> None:
    """A valid checkpoint moved to another history row is checkpoint at that row's size."""
    a, b = sorted(template.history)[-2:]
    with edit(copy) as db:
        (note,) = db.execute("SELECT note FROM checkpoints WHERE size = ?", (a,)).fetchone()
        db.execute("UPDATE checkpoints SET note = ? WHERE size = ?", (note, b))
    err = verify_error(copy)
    assert (err.kind, err.index) == ("checkpoint", b)


def test_head_checkpoint_signed_by_another_key_is_checkpoint(template: Template,
                                                             copy: Path) -> None:
    """Replacing the state checkpoint by one signed with another key is checkpoint."""
    with AuditLog.open(copy, LOG, create=False, clock=clock) as log:
        body = log.checkpoint().checkpoint
        origin = log.origin
    impostor = Signer.from_seed(origin, os.urandom(32))
    with edit(copy) as db:
        db.execute("UPDATE state SET checkpoint = ?", (impostor.sign(body.format()),))
    err = verify_error(copy)
    assert (err.kind, err.index) == ("checkpoint", template.size)


def test_removed_head_checkpoint_is_checkpoint(template: Template, copy: Path) -> None:
    """A state row without a checkpoint is checkpoint at the size."""
    with edit(copy) as db:
        db.execute("UPDATE state SET checkpoint = NULL")
    err = verify_error(copy)
    assert (err.kind, err.index) == ("checkpoint", template.size)
