"""The control: a log that went through everything the API does to derived tables and
retention receipts — subjects and addresses, an erasure (one subject of a two-subject event
too), a purge, archives, a restore, a purge of archived segments, appends with the keyring
locked — passes ``verify`` and :func:`verify_derived` untouched, so the fault tests beside
this one can fail only because of their attack.
"""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

import pytest
from tests.compliance.conftest import T0, Clock
from tests.conftest import TEST_PASSPHRASE

from sealtrail import AuditLog
from sealtrail.core.errors import KeyringError
from sealtrail.log.archive import apply_retention, archive_dir, restore
from sealtrail.log.derived import verify_derived
from sealtrail.log.receipts import check_retired, receipt_indexes
from sealtrail.log.retention import RetentionPolicy

OPS = {"id": "ops-1"}




def _events(day: int) -> list[dict[str, object]]:
    cats = ["authentication", "data_access", "data_access"]
    return [{"action": "chart.read", "actor": {"id": f"dr-{i % 4}", "ip": f"192.0.2.{i}"},
             "outcome": "success", "category": cats[i % 3],
             "target": {"type": "chart", "id": f"c-{day}-{i}"},
             "subjects": [f"patient-{i % 3}"] + (["patient-9"] if i == 4 else [])}
            for i in range(6)]


def _check(log: AuditLog) -> None:
    report = log.verify()
    # Verification's own receipt list (what verify.py collects per chunk) gives the same.
    found = [i for chunk in log.store.iter_chunks(0, log.size) for i in receipt_indexes(chunk)]
    emptied = [(e.index, e.index + 1) for e in log.entries(0) if e.retired]
    assert check_retired(log.store, emptied, log.size, found) == report.retired
    verify_derived(log)


def test_everything_the_api_does_verifies(tmp_path: Path) -> None:
    data = tmp_path / "data"
    clock = Clock()
    with AuditLog.open(data, passphrase=TEST_PASSPHRASE, clock=clock) as log:
        for day in range(0, 120, 6):
            clock.now = T0 + timedelta(days=day)
            log.append_many(_events(day))
        _check(log)
        log.erase_subject("patient-9", reason="GDPR request 1", actor={"id": "dpo"})
        _check(log)
        clock.now = T0 + timedelta(days=150)
        policy = RetentionPolicy.parse({"name": "p", "default": {"online": "60d"},
                                        "authentication": {"max": "100d", "online": "60d"}})
        result = apply_retention(log, policy, actor=OPS)
        assert result.purged
        assert result.archived
        _check(log)
        seg = result.archived[0][0]
        restore(log, archive_dir(log) / seg.name, actor=OPS)
        _check(log)
        log.erase_subject("patient-1", reason="GDPR request 2", actor={"id": "dpo"})
        report = verify_derived(log)
        assert report.erased_keys == 2
        assert report.unread > 0  # the purged entries
        clock.now = T0 + timedelta(days=400)
        later = RetentionPolicy.parse({"name": "p2", "default": {"max": "300d",
                                                                 "online": "60d"}})
        assert apply_retention(log, later, actor=OPS).archived_purged
        _check(log)
        assert {k for _, _, _, k in log.store.retired()} >= {"purge"}


@pytest.mark.usefixtures("passphrase_env")
def test_appends_with_the_keyring_locked_verify_until_and_after_indexing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = tmp_path / "data"
    with AuditLog.open(data, passphrase=TEST_PASSPHRASE) as log:
        log.append({"action": "a", "actor": {"id": "u1", "ip": "192.0.2.1"},
                    "outcome": "success", "subjects": ["p"]})
    monkeypatch.delenv("SEALTRAIL_PASSPHRASE")
    assert "SEALTRAIL_PASSPHRASE" not in os.environ
    with AuditLog.open(data) as locked:
        locked.append({"action": "b", "actor": {"id": "u2"}, "outcome": "success"})
        with pytest.raises(KeyringError):
            verify_derived(locked)
    with AuditLog.open(data, passphrase=TEST_PASSPHRASE) as log:
        assert verify_derived(log).entries == 2  # not indexed yet: no rows expected
        assert log.find("actor.id", "u2") == [1]  # indexes them
        assert verify_derived(log).entries == 2


def test_an_unencrypted_log_has_no_derived_tables(tmp_path: Path) -> None:
    with AuditLog.open(tmp_path / "data", encryption=False) as log:
        log.append({"action": "a", "actor": {"id": "u1"}, "outcome": "success"})
        assert verify_derived(log).entries == 0
