"""Retention never empties entries the blind index has not reached.

A process whose keyring is locked appends (its entries wait past the index cursor: their
tokens need the keyring) and may still run retention. Archived or purged there, those
entries would have no body left for any later process to index: searches would miss them
and ``verify_derived`` would call the untampered log damaged. The engine refuses that
change; once a process with the keyring has indexed the entries, retention runs.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from tests.conftest import TEST_PASSPHRASE

from sealtrail import AuditLog
from sealtrail.core.errors import ConfigError
from sealtrail.log.archive import apply_retention
from sealtrail.log.derived import verify_derived
from sealtrail.log.retention import RetentionPolicy

T0 = datetime(2025, 1, 1, tzinfo=UTC)


class Clock:
    """A clock the test moves."""

    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


def test_a_locked_process_does_not_archive_entries_past_the_cursor(
        tmp_path: Path, passphrase_env: str, monkeypatch: pytest.MonkeyPatch) -> None:
    data = tmp_path / "data"
    clock = Clock()
    with AuditLog.open(data, passphrase=TEST_PASSPHRASE, clock=clock) as log:
        log.append({"action": "a", "actor": {"id": "u0"}, "outcome": "success"})
    monkeypatch.delenv("SEALTRAIL_PASSPHRASE", raising=False)
    policy = RetentionPolicy.parse({"name": "p", "default": {"online": "60d"}})
    with AuditLog.open(data, clock=clock) as locked:
        assert locked.locked_reason
        for day in range(0, 120, 6):
            clock.now = T0 + timedelta(days=day)
            locked.append_many([{"action": "chart.read", "actor": {"id": f"dr-{i}"},
                                 "outcome": "success", "category": "data_access"}
                                for i in range(6)])
        assert locked.index_status()["indexed"] == 1
        clock.now = T0 + timedelta(days=150)
        with pytest.raises(ConfigError, match="not blind-indexed yet"):
            apply_retention(locked, policy, actor={"id": "ops"})
    with AuditLog.open(data, passphrase=TEST_PASSPHRASE, clock=clock) as log:
        hits = log.find("actor.id", "dr-1")   # indexes everything first
        assert hits == sorted(range(2, log.size, 6), reverse=True)[:len(hits)]
        assert len(hits) == 20
        apply_retention(log, policy, actor={"id": "ops"})  # now it may
        verify_derived(log)
