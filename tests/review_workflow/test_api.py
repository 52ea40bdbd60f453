"""The review API over a real uvicorn: roles, the steps, their errors, and the log entries
they leave. The alerts are raised by the real monitor over the log before the service starts
(it shares the alert store file)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from sealtrail.log.auditlog import AuditLog
from sealtrail.monitor.alerts import AlertStore, monitor_db_path
from sealtrail.monitor.builtin import builtin_rules
from sealtrail.monitor.runner import Monitor
from sealtrail.server.app import ServiceConfig
from tests.review_workflow.conftest import Clock, activity, failures
from tests.server.conftest import Service, make_data_dir, running

LOG = "review"
NOW = datetime.now(UTC)
YESTERDAY = (NOW - timedelta(days=1)).date()
Y = YESTERDAY.isoformat()


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """A service over a log whose yesterday holds ordinary events and a brute force, which
    the monitor turned into an alert."""
    data = tmp_path_factory.mktemp("review-api")
    clock = Clock(datetime.combine(YESTERDAY, datetime.min.time(), tzinfo=UTC)
                  + timedelta(hours=10))
    with AuditLog.open(data, LOG, clock=clock) as alog:
        alog.append_many(activity())
        alog.append_many(failures(6))
        monitor = Monitor(data, lambda: [(LOG, alog)], builtin_rules(),
                          AlertStore(monitor_db_path(data)), clock=clock)
        monitor.step()
        assert [a.rule for a in monitor.store.list(LOG)] == ["builtin.brute_force"]
        monitor.store.close()
    tokens = make_data_dir(data)
    config = replace(ServiceConfig(data, monitor=None), retention_interval=0)
    with running(config) as base_url:
        yield Service(base_url, tokens, data, config)


@pytest.fixture(scope="module")
def client(service: Service) -> Iterator[httpx.Client]:
    """A client of the module's service."""
    with service.client() as c:
        yield c


def _item(client: httpx.Client, service: Service) -> dict[str, Any]:
    got = client.get(f"/v1/logs/{LOG}/reviews/{Y}", headers=service.auth("auditor"))
    assert got.status_code == 200, got.text
    doc: dict[str, Any] = got.json()
    return doc


def test_readers_may_not_see_the_review(service: Service, client: httpx.Client) -> None:
    """A reader is refused (403); an auditor and an admin may list."""
    for caller, want in (("reader_all", 403), ("auditor", 200), ("admin", 200)):
        got = client.get(f"/v1/logs/{LOG}/reviews", headers=service.auth(caller))
        assert got.status_code == want, (caller, got.text)


def test_bad_periods_are_named(service: Service, client: httpx.Client) -> None:
    """422 naming the field for a malformed or future period, or a bad range."""
    h = service.auth("auditor")
    tomorrow = (NOW + timedelta(days=1)).date().isoformat()
    for url, field in ((f"/v1/logs/{LOG}/reviews/2026-13-01", "period"),
                       (f"/v1/logs/{LOG}/reviews/{tomorrow}", "period"),
                       (f"/v1/logs/{LOG}/reviews/yesterday", "period")):
        got = client.get(url, headers=h)
        assert got.status_code == 422, got.text
        assert got.json()["field"] == field
    got = client.get(f"/v1/logs/{LOG}/reviews", params={"since": "02-12-2026"}, headers=h)
    assert got.status_code == 422
    assert got.json()["field"] == "since"
    got = client.get(f"/v1/logs/{LOG}/reviews",
                     params={"since": Y, "until": (YESTERDAY - timedelta(days=2)).isoformat()},
                     headers=h)
    assert got.status_code == 422
    assert got.json()["field"] == "until"


