"""A restored archive segment emptied again by hand, its ``retired`` row put back.

The segment's ``retention.restore`` receipt is in the log after its ``retention.archive``
receipt: replaying them in order leaves the range live, so ``verify`` names it although the
table, re-inserted with the archive receipt's own row, agrees with the archive receipt.
"""

from __future__ import annotations

import sqlite3
import struct
from contextlib import closing
from datetime import timedelta
from pathlib import Path

import pytest
from tests.compliance.conftest import T0, Clock
from tests.conftest import TEST_PASSPHRASE

from sealtrail import AuditLog
from sealtrail.core.errors import TamperError
from sealtrail.log.archive import archive, archive_dir, restore
from sealtrail.log.retention import RetentionPolicy

OPS = {"id": "ops-1"}
POLICY = RetentionPolicy.parse({"name": "t", "default": {"min": "300d", "online": "60d"}})




def _empty(db: Path, start: int, end: int) -> None:
    """Empty entries ``start..end-1`` in their chunks, as retention would (zero-length)."""
    with closing(sqlite3.connect(db)) as con:
        rows = con.execute("SELECT start, count, data FROM chunks WHERE start < ? "
                           "ORDER BY start", (end,)).fetchall()
        for cstart, count, data in rows:
            if cstart + count <= start:
                continue
            lens = struct.unpack_from(f"<{count}I", data)
            pos, leaves = 4 * count, []
            for n in lens:
                leaves.append(data[pos:pos + n])
                pos += n
            leaves = [b"" if start <= cstart + k < end else leaf
                      for k, leaf in enumerate(leaves)]
            new = struct.pack(f"<{count}I", *map(len, leaves)) + b"".join(leaves)
            con.execute("UPDATE chunks SET data = ? WHERE start = ?", (new, cstart))
        con.commit()


def test_a_restored_segment_emptied_again_is_named(tmp_path: Path) -> None:
    data = tmp_path / "data"
    clock = Clock()
    with AuditLog.open(data, passphrase=TEST_PASSPHRASE, clock=clock) as log:
        for day in range(0, 100, 5):
            clock.now = T0 + timedelta(days=day)
            log.append_many([{"action": "doc.read", "actor": {"id": f"a-{day}-{i}",
                                                            "ip": "192.0.2.9"},
                              "outcome": "success", "category": "data_access",
                              "subjects": [f"person-{i % 3}"]} for i in range(8)])
        clock.now = T0 + timedelta(days=130)
        done = archive(log, POLICY, actor=OPS)
        seg, archived = done[0]
        files = sorted(archive_dir(log).iterdir())
        restored = restore(log, files[0], actor=OPS)
        log.verify()
    db = next(data.rglob("log.db"))
    _empty(db, seg.start, seg.end)
    with closing(sqlite3.connect(db)) as con:
        con.execute("INSERT INTO retired VALUES (?, ?, ?, 'archive')",
                    (seg.start, seg.end, archived.index))
        con.commit()
    with AuditLog.open(data, passphrase=TEST_PASSPHRASE, clock=clock) as log, \
            pytest.raises(TamperError) as err:
        log.verify()
    assert err.value.index == seg.start
    assert f"restore receipt {restored.index}" in str(err.value)


def test_a_restored_segment_emptied_without_a_row_is_named(tmp_path: Path) -> None:
    data = tmp_path / "data"
    clock = Clock()
    with AuditLog.open(data, passphrase=TEST_PASSPHRASE, clock=clock) as log:
        for day in range(0, 100, 5):
            clock.now = T0 + timedelta(days=day)
            log.append_many([{"action": "doc.read", "actor": {"id": f"a-{day}-{i}"},
                              "outcome": "success", "category": "data_access"}
                             for i in range(8)])
        clock.now = T0 + timedelta(days=130)
        seg, _ = archive(log, POLICY, actor=OPS)[1]
        restore(log, archive_dir(log) / seg.name, actor=OPS)
    _empty(next(data.rglob("log.db")), seg.start + 2, seg.start + 3)
    with AuditLog.open(data, passphrase=TEST_PASSPHRASE, clock=clock) as log, \
            pytest.raises(TamperError) as err:
        log.verify()
    assert err.value.index == seg.start + 2
