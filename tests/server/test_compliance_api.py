"""The compliance routes over a real uvicorn server: reports, evidence bundles, retention and
legal holds, each checked against the library that the CLI uses.

The module's service runs without the scheduled verification (``verify_interval=0``), so a
report made here and the library's report for the same inputs see the same log metadata.
Each test makes its own log through the API, so what it counts is its own.
"""

from __future__ import annotations

import itertools
import json
import os
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from sealtrail.compliance.bundle import verify_bundle_file
from sealtrail.compliance.report import generate_report, load_keys, report_hash
from sealtrail.compliance.review import ReviewBook, review_evidence
from sealtrail.core.timefmt import format_time, parse_time
from sealtrail.log.auditlog import AuditLog
from sealtrail.log.retention import RetentionPolicy, set_policy
from sealtrail.monitor.alerts import AlertStore, alerting_evidence, monitor_db_path
from sealtrail.server.app import ServiceConfig
from sealtrail.server.compliance_api import ROUTES
from tests.server.conftest import KEYS, Service, running, service_at

_names = itertools.count()
BASE = datetime(2025, 3, 1, tzinfo=UTC)
ROLES_OF = {"ingest": "ingest_all", "reader": "reader_all", "auditor": "auditor",
            "admin": "admin"}


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """The module's service: no scheduled verification or retention (they would change the
    log's metadata between a request and the library call it is compared with)."""
    with service_at(tmp_path_factory.mktemp("compliance"), verify_interval=0,
                    retention_interval=0) as svc:
        yield svc


def new_log(service: Service, client: httpx.Client, events: int = 3) -> str:
    """A fresh log made by the admin, with ``events`` events in March 2025."""
    name = f"c-{next(_names)}"
    made = client.post("/v1/logs", json={"name": name}, headers=service.auth("admin"))
    assert made.status_code == 201, made.text
    if events:
        batch = [{"actor": {"id": f"user-{n}", "ip": "192.0.2.7"}, "action": "doc.update",
                  "outcome": "success", "category": "data_change",
                  "source": {"service": "billing", "host": "app-1"},
                  "target": {"type": "doc", "id": f"doc-{n}"},
                  "time": format_time(BASE + timedelta(days=n))} for n in range(events)]
        posted = client.post(f"/v1/logs/{name}/events", json=batch,
                             headers=service.auth("ingest_all"))
        assert posted.status_code == 201, posted.text
    return name


def entries_of(service: Service, log: str) -> list[dict[str, Any]]:
    """Every event of the log, read with the library."""
    with AuditLog.open(service.data_dir, log, create=False) as alog:
        return [alog.entry(i).event() for i in range(alog.size)]


def size_of(service: Service, log: str) -> int:
    """The log's size, read with the library."""
    with AuditLog.open(service.data_dir, log, create=False) as alog:
        return alog.size


def actor_id(service: Service, caller: str) -> str:
    """The actor id the API records for a caller's key."""
    return f"key:{service.key_id(caller)}"


# -- reports ------------------------------------------------------------------------------------


