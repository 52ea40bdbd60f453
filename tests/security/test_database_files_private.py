"""Database files are created 0600 whatever the umask (issue 11, finding 10): the log's
database and its WAL, and an existing group- or world-readable database is tightened."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from sealtrail.log.auditlog import AuditLog


@pytest.fixture
def loose_umask() -> Iterator[None]:
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.usefixtures("loose_umask")
def test_log_database_and_wal_are_private(tmp_path: Path) -> None:
    with AuditLog.open(tmp_path) as log:
        log.append({"actor": {"id": "a", "ip": "192.0.2.1"}, "action": "doc.read",
                    "outcome": "success"})
        files = sorted((tmp_path / "default").glob("log.db*"))
        assert {f.name for f in files} >= {"log.db", "log.db-wal"}
        for f in files:
            assert _mode(f) == 0o600, f.name
    assert _mode(tmp_path / "default") == 0o700


@pytest.mark.usefixtures("loose_umask")
def test_an_existing_readable_database_is_tightened(tmp_path: Path) -> None:
    with AuditLog.open(tmp_path) as log:
        log.append({"actor": {"id": "a"}, "action": "doc.read", "outcome": "success"})
    db = tmp_path / "default" / "log.db"
    os.chmod(db, 0o644)
    with AuditLog.open(tmp_path, create=False) as log:
        assert log.size == 1
    assert _mode(db) == 0o600