def test_the_review_from_start_to_sign_off(service: Service, client: httpx.Client) -> None:
    """Refused sign-off, dispositions, an assignment closed, then the sign-off; each step an
    entry of the log by the auditor's key."""
    h = service.auth("auditor")
    listing = client.get(f"/v1/logs/{LOG}/reviews", params={"since": Y}, headers=h).json()
    row = next(p for p in listing["periods"] if p["period"] == Y)
    assert row["status"] == "pending"
    assert row["exceptions"]["open"] == 2
    item = _item(client, service)
    alert_exc, auth_exc = item["exception_list"]
    assert alert_exc["kind"] == "alert"
    assert auth_exc["detail"]["actor"] == "mallory"

    base = f"/v1/logs/{LOG}/reviews/{Y}"
    refused = client.post(f"{base}/sign-off", json={"note": "all fine"}, headers=h)
    assert refused.status_code == 409, refused.text
    assert "no disposition" in refused.json()["error"]
    admin = client.post(f"{base}/sign-off", json={"note": "all fine"},
                        headers=service.auth("admin"))
    assert admin.status_code == 403

    no_note = client.post(f"{base}/exceptions/{auth_exc['id']}",
                          json={"disposition": "benign", "note": " "}, headers=h)
    assert no_note.status_code == 422
    assert no_note.json()["field"] == "note"
    bad = client.post(f"{base}/exceptions/{auth_exc['id']}",
                      json={"disposition": "ignore", "note": "x"}, headers=h)
    assert bad.status_code == 422
    assert bad.json()["field"] == "disposition"
    unknown = client.post(f"{base}/exceptions/auth-{'0' * 16}",
                          json={"disposition": "benign", "note": "x"}, headers=h)
    assert unknown.status_code == 404

    assigned = client.post(f"{base}/exceptions/{alert_exc['id']}",
                           json={"disposition": "assigned", "note": "block the address",
                                 "assignee": "netops"}, headers=h)
    assert assigned.status_code == 201, assigned.text
    (asg,) = assigned.json()["assignments"]
    assert asg["assignee"] == "netops"
    benign = client.post(f"{base}/exceptions/{auth_exc['id']}",
                         json={"disposition": "benign", "note": "the same incident"},
                         headers=h)
    assert benign.status_code == 201
    again = client.post(f"{base}/exceptions/{auth_exc['id']}",
                        json={"disposition": "benign", "note": "twice"}, headers=h)
    assert again.status_code == 409

    closed = client.post(f"{base}/assignments/{asg['id']}/close",
                         json={"note": "address blocked at the edge"}, headers=h)
    assert closed.status_code == 201, closed.text
    assert closed.json()["exceptions"]["open"] == 0

    signed = client.post(f"{base}/sign-off", json={"note": "reviewed: one incident, handled"},
                         headers=h)
    assert signed.status_code == 201, signed.text
    assert signed.json()["status"] == "signed_off"

    # What the log holds: the steps, by the auditor's key, with their notes.
    with AuditLog.open(service.data_dir, LOG, create=False) as alog:
        steps = [alog.read(e) for e in alog.entries(0)]
    steps = [s for s in steps if str(s.get("action", "")).startswith("sealtrail.review.")]
    assert [s["action"] for s in steps] == [
        "sealtrail.review.assign", "sealtrail.review.exception.benign",
        "sealtrail.review.close", "sealtrail.review.sign_off"]
    assert {s["actor"]["id"] for s in steps} == {f"key:{service.key_id('auditor')}"}
    assert {s["metadata"]["via"] for s in steps} == {"api"}  # a key, not a console session
    assert not any("os_user" in s["metadata"] for s in steps)
    assert signed.json()["signed_off"]["via"] == "api"
    assert steps[-1]["reason"] == "reviewed: one incident, handled"
    # Opening a period is an audited read.
    reads = [e for e in (alog_reads(service))
             if e.get("metadata", {}).get("filter", {}).get("review_period") == Y]
    assert reads


def test_an_admin_reads_counts_only(service: Service, client: httpx.Client) -> None:
    """An admin reads no event content: the period comes back with counts, rules and
    severities, but no client-written action names, actor ids, alert messages or example
    entries (an auditor gets them all)."""
    auditor = _item(client, service)
    got = client.get(f"/v1/logs/{LOG}/reviews/{Y}", headers=service.auth("admin"))
    assert got.status_code == 200, got.text
    admin = got.json()
    assert admin["counts_only"] is True
    assert auditor["counts_only"] is False
    assert "change_actions" in auditor["summary"]
    assert "settings.update" in auditor["summary"]["change_actions"]
    for key in ("change_actions", "failure_examples", "change_examples"):
        assert key not in admin["summary"]
    assert admin["summary"]["changes"] == auditor["summary"]["changes"]
    assert admin["summary"]["events"] == auditor["summary"]["events"]
    (alert,) = admin["alerts"]
    assert alert["rule"] == "builtin.brute_force"
    assert alert["severity"]
    assert alert["count"] >= 1
    assert "message" not in alert
    assert "key" not in alert
    assert "entries" not in alert
    assert "mallory" in str(auditor["alerts"])
    assert "mallory" not in str(admin)
    for exc in admin["exception_list"]:
        assert "actor" not in exc["detail"]
        assert "entries" not in exc["detail"]
    assert [e["detail"].get("count") for e in admin["exception_list"]] == [
        e["detail"].get("count") for e in auditor["exception_list"]]