def test_report_json_is_the_library_report_and_is_recorded(service: Service,
                                                           client: httpx.Client) -> None:
    """The JSON report is what the library computes for the same log, period and moment; its
    hash is appended as ``report.generate`` by the caller, and that entry is its receipt."""
    log = new_log(service, client)
    response = client.get(f"/v1/logs/{log}/reports", headers=service.auth("auditor"),
                          params={"standard": "pci-dss", "since": "2025-03-01",
                                  "until": "2025-04-01", "verify": "true"})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    assert "content-disposition" not in response.headers
    got = response.json()
    assert got["standard"] == "pci-dss"
    assert got["events_scanned"] == 3
    assert got["period"] == {"from": "2025-03-01T00:00:00.000000Z",
                             "to": "2025-04-01T00:00:00.000000Z"}
    receipt = got["receipt"]
    assert report_hash(got) == receipt["report_hash"]
    events = entries_of(service, log)
    recorded = events[receipt["index"]]
    assert recorded["action"] == "report.generate"
    assert recorded["target"] == {"type": "report", "id": receipt["report_hash"]}
    assert recorded["actor"]["id"] == actor_id(service, "auditor")
    # verify=true ran a full verification first (never verified before): it passes.
    checks = {c["id"]: c for c in got["checks"]}
    assert checks["verification"]["status"] == "pass"
    # The service passes the review state: March 2025 was never reviewed, which fails.
    assert checks["review"]["status"] == "fail"
    assert checks["review"]["evidence"]["periods"] == 31
    since, until = parse_time("2025-03-01T00:00:00Z"), parse_time("2025-04-01T00:00:00Z")
    when = parse_time(got["generated_at"])
    with AuditLog.open(service.data_dir, log, create=False) as alog:
        alerts = AlertStore(monitor_db_path(service.data_dir))
        try:
            review = review_evidence(ReviewBook(alog, alerts), since, until, when)
        finally:
            alerts.close()
        mine = generate_report(alog, "pci-dss", actor={"id": "test"}, since=since,
                               until=until, keys=load_keys(service.data_dir),
                               alerting=alerting_evidence(service.data_dir), record=False,
                               now=when, review=review)
    expected = mine.body()
    # The API's report saw the log one entry shorter: its own record came after it.
    assert got["tree_size"] == expected.pop("tree_size") - 1
    assert {k: v for k, v in got.items() if k not in ("receipt", "tree_size")} == expected


def test_report_html_and_pdf_download(service: Service, client: httpx.Client) -> None:
    """``download=1`` answers an attachment with a file name; the HTML is a page that may run
    nothing; the PDF is a PDF; each run is recorded."""
    log = new_log(service, client)
    before = size_of(service, log)
    html = client.get(f"/v1/logs/{log}/reports", headers=service.auth("auditor"),
                      params={"standard": "hipaa", "format": "html", "download": "1"})
    assert html.status_code == 200, html.text
    assert html.headers["content-type"].startswith("text/html")
    assert html.text.lstrip().lower().startswith("<!doctype html>")
    assert "Compliance report: HIPAA Security Rule" in html.text
    assert "default-src 'none'" in html.headers["content-security-policy"]
    disposition = html.headers["content-disposition"]
    assert disposition.startswith("attachment; filename=")
    assert disposition.endswith('.html"')
    assert f"-{log}-hipaa-" in disposition
    pdf = client.get(f"/v1/logs/{log}/reports", headers=service.auth("auditor"),
                     params={"standard": "soc2", "format": "pdf", "download": "1"})
    assert pdf.status_code == 200, pdf.text
    assert pdf.headers["content-type"] == "application/pdf"
    assert pdf.content.startswith(b"%PDF")
    assert pdf.headers["content-disposition"].endswith('.pdf"')
    inline = client.get(f"/v1/logs/{log}/reports", headers=service.auth("auditor"),
                        params={"standard": "gdpr", "format": "md"})
    assert inline.status_code == 200
    assert inline.text.startswith("# Compliance report: GDPR")
    assert "content-disposition" not in inline.headers
    actions = [e["action"] for e in entries_of(service, log)[before:]]
    assert actions == ["report.generate"] * 3


@pytest.mark.parametrize(("params", "field"), [
    ({"standard": "pci"}, "standard"),
    ({}, "standard"),
    ({"standard": "hipaa", "format": "docx"}, "format"),
    ({"standard": "hipaa", "since": "2025-05-01", "until": "2025-04-01"}, "since"),
    ({"standard": "hipaa", "until": "next tuesday"}, "until"),
    ({"standard": "hipaa", "since": "x" * 65}, "since"),
])
def test_report_bad_input_is_422_naming_the_field(service: Service, client: httpx.Client,
                                                  params: dict[str, str], field: str) -> None:
    """A bad standard, format or period is refused naming it, and nothing is recorded."""
    log = new_log(service, client, events=1)
    before = size_of(service, log)
    response = client.get(f"/v1/logs/{log}/reports", headers=service.auth("auditor"),
                          params=params)
    assert response.status_code == 422, response.text
    assert response.json()["field"] == field
    assert size_of(service, log) == before


