"""A sealed log made through the public API, and the tools of an attacker who holds the host.

:func:`build` seals a log across several short epochs on a clock the test moves. The attacker's
tools edit ``log.db`` with :mod:`sqlite3` and re-sign with the log's own (stolen) signing key,
as someone with root on the host would: rewrite an entry's bytes, rebuild the whole tree over
the entries as they now are, re-sign the head and every kept checkpoint at their new roots, and
rewrite the head memory beside the log. The roots come from the dumb reference tree
(tests/reference_tree.py); the node blocks are written with the engine's own tree code, as an
attacker would reuse it.
"""

from __future__ import annotations

import base64
import json
import sqlite3
import struct
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from sealtrail import AuditLog
from sealtrail.core import seal as core
from sealtrail.core.checkpoint import Checkpoint
from sealtrail.core.seal import SealKey
from sealtrail.log import keys
from sealtrail.log.changes import SetSettings
from sealtrail.log.headmemory import FILE, FORMAT
from sealtrail.log.sealing import init_sealing, run_round
from sealtrail.log.tree import TreeEdge
from sealtrail.store.sqlite import SQLiteStore
from tests.compliance.conftest import Clock
from tests.conftest import TEST_PASSPHRASE
from tests.reference_tree import ReferenceTree

LOG = "default"
EPOCH_S = 60
EPOCHS = 64


def event(n: int, tag: str = "orig") -> dict[str, Any]:
    """A small valid event, distinct for each ``n`` (its target id ``orig-<n>``)."""
    return {"actor": {"id": f"user-{n}"}, "action": "doc.read", "outcome": "success",
            "target": {"type": "doc", "id": f"{tag}-{n:04d}"}}


@dataclass(frozen=True, slots=True)
class Sealed:
    """A sealed log: where, its seal key, and the index of each event by its number."""

    data_dir: Path
    key: SealKey
    where: dict[int, int]   # event number -> index
    seal_at: dict[int, int]  # epoch -> index of its final seal's entry


def open_log(data_dir: Path, clock: Clock, *, encryption: bool = False) -> AuditLog:
    """The log, opened as its host opens it."""
    return AuditLog.open(data_dir, LOG, clock=clock, encryption=encryption,
                         passphrase=TEST_PASSPHRASE if encryption else None)


def build(data_dir: Path, clock: Clock, *, rounds: int = 6, per: int = 8,
          encryption: bool = False, down: frozenset[int] = frozenset()) -> Sealed:
    """Five events, ``seal init``, then ``rounds`` epochs of ``per`` events each, each closed
    by a round (its final seal recorded, the key evolved); epochs in ``down`` pass with the
    host down (no round: evolved over at the next). Ends with three unsealed events."""
    where: dict[int, int] = {}
    seal_at: dict[int, int] = {}
    n = 0
    with open_log(data_dir, clock, encryption=encryption) as log:
        for r in log.append_many([event(k) for k in range(5)]):
            where[n] = r.index
            n += 1
        key = init_sealing(log, now=clock.now, seconds=EPOCH_S, epochs=EPOCHS)
        epoch = 0
        while epoch < rounds:
            if epoch in down:
                clock.now += timedelta(seconds=EPOCH_S)
                epoch += 1
                continue
            for _ in range(per):
                where[n] = log.append(event(n)).index
                n += 1
            clock.now += timedelta(seconds=EPOCH_S)
            out = run_round(log, clock.now)
            seal_at[out["round"]["from_epoch"]] = out["round"]["recorded_index"]
            epoch += 1
        for r in log.append_many([event(n + k) for k in range(3)]):
            where[n] = r.index
            n += 1
    return Sealed(data_dir, key, where, seal_at)


# -- the attacker's tools ---------------------------------------------------------------------


def db_path(data_dir: Path) -> Path:
    """The log's SQLite file."""
    return data_dir / LOG / "log.db"


@contextmanager
def edit(data_dir: Path) -> Iterator[sqlite3.Connection]:
    """A raw connection to the log file, committed on success."""
    with closing(sqlite3.connect(db_path(data_dir))) as db, db:
        yield db


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


def leaves(data_dir: Path) -> list[bytes]:
    """Every stored leaf, in index order."""
    with edit(data_dir) as db:
        rows = db.execute("SELECT count, data FROM chunks ORDER BY start").fetchall()
    return [leaf for count, data in rows for leaf in split(int(count), bytes(data))]


