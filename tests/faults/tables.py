"""A realistic template log for the every-table tamper suite, and the attacker's SQL tools.

:func:`build` makes one encrypted log through the public API only: events with ids chosen by
the caller (UUIDv7, so ``id_buckets`` fills, and UUIDv4, so ``exact_ids`` does), subjects and
addresses (``subject_keys``, ``blind``, ``blind_pending``), a retention policy and a purge
(``retired``), legal holds, one released (``holds``), an erasure, a key rotation (``meta``),
and enough commits for many chunks, node blocks and kept checkpoints. It records what an
attacker could have kept along the way: every signed head, and a copy of the erased subject's
key row taken before the erasure.

The helpers below edit ``log.db`` with :mod:`sqlite3` only, as someone with the files but no
key would.
"""

from __future__ import annotations

import os
import sqlite3
import struct
import uuid
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from tests.compliance.conftest import T0, Clock
from tests.conftest import TEST_PASSPHRASE

from sealtrail import AuditLog
from sealtrail.core.uuid7 import make_uuid7
from sealtrail.log.retention import RetentionPolicy, apply_purge, set_policy

LOG = "default"
OPS = {"id": "ops-1"}
POLICY = RetentionPolicy.parse({"name": "t", "authentication": {"max": "30d"}})
HELD = "patient-3"        # under an open legal hold: its old logins survive the purge
RELEASED = "patient-5"    # held, then released
ERASED = "patient-8"      # crypto-shredded
NODE_BLOCK = 63           # hashes per stored node block (log/tree.py)
LEVEL_SHIFT = 40          # nodes.key = level << 40 | block (store/sqlite.py)
HASH = 32


@dataclass(frozen=True, slots=True)
class Template:
    """The pristine log and what was noted while it was made."""

    data_dir: Path
    size: int
    notes: dict[int, str]          # the signed head after every commit, by size
    history: tuple[int, ...]       # sizes kept in the checkpoints table
    settled: int                   # the size once every setting change and the purge landed
    rollback_to: int               # a saved head past ``settled``, not in the history
    v7_index: int                  # an event whose caller-chosen id is a UUIDv7
    v7_event: dict[str, Any]
    v4_index: int                  # an event whose caller-chosen id is a UUIDv4
    v4_event: dict[str, Any]
    purged: tuple[int, int]        # the first range the purge emptied
    erased_key: tuple[bytes, bytes, bytes]  # (kid, ref, wrapped) of ERASED, before erasure


def _event(n: int, day: int, *, category: str, v7: bool, subject: str | None
           ) -> dict[str, Any]:
    ms = int((T0 + timedelta(days=day)).timestamp() * 1000) + n
    ident = make_uuid7(ms, os.urandom(10)) if v7 else uuid.uuid4()
    ev: dict[str, Any] = {
        "id": str(ident), "action": "user.login" if category == "authentication" else
        "chart.read", "actor": {"id": f"dr-{n % 5}", "ip": f"192.0.2.{n % 200}"},
        "outcome": "success", "category": category,
        "target": {"type": "chart", "id": f"c-{day}-{n}"}}
    if subject is not None:
        ev["subjects"] = [subject]
    return ev


def build(data_dir: Path) -> Template:
    """Make the template log in ``data_dir`` (about 6600 entries, under a second)."""
    clock = Clock()
    notes: dict[int, str] = {}
    with AuditLog.open(data_dir, LOG, passphrase=TEST_PASSPHRASE, clock=clock) as log:

        def commit(events: list[dict[str, Any]]) -> int:
            first = log.append_many(events)[0].index
            notes[log.size] = log.checkpoint().note
            return first

        # Day 0: logins (category authentication, purged at day 40 unless held).
        for k in range(3):
            commit([_event(k * 400 + i, 0, category="authentication", v7=True,
                           subject=f"patient-{i % 7}") for i in range(400)])
        # Day 10: chart reads, ids alternately UUIDv7 and UUIDv4, two thirds about subjects.
        clock.now = T0 + timedelta(days=10)
        batches = [[_event(k * 1000 + i, 10, category="data_access", v7=i % 2 == 0,
                           subject=f"patient-{i % 9}" if i % 3 else None)
                    for i in range(1000)] for k in range(3)]
        firsts = [commit(b) for b in batches]
        v7_event, v4_event = batches[1][10], batches[1][11]
        v7_index, v4_index = firsts[1] + 10, firsts[1] + 11
        # Day 20: settings, holds, an erasure, a rotation.
        clock.now = T0 + timedelta(days=20)
        set_policy(log, POLICY, actor=OPS)
        log.hold_subject(HELD, reason="litigation 41", actor=OPS)
        log.hold_subject(RELEASED, reason="litigation 42", actor=OPS)
        log.release_subject(RELEASED, reason="matter closed", actor=OPS)
        ref = log.subject_ref(ERASED)
        with closing(sqlite3.connect(db_path(data_dir))) as db:
            erased_key = db.execute("SELECT kid, ref, wrapped FROM subject_keys WHERE ref = ?",
                                    (ref,)).fetchone()
        log.erase_subject(ERASED, reason="GDPR request 7", actor={"id": "dpo"})
        log.rotate_keys(actor=OPS)
        # Day 40: the purge.
        clock.now = T0 + timedelta(days=40)
        plan, receipt = apply_purge(log, POLICY, actor=OPS)
        assert receipt is not None
        assert plan.held > 0
        notes[log.size] = log.checkpoint().note
        settled = log.size
        # Day 41: single appends and batches (no erased subject), crossing two anchors...
        clock.now = T0 + timedelta(days=41)
        for k in range(4):
            for j in range(3):
                commit([_event(9000 + 10 * k + j, 41, category="data_access", v7=True,
                               subject=None)])
            commit([_event(10_000 + k * 600 + i, 41, category="data_access", v7=i % 2 == 0,
                           subject=f"patient-{i % 8}" if i % 3 else None) for i in range(600)])
        last_anchor = log.size
        # ... then a few more single appends: heads past the last kept checkpoint.
        for j in range(4):
            commit([_event(20_000 + j, 41, category="data_access", v7=True, subject=None)])
        log.verify()
        size = log.size
        history = tuple(s for s, _ in log.store.iter_checkpoints())
    assert max(history) == last_anchor < size
    return Template(data_dir, size, notes, history, settled, last_anchor + 2, v7_index, v7_event,
                    v4_index, v4_event, plan.ranges[0],
                    (bytes(erased_key[0]), bytes(erased_key[1]), bytes(erased_key[2])))