# -- evidence bundles ---------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["zip", "tar.gz"])
def test_evidence_bundle_verifies_offline(service: Service, client: httpx.Client,
                                          tmp_path: Path, fmt: str) -> None:
    """The bundle downloaded verifies with the library against the log's key; it holds the
    selected events; the export is recorded first (``audit.export``, the caller as actor);
    nothing is left in the temporary directory."""
    log = new_log(service, client, events=5)
    response = client.get(f"/v1/logs/{log}/evidence", headers=service.auth("auditor"),
                          params={"since": "2025-03-02", "until": "2025-03-05",
                                  "format": fmt})
    assert response.status_code == 200, response.text
    disposition = response.headers["content-disposition"]
    assert disposition.startswith('attachment; filename="sealtrail-evidence-')
    assert disposition.endswith(f'.{fmt}"')
    path = tmp_path / f"bundle.{fmt}"
    path.write_bytes(response.content)
    with AuditLog.open(service.data_dir, log, create=False) as alog:
        vkey = alog.vkey()
    report = verify_bundle_file(path, vkey)
    assert report.events == 3  # days 1, 2 and 3 of the five
    assert response.headers["x-sealtrail-events"] == "3"
    export = entries_of(service, log)[int(response.headers["x-sealtrail-export-event"])]
    assert export["action"] == "audit.export"
    assert export["actor"]["id"] == actor_id(service, "auditor")
    assert not list(Path(tempfile.gettempdir()).glob("sealtrail-evidence-*"))


def test_evidence_filters_and_bad_input(service: Service, client: httpx.Client,
                                        tmp_path: Path) -> None:
    """Filters select events (here none); a bad filter or format is 422 naming it, and is not
    recorded."""
    log = new_log(service, client, events=2)
    none = client.get(f"/v1/logs/{log}/evidence", headers=service.auth("auditor"),
                      params={"action": "nothing.matches"})
    assert none.status_code == 200
    assert none.headers["x-sealtrail-events"] == "0"
    before = size_of(service, log)
    for params, field in (({"category": "bogus"}, "category"), ({"format": "rar"}, "format"),
                          ({"since": "yesterday"}, "since")):
        response = client.get(f"/v1/logs/{log}/evidence", headers=service.auth("auditor"),
                              params=params)
        assert response.status_code == 422, response.text
        assert response.json()["field"] == field
    assert size_of(service, log) == before


# -- retention and holds ------------------------------------------------------------------------


def test_retention_policy_set_shown_and_recorded(service: Service,
                                                 client: httpx.Client) -> None:
    """An admin sets a preset, then a document; each is a ``retention.policy.set`` entry by
    the admin; auditors and admins see the policy."""
    log = new_log(service, client, events=0)
    shown = client.get(f"/v1/logs/{log}/retention", headers=service.auth("auditor"))
    assert shown.status_code == 200, shown.text
    assert shown.json()["policy"] is None
    assert shown.json()["holds"] == []
    assert "pci-dss" in shown.json()["presets"]
    put = client.put(f"/v1/logs/{log}/retention", json={"preset": "pci-dss"},
                     headers=service.auth("admin"))
    assert put.status_code == 200, put.text
    entry = entries_of(service, log)[put.json()["index"]]
    assert entry["action"] == "retention.policy.set"
    assert entry["actor"]["id"] == actor_id(service, "admin")
    doc = {"name": "mine", "default": {"min": "400d", "online": "92d"},
           "authentication": {"min": "400d", "max": "800d"}}
    put = client.put(f"/v1/logs/{log}/retention", json={"policy": doc},
                     headers=service.auth("admin"))
    assert put.status_code == 200, put.text
    assert put.json()["policy"] == RetentionPolicy.parse(doc).to_json()
    for caller in ("auditor", "admin"):
        got = client.get(f"/v1/logs/{log}/retention", headers=service.auth(caller)).json()
        assert got["policy"] == RetentionPolicy.parse(doc).to_json()
    actions = [e["action"] for e in entries_of(service, log)]
    assert actions.count("retention.policy.set") == 2


