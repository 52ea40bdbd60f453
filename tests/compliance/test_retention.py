"""Retention through time: purge keeps every leaf hash, so the tree and old proofs stay valid.

The log's clock is injected and moved forward; events of several categories age past their
maximums; legal holds keep what they cover; every way of faking a purge by hand is caught by
``verify``.
"""

from __future__ import annotations

import sqlite3
import struct
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from sealtrail import AuditLog
from sealtrail.core.errors import PolicyError, TamperError, ValidationError
from sealtrail.core.policy import FieldPolicy
from sealtrail.core.proofs import ConsistencyProof
from sealtrail.log.retention import (
    RetentionPolicy,
    apply_purge,
    load_policy,
    plan_purge,
    set_policy,
)
from tests.compliance.conftest import T0, Clock

OPS = {"id": "ops-1"}


@pytest.fixture
def alog(tmp_path: Path, clock: Clock) -> Iterator[AuditLog]:
    log = AuditLog.open(tmp_path, clock=clock)
    yield log
    log.close()


def _fill(alog: AuditLog, clock: Clock, days: int, per_day: int) -> None:
    cats = ["authentication", "data_access", "configuration"]
    for d in range(days):
        clock.now = T0 + timedelta(days=d)
        alog.append_many([{"action": f"a.{cats[i % 3]}", "actor": {"id": f"u{i}"},
                           "outcome": "success", "category": cats[i % 3],
                           "subjects": [f"person-{i % 5}"]}
                          for i in range(per_day)])


POLICY = RetentionPolicy.parse({"name": "test", "default": {"min": "10d"},
                                "authentication": {"min": "5d", "max": "20d"},
                                "data_access": {"max": "40d"}})


def test_policy_min_above_max_is_refused_naming_the_field() -> None:
    with pytest.raises(ValidationError) as err:
        RetentionPolicy.parse({"authentication": {"min": "400d", "max": "30d"}})
    assert err.value.field == "authentication.min"
    with pytest.raises(ValidationError) as err:
        RetentionPolicy.parse({"default": {"max": "30 days"}})
    assert err.value.field == "default.max"
    with pytest.raises(ValidationError) as err:
        RetentionPolicy.parse({"payments": {"max": "30d"}})
    assert err.value.field == "payments"


def test_purge_by_category_keeps_tree_proofs_and_old_checkpoints(alog: AuditLog,
                                                                 clock: Clock) -> None:
    _fill(alog, clock, days=30, per_day=9)
    set_policy(alog, POLICY, actor=OPS)
    assert load_policy(alog) == POLICY
    old_cp = alog.checkpoint()
    kept_index = alog.size - 2
    old_proof = alog.prove_inclusion(3, old_cp.checkpoint.size)
    clock.now = T0 + timedelta(days=35)
    plan = plan_purge(alog, POLICY)
    # Authentication events older than 20 days: days 0..14 -> 15 days x 3 per day.
    assert plan.by_category == {"authentication": 45}
    assert plan.count == 45
    _, receipt = apply_purge(alog, POLICY, actor=OPS)
    assert receipt is not None
    report = alog.verify(old_cp.note)
    assert report.retired == 45
    # Every purged entry reads as retired; others are intact.
    purged = [e.index for e in alog.entries(0, alog.size) if e.retired]
    assert len(purged) == 45
    assert all(alog.read(alog.entry(i)) == {"retired": True} for i in purged[:3])
    assert alog.read(alog.entry(kept_index))["category"] in ("data_access", "configuration",
                                                            "authentication")
    # The old inclusion proof for a purged entry still verifies against the new tree's past.
    new_cp = alog.checkpoint()
    cons = alog.prove_consistency(old_cp.checkpoint.size, new_cp.checkpoint.size)
    cons.verify_signed(alog.verifier, old_cp.note, new_cp.note)
    old_proof.verify_signed(alog.verifier)
    fresh = alog.prove_inclusion(purged[0])
    fresh.verify_signed(alog.verifier)
    assert isinstance(cons, ConsistencyProof)
    # A second run finds nothing more until time moves on.
    assert plan_purge(alog, POLICY).count == 0
    clock.now = T0 + timedelta(days=60)
    plan2 = plan_purge(alog, POLICY)
    assert plan2.by_category["data_access"] == 60  # days 0..19 x 3
    apply_purge(alog, POLICY, actor=OPS)
    assert alog.verify().retired == 45 + 15 * 3 + 60


def test_receipts_and_young_entries_are_never_purged(alog: AuditLog, clock: Clock) -> None:
    _fill(alog, clock, days=3, per_day=3)
    policy = RetentionPolicy.parse({"default": {"max": "1d"}})
    set_policy(alog, policy, actor=OPS)
    clock.now = T0 + timedelta(days=2, hours=12)
    _, receipt = apply_purge(alog, policy, actor=OPS)
    assert receipt is not None
    clock.now = T0 + timedelta(days=30)
    plan = plan_purge(alog, policy)
    # The first receipt stays, and so does the retention.policy.set entry (settings changes
    # are replayed by verify, so retention never drops them).
    assert plan.protected == 2
    apply_purge(alog, policy, actor=OPS)
    ev = alog.read(alog.entry(receipt.index))
    assert ev["action"] == "retention.purge"
    alog.verify()


def test_legal_hold_keeps_the_subjects_entries(alog: AuditLog, clock: Clock) -> None:
    _fill(alog, clock, days=30, per_day=9)
    alog.hold_subject("person-1", reason="litigation 2025-17", actor=OPS)
    clock.now = T0 + timedelta(days=35)
    plan = plan_purge(alog, POLICY)
    # person-1 is named by event 6 of each day (an authentication event): days 0..14.
    assert plan.held == 15
    assert plan.count == 30
    apply_purge(alog, POLICY, actor=OPS)
    for entry, ev in alog.subject_events("person-1"):
        assert not entry.retired
        assert ev["subjects"] == ["person-1"]
    assert sum(1 for _ in alog.subject_events("person-1")) == 30 * 2  # events 1 and 6
    alog.verify()


