"""An archived segment put back by hand (bodies copied from the file's plaintext, or from a
backup) with its ``retired`` row deleted, instead of through ``archive restore``.

No ``retention.restore`` receipt brings the range back, so replaying the receipts leaves it
archived: ``verify`` names the first entry.
"""

from __future__ import annotations

import sqlite3
from contextlib import closing
from datetime import timedelta
from pathlib import Path

import pytest
from tests.compliance.conftest import T0, Clock
from tests.conftest import TEST_PASSPHRASE

from sealtrail import AuditLog
from sealtrail.core.errors import TamperError
from sealtrail.log.archive import archive
from sealtrail.log.retention import RetentionPolicy

OPS = {"id": "ops-1"}
POLICY = RetentionPolicy.parse({"name": "t", "default": {"min": "300d", "online": "60d"}})




def _chunks(db: Path) -> dict[int, bytes]:
    with closing(sqlite3.connect(db)) as con:
        return {int(s): bytes(d) for s, d in con.execute("SELECT start, data FROM chunks")}


def test_an_archive_undone_by_hand_is_named(tmp_path: Path) -> None:
    data = tmp_path / "data"
    clock = Clock()
    with AuditLog.open(data, passphrase=TEST_PASSPHRASE, clock=clock) as log:
        for day in range(0, 100, 5):
            clock.now = T0 + timedelta(days=day)
            log.append_many([{"action": "doc.read", "actor": {"id": f"a-{day}-{i}"},
                              "outcome": "success", "category": "data_access"}
                             for i in range(8)])
    db = next(data.rglob("log.db"))
    backup = _chunks(db)
    with AuditLog.open(data, passphrase=TEST_PASSPHRASE, clock=clock) as log:
        clock.now = T0 + timedelta(days=130)
        segments = archive(log, POLICY, actor=OPS)
        seg, receipt = segments[1]
        log.verify()
    with closing(sqlite3.connect(db)) as con:
        starts = [s for s in backup if seg.start <= s < seg.end]
        con.executemany("UPDATE chunks SET data = ? WHERE start = ?",
                        [(backup[s], s) for s in starts])
        con.execute("DELETE FROM retired WHERE start = ?", (seg.start,))
        con.commit()
    with AuditLog.open(data, passphrase=TEST_PASSPHRASE, clock=clock) as log:
        with pytest.raises(TamperError) as err:
            log.verify()
        assert err.value.index == seg.start
        assert f"archived by receipt {receipt.index}" in str(err.value)