@pytest.mark.parametrize(("body", "field"), [
    ({"policy": {"authentication": {"min": "400d", "max": "30d"}}}, "policy.authentication.min"),
    ({"policy": {"default": {"max": "soon"}}}, "policy.default.max"),
    ({"policy": {"nonsense": {}}}, "policy.nonsense"),
    ({"policy": []}, "policy"),
    ({"preset": "sox"}, "preset"),
    ({}, "policy"),
    ({"preset": "pci-dss", "policy": {}}, "policy"),
    ({"preset": "pci-dss", "extra": 1}, "extra"),
    ([1], "body"),
])
def test_bad_policy_is_422_and_nothing_changes(service: Service, client: httpx.Client,
                                               body: Any, field: str) -> None:
    """A bad policy is refused naming the field; the stored policy and the log are as they
    were."""
    log = new_log(service, client, events=0)
    assert client.put(f"/v1/logs/{log}/retention", json={"preset": "hipaa"},
                      headers=service.auth("admin")).status_code == 200
    before = size_of(service, log)
    response = client.put(f"/v1/logs/{log}/retention", json=body,
                          headers=service.auth("admin"))
    assert response.status_code == 422, response.text
    assert response.json()["field"] == field
    assert size_of(service, log) == before
    got = client.get(f"/v1/logs/{log}/retention", headers=service.auth("admin")).json()
    assert got["policy"]["name"] == "hipaa"


def test_policy_body_is_length_limited(service: Service, client: httpx.Client) -> None:
    """A body past the limit is refused before it is read whole; not JSON is refused too."""
    log = new_log(service, client, events=0)
    huge = client.put(f"/v1/logs/{log}/retention", headers=service.auth("admin"),
                      content=b"{" + b" " * (70 * 1024) + b"}")
    assert huge.status_code == 422
    assert huge.json()["field"] == "policy"
    bad = client.put(f"/v1/logs/{log}/retention", headers=service.auth("admin"),
                     content=b"{not json")
    assert bad.status_code == 422
    assert bad.json()["field"] == "body"
    assert size_of(service, log) == 0


def test_legal_hold_placed_listed_and_released(service: Service, client: httpx.Client) -> None:
    """A hold is placed and released by an admin with a reason, each an entry in the log by
    that admin (the entries ``sealtrail hold add|release`` write); the release must name the
    hold's subject."""
    log = new_log(service, client, events=0)
    placed = client.post(f"/v1/logs/{log}/holds", headers=service.auth("admin"),
                         json={"subject": "cust-42", "reason": "matter 2026-17"})
    assert placed.status_code == 201, placed.text
    hold = placed.json()["hold"]
    events = entries_of(service, log)
    added = events[placed.json()["event_index"]]
    assert added["action"] == "subject.hold.add"
    assert added["actor"]["id"] == actor_id(service, "admin")
    assert added["target"] == {"type": "data_subject", "id": placed.json()["subject_ref"]}
    listed = client.get(f"/v1/logs/{log}/retention", headers=service.auth("auditor")).json()
    assert [(h["hold"], h["reason"], h["released"]) for h in listed["holds"]] == [
        (hold, "matter 2026-17", None)]
    # Another subject's id does not release it; nothing is recorded.
    before = size_of(service, log)
    wrong = client.request("DELETE", f"/v1/logs/{log}/holds/{hold}",
                           headers=service.auth("admin"),
                           json={"subject": "cust-43", "reason": "done"})
    assert wrong.status_code == 422, wrong.text
    assert wrong.json()["field"] == "subject"
    missing = client.request("DELETE", f"/v1/logs/{log}/holds/{hold + 100}",
                             headers=service.auth("admin"),
                             json={"subject": "cust-42", "reason": "done"})
    assert missing.status_code == 404, missing.text
    no_reason = client.request("DELETE", f"/v1/logs/{log}/holds/{hold}",
                               headers=service.auth("admin"),
                               json={"subject": "cust-42", "reason": "  "})
    assert no_reason.status_code == 422
    assert no_reason.json()["field"] == "reason"
    assert size_of(service, log) == before
    released = client.request("DELETE", f"/v1/logs/{log}/holds/{hold}",
                              headers=service.auth("admin"),
                              json={"subject": "cust-42", "reason": "matter closed"})
    assert released.status_code == 200, released.text
    assert released.json()["released"] == [hold]
    entry = entries_of(service, log)[released.json()["event_index"]]
    assert entry["action"] == "subject.hold.release"
    assert entry["reason"] == "matter closed"
    assert entry["actor"]["id"] == actor_id(service, "admin")
    now = client.get(f"/v1/logs/{log}/retention", headers=service.auth("admin")).json()
    assert now["holds"] == []
    everything = client.get(f"/v1/logs/{log}/retention", headers=service.auth("admin"),
                            params={"released": "true"}).json()
    assert everything["holds"][0]["released"] is not None


