"""Template logs in PostgreSQL for the tamper suite, and the attacker's psycopg tools.

The PostgreSQL counterpart of ``tests/faults/tables.py``: a log opened with
``store=<URL>`` keeps its tables in the schema ``sealtrail_default`` of that database (the
signing key, verifier key and head memory stay in ``data_dir/default/``). The attacker here
has the database (a psql or psycopg session with write access) but neither the signing key
nor the KEK.

Two templates, each built once per test module through the public API into a database of
its own, then cloned for every test with ``CREATE DATABASE ... TEMPLATE`` (a few tens of
milliseconds) beside a copy of the data directory:

- :func:`build_rounds`: ``test_tamper.py``'s log: rounds of single appends and a batch, so
  many chunks of one entry and of many, several kept checkpoints and node blocks per level;
- :func:`build_rich`: ``tables.py``'s realistic encrypted log (UUIDv7 and UUIDv4 ids,
  subjects, a retention purge, holds, an erasure, a key rotation), plus what an attacker
  could have copied along the way: every signed head, the ``state``/``checkpoints``/``meta``
  rows at a size past the last kept checkpoint, the erased subject's key row and the
  ``keyring`` row before the rotation.

:func:`build_rich` cannot be ``tables.build`` with a store passed in: that builder reads the
erased subject's key row from ``log.db`` with :mod:`sqlite3`.
"""

from __future__ import annotations

import json
import secrets
import shutil
import struct
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql
from tests.compliance.conftest import T0, Clock
from tests.conftest import TEST_PASSPHRASE
from tests.faults.tables import (
    ERASED,
    HELD,
    LOG,
    OPS,
    POLICY,
    RELEASED,
    Template,
    pack_pairs,
    pairs,
)
from tests.faults.tables import _event as rich_event
from tests.pgdb import ADMIN_URL, unavailable, url_of

from sealtrail import AuditLog
from sealtrail.core.checkpoint import Checkpoint
from sealtrail.core.merkle.hashing import HASH_SIZE, leaf_hash
from sealtrail.log import keys
from sealtrail.log.datadir import log_schema
from sealtrail.log.headmemory import FILE, FORMAT
from sealtrail.log.retention import apply_purge, set_policy
from sealtrail.log.tree import BLOCK, TreeEdge

SCHEMA = log_schema(LOG)  # sealtrail_default
FIXED = datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC)
ROUNDS = 30
SINGLES = 5
BATCH = 97

Conn = psycopg.Connection[tuple[Any, ...]]


# -- databases --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Database:
    """A database on the test server: its name and URL."""

    name: str
    url: str


def skip_reason() -> str | None:
    """Why these tests cannot run here (None: they can)."""
    return unavailable()


def _admin(statement: sql.Composed) -> None:
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(statement)


def _drop(name: str) -> None:
    _admin(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@contextmanager
def database(template: Database | None = None) -> Iterator[Database]:
    """A new database (empty, or a copy of ``template``, which must have no session open),
    dropped afterwards whatever is still connected to it."""
    name = f"st_test_{secrets.token_hex(6)}"
    statement = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
    if template is not None:
        statement = sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
            sql.Identifier(name), sql.Identifier(template.name))
    _admin(statement)
    try:
        yield Database(name, url_of(name))
    finally:
        _drop(name)


def sessions(db: Database) -> int:
    """Sessions open on ``db`` other than the one asking (a closed log must leave none)."""
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        row = conn.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = %s "
                           "AND pid <> pg_backend_pid()", (db.name,)).fetchone()
    assert row is not None
    return int(row[0])


@contextmanager
def clone(template: Database, data_dir: Path, dst: Path) -> Iterator[tuple[Path, str]]:
    """A private copy of a template log for one test: (data directory, store URL)."""
    shutil.copytree(data_dir, dst)
    with database(template) as db:
        yield dst, db.url


# -- the rounds template (test_tamper.py's) ---------------------------------------------------


def clock() -> datetime:
    """The fixed clock the rounds template uses."""
    return FIXED


def event(n: int, tag: str = "orig") -> dict[str, object]:
    """A small valid event, distinct for each ``n``."""
    return {"actor": {"id": f"user-{n}"}, "action": "doc.read", "outcome": "success",
            "target": {"type": "doc", "id": f"{tag}-{n}"}}


