"""Every table of the log's database: an edit that changes what sealtrail does fails verification.

One realistic log (``tests/faults/tables.py``) is built per module through the public API and
copied per test. Each case edits the copy's ``log.db`` with :mod:`sqlite3`, as someone with the
files but no key would — a row deleted, inserted or edited, or a whole rollback — and requires
a :class:`TamperError` from ``AuditLog.verify`` (keyless: the log is opened with no passphrase)
or, for the tables only the keyring can rebuild (``blind``, ``blind_pending``,
``subject_keys``), from :func:`verify_derived`.

A case that the code does not catch yet is marked ``xfail(strict=True)`` with what it changes
and why verification misses it; the mark accepts only "verify did not raise", so any other
failure of the case still fails the suite. A table added to the schema without a case here
fails :func:`test_every_table_in_the_schema_has_a_case`.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Literal

import pytest
from tests.compliance.conftest import T0
from tests.conftest import TEST_PASSPHRASE
from tests.faults.tables import (
    LOG,
    Template,
    build,
    cut_tail,
    edit,
    pack_pairs,
    pairs,
    row_counts,
    run,
    tables,
)

from sealtrail import AuditLog
from sealtrail.core.errors import TamperError
from sealtrail.log.derived import verify_derived

Mutation = Callable[[Path, Template], None]


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Template:
    """The pristine log, built once for the module."""
    return build(tmp_path_factory.mktemp("every-table"))


@pytest.fixture
def copy(template: Template, tmp_path: Path) -> Path:
    """A private copy of the template's data directory for one test to tamper with."""
    dst = tmp_path / "data"
    shutil.copytree(template.data_dir, dst)
    return dst


def _chunk_of(db_data: Path, index: int) -> int:
    with edit(db_data) as db:
        (start,) = db.execute("SELECT max(start) FROM chunks WHERE start <= ?",
                              (index,)).fetchone()
    return int(start)


def _id_bytes(event: dict[str, object]) -> bytes:
    return uuid.UUID(str(event["id"])).bytes


def _purged_retry(data: Path, t: Template) -> dict[str, object]:
    """An event carrying the id of the first purged entry (its body is gone; the id stays)."""
    index = t.purged[0]
    start = _chunk_of(data, index)
    with edit(data) as db:
        (ids,) = db.execute("SELECT ids FROM chunks WHERE start = ?", (start,)).fetchone()
    k = index - start
    ident = uuid.UUID(bytes=bytes(ids)[16 * k:16 * k + 16])
    return {"id": str(ident), "action": "user.login", "actor": {"id": "retry"},
            "outcome": "success"}


# -- meta -------------------------------------------------------------------------------------


def meta_encryption_off(d: Path, t: Template) -> None:
    """Tools that read the settings table would treat the log as unencrypted."""
    with edit(d) as db:
        run(db, "UPDATE meta SET value = 'off' WHERE key = 'encryption'")


def meta_settings_statement_deleted(d: Path, t: Template) -> None:
    """Nothing says what the log was created with any more; appends are refused."""
    with edit(d) as db:
        run(db, "DELETE FROM meta WHERE key = 'settings'")


def meta_retention_policy_shortened(d: Path, t: Template) -> None:
    """A one-hour maximum for everything would purge the whole log under a genuine receipt."""
    with edit(d) as db:
        run(db, "UPDATE meta SET value = ? WHERE key = 'retention_policy'",
            '{"authentication":{"max":"1h"},"default":{"max":"1h"},"name":"t"}')


def meta_retention_policy_removed(d: Path, t: Template) -> None:
    """Without a policy nothing is ever purged: data kept past its legal maximum."""
    with edit(d) as db:
        run(db, "DELETE FROM meta WHERE key IN ('retention_policy', 'retention_policy_at')")


def meta_active_key_reverted(d: Path, t: Template) -> None:
    """The record of the rotation is undone: the log claims the old data key is active."""
    with edit(d) as db:
        run(db, "UPDATE meta SET value = 'd1' WHERE key = 'active_key'")


# -- state ------------------------------------------------------------------------------------


