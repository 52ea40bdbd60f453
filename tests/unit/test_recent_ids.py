"""Finding retried event ids: memory for the newest entries, the store's indexes for the rest."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from sealtrail.core.uuid7 import make_uuid7
from sealtrail.log import dedupe
from sealtrail.log.auditlog import AuditLog
from sealtrail.log.recent_ids import RecentIds


def v7(ms: int, n: int) -> bytes:
    """A UUIDv7 with a given millisecond and a distinguishing counter."""
    return make_uuid7(ms, n.to_bytes(10, "big")).bytes


def test_floor_rises_as_old_ids_are_forgotten() -> None:
    """Evicted ids raise the floor, so an id above it is known absent without a lookup."""
    r = RecentIds(0, -1, capacity=3)
    r.extend(0, [v7(100, 1), v7(200, 2), v7(150, 3), v7(300, 4)])
    assert r.start == 1
    assert r.floor_ms == 100
    assert r.get(v7(200, 2)) == 1
    assert r.get(v7(100, 1)) is None
    assert not r.surely_absent(v7(100, 1))      # may be among the forgotten: look it up
    assert r.surely_absent(v7(101, 9))          # newer than everything forgotten
    assert not r.surely_absent(uuid.uuid4().bytes)  # no time in it: always look it up
    with pytest.raises(ValueError, match="do not follow"):
        r.extend(9, [v7(1, 1)])


@pytest.mark.parametrize("capacity", [1, 5, 100_000])
def test_retries_of_forgotten_ids_are_found_in_the_store(
        tmp_path: Path, capacity: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """With a tiny memory, retried UUIDv7 and UUIDv4 ids still return their original receipt."""
    monkeypatch.setattr(dedupe, "CAPACITY", capacity)
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    clock = [t0]
    with AuditLog.open(tmp_path, clock=lambda: clock[0]) as log:
        log._ids._recent = RecentIds(0, -1, capacity=capacity)
        sent = []
        for i in range(40):
            clock[0] = t0 + timedelta(seconds=3 * i)
            ident = str(uuid.uuid4()) if i % 4 == 0 else str(make_uuid7(
                int(clock[0].timestamp() * 1000) - (5000 if i % 3 else 0), i.to_bytes(10, "big")))
            ev = {"id": ident, "actor": {"id": "a"}, "action": "x.y", "outcome": "success"}
            sent.append((ev, log.append(ev)))
        for ev, first in sent:
            again = log.append(ev)
            assert again.duplicate
            assert (again.index, again.leaf_hash, again.checkpoint_size) == (
                first.index, first.leaf_hash, first.checkpoint_size)
        assert log.size == 40
        log.verify()


def test_another_process_appends_are_caught_up(tmp_path: Path) -> None:
    """Ids appended through another handle are remembered once this handle commits again."""
    with AuditLog.open(tmp_path) as a, AuditLog.open(tmp_path) as b:
        ra = a.append({"actor": {"id": "a"}, "action": "x.y", "outcome": "success"})
        rb = b.append({"actor": {"id": "b"}, "action": "x.y", "outcome": "success"})
        ev = {"id": ra.id, "actor": {"id": "a"}, "action": "x.y", "outcome": "success"}
        again = b.append(ev)
        assert again.duplicate
        assert again.index == ra.index
        assert b._ids._recent.get(uuid.UUID(rb.id).bytes) == rb.index
        assert b.size == 2
