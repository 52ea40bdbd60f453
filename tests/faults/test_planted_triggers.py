"""Code planted in the SQLite file: a trigger that silently discards the rows a commit writes.

Someone with the file but not the key cannot forge entries, but can leave a ``BEFORE INSERT``
trigger that answers ``RAISE(IGNORE)``: the statement succeeds and the row is not stored. The
store refuses such a commit (fewer rows written than given), so nothing is acknowledged that
was not stored; ``verify`` would name the loss only later.
"""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

import pytest

from sealtrail import AuditLog
from sealtrail.core.errors import StorageError


@pytest.mark.parametrize("table", ["chunks", "nodes", "checkpoints", "subject_keys"])
def test_a_trigger_discarding_inserts_refuses_the_commit(tmp_path: Path, table: str) -> None:
    """Entries, tree blocks, kept checkpoints and new subject keys: every row must land."""
    with AuditLog.open(tmp_path) as log:
        log.append({"actor": {"id": "a"}, "action": "doc.read", "outcome": "success"})
    with closing(sqlite3.connect(tmp_path / "default" / "log.db")) as db:
        db.execute(f"CREATE TRIGGER planted BEFORE INSERT ON {table} "
                   "BEGIN SELECT RAISE(IGNORE); END")
        db.commit()
    events = [{"actor": {"id": f"u{i}", "name": "Someone"}, "action": "doc.read",
               "outcome": "success", "subjects": [f"patient-{i}"]} for i in range(1100)]
    with AuditLog.open(tmp_path) as log:
        with pytest.raises(StorageError, match=f"{table}: 0 of"):
            log.append_many(events)  # past the next kept checkpoint (1024)
        assert log.size == 1
    with closing(sqlite3.connect(tmp_path / "default" / "log.db")) as db:
        db.execute("DROP TRIGGER planted")
        db.commit()
    with AuditLog.open(tmp_path) as log:
        assert log.verify().size == 1