def rewrite_leaf(data_dir: Path, index: int, old: bytes, new: bytes) -> None:
    """Replace ``old`` by ``new`` inside the leaf at ``index`` (the entry is rewritten)."""
    with edit(data_dir) as db:
        start, count, data = db.execute(
            "SELECT start, count, data FROM chunks WHERE start <= ? ORDER BY start DESC "
            "LIMIT 1", (index,)).fetchone()
        got = split(int(count), bytes(data))
        k = index - int(start)
        assert old in got[k], (old, got[k])
        got[k] = got[k].replace(old, new)
        db.execute("UPDATE chunks SET data = ? WHERE start = ?", (frame(got), start))


def rebuild_and_resign(data_dir: Path) -> str:
    """Rebuild every tree hash over the entries as stored now, re-sign the head and every kept
    checkpoint with the log's stolen signing key, and rewrite the head memory beside the log;
    the new head note."""
    all_leaves = leaves(data_dir)
    ref = ReferenceTree(all_leaves)
    edge, blocks = TreeEdge(0, [], {}).append([ref.mth(i, i + 1) for i in range(len(ref))])
    assert edge.root() == ref.root(len(ref))
    signer = keys.load_signer(data_dir / LOG)
    with edit(data_dir) as db:
        (origin,) = db.execute("SELECT value FROM meta WHERE key = 'origin'").fetchone()
        db.execute("DELETE FROM nodes")
        sizes = [int(s) for (s,) in db.execute("SELECT size FROM checkpoints")]
        for size in sizes:
            note = signer.sign(Checkpoint(str(origin), size, ref.root(size)).format())
            db.execute("UPDATE checkpoints SET note = ? WHERE size = ?", (note, size))
        head = signer.sign(Checkpoint(str(origin), len(ref), ref.root(len(ref))).format())
        db.execute("UPDATE state SET size = ?, checkpoint = ?", (len(ref), head))
    with closing(SQLiteStore(db_path(data_dir))) as store, store.transaction():
        store.put_node_blocks(blocks)
    (data_dir / LOG / FILE).write_text(json.dumps({"format": FORMAT, "origin": str(origin),
                                                   "note": head}))
    return head


def chain(log: AuditLog) -> dict[int, tuple[core.Seal, bytes]]:
    """Every recorded seal made whole over the tree as it is now, by the index of its entry,
    with its link (what the attacker computes to continue the chain)."""
    out: dict[int, tuple[core.Seal, bytes]] = {}
    link = core.NO_LINK
    for index in range(log.size):
        ev = log.entry(index).event()
        if ev.get("action") != "sealtrail.seal":
            continue
        rec = core.Recorded.parse(ev["target"]["id"])
        seal = rec.seal(log.root_at(rec.size), link)
        link = core.link(log.origin, seal)
        out[index] = (seal, link)
    return out


def forge_seal(data_dir: Path, clock: Clock) -> int:
    """The attacker's own seal with the stolen seed (today's epoch), over the log as it is now,
    chained to the last recorded seal as it reads now, recorded as the engine records one
    (the engine itself refuses to continue from a last seal the tree contradicts). Its index."""
    state = json.loads((data_dir / LOG / "seal.key").read_text())
    seed = base64.b64decode(state["seed"])
    with open_log(data_dir, clock) as log:
        links = chain(log)
        prev = links[max(links)][1]
        cp = log.checkpoint().checkpoint
        seal = core.make_seal(seed, log.origin, int(state["epoch"]), size=cp.size,
                              root=cp.root, prev=prev)
        text = seal.recorded().format()
        receipt = log.commit_change(
            {"actor": {"id": "sealtrail", "type": "service"}, "action": "sealtrail.seal",
             "outcome": "success", "category": "system",
             "target": {"type": "seal", "id": text}},
            SetSettings({"seal_last": text, "seal_last_prev": base64.b64encode(prev).decode()},
                        index_key="seal_last_at"))
    return receipt.index


def seal_target(data_dir: Path, index: int) -> str:
    """The ``target.id`` of the seal entry at ``index``."""
    doc = json.loads(leaves(data_dir)[index])
    assert doc["action"] == "sealtrail.seal"
    return str(doc["target"]["id"])
