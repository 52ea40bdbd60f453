"""Reads recorded before content leaves, key scope from the global option, and key rotation
that commits with its record and that a running log follows (issue 11, findings 6, 7, 10)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from sealtrail.core.errors import StorageError
from sealtrail.log.apikeys import ApiKeys
from sealtrail.log.auditlog import AuditLog
from sealtrail.log.keyring import KEYRING_FILE, FileHome, Keyring
from tests.clirun import Ran, sealtrail

# The reader that closes the pipe needs a real process (its standard output a real pipe).
SEALTRAIL = [sys.executable, "-m", "sealtrail.cli"]


def _run(data: Path, *args: str) -> Ran[str]:
    return sealtrail("--data", data, *args, text=True)


@pytest.fixture
def data(tmp_path: Path) -> Path:
    with AuditLog.open(tmp_path) as log:
        log.append_many([{"actor": {"id": f"u{i}", "ip": "192.0.2.9"}, "action": "doc.read",
                          "outcome": "success", "subjects": ["s-1"]} for i in range(300)])
    return tmp_path


def _last(data: Path) -> dict[str, object]:
    with AuditLog.open(data, create=False) as log:
        return log.read(log.entry(log.size - 1))


@pytest.mark.parametrize("command", [["entries"], ["subject-export", "s-1"]])
def test_reader_that_closes_the_pipe_is_still_on_record(data: Path, command: list[str]
                                                        ) -> None:
    """``sealtrail entries | head -1``: the read is recorded although the reader stopped."""
    proc = subprocess.Popen([*SEALTRAIL, "--data", str(data), *command],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    assert proc.stdout is not None
    first = proc.stdout.readline()
    proc.stdout.close()
    proc.wait(60)
    assert json.loads(first)["index"] == 0
    last = _last(data)
    assert last["category"] == "audit_access"
    assert last["action"] in ("audit.entries.read", "audit.subject_export")
    meta = last["metadata"]
    assert isinstance(meta, dict)
    assert meta["role"] == "operator"


def test_a_read_that_cannot_be_recorded_is_not_served(data: Path) -> None:
    """With the database read-only, entries prints nothing (the record cannot be written)."""
    db = data / "default" / "log.db"
    with AuditLog.open(data, create=False) as log:
        size = log.size
    os.chmod(db, 0o400)
    os.chmod(db.parent, 0o500)
    try:
        if os.geteuid() == 0:
            # root ignores file modes: make the append fail another way (a trigger).
            os.chmod(db.parent, 0o700)
            os.chmod(db, 0o600)
            import sqlite3
            con = sqlite3.connect(db)
            with con:
                con.execute("CREATE TRIGGER no_more BEFORE INSERT ON chunks BEGIN "
                            "SELECT RAISE(ABORT, 'disk is full'); END")
            con.close()
        res = _run(data, "entries", "--start", "0", "--end", "5")
        assert res.returncode != 0
        assert res.stdout == ""
    finally:
        os.chmod(db.parent, 0o700)
        os.chmod(db, 0o600)
    with AuditLog.open(data, create=False) as log:
        assert log.size == size


def test_global_log_option_limits_a_new_key(tmp_path: Path) -> None:
    """``sealtrail --log default keys create --role reader`` made a key for every log."""
    with AuditLog.open(tmp_path, "default"):
        pass
    res = _run(tmp_path, "--log", "default", "keys", "create", "--role", "reader")
    assert res.returncode == 0, res.stderr
    keys = ApiKeys(tmp_path)
    try:
        (info,) = keys.listing()
    finally:
        keys.close()
    assert info.log == "default"


def test_rotation_cut_short_before_its_record_is_recorded_at_open(data: Path) -> None:
    """A crash between the keyring write and the commit leaves a new active key and no
    ``keys.rotate`` entry: the next open records it, and verify agrees afterwards."""
    with AuditLog.open(data, create=False) as log:
        keyring = log.keyring
        assert keyring is not None
        keyring.rotate("2026-12-02T00:00:00Z")  # the file is written; the "process dies"
        size = log.size
    with AuditLog.open(data, create=False) as log:
        ev = log.read(log.entry(size))
        assert ev["action"] == "keys.rotate"
        assert ev["target"]["id"] == "d2"
        assert "cut short" in ev["reason"]
        log.verify()


def test_running_log_follows_a_rotation_by_another_process(data: Path) -> None:
    """A service's open log seals under the new key once another process rotated."""
    with AuditLog.open(data, create=False) as service:
        with AuditLog.open(data, create=False) as cli:
            assert cli.rotate_keys(actor={"id": "ops"}) == "d2"
        receipt = service.append({"actor": {"id": "x", "ip": "192.0.2.1"},
                                  "action": "doc.read", "outcome": "success"})
        sealed = service.entry(receipt.index).event()["sealed"]
        assert sealed["ct"].startswith("d2:")
        service.verify()


def test_rotation_that_cannot_commit_keeps_its_key_and_is_recorded_later(data: Path) -> None:
    """The keyring is replaced inside the transaction that appends the record. When the
    commit fails (here: the chunks table refuses writes) the new key stays: another process
    may already have followed the keyring and sealed under it, and taking the key back would
    make those events unreadable. The rotation is recorded once a commit works again."""
    import sqlite3

    with AuditLog.open(data, create=False) as log, AuditLog.open(data, create=False) as other:
        con = sqlite3.connect(data / "default" / "log.db")
        with con:
            con.execute("CREATE TRIGGER no_more BEFORE INSERT ON chunks BEGIN "
                        "SELECT RAISE(ABORT, 'disk is full'); END")
        con.close()
        with pytest.raises(StorageError):
            log.rotate_keys(actor={"id": "ops"})
        assert Keyring.read(FileHome(data / "default" / KEYRING_FILE))["active"] == "d2"
        con = sqlite3.connect(data / "default" / "log.db")
        with con:
            con.execute("DROP TRIGGER no_more")
        con.close()
        # Another process seals under the key it finds, and that stays readable.
        receipt = other.append({"actor": {"id": "a", "name": "Ann"}, "action": "doc.read",
                                "outcome": "success"})
        assert other.entry(receipt.index).event()["sealed"]["ct"].startswith("d2:")
    with AuditLog.open(data, create=False) as log:  # the next open records the rotation
        recorded = [ev for ev in (e.event() for e in log.entries(0))
                    if ev["action"] == "keys.rotate"]
        assert [ev["target"]["id"] for ev in recorded] == ["d2"]
        assert log.read(log.entry(receipt.index))["actor"]["name"] == "Ann"
        log.verify()
        assert log.rotate_keys(actor={"id": "ops"}) == "d3"