def state_rolled_back_to_a_saved_head(d: Path, t: Template) -> None:
    """Roll the log back to a head it signed earlier (kept by the attacker), the entries after
    it removed cleanly from every table: the last events vanish, and the database is again
    exactly what it was at that size (the verified size noted in the settings table moved
    too). Only the head memory beside the log (``log/headmemory.py``), left in place here,
    remembers the larger head; deleting it as well is ``test_rollback_to_older_signed_head``'s
    concern."""
    size = t.rollback_to
    assert size not in t.history
    assert t.settled < size < t.size
    with edit(d) as db:
        cut_tail(db, size)
        run(db, "UPDATE state SET size = ?, checkpoint = ?", size, t.notes[size])
        run(db, "UPDATE meta SET value = ? WHERE key = 'verified_size'", str(size))


def state_rolled_back_tail_left(d: Path, t: Template) -> None:
    """Only the head moves back: reads stop at the older size, the rows past it stay."""
    size = t.rollback_to
    with edit(d) as db:
        run(db, "UPDATE state SET size = ?, checkpoint = ?", size, t.notes[size])


def state_id_hwm_lowered(d: Path, t: Template) -> None:
    """The id high-water mark is what lets an append skip the id index for new UUIDv7 ids:
    lowered, a retry of an event the process no longer holds in memory (any, after a
    restart) is taken for new without a look at the index, and stored a second time
    (exactly-once broken)."""
    with edit(d) as db:
        run(db, "UPDATE state SET id_hwm = 0")


# -- chunks -----------------------------------------------------------------------------------


def chunks_leaf_byte_flipped(d: Path, t: Template) -> None:
    """One stored event's bytes changed."""
    start = _chunk_of(d, t.v7_index)
    with edit(d) as db:
        count, data = db.execute("SELECT count, data FROM chunks WHERE start = ?",
                                 (start,)).fetchone()
        pos = 4 * int(count) + len(bytes(data)) // 2
        raw = bytearray(data)
        raw[pos] ^= 0x01
        run(db, "UPDATE chunks SET data = ? WHERE start = ?", bytes(raw), start)


def chunks_row_deleted(d: Path, t: Template) -> None:
    """A commit's events vanish."""
    start = _chunk_of(d, t.v7_index)
    with edit(d) as db:
        run(db, "DELETE FROM chunks WHERE start = ?", start)


def chunks_live_id_edited(d: Path, t: Template) -> None:
    """The stored id of a live event replaced: a retry of it would be stored again."""
    start = _chunk_of(d, t.v7_index)
    k = t.v7_index - start
    with edit(d) as db:
        (ids,) = db.execute("SELECT ids FROM chunks WHERE start = ?", (start,)).fetchone()
        ids = bytes(ids)
        run(db, "UPDATE chunks SET ids = ? WHERE start = ?",
            ids[:16 * k] + os.urandom(16) + ids[16 * k + 16:], start)


def _edit_purged_id(d: Path, t: Template, keep: int) -> None:
    """Replace all but the first ``keep`` bytes of the first purged entry's stored id."""
    index = t.purged[0]
    start = _chunk_of(d, index)
    k = index - start
    with edit(d) as db:
        (ids,) = db.execute("SELECT ids FROM chunks WHERE start = ?", (start,)).fetchone()
        ids = bytes(ids)
        new = ids[16 * k:16 * k + keep] + os.urandom(16 - keep)
        run(db, "UPDATE chunks SET ids = ? WHERE start = ?",
            ids[:16 * k] + new + ids[16 * k + 16:], start)


def chunks_purged_id_edited(d: Path, t: Template) -> None:
    """The id kept for a purged entry (all that is left of it) replaced by random bytes: a
    retry of the purged event is no longer answered as a duplicate but stored again."""
    _edit_purged_id(d, t, 0)


def chunks_purged_id_edited_same_millisecond(d: Path, t: Template) -> None:
    """The same, keeping the id's UUIDv7 time and version (its first 7 bytes), so that the
    id index rows derived from it stay exactly what they were."""
    _edit_purged_id(d, t, 7)


# -- nodes ------------------------------------------------------------------------------------


def _node_key(level: int, block: int) -> int:
    return level << 40 | block


