"""Exactly-once for ids dated well before their commit (imports, backfills, a spool delivered
after an outage): they get exact id-index rows (log/idindex.py, version 2), so a retry is
found by a point lookup — after a restart too — and verify rebuilds the same rows."""

from __future__ import annotations

import os
import random
import sqlite3
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path

from sealtrail.core.uuid7 import uuid7_texts
from sealtrail.log.auditlog import AuditLog
from sealtrail.log.idindex import LATE_MS

MONTH_MS = 30 * 86_400_000


def _late_events(n: int, seed: int) -> list[dict[str, object]]:
    now_ms = int(datetime.now(UTC).timestamp() * 1000)
    rng = random.Random(seed)
    out: list[dict[str, object]] = []
    for _ in range(n):
        text, _raw = uuid7_texts(now_ms - rng.randrange(MONTH_MS), os.urandom(10))[0]
        out.append({"id": text, "actor": {"id": "importer"}, "action": "cloud.call",
                    "outcome": "success"})
    return out


def test_late_ids_get_exact_rows_and_retries_are_found_after_a_restart(tmp_path: Path
                                                                        ) -> None:
    events = _late_events(600, seed=1)
    with AuditLog.open(tmp_path, encryption=False) as log:
        receipts = log.append_many(events)
        assert not any(r.duplicate for r in receipts)
    with closing(sqlite3.connect(tmp_path / "default" / "log.db")) as db:
        exact = db.execute("SELECT count(*) FROM exact_ids").fetchone()[0]
        buckets = db.execute("SELECT count(*) FROM id_buckets").fetchone()[0]
    assert exact >= 590  # all but those within LATE_MS of their chunk's newest
    assert buckets < 50
    with AuditLog.open(tmp_path, create=False) as log:  # a fresh process: nothing in memory
        again = log.append_many(list(reversed(events)))
        assert all(r.duplicate for r in again)
        assert [r.index for r in reversed(again)] == [r.index for r in receipts]
        assert log.size == 600
        log.verify()


def test_fresh_ids_stay_bucketed(tmp_path: Path) -> None:
    with AuditLog.open(tmp_path, encryption=False) as log:
        log.append_many([{"actor": {"id": "a"}, "action": "a.b", "outcome": "success"}
                         for _ in range(500)])
    with closing(sqlite3.connect(tmp_path / "default" / "log.db")) as db:
        assert db.execute("SELECT count(*) FROM exact_ids").fetchone()[0] == 0
    assert LATE_MS >= 60_000


def test_a_log_made_with_the_first_rule_keeps_it(tmp_path: Path) -> None:
    """A log without the id-index version (made before) buckets every UUIDv7 id, and verify
    rebuilds it by that rule."""
    with AuditLog.open(tmp_path, encryption=False) as log:
        pass
    with closing(sqlite3.connect(tmp_path / "default" / "log.db")) as db, db:
        db.execute("DELETE FROM meta WHERE key = 'id_index'")
    events = _late_events(300, seed=2)
    with AuditLog.open(tmp_path, create=False) as log:
        log.append_many(events)
        log.verify()
    with closing(sqlite3.connect(tmp_path / "default" / "log.db")) as db:
        assert db.execute("SELECT count(*) FROM exact_ids").fetchone()[0] == 0
    with AuditLog.open(tmp_path, create=False) as log:
        assert all(r.duplicate for r in log.append_many(events))


def test_a_log_from_a_newer_sealtrail_is_read_but_not_written(tmp_path: Path) -> None:
    """An older sealtrail appending to a log whose id-index rules it does not know could store
    a retried event twice; a newer id-index version or schema refuses appends, reads work."""
    import pytest

    from sealtrail.core.errors import ConfigError

    with AuditLog.open(tmp_path, encryption=False) as log:
        log.append({"actor": {"id": "a"}, "action": "a.b", "outcome": "success"})
    with closing(sqlite3.connect(tmp_path / "default" / "log.db")) as db, db:
        db.execute("UPDATE meta SET value = '3' WHERE key = 'id_index'")
    with AuditLog.open(tmp_path, create=False) as log:
        with pytest.raises(ConfigError, match="newer sealtrail"):
            log.append({"actor": {"id": "b"}, "action": "a.b", "outcome": "success"})
        assert log.size == 1
