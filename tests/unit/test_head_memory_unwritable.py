"""A head memory that cannot be written (a read-only copy's directory) is a StorageError the
engine and the copy verifier report and go on from, never a crash of another type."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from sealtrail.core.errors import StorageError
from sealtrail.log.auditlog import AuditLog
from sealtrail.log.headmemory import HeadMemory, memory_path


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only directories")
def test_an_unwritable_memory_directory_is_a_storage_error(tmp_path: Path) -> None:
    """Remembering a head where the lock file cannot be made raises StorageError."""
    with AuditLog.open(tmp_path / "data", encryption=False) as log:
        log.append({"actor": {"id": "u"}, "action": "a.b", "outcome": "success"})
        note, size, verifier = log.checkpoint().note, log.size, log.verifier
    locked = tmp_path / "ro"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        memory = HeadMemory(memory_path(locked / "log", verifier.name), verifier,
                            verifier.name)
        with pytest.raises(StorageError, match="head memory"):
            memory.remember(note, size, now=True)
    finally:
        locked.chmod(0o700)


def test_a_lock_that_cannot_be_created_is_a_storage_error(tmp_path: Path) -> None:
    """Even as root: a lock path whose parent is a file cannot be created (StorageError)."""
    with AuditLog.open(tmp_path / "data", encryption=False) as log:
        log.append({"actor": {"id": "u"}, "action": "a.b", "outcome": "success"})
        note, size, verifier = log.checkpoint().note, log.size, log.verifier
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")
    memory = HeadMemory(blocker / "sub" / "head.memory", verifier, verifier.name)
    with pytest.raises(StorageError, match="head memory"):
        memory.remember(note, size, now=True)
