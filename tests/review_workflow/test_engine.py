"""The review engine over a real log and the real monitor's alerts: items, exceptions,
dispositions, sign-off, and the state read back from the log alone."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import pytest

from sealtrail.compliance.review import (
    AUTH_FAILURE_THRESHOLD,
    ConflictError,
    ReviewBook,
    access_exception_id,
    parse_period,
)
from sealtrail.core.errors import ConfigError, ValidationError
from sealtrail.log.auditlog import AuditLog
from sealtrail.monitor.alerts import AlertStore, monitor_db_path
from sealtrail.monitor.runner import Monitor
from tests.review_workflow.conftest import T0, Clock, activity, failures

DAY1 = T0.date()
AUDITOR = {"id": "user:ann", "type": "user", "name": "ann"}


def _day_with_alert(alog: AuditLog, monitor: Monitor) -> None:
    """Day 1: ordinary activity, then a brute force the monitor turns into an alert."""
    alog.append_many(activity())
    alog.append_many(failures(6))
    monitor.step()


def test_item_gathers_summary_alerts_and_exceptions(alog: AuditLog, monitor: Monitor,
                                                    clock: Clock) -> None:
    """The period's item counts its events and lists the monitor's alert and the repeated
    failed logins as exceptions, none decided yet."""
    _day_with_alert(alog, monitor)
    (alert,) = monitor.store.list("default")
    assert alert.rule == "builtin.brute_force"
    book = ReviewBook(alog, monitor.store)
    item = book.item(DAY1, clock.now)
    assert item.status == "pending"
    s = item.summary
    assert s.by_outcome["failure"] == 6
    assert s.access_failures == 7  # six failed logins and one denial
    assert s.changes == 1
    assert [a.id for a in item.alerts] == [alert.id]
    ids = {e.id for e in item.exceptions}
    assert ids == {f"alert-{alert.id}", access_exception_id("mallory")}
    assert item.undecided == 2
    assert item.open_exceptions == 2
    # alice's single denial is under the threshold: no exception of hers.
    assert AUTH_FAILURE_THRESHOLD > 1


def test_sign_off_refused_while_an_exception_is_undecided(alog: AuditLog, monitor: Monitor,
                                                         clock: Clock) -> None:
    """409-like ConflictError until each exception is benign or assigned; then it signs."""
    _day_with_alert(alog, monitor)
    book = ReviewBook(alog, monitor.store)
    with pytest.raises(ConflictError, match="not over yet"):
        book.sign_off(DAY1, actor=AUDITOR, role="auditor", note="looked", now=clock.now)
    clock.now = T0 + timedelta(days=1)
    with pytest.raises(ConflictError, match="no disposition"):
        book.sign_off(DAY1, actor=AUDITOR, role="auditor", note="looked", now=clock.now)
    item = book.item(DAY1, clock.now)
    alert_exc, auth_exc = item.exceptions
    book.dispose(DAY1, alert_exc.id, "assigned", actor=AUDITOR, role="auditor",
                 note="block the address", assignee="bob", now=clock.now)
    with pytest.raises(ConflictError, match="no disposition"):
        book.sign_off(DAY1, actor=AUDITOR, role="auditor", note="looked", now=clock.now)
    book.dispose(DAY1, auth_exc.id, "benign", actor=AUDITOR, role="auditor",
                 note="same incident as the alert", now=clock.now)
    with pytest.raises(ConflictError, match="already benign"):
        book.dispose(DAY1, auth_exc.id, "benign", actor=AUDITOR, role="auditor",
                     note="again", now=clock.now)
    item = book.sign_off(DAY1, actor=AUDITOR, role="auditor", note="day reviewed",
                         now=clock.now)
    assert item.status == "signed_off"
    assert item.sign_off is not None
    assert item.sign_off.by == "user:ann"
    assert item.open_exceptions == 1  # the assignment is still open
    with pytest.raises(ConflictError, match="already signed off"):
        book.sign_off(DAY1, actor=AUDITOR, role="auditor", note="x", now=clock.now)


def test_state_is_rebuilt_from_the_log(tmp_path: Path, alog: AuditLog, monitor: Monitor,
                                       clock: Clock) -> None:
    """Reopening the log and the alert store gives the same review state: it lives in the
    log's entries (which sealtrail wrote), not beside them."""
    _day_with_alert(alog, monitor)
    clock.now = T0 + timedelta(days=1, hours=2)
    book = ReviewBook(alog, monitor.store)
    alert_exc, auth_exc = book.item(DAY1, clock.now).exceptions
    item = book.dispose(DAY1, alert_exc.id, "assigned", actor=AUDITOR, role="auditor",
                        note="check the firewall", assignee="bob", now=clock.now)
    (asg,) = item.assignments
    book.close(DAY1, asg.id, actor=AUDITOR, role="auditor", note="address blocked",
               now=clock.now)
    book.dispose(DAY1, auth_exc.id, "benign", actor=AUDITOR, role="auditor",
                 note="same incident", now=clock.now)
    book.sign_off(DAY1, actor=AUDITOR, role="auditor", note="reviewed", now=clock.now)
    before = book.item(DAY1, clock.now).to_json()
    monitor.store.close()
    alog.close()

    with AuditLog.open(tmp_path, clock=clock) as again:
        store = AlertStore(monitor_db_path(tmp_path))
        try:
            after = ReviewBook(again, store).item(DAY1, clock.now).to_json()
        finally:
            store.close()
        # The steps are events of the log, written by sealtrail, by the reviewer.
        steps = [again.read(e) for e in again.entries(0)
                 if again.read(e).get("action", "").startswith("sealtrail.review.")]
    assert after == before
    assert after["status"] == "signed_off"
    assert after["exceptions"] == {"total": 2, "open": 0, "addressed": 2, "undecided": 0}
    assert [s["action"] for s in steps] == [
        "sealtrail.review.assign", "sealtrail.review.close",
        "sealtrail.review.exception.benign", "sealtrail.review.sign_off"]
    assert {s["actor"]["id"] for s in steps} == {"user:ann"}
    assert {s["source"]["service"] for s in steps} == {"sealtrail"}
    assert steps[-1]["target"] == {"type": "review_period", "id": DAY1.isoformat()}
    assert steps[0]["metadata"]["assignee"] == "bob"


