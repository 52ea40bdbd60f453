"""What the review's first reviewers found, each pinned: exceptions come from the log's signed
``alert.open`` entries (not the monitor's mutable store), a step that lost a race across
processes is refused, a late exception reopens a signed-off period, and the default listing
starts at the earliest event time (back-filled imports)."""

from __future__ import annotations

import multiprocessing
import sqlite3
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from sealtrail.compliance.report import generate_report
from sealtrail.compliance.review import (
    MISSING,
    SIGN_OFF,
    ConflictError,
    ReviewBook,
    access_exception_id,
    review_evidence,
)
from sealtrail.log.auditlog import AuditLog
from sealtrail.monitor.alerts import monitor_db_path
from sealtrail.monitor.runner import Monitor
from sealtrail.server.app import ServiceConfig
from tests.review_workflow.conftest import T0, Clock, activity, failures

DAY1 = T0.date()
AUDITOR = {"id": "user:ann", "type": "user", "name": "ann"}


def test_an_alert_deleted_from_the_store_stays_an_exception(
        tmp_path: Path, alog: AuditLog, monitor: Monitor, clock: Clock) -> None:
    """Deleting the alert's row from monitor.db does not make the exception vanish (verify
    still passes: the store is not the log): the exception is built from the signed
    ``alert.open`` entry and shown as missing from the alert store; the sign-off waits for it."""
    alog.append_many(activity())
    alog.append_many(failures(6))
    monitor.step()
    (alert,) = monitor.store.list("default")
    book = ReviewBook(alog, monitor.store)
    before = book.item(DAY1, clock.now)
    assert [a.id for a in before.alerts] == [alert.id]
    assert before.alerts[0].status == "open"

    with sqlite3.connect(monitor_db_path(tmp_path)) as db:
        db.execute("DELETE FROM alerts")
    assert monitor.store.get(alert.id) is None
    alog.verify()  # the log is intact: only the store was changed

    clock.now = T0 + timedelta(days=1)
    item = book.item(DAY1, clock.now)
    assert [a.id for a in item.alerts] == [alert.id]
    assert item.alerts[0].status == MISSING
    exc = next(e for e in item.exceptions if e.kind == "alert")
    assert exc.id == f"alert-{alert.id}"
    assert MISSING in exc.title
    assert exc.detail["in_store"] is False
    assert exc.severity == alert.severity
    assert item.to_json()["alerts"][0]["in_store"] is False
    with pytest.raises(ConflictError, match="no disposition"):
        book.sign_off(DAY1, actor=AUDITOR, role="auditor", note="x", now=clock.now)


def test_an_alert_only_in_the_store_is_not_an_exception(alog: AuditLog,
                                                        monitor: Monitor,
                                                        clock: Clock) -> None:
    """A row written into the store without the monitor's signed entry in the log (another
    log's alert copied over, a hand edit) is not one of this period's exceptions."""
    alog.append_many(activity())
    alog.append_many(failures(6))
    monitor.step()
    (alert,) = monitor.store.list("default")
    monitor.store.put(replace(alert, id="00000000-0000-4000-8000-000000000000",
                              key="forged"))
    item = ReviewBook(alog, monitor.store).item(DAY1, clock.now)
    assert [a.id for a in item.alerts] == [alert.id]


# -- two reviewers racing, in two processes ---------------------------------------------------


def _racer(data: str, days: list[str], barrier: Any, out: Any) -> None:
    """One worker process: at each barrier, sign off the next day; report what it got."""
    with AuditLog.open(Path(data), create=False) as alog:
        book = ReviewBook(alog, None)
        for text in days:
            barrier.wait(timeout=60)
            now = datetime.now(UTC)
            try:
                item = book.sign_off(date.fromisoformat(text), actor=AUDITOR, role="auditor",
                                     note="nothing happened", now=now)
            except ConflictError as exc:
                out.put((text, "conflict", str(exc)))
            else:
                assert item.sign_off is not None
                out.put((text, "ok", item.sign_off.index))


def test_two_processes_signing_off_at_once_get_one_success(tmp_path: Path) -> None:
    """Two worker processes sign the same periods off at the same moment: each period gets
    exactly one success, which is the sign-off that counts; the other is refused (409 in
    the API), and when its entry reached the log it says it was superseded and by whom."""
    with AuditLog.open(tmp_path) as alog:
        alog.append_many(activity())
    today = datetime.now(UTC).date()
    days = [(today - timedelta(days=k)).isoformat() for k in range(10, 2, -1)]
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(2)
    out = ctx.Queue()
    procs = [ctx.Process(target=_racer, args=(str(tmp_path), days, barrier, out))
             for _ in range(2)]
    for p in procs:
        p.start()
    got = [out.get(timeout=120) for _ in range(2 * len(days))]
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    with AuditLog.open(tmp_path, create=False) as alog:
        entries: dict[str, list[int]] = {}
        for e in alog.entries(0):
            ev = alog.read(e)
            if ev.get("action") == SIGN_OFF:
                entries.setdefault(ev["target"]["id"], []).append(e.index)
        book = ReviewBook(alog, None)
        now = datetime.now(UTC)
        for text in days:
            answers = [g for g in got if g[0] == text]
            oks = [g for g in answers if g[1] == "ok"]
            assert len(oks) == 1, answers
            item = book.item(date.fromisoformat(text), now)
            assert item.sign_off is not None
            assert oks[0][2] == item.sign_off.index == entries[text][0]
            (refused,) = [g for g in answers if g[1] == "conflict"]
            if len(entries[text]) > 1:  # both appended: the loser is told it was superseded
                assert "superseded" in refused[2]
                assert f"entry {entries[text][0]}" in refused[2]
            else:
                assert "already signed off" in refused[2]