@dataclass(frozen=True, slots=True)
class Rounds:
    """The pristine rounds log: where it is and what it signed along the way."""

    data_dir: Path
    size: int
    notes: dict[int, str]  # every checkpoint note seen after a commit, by size
    history: tuple[int, ...]  # sizes kept in the checkpoints table


def build_rounds(data_dir: Path, url: str) -> Rounds:
    """30 rounds of 5 single appends and one batch of 97, each commit's head noted."""
    notes: dict[int, str] = {}
    n = 0
    with AuditLog.open(data_dir, LOG, clock=clock, store=url) as log:
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
    return Rounds(data_dir, size, notes, history)


# -- the rich template (tables.py's) ----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SavedHead:
    """What an attacker copied of the database at one size: the ``state`` row, the kept
    ``checkpoints`` rows and the ``meta`` rows."""

    size: int
    checkpoint: str
    id_hwm: int
    checkpoints: tuple[tuple[int, str], ...]
    meta: tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class Rich:
    """The realistic template (``tables.Template``) and the attacker's copies."""

    t: Template
    saved: SavedHead          # at ``t.rollback_to``
    old_keyring: tuple[str, int]  # the keyring row (doc, version) before the rotation
    prepurge: tuple[tuple[int, bytes], ...]  # (start, data) of the day-0 chunks, pre-purge
    receipt: int              # the purge receipt's index


def save_head(url: str) -> SavedHead:
    """Copy the rows a rollback puts back (the attacker's ``pg_dump`` of three tables)."""
    with edit(url) as db:
        row = db.execute("SELECT size, checkpoint, id_hwm FROM state").fetchone()
        assert row is not None
        kept = tuple((int(s), str(n)) for s, n in
                     db.execute("SELECT size, note FROM checkpoints ORDER BY size"))
        meta = tuple((str(k), str(v)) for k, v in
                     db.execute("SELECT key, value FROM meta ORDER BY key"))
    return SavedHead(int(row[0]), str(row[1]), int(row[2]), kept, meta)


def build_rich(data_dir: Path, url: str) -> Rich:
    """``tables.build`` on a PostgreSQL store (about 6600 entries)."""
    clk = Clock()
    notes: dict[int, str] = {}
    with AuditLog.open(data_dir, LOG, passphrase=TEST_PASSPHRASE, clock=clk,
                       store=url) as log:

        def commit(events: list[dict[str, Any]]) -> int:
            first = log.append_many(events)[0].index
            notes[log.size] = log.checkpoint().note
            return first

        for k in range(3):
            commit([rich_event(k * 400 + i, 0, category="authentication", v7=True,
                               subject=f"patient-{i % 7}") for i in range(400)])
        clk.now = T0 + timedelta(days=10)
        batches = [[rich_event(k * 1000 + i, 10, category="data_access", v7=i % 2 == 0,
                               subject=f"patient-{i % 9}" if i % 3 else None)
                    for i in range(1000)] for k in range(3)]
        firsts = [commit(b) for b in batches]
        v7_event, v4_event = batches[1][10], batches[1][11]
        v7_index, v4_index = firsts[1] + 10, firsts[1] + 11
        clk.now = T0 + timedelta(days=20)
        set_policy(log, POLICY, actor=OPS)
        log.hold_subject(HELD, reason="litigation 41", actor=OPS)
        log.hold_subject(RELEASED, reason="litigation 42", actor=OPS)
        log.release_subject(RELEASED, reason="matter closed", actor=OPS)
        ref = log.subject_ref(ERASED)
        with edit(url) as db:
            key = db.execute("SELECT kid, ref, wrapped FROM subject_keys WHERE ref = %s",
                             (ref,)).fetchone()
            ring = db.execute("SELECT doc, version FROM keyring").fetchone()
        assert key is not None
        assert ring is not None
        log.erase_subject(ERASED, reason="GDPR request 7", actor={"id": "dpo"})
        log.rotate_keys(actor=OPS)
        with edit(url) as db:
            prepurge = tuple((int(st), bytes(d)) for st, d in db.execute(
                "SELECT start, data FROM chunks WHERE start < 1200 ORDER BY start"))
        clk.now = T0 + timedelta(days=40)
        plan, receipt = apply_purge(log, POLICY, actor=OPS)
        assert receipt is not None
        assert plan.held > 0
        notes[log.size] = log.checkpoint().note
        settled = log.size
        clk.now = T0 + timedelta(days=41)
        for k in range(4):
            for j in range(3):
                commit([rich_event(9000 + 10 * k + j, 41, category="data_access", v7=True,
                                   subject=None)])
            commit([rich_event(10_000 + k * 600 + i, 41, category="data_access",
                               v7=i % 2 == 0, subject=f"patient-{i % 8}" if i % 3 else None)
                    for i in range(600)])
        last_anchor = log.size
        saved: SavedHead | None = None
        for j in range(4):
            commit([rich_event(20_000 + j, 41, category="data_access", v7=True, subject=None)])
            if log.size == last_anchor + 2:
                saved = save_head(url)
        log.verify()
        size = log.size
        history = tuple(s for s, _ in log.store.iter_checkpoints())
    assert saved is not None
    assert max(history) == last_anchor < size
    t = Template(data_dir, size, notes, history, settled, last_anchor + 2, v7_index, v7_event,
                 v4_index, v4_event, plan.ranges[0],
                 (bytes(key[0]), bytes(key[1]), bytes(key[2])))
    assert plan.ranges[0][0] < plan.ranges[0][1] <= 1200
    return Rich(t, saved, (str(ring[0]), int(ring[1])), prepurge, receipt.index)