def alog_reads(service: Service) -> list[dict[str, Any]]:
    """The log's audit_access read records."""
    with AuditLog.open(service.data_dir, LOG, create=False) as alog:
        return [ev for ev in (alog.read(e) for e in alog.entries(0))
                if ev.get("action") == "audit.search"]


def test_the_job_raises_an_overdue_alert(tmp_path: Path) -> None:
    """A period past its grace without a sign-off raises builtin.review_overdue through the
    monitor (recorded in the log as alert.open), once per period."""
    from sealtrail.server.state import ServiceState

    clock = Clock(datetime(2026, 11, 2, 9, 0, tzinfo=UTC))
    with AuditLog.open(tmp_path, "default", clock=clock) as alog:
        alog.append_many(activity())
    clock.now = datetime(2026, 11, 4, 1, 0, tzinfo=UTC)
    state = ServiceState.build(replace(ServiceConfig(tmp_path, monitor=None), clock=clock))
    try:
        assert state.review is not None
        state.review.run_all()
        assert state.review.results["default"].raised == ["2026-11-02"]
        (alert,) = state.alert_store.list("default", rule="builtin.review_overdue")
        assert alert.key == "2026-11-02"
        assert "PCI DSS 10.4.1" in alert.clauses
        state.review.run_all()  # the same period is not alerted on twice
        assert state.review.results["default"].raised == []
        assert len(state.alert_store.list("default", rule="builtin.review_overdue")) == 1
        alog2 = state.logs.get("default")
        opened = [alog2.read(e) for e in alog2.entries(0)]
        assert any(ev.get("action") == "alert.open"
                   and ev["target"]["id"] == alert.id for ev in opened)
    finally:
        state.stop()


def test_a_long_note_in_any_script_is_taken_and_a_longer_one_named(
        service: Service, client: httpx.Client) -> None:
    """A note of 4096 non-ASCII characters (escaped in JSON) fits; 4097 is refused naming
    ``note``; a body that is not JSON names ``body``."""
    h = service.auth("auditor")
    day = (YESTERDAY - timedelta(days=3)).isoformat()
    url = f"/v1/logs/{LOG}/reviews/{day}/sign-off"
    too_long = client.post(url, json={"note": "é" * 4097}, headers=h)
    assert too_long.status_code == 422
    assert too_long.json()["field"] == "note"
    not_json = client.post(url, content=b"{", headers={**h, "content-type": "application/json"})
    assert not_json.status_code == 422
    assert not_json.json()["field"] == "body"
    fits = client.post(url, json={"note": "é" * 4096}, headers=h)
    assert fits.status_code == 201, fits.text


def test_the_leader_runs_the_review_job(tmp_path: Path) -> None:
    """A running service (the leader of its data directory) raises the overdue alert by
    itself shortly after start."""
    import time

    clock = Clock(datetime(2026, 11, 2, 9, 0, tzinfo=UTC))
    with AuditLog.open(tmp_path, "default", clock=clock) as alog:
        alog.append_many(activity())
    clock.now = datetime(2026, 11, 5, 9, 0, tzinfo=UTC)
    config = replace(ServiceConfig(tmp_path, monitor=None), clock=clock, retention_delay=0.1,
                     verify_interval=0, retention_interval=0)
    found: list[str] = []
    with running(config):
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and len(found) < 2:
            store = AlertStore(monitor_db_path(tmp_path))
            try:
                found = sorted(a.key for a in store.list("default",
                                                         rule="builtin.review_overdue"))
            finally:
                store.close()
            time.sleep(0.1)
    assert found == ["2026-11-02", "2026-11-03"]
