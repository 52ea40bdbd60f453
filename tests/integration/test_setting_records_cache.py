"""Irreversible steps check the stored settings against the log's own setting entries; the
entries are read incrementally, so an erasure does not read the whole log each time, and an
edit made after the last check is still found."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from sealtrail import AuditLog
from sealtrail.core.errors import TamperError
from sealtrail.log import auditlog, verify

DPO = {"id": "dpo"}


def _events(n: int) -> list[dict[str, Any]]:
    return [{"actor": {"id": f"u{i}"}, "action": "rec.read", "outcome": "success",
             "subjects": [f"patient-{i % 5}"]} for i in range(n)]


def test_a_second_erasure_reads_only_the_new_entries(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    starts: list[int] = []
    real = verify.setting_records

    def spy(store: Any, size: int, start: int = 0) -> list[Any]:
        starts.append(start)
        return real(store, size, start)
    monkeypatch.setattr(auditlog, "setting_records", spy)
    with AuditLog.open(tmp_path) as log:
        log.append_many(_events(50))
        checked = log.size  # what the first erasure's check reads (before its own record)
        log.erase_subject("patient-1", reason="request 1", actor=DPO)
        log.append_many(_events(20))
        log.erase_subject("patient-2", reason="request 2", actor=DPO)
    assert starts[0] == 0
    assert starts[-1] == checked  # from where the first check stopped, not the whole log


def test_a_holds_table_edit_after_a_check_is_still_found(tmp_path: Path) -> None:
    with AuditLog.open(tmp_path) as log:
        log.append_many(_events(10))
        log.hold_subject("patient-3", reason="litigation 4", actor=DPO)
        log.erase_subject("patient-1", reason="request 1", actor=DPO)  # checks: records cached
        with closing(sqlite3.connect(next(tmp_path.rglob("log.db")))) as con:
            con.execute("DELETE FROM holds")
            con.commit()
        with pytest.raises(TamperError):
            log.erase_subject("patient-3", reason="request 2", actor=DPO)
        assert log.read(log.entry(3))["subjects"] == ["patient-3"]  # not erased
