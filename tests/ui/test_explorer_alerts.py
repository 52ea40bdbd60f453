"""The Explorer and Alerts pages in a real browser over a real service: a search with
filters, paging by cursor, the query in the URL (opening it runs it), a field's error next to
it, column choice kept in the browser, the live tail showing an event ingested meanwhile, the
export downloaded (and on record), and an alert acknowledged then resolved with a reason the
log records.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import httpx
import pytest
from playwright.sync_api import expect

from sealtrail.core.event import CATEGORIES, OUTCOMES
from sealtrail.log.auditlog import AuditLog
from sealtrail.monitor.alerts import (
    SEVERITIES,
    STATUSES,
    Alert,
    AlertStore,
    monitor_db_path,
    new_alert_id,
)
from sealtrail.server.tail_api import CSV_COLUMNS
from tests.ui.conftest import USERS, Console, sign_in, watch_errors

pytestmark = pytest.mark.browser

LOG = "default"


def ingest(console: Console, events: list[dict[str, Any]]) -> list[int]:
    """Append events through the API with the console's ingest key; their indexes."""
    response = httpx.post(f"{console.base_url}/v1/logs/{LOG}/events", json=events,
                          headers=console.auth("ingest_ui"), timeout=30)
    assert response.status_code == 201, response.text
    return [r["index"] for r in response.json()["receipts"]]


def marked(action: str, i: int, **extra: Any) -> dict[str, Any]:
    """An event with an action of the test's own, so its search finds only these."""
    return {"actor": {"id": f"tester-{i % 2}", "ip": "203.0.113.9"}, "action": action,
            "outcome": "success" if i % 3 else "failure", "category": "data_access",
            "target": {"type": "doc", "id": f"t-{i}"}, **extra}


def log_events(console: Console) -> list[dict[str, Any]]:
    """Every event of the log, read with the library beside the server."""
    with AuditLog.open(console.data_dir, LOG, create=False) as alog:
        return [alog.read(e) for e in alog.entries(0)]


def explorer(console: Console, query: str = "") -> str:
    return f"{console.base_url}/ui/logs/{LOG}/events{query}"


def row_indexes(page: Any) -> list[int]:
    return [int(i) for i in page.locator("#results tbody tr").evaluate_all(
        "rows => rows.map(r => r.dataset.index)")]


def wait_searched(page: Any) -> None:
    """Until the page's search has answered (locator waits: the CSP forbids eval)."""
    expect(page.locator("#results-status")).to_have_text(re.compile(r"shown"))