@pytest.mark.parametrize(("body", "field"), [
    ({"subject": "cust-1"}, "reason"),
    ({"reason": "x"}, "subject"),
    ({"subject": "cust-1", "reason": "r" * 4097}, "reason"),
    ({"subject": "s" * 257, "reason": "r"}, "subject"),
    ({"subject": 7, "reason": "r"}, "subject"),
])
def test_bad_hold_is_422_and_nothing_stored(service: Service, client: httpx.Client,
                                            body: dict[str, Any], field: str) -> None:
    """A hold without a subject or a reason, or past the limits, is refused naming the field;
    no hold and no entry is made."""
    log = new_log(service, client, events=0)
    response = client.post(f"/v1/logs/{log}/holds", headers=service.auth("admin"), json=body)
    assert response.status_code == 422, response.text
    assert response.json()["field"] == field
    assert size_of(service, log) == 0
    got = client.get(f"/v1/logs/{log}/retention", headers=service.auth("admin"),
                     params={"released": "true"}).json()
    assert got["holds"] == []


# -- roles ----------------------------------------------------------------------------------------


def _call(service: Service, client: httpx.Client, route: tuple[str, str], log: str,
          caller: str) -> httpx.Response:
    method, path = route
    url = path.replace("{log}", log).replace("{hold}", "1")
    body: dict[str, Any] | None = None
    params: dict[str, str] = {}
    if path.endswith("/reports"):
        params = {"standard": "pci-dss"}
    elif method == "PUT":
        body = {"preset": "soc2"}
    elif method in ("POST", "DELETE"):
        body = {"subject": "cust-9", "reason": "role test"}
    return client.request(method, url, headers=service.auth(caller), params=params,
                          content=None if body is None else json.dumps(body).encode())


@pytest.mark.parametrize("role", sorted(ROLES_OF))
def test_each_route_refuses_the_roles_it_does_not_name(service: Service, client: httpx.Client,
                                                       role: str) -> None:
    """Every compliance route answers 403 to a role outside its table, and records nothing;
    reports and evidence are for auditors, the retention view for auditors and admins, the
    changes for admins."""
    assert ROUTES[("GET", "/v1/logs/{log}/reports")] == {"auditor"}
    assert ROUTES[("GET", "/v1/logs/{log}/evidence")] == {"auditor"}
    assert ROUTES[("GET", "/v1/logs/{log}/retention")] == {"auditor", "admin"}
    log = new_log(service, client, events=1)
    caller = ROLES_OF[role]
    assert KEYS[caller][0] == role
    # The hold is placed before it is released (the new log's first hold is number 1).
    for route in sorted(ROUTES, key=lambda r: (r[0] == "DELETE", r)):
        allowed = role in ROUTES[route]
        before = size_of(service, log)
        response = _call(service, client, route, log, caller)
        if allowed:
            assert response.status_code < 400, (route, response.text)
        else:
            assert response.status_code == 403, (route, response.status_code)
            assert size_of(service, log) == before, route


# -- the page, in a real browser ------------------------------------------------------------------