# -- late exceptions --------------------------------------------------------------------------


def _late_failures(n: int, actor: str) -> list[dict[str, Any]]:
    """Failed logins that happened on day 1 but reach the log later (a source's backlog)."""
    return [{**ev, "time": (T0 + timedelta(hours=5)).isoformat()} for ev in failures(n, actor)]


def test_a_late_exception_reopens_a_signed_off_period(alog: AuditLog, clock: Clock) -> None:
    """Signed off, then a late batch makes a new exception: the period is *reopened* (list,
    item, compliance evidence), until the new exception gets a disposition."""
    alog.append_many(activity())
    clock.now = T0 + timedelta(days=1)
    book = ReviewBook(alog, None)
    book.sign_off(DAY1, actor=AUDITOR, role="auditor", note="quiet day", now=clock.now)
    assert book.item(DAY1, clock.now).status == "signed_off"

    alog.append_many(_late_failures(3, "eve"))
    item = book.item(DAY1, clock.now)
    assert item.status == "reopened"
    assert [e.id for e in item.late] == [access_exception_id("eve")]
    assert item.brief()["late_exceptions"] == [access_exception_id("eve")]
    (row,) = book.listing(clock.now, DAY1, DAY1)
    assert row.status == "reopened"
    since, until = T0.replace(hour=0), T0.replace(hour=0) + timedelta(days=1)
    evidence = review_evidence(book, since, until, clock.now)
    assert evidence["periods"][0]["status"] == "reopened"
    report = generate_report(alog, "pci-dss", actor=AUDITOR, since=since, until=until,
                             record=False, review=evidence)
    (check,) = [c for c in report.checks if c.id == "review"]
    assert check.status == "fail"
    with pytest.raises(ConflictError, match="already signed off"):  # no second sign-off:
        book.sign_off(DAY1, actor=AUDITOR, role="auditor", note="again", now=clock.now)
    # the way back is a disposition of each late exception

    book.dispose(DAY1, access_exception_id("eve"), "benign",
                 actor={"id": "user:bob", "type": "user"}, role="auditor",
                 note="eve's script retried with an old password", now=clock.now)
    assert book.item(DAY1, clock.now).status == "signed_off"


def test_the_job_alerts_once_per_reopening(tmp_path: Path) -> None:
    """The review job raises builtin.review_reopened for a reopened period once per set of
    late exceptions, not again after a restart, and again for a further late exception."""
    from sealtrail.server.state import ServiceState

    clock = Clock(T0)
    with AuditLog.open(tmp_path, "default", clock=clock) as alog:
        alog.append_many(activity())
        clock.now = T0 + timedelta(days=1, hours=1)
        ReviewBook(alog, None).sign_off(DAY1, actor=AUDITOR, role="auditor", note="ok",
                                        now=clock.now)
        alog.append_many(_late_failures(3, "eve"))

    def run_job() -> tuple[list[str], list[str]]:
        state = ServiceState.build(replace(ServiceConfig(tmp_path, monitor=None),
                                           clock=clock))
        try:
            assert state.review is not None
            state.review.run_all()
            first = list(state.review.results["default"].reopened)
            state.review.run_all()
            second = list(state.review.results["default"].reopened)
            keys = [a.key for a in state.alert_store.list(
                "default", rule="builtin.review_reopened")]
            return first + second, keys
        finally:
            state.stop()

    raised, keys = run_job()
    assert len(raised) == 1
    assert raised[0].startswith(f"{DAY1.isoformat()}/")
    assert keys == raised
    raised_again, keys = run_job()  # a restart: the store remembers
    assert raised_again == []
    assert len(keys) == 1

    with AuditLog.open(tmp_path, "default", clock=clock, create=False) as alog:
        alog.append_many(_late_failures(3, "trudy"))
    raised_more, keys = run_job()
    assert len(raised_more) == 1
    assert len(keys) == 2


# -- the default range --------------------------------------------------------------------------


def test_the_default_listing_starts_at_the_earliest_event_time(alog: AuditLog,
                                                               clock: Clock) -> None:
    """A back-filled import (events older than the first entry) is listed by default."""
    alog.append_many(activity())
    old = [{**ev, "time": (T0 - timedelta(days=5)).isoformat()} for ev in failures(3, "old")]
    alog.append_many(old)
    periods = [i.period for i in ReviewBook(alog, None).listing(clock.now)]
    assert periods[-1] == (DAY1 - timedelta(days=5)).isoformat()
    assert len(periods) == 6
