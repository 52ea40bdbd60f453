"""The engine's verification of a log's files as an auditor gets them (log/copyverify.py): read
only, with the key the auditor trusts, against and into this machine's head memory."""

from __future__ import annotations

from pathlib import Path

import pytest

from sealtrail import AuditLog
from sealtrail.core.errors import ConfigError, VerificationError
from sealtrail.core.note import Verifier
from sealtrail.log.copyverify import KeyMismatchError, verify_copy
from sealtrail.log.headmemory import STATE_DIR_ENV


def _log(data: Path, n: int = 5) -> Verifier:
    """A log of ``n`` events in ``data``; its key."""
    with AuditLog.open(data, encryption=False) as log:
        log.append_many([{"action": "doc.read", "actor": {"id": f"u{i}"}, "outcome": "success"}
                         for i in range(n)])
        return log.verifier


def _auditor(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """From now on, head memories are kept apart from the logs, as on the machine of an
    auditor verifying a copy (which has seen no head of it yet)."""
    monkeypatch.setenv(STATE_DIR_ENV, str(tmp_path / "state"))
    return tmp_path / "state"


def test_a_copy_verifies_without_being_written_and_its_head_is_remembered(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The database is not changed; the size comes before the work; the verified head is
    remembered, and the next verification finds it."""
    data = tmp_path / "data"
    _log(data)
    state = _auditor(tmp_path, monkeypatch)
    db = data / "default" / "log.db"
    before = db.read_bytes()
    calls: list[tuple[str, int]] = []
    result = verify_copy(data, size=lambda n: calls.append(("size", n)),
                         progress=lambda done, _: calls.append(("progress", done)))
    assert result.report.size == 5
    assert calls[0] == ("size", 5)
    assert not result.had_memory
    assert result.memory_path.parent == state
    assert result.memory_path.exists()
    assert db.read_bytes() == before
    assert verify_copy(data).had_memory


def test_another_logs_key_verifies_nothing(tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """A key of the same name but of another log: KeyMismatchError (the CLI's exit 3), a
    verification failure, raised before anything is verified or remembered."""
    data = tmp_path / "data"
    _log(data)
    other = _log(tmp_path / "other", n=1)
    state = _auditor(tmp_path, monkeypatch)
    with pytest.raises(KeyMismatchError, match="no checkpoint of this log") as err:
        verify_copy(data, verifier=other)
    assert isinstance(err.value, VerificationError)
    assert err.value.exit_code == 3
    assert not state.exists()


def test_the_trusted_key_verifies_when_no_key_is_stored(tmp_path: Path) -> None:
    """With the stored key gone the given key's signatures decide; without either, the log
    cannot be verified (ConfigError)."""
    data = tmp_path / "data"
    key = _log(data)
    (data / "default" / "verifier.vkey").unlink()
    assert verify_copy(data, verifier=key).report.size == 5
    with pytest.raises(ConfigError, match="verifier key"):
        verify_copy(data)


def test_no_such_log_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no log 'nope'"):
        verify_copy(tmp_path, "nope")
