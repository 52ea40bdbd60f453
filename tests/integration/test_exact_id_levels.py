"""The exact id index under load and over time: its levels, the filter in front of it, the
upgrade from one table, and other processes appending between our lookups.

Exact rows hold ids dated well before their commit and ids that are not UUIDv7
(log/idindex.py). They are kept on levels that rows move down as each fills
(store/sqlite.py ``put_other_ids``), behind an in-memory filter (log/idfilter.py); none of
that may ever make a retry look new.
"""

from __future__ import annotations

import sqlite3
import uuid
from contextlib import closing
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from sealtrail.log.auditlog import AuditLog
from sealtrail.log.idfilter import ExactIdFilter
from sealtrail.store.sqlite import SQLiteStore


def _events(n: int) -> list[dict[str, object]]:
    return [{"id": str(uuid.uuid4()), "actor": {"id": "importer"}, "action": "cloud.call",
             "outcome": "success"} for _ in range(n)]


def _db(data: Path) -> sqlite3.Connection:
    return sqlite3.connect(data / "default" / "log.db")


def test_rows_move_down_levels_and_every_level_answers_retries(tmp_path: Path) -> None:
    events = _events(30_000)
    with AuditLog.open(tmp_path, encryption=False) as log:
        receipts = [r for k in range(0, len(events), 1000)
                    for r in log.append_many(events[k:k + 1000])]
    with closing(_db(tmp_path)) as db:
        levels = dict(db.execute("SELECT level, count(*) FROM exact_ids GROUP BY level"))
        counted = dict(db.execute("SELECT level, rows FROM exact_id_levels"))
    assert sum(levels.values()) == 30_000
    assert levels.get(1, 0) > 0
    assert levels[0] <= 8192 + 1024  # level 0 stays small
    assert {k: v for k, v in counted.items() if v} == levels  # the counters kept pace
    with AuditLog.open(tmp_path, create=False) as log:  # a new process: the filter is built
        again = log.append_many(events[::7] + events[-5:])
        assert all(r.duplicate for r in again)
        by_id = {r.id: r.index for r in receipts}
        assert all(by_id[r.id] == r.index for r in again)
        assert log.size == 30_000
        log.verify()


def test_ids_another_process_appended_are_found_through_the_filter(tmp_path: Path) -> None:
    """Two handles on one log (two processes, as far as the log can tell): the first built
    its filter before the second appended; a retry of the second's events through the first
    is a duplicate, and so the other way round."""
    with AuditLog.open(tmp_path, encryption=False) as first, \
            AuditLog.open(tmp_path, create=False) as second:
        first.append_many(_events(2000))  # builds and fills first's filter
        theirs = _events(1500)
        placed = second.append_many(theirs)
        ours = _events(700)
        mine = first.append_many(ours)
        again = first.append_many(theirs[::3])
        assert all(r.duplicate for r in again)
        assert [r.index for r in again] == [r.index for r in placed[::3]]
        back = second.append_many(ours)
        assert [r.index for r in back] == [r.index for r in mine]
        assert all(r.duplicate for r in back)
        assert first.size == second.size == 4200


def _to_schema_1(data: Path) -> None:
    """Lay the exact rows out as schema 1 did: one table, no levels."""
    with closing(_db(data)) as db, db:
        db.execute("CREATE TABLE other_ids(id BLOB PRIMARY KEY, idx INTEGER NOT NULL) "
                   "WITHOUT ROWID")
        db.execute("INSERT INTO other_ids SELECT id, idx FROM exact_ids")
        db.execute("DROP TABLE exact_ids")
        db.execute("DROP TABLE exact_id_levels")
        db.execute("UPDATE meta SET value = '1' WHERE key = 'schema'")


def test_a_schema_1_log_is_read_as_it_is_and_upgraded_when_written(tmp_path: Path) -> None:
    events = _events(12_000)
    with AuditLog.open(tmp_path, encryption=False) as log:
        receipts = log.append_many(events)
    _to_schema_1(tmp_path)
    # Read-only (verify's worker processes): the one table is read where it is.
    store = SQLiteStore(tmp_path / "default" / "log.db", readonly=True)
    try:
        assert sum(1 for _ in store.iter_other_ids()) == 12_000
        wanted = [uuid.UUID(str(e["id"])).bytes for e in events[:50]]
        assert store.find_other_ids(wanted) == {
            w: r.index for w, r in zip(wanted, receipts[:50], strict=True)}
    finally:
        store.close()
    with closing(_db(tmp_path)) as db:
        assert db.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()[0] == "1"
    with AuditLog.open(tmp_path, create=False) as log:
        again = log.append_many(events[::5])
        assert [r.index for r in again] == [r.index for r in receipts[::5]]
        assert all(r.duplicate for r in again)
        log.append_many(_events(100))
        log.verify()
    with closing(_db(tmp_path)) as db:
        names = {r[0] for r in db.execute("SELECT name FROM sqlite_master")}
        assert "other_ids" not in names
        assert db.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()[0] == "2"
        assert db.execute("SELECT count(*) FROM exact_ids").fetchone()[0] == 12_100


@settings(max_examples=40, deadline=None)
@given(held=st.sets(st.binary(min_size=16, max_size=16), max_size=300),
       asked=st.lists(st.binary(min_size=16, max_size=16), max_size=200),
       split=st.integers(min_value=0, max_value=300))
def test_the_filter_never_says_no_to_an_id_it_holds(held: set[bytes], asked: list[bytes],
                                                    split: int) -> None:
    ids = sorted(held)
    flt = ExactIdFilter(0, ids[:split])
    flt.add_all(ids[split:])
    assert flt.maybe_held(ids) == ids
    maybe = flt.maybe_held(asked)
    assert set(maybe) >= held & set(asked)


def test_the_filter_grows_in_parts_and_stays_selective() -> None:
    import os

    flt = ExactIdFilter(0, (os.urandom(16) for _ in range(200_000)))
    assert flt.nbytes <= 5 * 200_000  # 2 bytes a row of room, parts doubling
    strangers = [os.urandom(16) for _ in range(20_000)]
    assert len(flt.maybe_held(strangers)) < 0.05 * len(strangers)