@pytest.fixture(scope="module")
def console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """A service with sample events and a console user per role (tests/ui's data)."""
    from tests.ui.conftest import make_console_data

    data_dir = tmp_path_factory.mktemp("console")
    make_console_data(data_dir)
    config = ServiceConfig(data_dir, verify_delay=0.5, retention_interval=0, monitor=None)
    with running(config) as url:
        yield url, data_dir


def _page(browser: Any, base_url: str, role: str) -> tuple[Any, Any, list[str]]:
    """A fresh context signed in through the real form as that role's console user."""
    from tests.ui.conftest import USERS, sign_in, watch_errors

    context = browser.new_context(viewport={"width": 1280, "height": 900},
                                  accept_downloads=True)
    page = context.new_page()
    errors = watch_errors(page)
    sign_in(page, base_url, USERS[role])
    page.goto("about:blank")  # leaving the overview aborts its requests: not this page's
    errors.clear()
    page.goto(f"{base_url}/ui/logs/default/compliance")
    page.wait_for_selector("#holds-table tbody tr")
    return context, page, errors


def _shot(page: Any, name: str) -> None:
    from tests.ui.conftest import REPO

    where = Path(os.environ.get("SEALTRAIL_SCREENSHOTS", REPO / "test-output" / "screenshots"))
    where.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(where / f"{name}.png"), full_page=True)


def test_page_runs_a_report_and_downloads_it_and_a_bundle(
        browser: Any, console: tuple[str, Path], tmp_path: Path) -> None:
    """An auditor runs a report (its checks shown with their status), downloads the PDF with
    the session cookie, and exports an evidence bundle that verifies; no console error."""
    base_url, data_dir = console
    context, page, errors = _page(browser, base_url, "auditor")
    try:
        page.select_option("#report-standard", "pci-dss")
        page.click("#report-run")
        page.wait_for_selector("#report-checks tbody tr[data-check]")
        statuses = page.eval_on_selector_all(
            "#report-checks tbody tr[data-check]",
            "rows => rows.map(r => [r.dataset.check, r.dataset.status])")
        assert {"fields", "coverage", "verification"} <= {c for c, _ in statuses}
        assert {s for _, s in statuses} <= {"pass", "fail", "warn", "not-applicable"}
        assert "recorded at entry" in page.inner_text("#compliance-status")
        _shot(page, "compliance-report")
        with page.expect_download() as pdf:
            page.click("text=Download PDF")
        assert pdf.value.suggested_filename.endswith(".pdf")
        assert Path(pdf.value.path()).read_bytes().startswith(b"%PDF")
        page.select_option("#evidence-category", "authentication")
        with page.expect_download() as bundle:
            page.click("#evidence-export")
        saved = tmp_path / bundle.value.suggested_filename
        bundle.value.save_as(saved)
        with AuditLog.open(data_dir, "default", create=False) as alog:
            vkey = alog.vkey()
            exported = [alog.entry(i).event() for i in range(alog.size)][-1]
        assert verify_bundle_file(saved, vkey).events > 0
        assert exported["action"] == "audit.export"
        assert exported["actor"]["id"] == "user:audrey"
        page.wait_for_selector("#compliance-status:has-text('export is recorded')")
        assert not errors, errors
    finally:
        context.close()


