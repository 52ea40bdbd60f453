"""A subject key deleted by hand: the subject's events crypto-shredded with no erasure record.

Deleting a row of ``subject_keys`` is exactly what erasure does, so the tree cannot tell; but
a real erasure appends a ``subject.erase`` event (reserved to the engine) naming the key in
its sealed metadata. :func:`verify_derived` names the first entry sealed under a key that is
gone without one, and the erasure whose key came back from a backup.
"""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

import pytest
from tests.conftest import TEST_PASSPHRASE

from sealtrail import AuditLog
from sealtrail.core.errors import TamperError
from sealtrail.log.derived import verify_derived


def _build(data: Path) -> None:
    with AuditLog.open(data, passphrase=TEST_PASSPHRASE) as log:
        for i in range(30):
            log.append({"action": "record.read", "actor": {"id": f"dr-{i % 4}",
                                                          "ip": "203.0.113.9"},
                        "outcome": "success", "subjects": [f"patient-{i % 5}"],
                        "metadata": {"ward": "B"}})
        log.append({"action": "record.read", "actor": {"id": "dr-0"}, "outcome": "success",
                    "subjects": ["patient-1", "patient-2"]})
        log.erase_subject("patient-4", reason="GDPR request 12", actor={"id": "dpo"})
        report = verify_derived(log)
        assert report.erased_keys == 1
        assert report.subject_keys == 4


def _db(data: Path) -> Path:
    return next(data.rglob("log.db"))


def test_a_key_shredded_without_an_erasure_record_is_named(tmp_path: Path) -> None:
    data = tmp_path / "data"
    _build(data)
    with AuditLog.open(data, passphrase=TEST_PASSPHRASE) as log:
        ref = log.subject_ref("patient-2")
    with closing(sqlite3.connect(_db(data))) as con:
        assert con.execute("DELETE FROM subject_keys WHERE ref = ?", (ref,)).rowcount == 1
        con.commit()
    with AuditLog.open(data, passphrase=TEST_PASSPHRASE) as log:
        log.verify()  # no leaf changed
        assert "erased" in log.read(log.entry(2))  # patient-2's events are unreadable now
        with pytest.raises(TamperError) as err:
            verify_derived(log)
    assert err.value.index == 2  # the first event sealed under that key
    assert "crypto-shredded without an erasure record" in str(err.value)


def test_an_erased_key_put_back_is_named(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with AuditLog.open(data, passphrase=TEST_PASSPHRASE) as log:
        log.append({"action": "record.read", "actor": {"id": "dr-1"}, "outcome": "success",
                    "subjects": ["patient-9"]})
    with closing(sqlite3.connect(_db(data))) as con:
        backup = con.execute("SELECT kid, ref, wrapped FROM subject_keys").fetchall()
    with AuditLog.open(data, passphrase=TEST_PASSPHRASE) as log:
        erasure = log.erase_subject("patient-9", reason="request 3", actor={"id": "dpo"})
        verify_derived(log)
    with closing(sqlite3.connect(_db(data))) as con:
        con.executemany("INSERT INTO subject_keys VALUES (?, ?, ?)", backup)
        con.commit()
    with AuditLog.open(data, passphrase=TEST_PASSPHRASE) as log:
        assert log.read(log.entry(0))["subjects"] == ["patient-9"]  # readable again
        with pytest.raises(TamperError) as err:
            verify_derived(log)
    assert err.value.index == erasure.index
    assert "back in subject_keys" in str(err.value)