def test_a_hold_added_after_planning_stops_the_purge(alog: AuditLog, clock: Clock) -> None:
    _fill(alog, clock, days=30, per_day=9)
    clock.now = T0 + timedelta(days=35)
    plan = plan_purge(alog, POLICY)
    alog.hold_subject("person-2", reason="regulator request", actor=OPS)
    size = alog.size
    with pytest.raises(PolicyError, match="legal hold"):
        apply_purge(alog, POLICY, actor=OPS, plan=plan)
    assert alog.size == size
    assert not any(e.retired for e in alog.entries(0, alog.size))


def test_purged_bodies_are_gone_from_the_file(tmp_path: Path, clock: Clock) -> None:
    log = AuditLog.open(tmp_path, clock=clock, encryption=False)
    log.append({"action": "user.login", "actor": {"id": "zebra-unique-actor"},
                "outcome": "failure", "category": "authentication"})
    clock.now = T0 + timedelta(days=400)
    log.append({"action": "user.login", "actor": {"id": "u2"}, "outcome": "success",
                "category": "authentication"})
    apply_purge(log, RetentionPolicy.parse({"default": {"max": "365d"}}), actor=OPS)
    log.store.purge_deleted(5)
    log.close()
    blob = b"".join(p.read_bytes() for p in tmp_path.rglob("*") if p.is_file())
    assert b"zebra-unique-actor" not in blob
    log = AuditLog.open(tmp_path, clock=clock)
    assert log.verify().retired == 1
    log.close()


def _db(tmp_path: Path) -> Path:
    return next(tmp_path.rglob("log.db"))


def _empty_leaf(db: Path, index: int) -> None:
    con = sqlite3.connect(db)
    start, count, data = con.execute("SELECT start, count, data FROM chunks WHERE start <= ? "
                                     "ORDER BY start DESC LIMIT 1", (index,)).fetchone()
    lens = list(struct.unpack_from(f"<{count}I", data))
    pos = 4 * count
    leaves = []
    for n in lens:
        leaves.append(data[pos:pos + n])
        pos += n
    leaves[index - start] = b""
    new = struct.pack(f"<{count}I", *map(len, leaves)) + b"".join(leaves)
    con.execute("UPDATE chunks SET data = ? WHERE start = ?", (new, start))
    con.commit()
    con.close()


def test_emptying_a_leaf_by_hand_is_found(tmp_path: Path, clock: Clock) -> None:
    log = AuditLog.open(tmp_path, clock=clock)
    _fill(log, clock, days=2, per_day=5)
    log.close()
    _empty_leaf(_db(tmp_path), 4)
    log = AuditLog.open(tmp_path, clock=clock)
    with pytest.raises(TamperError) as err:
        log.verify()
    assert err.value.index == 4
    assert "without a retention receipt" in str(err.value)
    log.close()


def test_faked_retired_rows_are_found(tmp_path: Path, clock: Clock) -> None:
    log = AuditLog.open(tmp_path, clock=clock)
    _fill(log, clock, days=30, per_day=9)
    clock.now = T0 + timedelta(days=35)
    _, receipt = apply_purge(log, POLICY, actor=OPS)
    assert receipt is not None
    log.close()
    db = _db(tmp_path)
    con = sqlite3.connect(db)
    # Widen a retired range to cover an entry emptied by hand.
    start, end = con.execute("SELECT start, end FROM retired ORDER BY start LIMIT 1").fetchone()
    con.commit()
    con.close()
    _empty_leaf(db, end)
    con = sqlite3.connect(db)
    con.execute("UPDATE retired SET end = end + 1 WHERE start = ?", (start,))
    con.commit()
    con.close()
    log = AuditLog.open(tmp_path, clock=clock)
    with pytest.raises(TamperError, match="differ from the ranges it recorded"):
        log.verify()
    log.close()


def test_table_pointing_at_a_non_receipt_is_found(tmp_path: Path, clock: Clock) -> None:
    log = AuditLog.open(tmp_path, clock=clock)
    _fill(log, clock, days=2, per_day=5)
    log.close()
    db = _db(tmp_path)
    _empty_leaf(db, 2)
    con = sqlite3.connect(db)
    con.execute("INSERT INTO retired VALUES (2, 3, 7, 'purge')")
    con.commit()
    con.close()
    log = AuditLog.open(tmp_path, clock=clock)
    with pytest.raises(TamperError, match="not the retention receipt"):
        log.verify()
    log.close()


def test_retention_works_on_a_log_that_seals_targets(tmp_path: Path, clock: Clock) -> None:
    """The receipt's target (the ranges' digests) is sealtrail's own reference: it stays
    clear whatever the log's policy seals, so verify reads it without keys."""
    log = AuditLog.open(tmp_path, clock=clock,
                        policy=FieldPolicy.parse(["target.id", "target.type", "reason"]))
    log.append({"action": "x", "actor": {"id": "a"}, "outcome": "success",
                "target": {"type": "doc", "id": "private"}})
    clock.now = T0 + timedelta(days=9)
    _, receipt = apply_purge(log, RetentionPolicy.parse({"default": {"max": "1d"}}), actor=OPS)
    assert receipt is not None
    raw = log.entry(receipt.index).event()
    assert raw["target"]["type"] == "entries"
    assert raw["sealed"]["fields"] == ["reason"]  # the operator's words keep the policy
    assert log.verify().size == log.size
    log.close()
