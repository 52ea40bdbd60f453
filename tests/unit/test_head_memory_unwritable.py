"""A head memory that cannot be written (a read-only copy's directory) is a StorageError the
engine and the copy verifier report and go on from, never a crash of another type."""

from __future__ import annotations

from pathlib import Path

import pytest

from sealtrail.core.errors import StorageError
from sealtrail.log.auditlog import AuditLog
from sealtrail.log.headmemory import HeadMemory


def test_a_lock_that_cannot_be_created_is_a_storage_error(tmp_path: Path) -> None:
    """A lock file that cannot be created (its directory is a file) is a StorageError."""
    with AuditLog.open(tmp_path / "data", encryption=False) as log:
        log.append({"actor": {"id": "u"}, "action": "a.b", "outcome": "success"})
        note, size, verifier = log.checkpoint().note, log.size, log.verifier
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")
    memory = HeadMemory(blocker / "sub" / "head.memory", verifier, verifier.name)
    with pytest.raises(StorageError, match="head memory"):
        memory.remember(note, size, now=True)
