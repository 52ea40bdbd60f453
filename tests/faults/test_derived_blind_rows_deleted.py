"""Blind-index rows deleted by hand: searches and subject exports silently miss entries.

The blind index is derived from the sealed events, so only the keyring can rebuild it:
:func:`verify_derived` does, and names the entry whose row is gone, both in the sorted table
(``blind``, segments already folded) and in the packed per-commit rows (``blind_pending``).
Erasure deletes rows too, and those must not be reported.
"""

from __future__ import annotations

import sqlite3
import struct
from contextlib import closing
from pathlib import Path

import pytest
from tests.conftest import TEST_PASSPHRASE

from sealtrail import AuditLog
from sealtrail.core.errors import TamperError
from sealtrail.log.derived import verify_derived

FOLDED = 4096 + 40  # past the first segment boundary: segment 0's rows are in ``blind``


def _build(data: Path) -> None:
    with AuditLog.open(data, passphrase=TEST_PASSPHRASE) as log:
        log.append_many([{"action": "chart.read", "actor": {"id": f"nurse-{i % 50}",
                                                          "ip": f"192.0.2.{i % 200}"},
                          "outcome": "success", "target": {"type": "chart", "id": f"c-{i}"},
                          "subjects": [f"patient-{i % 7}"]} for i in range(FOLDED)])
        log.append({"action": "chart.read", "actor": {"id": "nurse-x"}, "outcome": "success",
                    "subjects": ["patient-erased", "patient-1"]})
        log.erase_subject("patient-erased", reason="GDPR request 7", actor={"id": "dpo"})
        assert verify_derived(log).entries == log.size


def _db(data: Path) -> Path:
    return next(data.rglob("log.db"))


def test_a_deleted_folded_row_is_named(tmp_path: Path) -> None:
    data = tmp_path / "data"
    _build(data)
    with closing(sqlite3.connect(_db(data))) as con:
        assert con.execute("SELECT count(*) FROM blind WHERE idx = 1234").fetchone()[0] == 4
        con.execute("DELETE FROM blind WHERE idx = 1234 AND tok = (SELECT min(tok) FROM "
                    "blind WHERE idx = 1234)")
        con.commit()
    with AuditLog.open(data, passphrase=TEST_PASSPHRASE) as log:
        log.verify()  # the tree is intact: only the keyring sees this
        with pytest.raises(TamperError) as err:
            verify_derived(log)
    assert err.value.kind == "missing"
    assert err.value.index == 1234
    assert "blind-index row" in str(err.value)


def test_deleting_every_row_of_a_subject_is_named(tmp_path: Path) -> None:
    """The attack that empties a GDPR subject export: the subject's rows, all gone."""
    data = tmp_path / "data"
    _build(data)
    with AuditLog.open(data, passphrase=TEST_PASSPHRASE) as log:
        hits = log.find("subject", "patient-3")
        assert len(hits) == len(range(3, FOLDED, 7))
    first = min(hits)
    with closing(sqlite3.connect(_db(data))) as con:
        # The only token entries 3 and 10 share (other actor, address, target): the subject's.
        (tok,) = con.execute("SELECT tok FROM blind WHERE idx = ? INTERSECT "
                             "SELECT tok FROM blind WHERE idx = ?", (3, 10)).fetchone()
        con.execute("DELETE FROM blind WHERE tok = ?", (tok,))
        con.commit()
    with AuditLog.open(data, passphrase=TEST_PASSPHRASE) as log:
        assert len(log.find("subject", "patient-3")) < len(hits)  # the export shrank
        with pytest.raises(TamperError) as err:
            verify_derived(log)
    assert err.value.index == first


def test_a_deleted_pending_pair_is_named(tmp_path: Path) -> None:
    data = tmp_path / "data"
    _build(data)
    victim = FOLDED - 3
    with closing(sqlite3.connect(_db(data))) as con:
        rows = con.execute("SELECT start, data FROM blind_pending").fetchall()
        for start, blob in rows:
            flat = struct.unpack(f"<{len(blob) // 8}q", blob)
            pairs = list(zip(flat[0::2], flat[1::2], strict=True))
            kept = [p for p in pairs if p[1] != victim]
            if len(kept) != len(pairs):
                con.execute("UPDATE blind_pending SET data = ? WHERE start = ?",
                            (struct.pack(f"<{2 * len(kept)}q",
                                         *(x for p in kept for x in p)), start))
        con.commit()
    with AuditLog.open(data, passphrase=TEST_PASSPHRASE) as log, \
            pytest.raises(TamperError) as err:
        verify_derived(log)
    assert err.value.kind == "missing"
    assert err.value.index == victim