# -- the attacker's tools ---------------------------------------------------------------------


def db_path(data_dir: Path) -> Path:
    """The log's SQLite file."""
    return data_dir / LOG / "log.db"


@contextmanager
def edit(data_dir: Path) -> Iterator[sqlite3.Connection]:
    """A raw connection to the closed log's file, committed on success."""
    with closing(sqlite3.connect(db_path(data_dir))) as db, db:
        yield db


def run(db: sqlite3.Connection, sql: str, *args: object) -> int:
    """Execute one statement that must change at least one row; the rows it changed."""
    n = db.execute(sql, args).rowcount
    assert n > 0, f"the attack changed nothing: {sql}"
    return n


def tables(data_dir: Path) -> set[str]:
    """Every table of the log's schema."""
    with closing(sqlite3.connect(db_path(data_dir))) as db:
        return {str(name) for (name,) in db.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")}


def row_counts(data_dir: Path) -> dict[str, int]:
    """Rows per table."""
    with closing(sqlite3.connect(db_path(data_dir))) as db:
        return {t: int(db.execute(f"SELECT count(*) FROM {t}").fetchone()[0])
                for t in sorted(tables(data_dir))}


def leaves(count: int, data: bytes) -> list[bytes]:
    """The leaves framed in one chunk's data (uint32 lengths, then the bytes)."""
    lens = struct.unpack_from(f"<{count}I", data)
    out, pos = [], 4 * count
    for n in lens:
        out.append(data[pos:pos + n])
        pos += n
    return out


def pairs(data: bytes) -> list[tuple[int, int]]:
    """The (token, index) pairs of a ``blind_pending`` row."""
    flat = struct.unpack(f"<{len(data) // 8}q", data)
    return list(zip(flat[0::2], flat[1::2], strict=True))


def pack_pairs(items: list[tuple[int, int]]) -> bytes:
    """A ``blind_pending`` row's data."""
    return struct.pack(f"<{2 * len(items)}q", *(x for pair in items for x in pair))


def cut_tail(db: sqlite3.Connection, size: int) -> None:
    """Remove every trace of the entries from ``size`` on, as a clean truncation would:
    chunks (``size`` must start one), the tree hashes of nodes not complete at ``size``, the
    id index, blind rows. The state and checkpoints are left to the caller."""
    assert db.execute("SELECT 1 FROM chunks WHERE start = ?", (size,)).fetchone()
    run(db, "DELETE FROM chunks WHERE start >= ?", size)
    db.execute("DELETE FROM id_buckets WHERE start >= ?", (size,))
    db.execute("DELETE FROM exact_ids WHERE idx >= ?", (size,))
    db.execute("DELETE FROM blind WHERE idx >= ?", (size,))
    for start, data in db.execute("SELECT start, data FROM blind_pending").fetchall():
        kept = [p for p in pairs(bytes(data)) if p[1] < size]
        db.execute("DELETE FROM blind_pending WHERE start = ?", (start,))
        if kept:
            db.execute("INSERT INTO blind_pending VALUES (?, ?)",
                       (min(i for _, i in kept), pack_pairs(kept)))
    for key, data in db.execute("SELECT key, data FROM nodes").fetchall():
        level, block = int(key) >> LEVEL_SHIFT, int(key) & ((1 << LEVEL_SHIFT) - 1)
        complete = (size >> level) - block * NODE_BLOCK  # nodes of this block kept
        if complete <= 0:
            db.execute("DELETE FROM nodes WHERE key = ?", (key,))
        elif complete < NODE_BLOCK:
            db.execute("UPDATE nodes SET data = ? WHERE key = ?",
                       (bytes(data)[:complete * HASH], key))
