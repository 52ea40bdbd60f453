"""An exact id-index row edited to point a new event's id at an entry whose body retention
purged must not make the engine answer "already stored" and drop the event: the chunk's own
id column, which verify holds to the entries, is checked too."""

from __future__ import annotations

import sqlite3
import uuid
from contextlib import closing
from datetime import timedelta
from pathlib import Path

import pytest
from tests.compliance.conftest import T0, Clock

from sealtrail import AuditLog
from sealtrail.core.errors import TamperError
from sealtrail.log.retention import RetentionPolicy, apply_purge

EVENT = {"actor": {"id": "u1"}, "action": "user.login", "outcome": "success",
         "category": "authentication"}


def test_a_forged_index_row_to_a_purged_entry_is_refused(tmp_path: Path) -> None:
    """The retried-looking append fails as tampering; nothing is dropped as a duplicate."""
    clock = Clock(T0)
    with AuditLog.open(tmp_path, clock=clock, encryption=False) as log:
        log.append_many([EVENT] * 3)
        clock.now = T0 + timedelta(days=400)
        log.append(EVENT)
        plan, receipt = apply_purge(log, RetentionPolicy.parse({"default": {"max": "365d"}}),
                                    actor={"id": "ops"})
        assert receipt is not None
        assert plan.count == 3
        assert log.entry(0).retired
        size = log.size
    fresh = uuid.uuid4()
    with closing(sqlite3.connect(tmp_path / "default" / "log.db")) as db, db:
        db.execute("INSERT INTO exact_ids VALUES (0, ?, 0)", (fresh.bytes,))
    with AuditLog.open(tmp_path, clock=clock, encryption=False) as log:
        with pytest.raises(TamperError, match="id index disagrees"):
            log.append({**EVENT, "id": str(fresh)})
        assert log.size == size
