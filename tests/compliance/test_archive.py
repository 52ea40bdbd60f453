"""Archive and restore: segments leave the database, proofs stay valid, and they come back.

The segment file is compressed and encrypted (nothing of an event readable in it), bound to
its log and range, and checked leaf by leaf against the tree when restored.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from sealtrail import AuditLog
from sealtrail.core.errors import ConfigError, DecryptionError, SealtrailError
from sealtrail.log.archive import (
    apply_retention,
    archive,
    archive_dir,
    plan_archive,
    restore,
)
from sealtrail.log.retention import RetentionPolicy
from tests.compliance.conftest import T0, Clock

OPS = {"id": "ops-1"}
POLICY = RetentionPolicy.parse({"name": "t", "default": {"min": "300d", "online": "60d"}})


@pytest.fixture
def alog(tmp_path: Path, clock: Clock) -> Iterator[AuditLog]:
    log = AuditLog.open(tmp_path / "data", clock=clock)
    for d in range(0, 100, 5):
        clock.now = T0 + timedelta(days=d)
        log.append_many([{"action": "doc.read", "actor": {"id": f"archivist-{d}-{i}"},
                          "outcome": "success", "category": "data_access"} for i in range(20)])
    yield log
    log.close()


def test_archive_by_month_then_restore(alog: AuditLog, clock: Clock) -> None:
    old_cp = alog.checkpoint()
    clock.now = T0 + timedelta(days=130)
    segments = plan_archive(alog, POLICY)
    # Received before day 70: days 0..65 in 5-day steps -> Jan, Feb, Mar 2025.
    assert [s.month for s in segments] == ["2025-01", "2025-02", "2025-03"]
    assert sum(s.end - s.start for s in segments) == 14 * 20
    done = archive(alog, POLICY, actor=OPS)
    assert len(done) == 3
    files = sorted(archive_dir(alog).iterdir())
    assert len(files) == 3
    for f in files:
        assert f.stat().st_mode & 0o777 == 0o600
        assert b"archivist" not in f.read_bytes()
    report = alog.verify(old_cp.note)
    assert report.retired == 280
    assert alog.entry(0).retired
    alog.prove_inclusion(0).verify_signed(alog.verifier)
    # Restore one segment: it reads and verifies again; the others stay away.
    receipt = restore(alog, files[0], actor=OPS)
    assert alog.read(alog.entry(0))["actor"]["id"] == "archivist-0-0"
    assert alog.verify().retired == 280 - (segments[0].end - segments[0].start)
    assert alog.read(alog.entry(receipt.index))["action"] == "retention.restore"
    assert alog.find("actor.id", "archivist-0-0") == [0]
    with pytest.raises(ConfigError, match="not archived"):
        restore(alog, files[0], actor=OPS)


def test_a_segment_moved_or_altered_does_not_restore(alog: AuditLog, clock: Clock,
                                                     tmp_path: Path) -> None:
    clock.now = T0 + timedelta(days=130)
    archive(alog, POLICY, actor=OPS)
    files = sorted(archive_dir(alog).iterdir())
    bad = tmp_path / "bad.starc"
    data = bytearray(files[1].read_bytes())
    data[-40] ^= 1
    bad.write_bytes(bytes(data))
    with pytest.raises(DecryptionError):
        restore(alog, bad, actor=OPS)
    other = AuditLog.open(tmp_path / "other", clock=clock)
    with pytest.raises(SealtrailError):
        restore(other, files[1], actor=OPS)
    other.close()
    # A segment renamed to another range: the header binds the range, the tree the leaves.
    shutil.copy(files[1], tmp_path / "copy.starc")
    assert restore(alog, tmp_path / "copy.starc", actor=OPS).index > 0
    alog.verify()


def test_purge_after_archive_keeps_verifying(alog: AuditLog, clock: Clock) -> None:
    clock.now = T0 + timedelta(days=130)
    archive(alog, POLICY, actor=OPS)
    files = sorted(archive_dir(alog).iterdir())
    assert len(files) == 3
    clock.now = T0 + timedelta(days=500)
    policy = RetentionPolicy.parse({"default": {"min": "300d", "max": "400d", "online": "60d"}})
    result = apply_retention(alog, policy, actor=OPS)
    # Online entries past the maximum are purged; so are the archived segments (files gone).
    assert result.purged == 120
    assert [(s, e) for s, e, _ in result.archived_purged] == [
        (int(f.name[4:16]), int(f.name[17:29])) for f in files]
    assert not any(archive_dir(alog).glob("seg-*.starc"))
    assert alog.verify().retired == 400
    assert {k for _, _, _, k in alog.store.retired()} == {"purge"}


def test_holds_keep_archived_segments_and_do_not_stop_archiving(alog: AuditLog,
                                                                clock: Clock) -> None:
    alog.append({"action": "chart.read", "actor": {"id": "dr-who"}, "outcome": "success",
                 "category": "data_access", "subjects": ["patient-7"]})
    alog.hold_subject("unrelated-person", reason="matter 1", actor=OPS)
    clock.now = T0 + timedelta(days=130)
    assert archive(alog, POLICY, actor=OPS)  # an unrelated hold does not stop archiving
    alog.hold_subject("patient-7", reason="matter 2", actor=OPS)
    clock.now = T0 + timedelta(days=900)
    policy = RetentionPolicy.parse({"default": {"min": "300d", "max": "400d", "online": "60d"}})
    result = apply_retention(alog, policy, actor=OPS)
    held = list(archive_dir(alog).glob("seg-*.starc"))
    # The segment holding patient-7's event stays archived; the others are purged.
    assert len(held) == 1
    assert result.archived_purged
    alog.verify()
