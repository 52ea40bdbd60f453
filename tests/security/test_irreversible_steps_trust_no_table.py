"""Irreversible steps check the settings against the log first (review of issue 11).

``verify`` finds an edited holds table or retention policy, but only after a purge or an
erasure has destroyed the evidence. So retention, archive and erasure replay the log's own
setting entries before they trust a stored copy; a restored older keyring is refused rather
than recorded as a rotation; ``settings adopt`` will not sign a downgrade; a head acceptance
moves the memory only once it is committed.
"""

from __future__ import annotations

import shutil
import sqlite3
from contextlib import closing
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from sealtrail.core.errors import ConfigError, TamperError
from sealtrail.log.auditlog import AuditLog
from sealtrail.log.headmemory import FILE
from sealtrail.log.keyring import KEYRING_FILE
from sealtrail.log.retention import RetentionPolicy, apply_purge, load_policy, set_policy
from tests.compliance.conftest import T0, Clock

OPS = {"id": "ops"}


def _sql(data: Path, *statements: str) -> None:
    with closing(sqlite3.connect(data / "default" / "log.db")) as db, db:
        for sql in statements:
            db.execute(sql)


def _logins(n: int, who: str) -> list[dict[str, object]]:
    return [{"actor": {"id": who}, "action": "user.login", "outcome": "success",
             "category": "authentication", "subjects": [who]} for _ in range(n)]


@pytest.fixture
def held(tmp_path: Path) -> tuple[Path, Clock]:
    """Logins of alice (held) and bob, a short retention policy, and a legal hold on alice."""
    clock = Clock()
    with AuditLog.open(tmp_path, clock=clock) as log:
        log.append_many(_logins(5, "alice") + _logins(5, "bob"))
        set_policy(log, RetentionPolicy.parse({"authentication": {"max": "2d"}}), actor=OPS)
        log.hold_subject("alice", reason="litigation", actor=OPS)
    clock.now = T0 + timedelta(days=10)
    return tmp_path, clock


def test_deleted_hold_row_does_not_let_retention_purge_held_events(
        held: tuple[Path, Clock]) -> None:
    data, clock = held
    _sql(data, "DELETE FROM holds")
    with AuditLog.open(data, create=False, clock=clock) as log:
        with pytest.raises(TamperError, match="legal holds"):
            apply_purge(log, RetentionPolicy.parse({"authentication": {"max": "2d"}}),
                        actor=OPS)
        assert not any(e.retired for e in log.entries(0))


def test_deleted_hold_and_its_blind_rows_do_not_unblock_erasure(held: tuple[Path, Clock]
                                                               ) -> None:
    data, clock = held
    _sql(data, "DELETE FROM holds", "DELETE FROM blind", "DELETE FROM blind_pending")
    with AuditLog.open(data, create=False, clock=clock) as log:
        with pytest.raises(TamperError, match="legal holds"):
            log.erase_subject("alice", reason="request", actor=OPS)
        assert log.read(log.entry(0))["subjects"] == ["alice"]  # the key is still there


def test_policy_pointed_back_at_an_older_genuine_entry_is_not_used(tmp_path: Path) -> None:
    clock = Clock()
    with AuditLog.open(tmp_path, clock=clock) as log:
        log.append_many(_logins(5, "carol"))
        short = set_policy(log, RetentionPolicy.parse({"authentication": {"max": "2d"}}),
                           actor=OPS)
        set_policy(log, RetentionPolicy.parse({"authentication": {"max": "7y"}}), actor=OPS)
    text = '{"authentication":{"max":"2d"},"name":"custom"}'
    _sql(tmp_path, f"UPDATE meta SET value = '{text}' WHERE key = 'retention_policy'",
         f"UPDATE meta SET value = '{short.index}' WHERE key = 'retention_policy_at'")
    clock.now = T0 + timedelta(days=10)
    with AuditLog.open(tmp_path, create=False, clock=clock) as log, \
            pytest.raises(TamperError, match="latest that set one"):
        load_policy(log)