def nodes_leaf_hash_flipped(d: Path, t: Template) -> None:
    """A stored leaf hash changed: proofs for that entry would fail or lie."""
    index = t.v7_index
    key, off = _node_key(0, index // 63), (index % 63) * 32
    with edit(d) as db:
        (data,) = db.execute("SELECT data FROM nodes WHERE key = ?", (key,)).fetchone()
        raw = bytearray(data)
        raw[off] ^= 0x01
        run(db, "UPDATE nodes SET data = ? WHERE key = ?", bytes(raw), key)


def nodes_block_deleted(d: Path, t: Template) -> None:
    """A block of inner hashes gone: proofs through it cannot be made."""
    with edit(d) as db:
        run(db, "DELETE FROM nodes WHERE key = ?", _node_key(1, 5))


def nodes_hashes_past_the_size(d: Path, t: Template) -> None:
    """Tree hashes for entries that do not exist (a truncation's leftovers, or a forgery)."""
    key = _node_key(0, (t.size - 1) // 63)
    with edit(d) as db:
        (data,) = db.execute("SELECT data FROM nodes WHERE key = ?", (key,)).fetchone()
        run(db, "UPDATE nodes SET data = ? WHERE key = ?", bytes(data) + os.urandom(32), key)


# -- id index ---------------------------------------------------------------------------------


def id_buckets_rows_of_a_commit_deleted(d: Path, t: Template) -> None:
    """The bucket rows that find the UUIDv7 ids of one commit: a retry of any of its events
    is taken for new and stored a second time (exactly-once broken)."""
    start = _chunk_of(d, t.v7_index)
    with edit(d) as db:
        run(db, "DELETE FROM id_buckets WHERE start = ?", start)


def exact_ids_row_deleted(d: Path, t: Template) -> None:
    """The row that finds one UUIDv4 id: a retry of that event is stored a second time."""
    with edit(d) as db:
        run(db, "DELETE FROM exact_ids WHERE id = ?", _id_bytes(t.v4_event))


def exact_ids_row_repointed_at_a_purged_entry(d: Path, t: Template) -> None:
    """The row of one UUIDv4 id pointed at a purged entry (which the append cannot confirm):
    a retry of that event is answered with the purged entry's index and leaf hash."""
    with edit(d) as db:
        run(db, "UPDATE exact_ids SET idx = ? WHERE id = ?", t.purged[0],
            _id_bytes(t.v4_event))


def exact_ids_row_copied_to_another_level(d: Path, t: Template) -> None:
    """One id's row present on two levels, the copy pointing at another entry: a lookup could
    answer with either."""
    with edit(d) as db:
        run(db, "INSERT INTO exact_ids SELECT level + 1, id, ? FROM exact_ids WHERE id = ?",
            t.v7_index, _id_bytes(t.v4_event))


# Edits that change no answer: where a row of the exact id index sits (its level) and the
# counters that pace moving rows between levels. Lookups read every level that holds rows,
# and verify compares the rows of all levels; these must verify and still answer retries.


def exact_ids_rows_moved_to_a_far_level(d: Path, t: Template) -> None:
    with edit(d) as db:
        run(db, "UPDATE exact_ids SET level = 77")


def exact_id_levels_counters_scrambled(d: Path, t: Template) -> None:
    with edit(d) as db:
        run(db, "UPDATE exact_id_levels SET rows = -5, cursor = x'ffff'")
        db.execute("INSERT OR REPLACE INTO exact_id_levels VALUES (3, 1000000000, x'00')")


# -- checkpoints ------------------------------------------------------------------------------


def checkpoints_rolled_back_to_a_kept_anchor(d: Path, t: Template) -> None:
    """Roll the log back to one of its own kept checkpoints (no backup needed: the note is in
    the table), every later kept checkpoint and entry removed cleanly (caught, like the state
    rollback, by the head memory)."""
    anchor = sorted(t.history)[-2]
    assert anchor > t.settled
    with edit(d) as db:
        (note,) = db.execute("SELECT note FROM checkpoints WHERE size = ?",
                             (anchor,)).fetchone()
        cut_tail(db, anchor)
        run(db, "DELETE FROM checkpoints WHERE size > ?", anchor)
        run(db, "UPDATE state SET size = ?, checkpoint = ?", anchor, note)
        run(db, "UPDATE meta SET value = ? WHERE key = 'verified_size'", str(anchor))


def checkpoints_anchor_deleted(d: Path, t: Template) -> None:
    """A kept checkpoint gone: evidence bundles carry one signed checkpoint (and consistency
    proof) fewer, and verify checks one signed root fewer."""
    anchor = sorted(t.history)[len(t.history) // 2]
    with edit(d) as db:
        run(db, "DELETE FROM checkpoints WHERE size = ?", anchor)


def checkpoints_anchor_note_edited(d: Path, t: Template) -> None:
    """A kept checkpoint's root rewritten (its signature no longer matches)."""
    anchor = sorted(t.history)[len(t.history) // 2]
    with edit(d) as db:
        (note,) = db.execute("SELECT note FROM checkpoints WHERE size = ?",
                             (anchor,)).fetchone()
        lines = str(note).split("\n")
        lines[2] = ("B" if lines[2][0] == "A" else "A") + lines[2][1:]
        run(db, "UPDATE checkpoints SET note = ? WHERE size = ?", "\n".join(lines), anchor)


def checkpoints_anchor_note_moved(d: Path, t: Template) -> None:
    """A genuine older checkpoint filed under a later size (hiding what that one signed)."""
    a, b = sorted(t.history)[-3:-1]
    with edit(d) as db:
        (note,) = db.execute("SELECT note FROM checkpoints WHERE size = ?", (a,)).fetchone()
        run(db, "UPDATE checkpoints SET note = ? WHERE size = ?", note, b)


# -- subject keys -----------------------------------------------------------------------------


def subject_keys_key_deleted(d: Path, t: Template) -> None:
    """A subject's key destroyed with no erasure record: its events crypto-shredded."""
    with edit(d) as db:
        run(db, "DELETE FROM subject_keys WHERE kid = (SELECT min(kid) FROM subject_keys)")


def subject_keys_erased_key_put_back(d: Path, t: Template) -> None:
    """The erased subject's key restored from a copy taken before the erasure: the erased
    events read again."""
    with edit(d) as db:
        run(db, "INSERT INTO subject_keys VALUES (?, ?, ?)", *t.erased_key)


def subject_keys_wrapped_keys_swapped(d: Path, t: Template) -> None:
    """Two subjects' wrapped keys exchanged: neither subject's events open."""
    with edit(d) as db:
        (k1, w1), (k2, w2) = db.execute(
            "SELECT kid, wrapped FROM subject_keys ORDER BY kid LIMIT 2").fetchall()
        run(db, "UPDATE subject_keys SET wrapped = ? WHERE kid = ?", w2, k1)
        run(db, "UPDATE subject_keys SET wrapped = ? WHERE kid = ?", w1, k2)


# -- blind index ------------------------------------------------------------------------------


def blind_rows_of_an_entry_deleted(d: Path, t: Template) -> None:
    """An entry's search rows gone: searches, IP lookups and subject exports skip it."""
    with edit(d) as db:
        run(db, "DELETE FROM blind WHERE idx = ?", t.v7_index)


def blind_row_pointed_at_another_entry(d: Path, t: Template) -> None:
    """A token of one entry filed for another: searches answer an unrelated entry."""
    with edit(d) as db:
        (tok,) = db.execute("SELECT tok FROM blind WHERE idx = ? EXCEPT "
                            "SELECT tok FROM blind WHERE idx = ?",
                            (t.v7_index, t.v4_index)).fetchone()
        run(db, "INSERT INTO blind VALUES (?, ?, ?)", t.v4_index >> 12, tok, t.v4_index)


def _last_pending(d: Path) -> tuple[int, list[tuple[int, int]]]:
    """The pending blind row of the latest commit with more than one pair."""
    with edit(d) as db:
        rows = db.execute("SELECT start, data FROM blind_pending ORDER BY start DESC").fetchall()
    start, data = next((s, bytes(x)) for s, x in rows if len(pairs(bytes(x))) > 1)
    return int(start), pairs(data)


def blind_pending_row_deleted(d: Path, t: Template) -> None:
    """A commit's pending search rows gone: its entries are missing from searches."""
    start, _ = _last_pending(d)
    with edit(d) as db:
        run(db, "DELETE FROM blind_pending WHERE start = ?", start)


def blind_pending_pair_dropped(d: Path, t: Template) -> None:
    """One (token, entry) pair cut from a pending row: one field of one entry unsearchable."""
    start, items = _last_pending(d)
    with edit(d) as db:
        run(db, "UPDATE blind_pending SET data = ? WHERE start = ?", pack_pairs(items[1:]),
            start)


def blind_pending_pair_repointed(d: Path, t: Template) -> None:
    """One pending pair moved to another entry of the same segment: a search answers it."""
    start, items = _last_pending(d)
    tok, idx = items[0]
    other = next(i for _, i in items if i != idx) if len({i for _, i in items}) > 1 else idx - 1
    items[0] = (tok, other)
    with edit(d) as db:
        run(db, "UPDATE blind_pending SET data = ? WHERE start = ?", pack_pairs(items), start)


# -- holds ------------------------------------------------------------------------------------


def holds_open_hold_deleted(d: Path, t: Template) -> None:
    """The held subject could be erased and its entries purged."""
    with edit(d) as db:
        run(db, "DELETE FROM holds WHERE released IS NULL")


def holds_open_hold_marked_released(d: Path, t: Template) -> None:
    """Same, with the row kept and a release date written by hand."""
    with edit(d) as db:
        run(db, "UPDATE holds SET released = '2025-01-22T00:00:00.000000Z' "
            "WHERE released IS NULL")


def holds_released_hold_reopened(d: Path, t: Template) -> None:
    """A released subject can no longer be erased, nor its entries purged."""
    with edit(d) as db:
        run(db, "UPDATE holds SET released = NULL WHERE released IS NOT NULL")


def holds_hold_inserted(d: Path, t: Template) -> None:
    """A hold on another subject (its pseudonym copied from subject_keys): its erasure is
    refused and its entries escape purges."""
    with edit(d) as db:
        (ref,) = db.execute("SELECT ref FROM subject_keys WHERE ref NOT IN "
                            "(SELECT ref FROM holds) LIMIT 1").fetchone()
        (reason,) = db.execute("SELECT reason FROM holds LIMIT 1").fetchone()
        run(db, "INSERT INTO holds(ref, reason, created) VALUES (?, ?, ?)", ref, reason,
            "2025-01-21T00:00:00.000000Z")


def holds_open_hold_backdated(d: Path, t: Template) -> None:
    """The open hold's start moved a year back: hold listings (and the refusal an erasure
    gives) state the subject has been held since then."""
    with edit(d) as db:
        run(db, "UPDATE holds SET created = '2024-01-21T00:00:00.000000Z' "
            "WHERE released IS NULL")


# -- retired ----------------------------------------------------------------------------------


def retired_purge_rows_deleted(d: Path, t: Template) -> None:
    """The record of what the purge removed is gone (the emptied bodies look destroyed by
    hand, and a later purge could claim them again)."""
    with edit(d) as db:
        run(db, "DELETE FROM retired")


def retired_range_shortened(d: Path, t: Template) -> None:
    """A purged range recorded one entry shorter."""
    with edit(d) as db:
        run(db, "UPDATE retired SET end = end - 1 WHERE start = ?", t.purged[0])


def retired_range_relabelled_archive(d: Path, t: Template) -> None:
    """A purge relabelled an archive: the entries look restorable from an archive file."""
    with edit(d) as db:
        run(db, "UPDATE retired SET kind = 'archive' WHERE start = ?", t.purged[0])


def retired_live_range_inserted(d: Path, t: Template) -> None:
    """A live entry recorded as purged by the genuine receipt: a later purge of it is
    refused as already retired."""
    with edit(d) as db:
        (receipt,) = db.execute("SELECT receipt FROM retired LIMIT 1").fetchone()
        run(db, "INSERT INTO retired VALUES (?, ?, ?, 'purge')", t.v7_index, t.v7_index + 1,
            receipt)


# -- the cases --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Case:
    """One attack on one table, and the check that must name it."""

    table: str
    attack: str
    mutate: Mutation
    check: Literal["verify", "derived"] = "verify"
    gap: str = ""  # not caught yet: what verification misses (the case is xfail)


CASES = [
    Case("meta", "encryption-off", meta_encryption_off),
    Case("meta", "signed-settings-statement-deleted", meta_settings_statement_deleted),
    Case("meta", "retention-policy-shortened", meta_retention_policy_shortened),
    Case("meta", "retention-policy-removed", meta_retention_policy_removed),
    Case("meta", "active-key-reverted", meta_active_key_reverted),
    Case("state", "rolled-back-to-a-saved-signed-head", state_rolled_back_to_a_saved_head),
    Case("state", "rolled-back-tail-left", state_rolled_back_tail_left),
    Case("state", "id-hwm-lowered", state_id_hwm_lowered),
    Case("chunks", "leaf-byte-flipped", chunks_leaf_byte_flipped),
    Case("chunks", "row-deleted", chunks_row_deleted),
    Case("chunks", "live-entry-id-edited", chunks_live_id_edited),
    Case("chunks", "purged-entry-id-edited", chunks_purged_id_edited),
    # Caught by the purge receipt, which binds the retired entries' ids (receipts.py).
    Case("chunks", "purged-entry-id-edited-same-millisecond",
         chunks_purged_id_edited_same_millisecond),
    Case("nodes", "leaf-hash-flipped", nodes_leaf_hash_flipped),
    Case("nodes", "inner-block-deleted", nodes_block_deleted),
    Case("nodes", "hashes-past-the-size", nodes_hashes_past_the_size),
    Case("id_buckets", "rows-of-a-commit-deleted", id_buckets_rows_of_a_commit_deleted),
    Case("exact_ids", "row-deleted", exact_ids_row_deleted),
    Case("exact_ids", "row-repointed-at-a-purged-entry",
         exact_ids_row_repointed_at_a_purged_entry),
    Case("exact_ids", "row-copied-to-another-level", exact_ids_row_copied_to_another_level),
    Case("checkpoints", "rolled-back-to-a-kept-anchor", checkpoints_rolled_back_to_a_kept_anchor),
    Case("checkpoints", "anchor-deleted", checkpoints_anchor_deleted),
    Case("checkpoints", "anchor-note-edited", checkpoints_anchor_note_edited),
    Case("checkpoints", "anchor-note-moved", checkpoints_anchor_note_moved),
    Case("subject_keys", "key-deleted-without-erasure", subject_keys_key_deleted, "derived"),
    Case("subject_keys", "erased-key-put-back", subject_keys_erased_key_put_back, "derived"),
    Case("subject_keys", "wrapped-keys-swapped", subject_keys_wrapped_keys_swapped, "derived"),
    Case("blind", "rows-of-an-entry-deleted", blind_rows_of_an_entry_deleted, "derived"),
    Case("blind", "row-pointed-at-another-entry", blind_row_pointed_at_another_entry,
         "derived"),
    Case("blind_pending", "row-deleted", blind_pending_row_deleted, "derived"),
    Case("blind_pending", "pair-dropped", blind_pending_pair_dropped, "derived"),
    Case("blind_pending", "pair-repointed", blind_pending_pair_repointed, "derived"),
    Case("holds", "open-hold-deleted", holds_open_hold_deleted),
    Case("holds", "open-hold-marked-released", holds_open_hold_marked_released),
    Case("holds", "released-hold-reopened", holds_released_hold_reopened),
    Case("holds", "hold-inserted", holds_hold_inserted),
    Case("holds", "open-hold-backdated", holds_open_hold_backdated),
    Case("retired", "purge-rows-deleted", retired_purge_rows_deleted),
    Case("retired", "range-shortened", retired_range_shortened),
    Case("retired", "purge-relabelled-archive", retired_range_relabelled_archive),
    Case("retired", "live-range-inserted", retired_live_range_inserted),
]


def _param(case: Case) -> object:
    marks = [pytest.mark.xfail(strict=True, raises=pytest.fail.Exception,
                               reason=f"not yet caught: {case.gap}")] if case.gap else []
    return pytest.param(case, id=f"{case.table}-{case.attack}", marks=marks)


def _verify_keyless(data: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``verify`` with no key at hand: the log opens locked."""
    monkeypatch.delenv("SEALTRAIL_PASSPHRASE", raising=False)
    monkeypatch.delenv("SEALTRAIL_KEK", raising=False)
    with AuditLog.open(data, LOG, create=False) as log:
        assert log.keyring is None
        log.verify()


def _verify_derived(data: Path, _: pytest.MonkeyPatch) -> None:
    """:func:`verify_derived`: the keyring rebuilds the blind index and the subject-key set."""
    with AuditLog.open(data, LOG, create=False, passphrase=TEST_PASSPHRASE) as log:
        verify_derived(log)


_CHECKS: dict[str, Callable[[Path, pytest.MonkeyPatch], None]] = {
    "verify": _verify_keyless, "derived": _verify_derived}


# -- tests ------------------------------------------------------------------------------------


def test_the_untouched_template_verifies(template: Template, copy: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """The control: every table has rows, and both checks pass before any attack."""
    counts = row_counts(copy)
    assert all(counts.values()), counts
    assert counts["chunks"] > 20
    assert counts["checkpoints"] >= 5
    assert counts["holds"] == 2
    _verify_derived(copy, monkeypatch)
    _verify_keyless(copy, monkeypatch)


@pytest.mark.parametrize("case", [_param(c) for c in CASES])
def test_tampering_with_a_table_fails_verification(case: Case, copy: Path, template: Template,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """The attack changes what sealtrail would do; the check must raise TamperError."""
    case.mutate(copy, template)
    with pytest.raises(TamperError):
        _CHECKS[case.check](copy, monkeypatch)


def test_the_id_index_answers_retries_in_the_template(template: Template, copy: Path) -> None:
    """What the id-index attacks take away: untouched, a retry of an event whose id is found
    through id_buckets (UUIDv7), exact_ids (UUIDv4), or the ids kept for a purged entry, is
    answered as a duplicate at its index and nothing is appended."""
    purged = _purged_retry(copy, template)
    with AuditLog.open(copy, LOG, create=False, passphrase=TEST_PASSPHRASE,
                       clock=lambda: T0 + timedelta(days=42)) as log:
        for event, index in ((template.v7_event, template.v7_index),
                             (template.v4_event, template.v4_index),
                             (purged, template.purged[0])):
            receipt = log.append(event)
            assert (receipt.index, receipt.duplicate) == (index, True)
        assert log.size == template.size


HARMLESS = [
    Case("exact_ids", "rows-moved-to-a-far-level", exact_ids_rows_moved_to_a_far_level),
    Case("exact_id_levels", "counters-scrambled", exact_id_levels_counters_scrambled),
]


@pytest.mark.parametrize("case", [_param(c) for c in HARMLESS])
def test_edits_that_change_no_answer_verify_and_still_answer_retries(
        case: Case, copy: Path, template: Template, monkeypatch: pytest.MonkeyPatch) -> None:
    """Where exact id rows sit and the counters pacing their moves are layout, not content:
    the log verifies, a retry is still answered as a duplicate, and new late rows still go
    in (moving rows again) without breaking either."""
    case.mutate(copy, template)
    _verify_keyless(copy, monkeypatch)
    with AuditLog.open(copy, LOG, create=False, passphrase=TEST_PASSPHRASE,
                       clock=lambda: T0 + timedelta(days=42)) as log:
        receipt = log.append(template.v4_event)
        assert (receipt.index, receipt.duplicate) == (template.v4_index, True)
        fresh = [{"id": str(uuid.uuid4()), "actor": {"id": "late"}, "action": "doc.read",
                  "outcome": "success"} for _ in range(3000)]
        first = log.append_many(fresh)
        again = log.append_many(fresh)
        assert [r.index for r in again] == [r.index for r in first]
        assert all(r.duplicate for r in again)
        log.verify()


def test_every_table_in_the_schema_has_a_case(copy: Path) -> None:
    """A new table without a tamper case fails here."""
    assert {c.table for c in CASES + HARMLESS} == tables(copy)
    assert len({(c.table, c.attack) for c in CASES}) == len(CASES)


@pytest.mark.parametrize("edit_sql", [
    "UPDATE exact_ids SET level = 0.5",
    "UPDATE exact_ids SET level = 'x'",
    "UPDATE exact_id_levels SET rows = 'x', cursor = 7",
])
def test_odd_values_in_the_layout_neither_hang_nor_crash(edit_sql: str, copy: Path,
                                                         template: Template,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """Where a row sits is layout: an edited level or counter of another type is read as it is
    (never an endless walk, never a crash), the log verifies and retries are still answered."""
    with edit(copy) as db:
        run(db, edit_sql)
    _verify_keyless(copy, monkeypatch)
    with AuditLog.open(copy, LOG, create=False, passphrase=TEST_PASSPHRASE,
                       clock=lambda: T0 + timedelta(days=42)) as log:
        receipt = log.append(template.v4_event)
        assert (receipt.index, receipt.duplicate) == (template.v4_index, True)
        fresh = [{"id": str(uuid.uuid4()), "actor": {"id": "late"}, "action": "doc.read",
                  "outcome": "success"} for _ in range(2000)]
        log.append_many(fresh)
        assert all(r.duplicate for r in log.append_many(fresh))


def test_an_exact_row_index_edited_to_text_is_tampering(copy: Path, template: Template,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    with edit(copy) as db:
        run(db, "UPDATE exact_ids SET idx = 'x' WHERE id = ?", _id_bytes(template.v4_event))
    with pytest.raises(TamperError):
        _verify_keyless(copy, monkeypatch)