def test_page_admin_sets_policy_and_places_and_releases_a_hold(
        browser: Any, console: tuple[str, Path]) -> None:
    """An admin sees no report form, sets a preset, places a hold and releases it (the wrong
    subject is refused on the form); each change is an entry by that user."""
    base_url, data_dir = console
    context, page, errors = _page(browser, base_url, "admin")
    try:
        assert page.locator("#report-form").count() == 0
        assert page.locator("#evidence-form").count() == 0
        page.select_option("#policy-preset", "hipaa")
        page.click("#policy-save")
        page.wait_for_selector("#retention-facts:has-text('hipaa')")
        page.fill("#hold-subject", "cust-77")
        page.fill("#hold-reason", "matter 2026-3")
        page.click("#hold-place")
        page.wait_for_selector("#holds-table tbody tr[data-hold]")
        _shot(page, "compliance-admin")
        page.click("#holds-table button")
        page.fill("#release-subject", "cust-78")
        page.fill("#release-reason", "matter closed")
        page.click("#release-confirm")
        page.wait_for_selector("#release-error [role=alert]")
        assert page.get_attribute("#release-subject", "aria-invalid") == "true"
        page.fill("#release-subject", "cust-77")
        page.click("#release-confirm")
        page.wait_for_selector("#holds-table tbody tr:not([data-hold])")
        with AuditLog.open(data_dir, "default", create=False) as alog:
            mine = [e for e in (alog.entry(i).event() for i in range(alog.size))
                    if e["actor"].get("id") == "user:adam"]
        assert [e["action"] for e in mine if e["category"] != "authentication"] == [
            "retention.policy.set", "subject.hold.add", "subject.hold.release"]
        # The refused release is a 422 the page showed; nothing else went wrong.
        assert [e for e in errors if "422" not in e] == [], errors
    finally:
        context.close()


@pytest.mark.parametrize("role", ["auditor", "admin"])
def test_page_with_results_is_accessible_and_fits_at_200_percent(
        browser: Any, console: tuple[str, Path], role: str) -> None:
    """With a report shown (auditor) or the release form open (admin), axe-core finds no
    WCAG 2.1 A/AA violation and the page does not scroll sideways at 200 % zoom."""
    from tests.ui.conftest import (
        AXE,
        USERS,
        axe_violations,
        sideways_at_200_percent,
        sign_in,
    )

    if not AXE.is_file():
        pytest.skip("axe-core is not installed (scripts/test installs it into .cache/npm)")
    base_url, _ = console
    # The CSP is bypassed in this context only, to inject axe (the other tests keep it).
    context = browser.new_context(viewport={"width": 1280, "height": 900}, bypass_csp=True)
    try:
        page = context.new_page()
        sign_in(page, base_url, USERS[role])
        page.goto(f"{base_url}/ui/logs/default/compliance")
        page.wait_for_selector("#holds-table tbody tr")
        if role == "auditor":
            page.click("#report-run")
            page.wait_for_selector("#report-checks tbody tr[data-check]")
            page.click("#report-evidence summary")
        else:
            page.fill("#hold-subject", f"a11y-{next(_names)}")
            page.fill("#hold-reason", "accessibility check")
            page.click("#hold-place")
            page.wait_for_selector("#holds-table tbody tr[data-hold] button")
            page.click("#holds-table tbody tr[data-hold] button")
            page.wait_for_selector("#release-form:not(.hidden)")
        found = axe_violations(page)
        assert found == [], json.dumps(found, indent=1)
        wide = sideways_at_200_percent(page)
        assert wide <= 1, f"the page scrolls sideways by {wide}px at 200 % zoom"
    finally:
        context.close()


def test_retention_view_shows_the_scheduled_run(tmp_path: Path) -> None:
    """The view carries this node's last scheduled retention run for the log (nothing is due
    here: a fresh log under the PCI DSS preset purges and archives nothing)."""
    from tests.server.conftest import make_data_dir

    tokens = make_data_dir(tmp_path)
    with AuditLog.open(tmp_path, "default", create=False) as alog:
        set_policy(alog, RetentionPolicy.preset("pci-dss"), actor={"id": "test"})
    config = ServiceConfig(tmp_path, monitor=None, verify_interval=0, retention_delay=0.1,
                           retention_interval=3600)
    with running(config) as url, httpx.Client(base_url=url, timeout=30) as client:
        auth = {"Authorization": f"Bearer {tokens['admin']}"}
        deadline = time.monotonic() + 20
        while True:
            got = client.get("/v1/logs/default/retention", headers=auth).json()
            if got["last_run"] is not None or time.monotonic() > deadline:
                break
            time.sleep(0.05)
    assert got["last_run"]["ok"] is True, got
    assert (got["last_run"]["purged"], got["last_run"]["archived"]) == (0, 0)
    assert got["schedule_seconds"] == 3600
    assert got["policy"]["name"] == "pci-dss"