def test_search_with_filters_pages_by_cursor_and_keeps_the_query_in_the_url(
        signed_in_page: Callable[[str], Any], console: Console, screenshot_dir: Path) -> None:
    """Enter in a field runs the search; rows are the newest matches with links to their
    event pages; "Older events" follows next_cursor; the URL holds the filters and opening
    it elsewhere runs the same search."""
    indexes = ingest(console, [marked("paging.test", i) for i in range(60)])
    page = signed_in_page("reader")
    page.goto(explorer(console))
    wait_searched(page)
    page.fill("#f-action", "paging.*")
    page.press("#f-action", "Enter")
    wait_searched(page)
    assert row_indexes(page) == list(reversed(indexes))[:50]
    first = page.locator("#results tbody tr").first.locator("a")
    assert first.get_attribute("href") == f"/ui/logs/{LOG}/events/{indexes[-1]}"
    assert page.locator("#older").is_visible()
    page.click("#older")
    expect(page.locator("#results tbody tr")).to_have_count(60)
    assert row_indexes(page) == list(reversed(indexes))
    assert page.locator("#older").is_hidden()
    assert parse_qs(urlparse(page.url).query) == {"action": ["paging.*"]}

    # More filters, through the form: the URL holds them all, times as RFC 3339 UTC.
    page.select_option("#f-outcome", "failure")
    page.fill("#f-actor", "tester-1")
    page.fill("#f-since", "2000-01-01T00:00:00")
    page.press("#f-actor", "Enter")
    wait_searched(page)
    want = [i for n, i in enumerate(indexes) if n % 3 == 0 and n % 2 == 1]
    assert row_indexes(page) == list(reversed(want))
    query = parse_qs(urlparse(page.url).query)
    assert query["outcome"] == ["failure"]
    assert query["actor"] == ["tester-1"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", query["since"][0])
    page.screenshot(path=str(screenshot_dir / "explorer-search.png"), full_page=True)

    shared = page.url
    other = signed_in_page("auditor")
    other.goto(shared)
    wait_searched(other)
    assert row_indexes(other) == list(reversed(want))
    assert other.input_value("#f-actor") == "tester-1"
    assert other.input_value("#f-outcome") == "failure"
    assert other.input_value("#f-since") == page.input_value("#f-since")
    assert page.console_errors == []
    assert other.console_errors == []


def test_an_api_error_is_shown_next_to_the_field_it_names(
        signed_in_page: Callable[[str], Any], console: Console) -> None:
    """A category the service refuses (a stale page offering one) is shown by that field."""
    page = signed_in_page("reader")
    page.goto(explorer(console))
    wait_searched(page)
    page.evaluate("""() => {
        const s = document.querySelector('#f-category');
        s.append(new Option('retired_category', 'retired_category'));
        s.value = 'retired_category';
    }""")
    page.click("#search-submit")
    error = page.locator("#err-category")
    error.wait_for(state="visible")
    assert "retired_category" in error.inner_text()
    assert page.get_attribute("#f-category", "aria-invalid") == "true"
    # The export links are withdrawn while the search is refused.
    assert page.get_attribute("#export-csv", "href") is None
    assert page.get_attribute("#export-csv", "aria-disabled") == "true"


def test_columns_are_chosen_and_remembered(signed_in_page: Callable[[str], Any],
                                           console: Console) -> None:
    """Unticking and ticking columns changes the table; a reload keeps the choice."""
    page = signed_in_page("reader")
    page.goto(explorer(console))
    wait_searched(page)
    page.click("#columns summary")
    page.uncheck("#col-actor")
    page.check("#col-ip")
    headings = page.locator("#results thead th").all_inner_texts()
    assert "Actor" not in headings
    assert "IP address" in headings
    assert page.locator("#results tbody tr").first.locator("td[data-col=ip]").count() == 1
    page.reload()
    wait_searched(page)
    headings = page.locator("#results thead th").all_inner_texts()
    assert "Actor" not in headings
    assert "IP address" in headings


def test_live_tail_shows_an_event_ingested_meanwhile(
        signed_in_page: Callable[[str], Any], console: Console, screenshot_dir: Path) -> None:
    """With the live tail on, an event appended through the API appears at the top, marked
    new; one that does not match the filter does not."""
    page = signed_in_page("reader")
    page.goto(explorer(console, "?action=tail.*"))
    wait_searched(page)
    page.check("#live")
    expect(page.locator("#live-status")).to_have_text(re.compile(r"^Live"))
    [skipped, index] = ingest(console, [marked("other.thing", 1), marked("tail.test", 2)])
    top = page.locator("#results tbody tr.new").first
    top.wait_for(timeout=15000)
    assert top.get_attribute("data-index") == str(index)
    assert "tail.test" in top.inner_text()
    assert page.locator(f"#results tbody tr[data-index='{skipped}']").count() == 0
    page.screenshot(path=str(screenshot_dir / "explorer-live.png"), full_page=True)
    page.uncheck("#live")
    assert page.console_errors == []


def test_export_downloads_the_current_result_and_is_recorded(
        signed_in_page: Callable[[str], Any], console: Console, tmp_path: Path) -> None:
    """Export CSV downloads the search's rows with the CLI's columns; the export is an
    audit.export event in the log naming the filter and the count."""
    indexes = ingest(console, [marked("export.test", i) for i in range(7)])
    page = signed_in_page("auditor")
    page.goto(explorer(console, "?action=export.test"))
    wait_searched(page)
    assert row_indexes(page) == list(reversed(indexes))
    with page.expect_download() as info:
        page.click("#export-csv")
    target = tmp_path / "export.csv"
    info.value.save_as(target)
    assert info.value.suggested_filename == f"{LOG}-events.csv"
    rows = list(csv.reader(io.StringIO(target.read_text("utf-8"), newline="")))
    assert tuple(rows[0]) == CSV_COLUMNS
    assert [int(r[0]) for r in rows[1:]] == list(reversed(indexes))
    with page.expect_download() as info:
        page.click("#export-jsonl")
    lines = [ln for ln in Path(info.value.path()).read_bytes().split(b"\n") if ln]
    assert len(lines) == len(indexes)
    exports = [ev for ev in log_events(console) if ev.get("action") == "audit.export"]
    assert [e["metadata"]["filter"]["format"] for e in exports[-2:]] == ["csv", "jsonl"]
    assert exports[-1]["metadata"]["filter"]["action"] == "export.test"
    assert exports[-1]["metadata"]["results"] == len(indexes)
    assert exports[-1]["actor"]["id"] == "user:audrey"
    assert page.console_errors == []


# -- alerts ------------------------------------------------------------------------------------


def make_alert(console: Console, entries: list[int], title: str) -> str:
    """An open alert in the service's alert store, raised by ``entries``."""
    store = AlertStore(monitor_db_path(console.data_dir))
    try:
        alert_id = new_alert_id()
        store.put(Alert(alert_id, LOG, "test.ui_rule", "tester-1", title, "high", "open",
                        "2026-01-01T00:00:00Z", "2099-01-01T00:00:00Z", len(entries),
                        entries=entries, message="three failed reads", updated_by="test"))
    finally:
        store.close()
    return alert_id


def test_alert_acknowledged_then_resolved_with_a_reason(
        signed_in_page: Callable[[str], Any], console: Console, screenshot_dir: Path) -> None:
    """The detail lists the events that raised the alert (links to their pages); a change
    needs a reason; acknowledge then resolve, the list and detail show the new status, and
    the log holds both changes with their reasons."""
    indexes = ingest(console, [marked("suspect.read", i) for i in range(3)])
    alert_id = make_alert(console, indexes, "UI test alert")
    page = signed_in_page("auditor")
    page.goto(f"{console.base_url}/ui/logs/{LOG}/alerts?severity=high")
    row = page.locator(f"#alerts tbody tr[data-alert='{alert_id}']")
    row.wait_for()
    row.locator("button").click()
    links = page.locator("#alert-events a")
    links.first.wait_for()
    assert links.evaluate_all("as => as.map(a => a.getAttribute('href'))") == [
        f"/ui/logs/{LOG}/events/{i}" for i in indexes]
    assert "alert=" in page.url

    page.click("#alert-ack")
    assert "reason is required" in page.locator("#alert-change-error").inner_text()
    page.fill("#alert-reason", "Looking into the failed reads")
    page.click("#alert-ack")
    expect(page.locator(f"#alerts tbody tr[data-alert='{alert_id}']")).to_have_attribute(
        "data-status", "acknowledged", timeout=15000)
    assert page.locator("#alert-ack").is_disabled()
    page.screenshot(path=str(screenshot_dir / "alerts-acknowledged.png"), full_page=True)

    page.fill("#alert-reason", "False positive: a load test by the QA team")
    page.click("#alert-resolve")
    expect(page.locator(f"#alerts tbody tr[data-alert='{alert_id}']")).to_have_attribute(
        "data-status", "resolved", timeout=15000)
    expect(page.locator("#alert-facts [data-value=resolved]")).to_have_count(1)
    assert page.locator("#alert-change").is_hidden()
    changes = [(ev["action"], ev.get("reason")) for ev in log_events(console)
               if ev.get("action") in ("alert.acknowledge", "alert.resolve")]
    assert changes[-2:] == [("alert.acknowledge", "Looking into the failed reads"),
                            ("alert.resolve", "False positive: a load test by the QA team")]
    assert page.console_errors == []


def test_a_reader_sees_alerts_but_cannot_change_them(
        signed_in_page: Callable[[str], Any], console: Console) -> None:
    """A reader gets the list and details, and no acknowledge/resolve form."""
    indexes = ingest(console, [marked("suspect.read", 9)])
    alert_id = make_alert(console, indexes, "Reader's view")
    page = signed_in_page("reader")
    page.goto(f"{console.base_url}/ui/logs/{LOG}/alerts?alert={alert_id}")
    page.locator("#alert-events a").first.wait_for()
    assert page.locator("#alert-change").is_hidden()
    assert page.locator("#alert-readonly").is_visible()
    assert page.console_errors == []


def test_the_pages_offer_exactly_the_values_the_api_knows() -> None:
    """The category and outcome selects are the event model's; the alert filters the
    alert store's (a value added there must be offered here)."""
    templates = Path(__file__).resolve().parents[2] / "src/sealtrail/server/web/templates"
    explorer_html = (templates / "explorer.html").read_text("utf-8")
    choices: tuple[tuple[str, tuple[str, ...]], ...] = (("category", CATEGORIES),
                                                        ("outcome", OUTCOMES))
    for name, values in choices:
        listed = re.search(r'{% for \w+ in \[([^\]]*)\] %}',
                           explorer_html[explorer_html.index(f'id="f-{name}"'):])
        assert listed is not None
        assert tuple(re.findall(r'"([^"]+)"', listed.group(1))) == values
    alerts_html = (templates / "alerts.html").read_text("utf-8")
    filters: tuple[tuple[str, tuple[str, ...]], ...] = (("status", STATUSES),
                                                        ("severity", SEVERITIES))
    for name, values in filters:
        block = alerts_html[alerts_html.index(f'id="a-{name}"'):]
        block = block[:block.index("</select>")]
        assert sorted(re.findall(r'<option value="([^"]+)"', block)) == sorted(values)


def test_an_admin_handles_alerts_without_reading_their_events(
        signed_in_page: Callable[[str], Any], console: Console) -> None:
    """An admin, who reads no event content, sees the alert's events by number only (no link
    to a page it may not open) and may still acknowledge it."""
    indexes = ingest(console, [marked("suspect.read", 5), marked("suspect.read", 6)])
    alert_id = make_alert(console, indexes, "Admin's view")
    page = signed_in_page("admin")
    page.goto(f"{console.base_url}/ui/logs/{LOG}/alerts?alert={alert_id}")
    items = page.locator("#alert-events li")
    expect(items).to_have_count(2)
    assert items.all_inner_texts() == [f"Event {i}" for i in indexes]
    assert page.locator("#alert-events a").count() == 0
    assert page.locator("#alert-change").is_visible()
    page.fill("#alert-reason", "Handled by the on-call admin")
    page.click("#alert-ack")
    expect(page.locator("#alert-facts [data-value=acknowledged]")).to_have_count(1)
    assert page.console_errors == []


# -- a shared URL is searched as it is written -------------------------------------------------

# Europe/Berlin leaves summer time on 2025-10-26 at 01:00 UTC: local 02:00-03:00 happens twice
# (00:00-01:00 UTC in CEST, then 01:00-02:00 UTC in CET). A datetime-local value in that hour
# names two instants; the browser reads it as the first.
DST_EVENTS = ("2025-10-26T00:45:00.000000Z",   # 02:45 CEST, the first 02:45
              "2025-10-26T01:45:00.250000Z",   # 02:45 CET, the second
              "2025-10-26T01:45:00.750000Z")


@pytest.fixture
def berlin_page(browser: Any, console: Console) -> Iterator[Any]:
    """A reader's page in a browser whose local time is Europe/Berlin (with DST)."""
    context = browser.new_context(timezone_id="Europe/Berlin")
    try:
        page = context.new_page()
        page.console_errors = watch_errors(page)
        sign_in(page, console.base_url, USERS["reader"])
        yield page
    finally:
        context.close()


def test_a_shared_url_is_searched_with_its_exact_times(berlin_page: Any,
                                                       console: Console) -> None:
    """Opening a shared URL searches with the URL's exact values (not their round trip
    through the local-time form: the DST repeated hour and fractions of a second survive) and
    leaves the URL alone; the form shows them in local time; a submit writes the URL from the
    form, and an unchanged time field keeps the URL's exact value."""
    a, b, c = ingest(console, [marked("dst.test", i, time=t) for i, t in enumerate(DST_EVENTS)])
    page = berlin_page

    shared = explorer(console, "?action=dst.test&since=2025-10-26T01%3A30%3A00Z"
                      "&until=2025-10-26T03%3A00%3A00Z")
    page.goto(shared)
    wait_searched(page)
    assert row_indexes(page) == [c, b]  # not a: 00:45Z is before 01:30Z
    assert page.url == shared
    # CET, shown locally (the browser writes a value with zero seconds without them)
    assert re.fullmatch(r"2025-10-26T02:30(:00)?", page.input_value("#f-since"))
    assert "2025-10-26T01:30:00Z" in page.locator("#exact-since").inner_text()

    shared = explorer(console, "?action=dst.test&since=2025-10-26T01%3A45%3A00.500Z")
    page.goto(shared)
    wait_searched(page)
    assert row_indexes(page) == [c]  # the half second counts
    assert page.url == shared
    # Submitted without touching the time: its exact value is searched and written.
    page.press("#f-action", "Enter")
    wait_searched(page)
    assert row_indexes(page) == [c]
    assert parse_qs(urlparse(page.url).query) == {"action": ["dst.test"],
                                                  "since": ["2025-10-26T01:45:00.500Z"]}
    # Edited: the form's (local) value is searched, and written to the URL as UTC.
    page.fill("#f-since", "2025-10-26T01:00:00")  # CEST: 2025-10-25T23:00:00Z
    page.press("#f-since", "Enter")
    wait_searched(page)
    assert row_indexes(page) == [c, b, a]
    assert parse_qs(urlparse(page.url).query)["since"] == ["2025-10-25T23:00:00Z"]
    assert page.locator("#exact-since").is_hidden()
    assert page.console_errors == []


def test_an_unparseable_time_in_a_shared_url_is_refused_by_its_field(
        berlin_page: Any, console: Console) -> None:
    """A URL whose ``since`` is not a time: the API's refusal is shown next to the field (not
    dropped silently into a search without it); the URL stays as opened."""
    ingest(console, [marked("bad.time", 1)])
    page = berlin_page
    shared = explorer(console, "?action=bad.time&since=yesterday")
    page.goto(shared)
    error = page.locator("#err-since")
    error.wait_for(state="visible")
    assert error.inner_text()
    assert page.get_attribute("#f-since", "aria-invalid") == "true"
    assert row_indexes(page) == []
    assert page.url == shared
    assert "yesterday" in page.locator("#exact-since").inner_text()
    # Clear drops it: the search runs without.
    page.click("#search-clear")
    wait_searched(page)
    assert error.is_hidden()


def test_the_live_tail_asks_to_run_in_the_background(
        signed_in_page: Callable[[str], Any], console: Console) -> None:
    """The live tail's stream is requested with background=1 (the service then does not
    count it as activity that keeps an idle session alive)."""
    page = signed_in_page("reader")
    page.goto(explorer(console, "?action=tail.bg"))
    wait_searched(page)
    with page.expect_request("**/events/stream?*") as info:
        page.check("#live")
    query = parse_qs(urlparse(info.value.url).query)
    assert query["background"] == ["1"]
    assert query["action"] == ["tail.bg"]
    expect(page.locator("#live-status")).to_have_text(re.compile(r"^Live"))
    page.uncheck("#live")
    assert page.console_errors == []


def test_search_by_request_and_trace_id(signed_in_page: Callable[[str], Any],
                                        console: Console) -> None:
    """The request and trace ids the API filters on are in the form too, and in the URL."""
    posted = httpx.post(f"{console.base_url}/v1/logs/default/events",
                        headers=console.auth("ingest_ui"),
                        json=[{"actor": {"id": "svc"}, "action": "order.pay",
                               "outcome": "success", "request_id": "req-7731",
                               "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736"}])
    assert posted.status_code == 201, posted.text
    index = posted.json()["receipts"][0]["index"]
    page = signed_in_page("reader")
    page.goto(f"{console.base_url}/ui/logs/default/events?request_id=req-7731")
    page.wait_for_selector(f"#results tbody tr[data-index='{index}']")
    assert row_indexes(page) == [index]
    page.fill("#f-request_id", "")
    page.fill("#f-trace_id", "4bf92f3577b34da6a3ce929d0e0e4736")
    page.press("#f-trace_id", "Enter")
    page.wait_for_url("**trace_id=4bf92f3577b34da6a3ce929d0e0e4736**")
    page.wait_for_selector(f"#results tbody tr[data-index='{index}']")
    assert row_indexes(page) == [index]
    assert page.console_errors == []
