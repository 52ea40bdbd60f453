"""Shared parts of the review workflow tests: a log on a clock the test moves, the real
monitor over it (the built-in rules), and the events that make its alerts."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from sealtrail.log.auditlog import AuditLog
from sealtrail.monitor.alerts import AlertStore, monitor_db_path
from sealtrail.monitor.builtin import builtin_rules
from sealtrail.monitor.runner import Monitor

# Day 1 of the tests: 2026-11-02, 09:00 UTC.
T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


class Clock:
    """A clock the test moves (``clock.now = ...``)."""

    def __init__(self, start: datetime = T0) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now


def failures(n: int, actor: str = "mallory") -> list[dict[str, Any]]:
    """``n`` failed logins by ``actor`` (the brute-force rule fires at 5 in 5 minutes)."""
    return [{"action": "user.login", "actor": {"id": actor}, "outcome": "failure",
             "category": "authentication", "source": {"service": "web"}} for _ in range(n)]


def activity() -> list[dict[str, Any]]:
    """A day's ordinary security events: logins, a denial, a configuration change."""
    return [
        {"action": "user.login", "actor": {"id": "alice"}, "outcome": "success",
         "category": "authentication", "source": {"service": "web"}},
        {"action": "invoice.read", "actor": {"id": "alice"}, "outcome": "denied",
         "category": "authorization", "source": {"service": "web"}},
        {"action": "settings.update", "actor": {"id": "bob"}, "outcome": "success",
         "category": "configuration", "source": {"service": "web"}},
    ]


@pytest.fixture
def clock() -> Clock:
    """A fresh clock at :data:`T0`."""
    return Clock()


@pytest.fixture
def alog(tmp_path: Path, clock: Clock) -> Iterator[AuditLog]:
    """The default log of ``tmp_path`` on the test's clock."""
    log = AuditLog.open(tmp_path, clock=clock)
    try:
        yield log
    finally:
        log.close()


@pytest.fixture
def monitor(tmp_path: Path, alog: AuditLog, clock: Clock) -> Iterator[Monitor]:
    """The real monitor with the built-in rules over ``alog`` (stepped by the test)."""
    m = Monitor(tmp_path, lambda: [("default", alog)], builtin_rules(),
                AlertStore(monitor_db_path(tmp_path)), clock=clock)
    try:
        yield m
    finally:
        m.store.close()