# -- the attacker's tools ---------------------------------------------------------------------


@contextmanager
def edit(url: str) -> Iterator[Conn]:
    """A psql-like session in the log's schema, committed on success."""
    with psycopg.connect(url) as conn:
        conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(SCHEMA)))
        yield conn


def run(db: Conn, query: str, *args: object) -> int:
    """Execute one statement that must change at least one row; the rows it changed."""
    n = db.execute(query.encode(), args).rowcount  # bytes: a LiteralString is not needed
    assert n > 0, f"the attack changed nothing: {query}"
    return n


def one(db: Conn, query: str, *args: object) -> tuple[Any, ...]:
    """The one row a query returns."""
    row = db.execute(query.encode(), args).fetchone()
    assert row is not None, query
    return row


def tables(url: str) -> set[str]:
    """Every table of the log's schema."""
    with edit(url) as db:
        return {str(name) for (name,) in db.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = %s",
            (SCHEMA,))}


def row_counts(url: str) -> dict[str, int]:
    """Rows per table."""
    names = sorted(tables(url))
    with edit(url) as db:
        return {t: int(one(db, f"SELECT count(*) FROM {t}")[0]) for t in names}


def chunks(db: Conn) -> list[tuple[int, int, bytes]]:
    """(start, count, data) of every chunk row, by start."""
    return [(int(s), int(c), bytes(d)) for s, c, d in
            db.execute("SELECT start, count, data FROM chunks ORDER BY start")]


def chunk_of(url: str, index: int) -> int:
    """The start of the chunk holding entry ``index``."""
    with edit(url) as db:
        return int(one(db, "SELECT max(start) FROM chunks WHERE start <= %s", index)[0])


def split(count: int, data: bytes) -> list[bytes]:
    """The leaves framed in one chunk's data (uint32 lengths, then the bytes)."""
    lens = struct.unpack_from(f"<{count}I", data)
    out, pos = [], 4 * count
    for n in lens:
        out.append(data[pos:pos + n])
        pos += n
    return out


def frame(leaves: list[bytes]) -> bytes:
    """Chunk data for ``leaves``."""
    return struct.pack(f"<{len(leaves)}I", *map(len, leaves)) + b"".join(leaves)


def flip(data: bytes, pos: int) -> bytes:
    """``data`` with one bit flipped at byte ``pos``."""
    return data[:pos] + bytes([data[pos] ^ 0x01]) + data[pos + 1:]


def get_node(url: str, level: int, index: int) -> bytes | None:
    """The stored hash of node (level, index), if that complete node is stored."""
    block, off = index // BLOCK, (index % BLOCK) * HASH_SIZE
    with edit(url) as db:
        row = db.execute("SELECT data FROM nodes WHERE level = %s AND block = %s",
                         (level, block)).fetchone()
    if row is None or len(row[0]) < off + HASH_SIZE:
        return None
    return bytes(row[0])[off:off + HASH_SIZE]


def set_node(url: str, level: int, index: int, value: bytes) -> None:
    """Overwrite the stored hash of node (level, index) in its block."""
    block, off = index // BLOCK, (index % BLOCK) * HASH_SIZE
    with edit(url) as db:
        data = bytes(one(db, "SELECT data FROM nodes WHERE level = %s AND block = %s",
                         level, block)[0])
        assert len(data) >= off + HASH_SIZE
        run(db, "UPDATE nodes SET data = %s WHERE level = %s AND block = %s",
            data[:off] + value + data[off + HASH_SIZE:], level, block)


