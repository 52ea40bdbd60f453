"""The compliance reports' review check: failing while a period is unreviewed or an exception
open, passing once every period is signed off and every exception addressed."""

from __future__ import annotations

from datetime import timedelta

import pytest

from sealtrail.compliance.checks import CLAUSES
from sealtrail.compliance.report import generate_report
from sealtrail.compliance.review import ReviewBook, review_evidence
from sealtrail.log.auditlog import AuditLog
from sealtrail.monitor.runner import Monitor
from tests.review_workflow.conftest import T0, Clock, activity, failures

ME = {"id": "user:ann", "type": "user"}


def _review_check(alog: AuditLog, book: ReviewBook, clock: Clock, standard: str = "pci-dss"
                  ) -> tuple[str, dict[str, object], tuple[str, ...]]:
    since, until = T0.replace(hour=0), T0.replace(hour=0) + timedelta(days=2)
    report = generate_report(alog, standard, actor=ME, since=since, until=until, record=False,
                             review=review_evidence(book, since, until, clock.now))
    (check,) = [c for c in report.checks if c.id == "review"]
    return check.status, dict(check.evidence), check.clauses


def test_review_check_fails_then_passes(alog: AuditLog, monitor: Monitor,
                                        clock: Clock) -> None:
    """Two days with events: unreviewed they fail the check, with an open exception it still
    fails, fully reviewed it passes; the check serves PCI DSS 10.4.1 and 10.4.3."""
    alog.append_many(activity())
    alog.append_many(failures(6))
    monitor.step()
    clock.now = T0 + timedelta(days=1)
    alog.append_many(activity())
    clock.now = T0 + timedelta(days=3)
    book = ReviewBook(alog, monitor.store)
    day1, day2 = T0.date(), T0.date() + timedelta(days=1)

    status, ev, clauses = _review_check(alog, book, clock)
    assert status == "fail"
    assert ev["not_signed_off"] == [day1.isoformat(), day2.isoformat()]
    assert ev["overdue"] == [day1.isoformat(), day2.isoformat()]
    assert clauses == ("10.4.1", "10.4.1.1", "10.4.3")

    alert_exc, auth_exc = book.item(day1, clock.now).exceptions
    item = book.dispose(day1, alert_exc.id, "assigned", actor=ME, role="auditor",
                        note="block it", assignee="netops", now=clock.now)
    book.dispose(day1, auth_exc.id, "benign", actor=ME, role="auditor", note="same",
                 now=clock.now)
    book.sign_off(day1, actor=ME, role="auditor", note="ok", now=clock.now)
    book.sign_off(day2, actor=ME, role="auditor", note="quiet day", now=clock.now)
    status, ev, _ = _review_check(alog, book, clock)
    assert status == "fail"  # the assignment is still open: 10.4.3 wants it addressed
    assert ev["open_exceptions"] == {day1.isoformat(): 1}

    book.close(day1, item.assignments[0].id, actor=ME, role="auditor", note="blocked",
               now=clock.now)
    status, ev, _ = _review_check(alog, book, clock)
    assert status == "pass", ev
    assert ev["periods"] == 2
    assert _review_check(alog, book, clock, "hipaa")[2] == ("164.308(a)(1)(ii)(D)",)


@pytest.mark.parametrize("standard", sorted(CLAUSES["review"]))
def test_without_review_state_the_check_warns(alog: AuditLog, standard: str) -> None:
    """A report made without the review state says so (a warning), never a pass."""
    alog.append_many(activity())
    report = generate_report(alog, standard, actor=ME, record=False)
    (check,) = [c for c in report.checks if c.id == "review"]
    assert check.status in ("warn", "not-applicable")