def test_a_client_cannot_forge_a_sign_off(alog: AuditLog, clock: Clock) -> None:
    """A client cannot write a review step (``sealtrail.review.*`` is reserved: refused,
    naming the field); the plain ``review.*`` namespace is the clients' own (accepted) and the
    review ignores it, as it ignores anything shaped like a step from another source."""
    alog.append_many(activity())
    clock.now = T0 + timedelta(days=1)
    forged = {"action": "sealtrail.review.sign_off", "actor": {"id": "user:ann"},
              "outcome": "success", "category": "audit_access",
              "source": {"service": "web"},
              "target": {"type": "review_period", "id": DAY1.isoformat()}}
    with pytest.raises(ValidationError, match="reserved") as refused:
        alog.append(forged)
    assert str(refused.value.field).endswith("action")
    plain = alog.append({**forged, "action": "review.sign_off"})  # a client's own action
    assert alog.read(alog.entry(plain.index)).get("action") == "review.sign_off"
    alog.append({**forged, "action": "reviews.sign_off"})
    item = ReviewBook(alog, None).item(DAY1, clock.now)
    assert item.sign_off is None
    assert item.status == "pending"


def test_overdue_after_the_grace(alog: AuditLog, clock: Clock) -> None:
    """A period not signed off a day after it ended is overdue; the job's query finds it."""
    alog.append_many(activity())
    book = ReviewBook(alog, None)
    clock.now = T0 + timedelta(days=1)
    assert book.item(DAY1, clock.now).status == "pending"
    assert book.overdue(clock.now) == []
    clock.now = T0 + timedelta(days=2)
    assert [i.period for i in book.overdue(clock.now)] == [DAY1.isoformat()]
    assert book.item(DAY1, clock.now).status == "overdue"


def test_only_an_auditor_records_a_review(alog: AuditLog, clock: Clock) -> None:
    """Separation of duties: an admin (or any other role) cannot sign off."""
    alog.append_many(activity())
    clock.now = T0 + timedelta(days=1)
    with pytest.raises(ConfigError, match="only an auditor"):
        ReviewBook(alog, None).sign_off(DAY1, actor=AUDITOR, role="admin", note="x",
                                        now=clock.now)


def test_own_failed_logins_need_another_reviewer(alog: AuditLog, clock: Clock) -> None:
    """A reviewer cannot wave away failed access attempts made under their own id."""
    alog.append_many(failures(3, actor="user:ann"))
    book = ReviewBook(alog, None)
    (exc,) = book.item(DAY1, clock.now).exceptions
    with pytest.raises(ConflictError, match="your own"):
        book.dispose(DAY1, exc.id, "benign", actor=AUDITOR, role="auditor", note="me",
                     now=clock.now)


def test_period_ids_are_strict(clock: Clock) -> None:
    """A period is YYYY-MM-DD of a day that has begun; errors name the field."""
    assert parse_period("2026-11-02", clock.now) == date(2026, 11, 2)
    for bad in ("2026-11-2", "2026-13-01", "2026-02-30", "20261102", " 2026-11-02", "x"):
        with pytest.raises(ValidationError) as err:
            parse_period(bad, clock.now)
        assert err.value.field == "period"
    with pytest.raises(ValidationError, match="future"):
        parse_period("2026-11-03", clock.now)


def test_notes_are_required_and_bounded(alog: AuditLog, clock: Clock) -> None:
    """An empty or overlong note is refused naming ``note``; an assignment needs a name."""
    alog.append_many(failures(3))
    book = ReviewBook(alog, None)
    (exc,) = book.item(DAY1, clock.now).exceptions
    for note in ("", "   ", "x" * 4097):
        with pytest.raises(ValidationError) as err:
            book.dispose(DAY1, exc.id, "benign", actor=AUDITOR, role="auditor", note=note,
                         now=clock.now)
        assert err.value.field == "note"
    with pytest.raises(ValidationError) as err:
        book.dispose(DAY1, exc.id, "assigned", actor=AUDITOR, role="auditor", note="n",
                     now=clock.now)
    assert err.value.field == "assignee"
    with pytest.raises(LookupError):
        book.dispose(DAY1, "auth-" + "0" * 16, "benign", actor=AUDITOR, role="auditor",
                     note="n", now=clock.now)


def test_scan_starts_near_the_period_and_counts_late_events(alog: AuditLog,
                                                          clock: Clock) -> None:
    """The scan skips what was received more than a day before the period (a binary search
    on received_at), and an event delivered late counts in the day its time names."""
    for day in range(4):
        clock.now = T0 + timedelta(days=day)
        alog.append_many(activity())
    late = (T0 + timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M:%SZ")
    alog.append({**activity()[0], "time": late})  # received on day 4, about day 1
    book = ReviewBook(alog, None)
    day3 = T0 + timedelta(days=2)
    assert book.start_index(day3.replace(hour=0)) == 3  # day 2's first entry (the slack)
    assert book.item(day3.date(), clock.now).summary.events == 3
    assert book.item(DAY1, clock.now).summary.events == 4
    assert [i.summary.events for i in book.listing(clock.now)] == [3, 3, 3, 4]