def test_an_older_keyring_put_back_is_refused_not_recorded(tmp_path: Path) -> None:
    with AuditLog.open(tmp_path) as log:
        log.append({"actor": {"id": "a", "ip": "192.0.2.1"}, "action": "doc.read",
                    "outcome": "success"})
    ring = tmp_path / "default" / KEYRING_FILE
    old = tmp_path / "old-keyring.json"
    shutil.copy2(ring, old)
    with AuditLog.open(tmp_path, create=False) as log:
        assert log.rotate_keys(actor=OPS) == "d2"  # d1 retired (say, it leaked)
        size = log.size
    shutil.copy2(old, ring)
    with AuditLog.open(tmp_path, create=False) as log:
        assert log.size == size  # nothing recorded as a "rotation" back to d1
        with pytest.raises(TamperError, match="older copy"):
            log.append({"actor": {"id": "b", "ip": "192.0.2.2"}, "action": "doc.read",
                        "outcome": "success"})


def test_a_running_log_refuses_an_older_keyring_put_back_under_it(tmp_path: Path) -> None:
    with AuditLog.open(tmp_path) as log:
        log.append({"actor": {"id": "a"}, "action": "doc.read", "outcome": "success"})
    ring = tmp_path / "default" / KEYRING_FILE
    old = ring.read_bytes()
    with AuditLog.open(tmp_path, create=False) as service:
        service.rotate_keys(actor=OPS)
        ring.write_bytes(old)
        with pytest.raises(TamperError, match="went back"):
            service.append({"actor": {"id": "b", "ip": "192.0.2.2"}, "action": "doc.read",
                            "outcome": "success"})


def test_adopt_refuses_a_downgraded_table(tmp_path: Path) -> None:
    with AuditLog.open(tmp_path) as log:
        log.append({"actor": {"id": "a", "ip": "192.0.2.1"}, "action": "doc.read",
                    "outcome": "success"})
    _sql(tmp_path, "DELETE FROM meta WHERE key = 'settings'",
         "UPDATE meta SET value = 'off' WHERE key IN ('encryption', 'redaction')")
    with AuditLog.open(tmp_path, create=False) as log, pytest.raises(ConfigError,
                                                                      match="encrypted"):
        log.adopt_settings(reason="looks fine", actor=OPS)
    _sql(tmp_path, "UPDATE meta SET value = 'on' WHERE key = 'encryption'",
         "UPDATE meta SET value = 'metadata' WHERE key = 'policy'")
    with AuditLog.open(tmp_path, create=False) as log, pytest.raises(ConfigError,
                                                                      match=r"actor\.ip"):
        log.adopt_settings(reason="looks fine", actor=OPS)


def test_accept_in_a_process_that_saw_the_larger_head_is_recorded(tmp_path: Path) -> None:
    """The process that knew the larger head can accept the smaller one; the memory moves
    only with the acceptance entry, and a fresh process then appends."""
    from tests.faults.test_rollback_to_older_signed_head import _roll_back

    with AuditLog.open(tmp_path) as log:
        log.append_many(_logins(3, "dan"))
        old = log.checkpoint().note
        log.append_many(_logins(4, "dan"))
        _roll_back(tmp_path / "default" / "log.db", 3, old)
        with pytest.raises(TamperError):
            log.append({"actor": {"id": "x"}, "action": "a.b", "outcome": "success"})
        receipt = log.accept_head(reason="restored the 02:00 backup", actor=OPS)
        assert receipt.index == 3
        log.append({"actor": {"id": "x"}, "action": "a.b", "outcome": "success"})
    assert (tmp_path / "default" / FILE).exists()
    with AuditLog.open(tmp_path, create=False) as log:
        assert log.read(log.entry(3))["action"] == "sealtrail.head.accept"
        log.verify()


def test_hold_rows_of_an_earlier_version_still_verify(tmp_path: Path) -> None:
    """A hold made before hold times were written into the entry: its row's time is a
    moment before the entry's commit time (simulated by moving the row's time back 1 ms)."""
    with AuditLog.open(tmp_path) as log:
        log.append_many(_logins(2, "erin"))
        log.hold_subject("erin", reason="case", actor=OPS)
    with closing(sqlite3.connect(tmp_path / "default" / "log.db")) as db, db:
        (created,) = db.execute("SELECT created FROM holds").fetchone()
        earlier = datetime.fromisoformat(created.replace("Z", "+00:00")) - timedelta(
            milliseconds=1)
        db.execute("UPDATE holds SET created = ?",
                   (earlier.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),))
    with AuditLog.open(tmp_path, create=False) as log:
        log.verify()