def cut_tail(db: Conn, size: int) -> None:
    """Remove every trace of the entries from ``size`` on, as a clean truncation would:
    chunks (``size`` must start one), the tree hashes of nodes not complete at ``size``, the
    id index, blind rows. The state and checkpoints are left to the caller."""
    one(db, "SELECT 1 FROM chunks WHERE start = %s", size)
    run(db, "DELETE FROM chunks WHERE start >= %s", size)
    db.execute("DELETE FROM id_buckets WHERE start >= %s", (size,))
    db.execute("DELETE FROM exact_ids WHERE idx >= %s", (size,))
    db.execute("DELETE FROM blind WHERE idx >= %s", (size,))
    for start, data in db.execute("SELECT start, data FROM blind_pending").fetchall():
        kept = [p for p in pairs(bytes(data)) if p[1] < size]
        db.execute("DELETE FROM blind_pending WHERE start = %s", (start,))
        if kept:
            db.execute("INSERT INTO blind_pending VALUES (%s, %s)",
                       (min(i for _, i in kept), pack_pairs(kept)))
    for level, block, data in db.execute("SELECT level, block, data FROM nodes").fetchall():
        complete = (size >> int(level)) - int(block) * BLOCK  # nodes of this block kept
        if complete <= 0:
            db.execute("DELETE FROM nodes WHERE level = %s AND block = %s", (level, block))
        elif complete < BLOCK:
            db.execute("UPDATE nodes SET data = %s WHERE level = %s AND block = %s",
                       (bytes(data)[:complete * HASH_SIZE], level, block))


def rebuild_tree(url: str, k: int) -> bytes:
    """Replace every stored tree hash by the tree of the first ``k`` stored entries; its root
    (what an attacker who rewrites entries does to keep the tree consistent with them)."""
    with edit(url) as db:
        hashes = [bytes(leaf_hash(leaf)) for _, count, data in chunks(db)
                  for leaf in split(count, data)][:k]
        assert len(hashes) == k
        edge, blocks = TreeEdge(0, [], {}).append(hashes)
        db.execute("DELETE FROM nodes")
        with db.cursor() as cur:
            cur.executemany("INSERT INTO nodes VALUES (%s, %s, %s)",
                            [(lv, b, d) for (lv, b), d in blocks.items()])
    return edge.root()


def truncate(data_dir: Path, url: str, k: int, *, keep_history: bool) -> None:
    """Cut the log back to ``k`` entries cleanly and re-sign the head with the log's own key
    (``test_tamper.truncate``: an insider holding the node's signing key, who also rewrites
    the head memory; only a checkpoint kept elsewhere is left to catch them)."""
    with edit(url) as db:
        one(db, "SELECT 1 FROM chunks WHERE start = %s", k)
        db.execute("DELETE FROM chunks WHERE start >= %s", (k,))
        db.execute("DELETE FROM id_buckets WHERE start >= %s", (k,))
        db.execute("DELETE FROM exact_ids WHERE idx >= %s", (k,))
        if not keep_history:
            db.execute("DELETE FROM checkpoints WHERE size > %s", (k,))
        origin = str(one(db, "SELECT value FROM meta WHERE key = 'origin'")[0])
    root = rebuild_tree(url, k)
    signer = keys.load_signer(data_dir / LOG)
    note = signer.sign(Checkpoint(origin, k, root).format())
    with edit(url) as db:
        run(db, "UPDATE state SET size = %s, checkpoint = %s", k, note)
    (data_dir / LOG / FILE).write_text(json.dumps({"format": FORMAT, "origin": origin,
                                                   "note": note}))


def restore_head(db: Conn, saved: SavedHead) -> None:
    """Put the copied ``state``, ``checkpoints`` and ``meta`` rows back in place."""
    run(db, "UPDATE state SET size = %s, checkpoint = %s, id_hwm = %s", saved.size,
        saved.checkpoint, saved.id_hwm)
    db.execute("DELETE FROM checkpoints")
    with db.cursor() as cur:
        cur.executemany("INSERT INTO checkpoints VALUES (%s, %s)", list(saved.checkpoints))
        db.execute("DELETE FROM meta")
        cur.executemany("INSERT INTO meta VALUES (%s, %s)", list(saved.meta))
