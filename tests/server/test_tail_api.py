"""The live tail (SSE) and the export of a search, and an alert's detail, over a real uvicorn
server: entries appended through an ingest key after a stream connects arrive on it, filters
apply, ``Last-Event-ID`` resumes, scopes and limits hold, exports match the search and are on
record before they are sent, and every read is audited.
"""

from __future__ import annotations

import contextlib
import csv
import io
import itertools
import json
import queue
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from sealtrail.log.auditlog import AuditLog
from sealtrail.monitor.alerts import Alert, AlertStore, monitor_db_path, new_alert_id
from sealtrail.server.tail_api import CSV_COLUMNS, MAX_STREAMS
from tests.server.conftest import Service

_names = itertools.count()


def new_log(service: Service, client: httpx.Client) -> str:
    """A fresh, empty log created by the admin through the API."""
    name = f"tail-{next(_names)}"
    response = client.post("/v1/logs", json={"name": name}, headers=service.auth("admin"))
    assert response.status_code == 201, response.text
    return name


def event(i: int, action: str = "doc.read", outcome: str = "success") -> dict[str, Any]:
    """A small event; actor and target vary with ``i``."""
    return {"actor": {"id": f"user-{i % 3}", "ip": "198.51.100.7"}, "action": action,
            "outcome": outcome, "category": "data_access",
            "target": {"type": "doc", "id": f"doc-{i}", "name": "=cmd|' /C calc'!A0"}}


def ingest(service: Service, client: httpx.Client, log: str,
           events: list[dict[str, Any]]) -> list[int]:
    """POST events as the ingest key; their indexes."""
    response = client.post(f"/v1/logs/{log}/events", json=events,
                           headers=service.auth("ingest_all"))
    assert response.status_code == 201, response.text
    return [r["index"] for r in response.json()["receipts"]]


def log_events(service: Service, log: str) -> list[dict[str, Any]]:
    """Every event of the log, read with the library beside the server."""
    with AuditLog.open(service.data_dir, log, create=False) as alog:
        return [alog.read(e) for e in alog.entries(0)]


def records(service: Service, log: str, action: str) -> list[dict[str, Any]]:
    """The log's read records of one action."""
    return [ev for ev in log_events(service, log)
            if ev.get("category") == "audit_access" and ev.get("action") == action]


@dataclass
class Tail:
    """An SSE stream read in a thread: its answer's status, and the events as they come."""

    status: int = 0
    events: queue.Queue[dict[str, Any]] = field(default_factory=queue.Queue)
    ids: list[str] = field(default_factory=list)
    started: threading.Event = field(default_factory=threading.Event)
    stop: threading.Event = field(default_factory=threading.Event)
    body: str = ""

    def next(self, timeout: float = 10) -> dict[str, Any]:
        """The next ``entry`` event's data (fails after ``timeout`` seconds)."""
        try:
            return self.events.get(timeout=timeout)
        except queue.Empty:
            pytest.fail(f"no SSE entry within {timeout} s")

    def none_within(self, seconds: float) -> None:
        """No ``entry`` event arrives within ``seconds``."""
        try:
            got = self.events.get(timeout=seconds)
        except queue.Empty:
            return
        pytest.fail(f"unexpected entry {got}")


def _read_sse(service: Service, url: str, headers: dict[str, str],
              params: dict[str, Any], tail: Tail) -> None:
    """Parse the stream by the SSE rules (lines split on CR/LF only) until told to stop."""
    try:
        with httpx.Client(base_url=service.base_url, timeout=httpx.Timeout(30)) as c, \
                c.stream("GET", url, headers=headers, params=params) as response:
            tail.status = response.status_code
            if response.status_code != 200:
                response.read()
                tail.body = response.text
                return
            tail.started.set()
            kind, data = "message", list[str]()
            for line in response.iter_lines():
                if tail.stop.is_set():
                    return
                if line == "":
                    if kind == "entry" and data:
                        tail.events.put(json.loads("\n".join(data)))
                    kind, data = "message", list[str]()
                elif line.startswith(":"):
                    continue
                else:
                    name, _, value = line.partition(":")
                    value = value.removeprefix(" ")
                    if name == "event":
                        kind = value
                    elif name == "data":
                        data.append(value)
                    elif name == "id":
                        tail.ids.append(value)
    finally:
        tail.started.set()


@contextmanager
def tail(service: Service, log: str, caller: str = "reader_all",
         headers: dict[str, str] | None = None, **params: Any) -> Iterator[Tail]:
    """A live tail of ``log`` open for the block, then its thread joined. The stream ends by
    itself after ``max_seconds`` (5 unless given): a blocked read cannot be interrupted."""
    params.setdefault("max_seconds", 5)
    t = Tail()
    thread = threading.Thread(
        target=_read_sse, args=(service, f"/v1/logs/{log}/events/stream",
                                {**service.auth(caller), **(headers or {})}, params, t),
        daemon=True)
    thread.start()
    assert t.started.wait(20), "the stream did not answer"
    try:
        yield t
    finally:
        t.stop.set()
        thread.join(20)


# -- live tail -------------------------------------------------------------------------------


def test_stream_delivers_matching_entries_appended_after_connect(
        service: Service, client: httpx.Client) -> None:
    """Only new entries that match the filter arrive, in order, each with its index as id."""
    log = new_log(service, client)
    ingest(service, client, log, [event(0, "doc.write")])  # before: never sent
    with tail(service, log, action="doc.w*", outcome="failure") as t:
        assert t.status == 200
        time.sleep(0.3)
        indexes = ingest(service, client, log, [
            event(1, "doc.write", "failure"), event(2, "doc.read", "failure"),
            event(3, "doc.write", "success"), event(4, "doc.writer", "failure")])
        first, second = t.next(), t.next()
        assert [first["index"], second["index"]] == [indexes[0], indexes[3]]
        assert first["event"]["action"] == "doc.write"
        assert second["event"]["target"]["id"] == "doc-4"
        t.none_within(1.5)
        assert str(indexes[3]) in t.ids


def test_stream_batches_are_recorded_before_they_are_sent(
        service: Service, client: httpx.Client) -> None:
    """A delivered batch is an audited read: audit.search with stream=live and its count,
    appended before the entries it counts reach the client."""
    log = new_log(service, client)
    with tail(service, log, actor="user-1") as t:
        time.sleep(0.3)
        ingest(service, client, log, [event(1), event(4), event(2)])
        t.next()
        t.next()
        found = records(service, log, "audit.search")
    live = [r for r in found if r["metadata"]["filter"].get("stream") == "live"]
    assert live, found
    assert sum(r["metadata"]["results"] for r in live) == 2
    assert live[0]["actor"]["id"] == f"key:{service.key_id('reader_all')}"
    assert live[0]["metadata"]["filter"]["actor"] == "user-1"


def test_last_event_id_resumes_after_that_index(service: Service,
                                                client: httpx.Client) -> None:
    """A reconnect with Last-Event-ID gets exactly the matching entries after it."""
    log = new_log(service, client)
    indexes = ingest(service, client, log, [event(i) for i in range(6)])
    with tail(service, log, headers={"Last-Event-ID": str(indexes[2])},
              target="doc-4") as t:
        assert t.next()["index"] == indexes[4]
        t.none_within(1)
    with tail(service, log, after=-1, actor="user-0") as t:
        assert [t.next()["index"], t.next()["index"]] == [indexes[0], indexes[3]]


def test_two_unfiltered_tails_do_not_feed_each_other(service: Service,
                                                     client: httpx.Client) -> None:
    """Each tail's read record is an entry the other sees; reads of read records alone are
    not recorded at once, so the log stops growing."""
    log = new_log(service, client)
    with tail(service, log, max_seconds=9) as a, \
            tail(service, log, caller="auditor", max_seconds=9) as b:
        time.sleep(0.3)
        ingest(service, client, log, [event(0)])
        assert a.next()["event"]["action"] == "doc.read"
        assert b.next()["event"]["action"] == "doc.read"
        time.sleep(2.5)
        with AuditLog.open(service.data_dir, log, create=False) as alog:
            settled = alog.size
        time.sleep(2)
        with AuditLog.open(service.data_dir, log, create=False) as alog:
            assert alog.size == settled
    assert settled <= 1 + 2 + 2  # the event, one record per tail, the records each sees


def test_stream_is_refused_on_another_log_and_to_an_admin(service: Service,
                                                          client: httpx.Client) -> None:
    """A reader scoped to ``default`` may not follow ``other``; an admin reads no content."""
    for caller, log in (("reader_default", "other"), ("admin", "default"),
                        ("ingest_all", "default")):
        response = client.get(f"/v1/logs/{log}/events/stream",
                              params={"max_seconds": 1}, headers=service.auth(caller))
        assert response.status_code == 403, (caller, response.text)


def test_stream_ends_after_max_seconds(service: Service, client: httpx.Client) -> None:
    """A stream lasts at most max_seconds (the client reconnects and is authenticated again)."""
    started = time.monotonic()
    response = client.get("/v1/logs/default/events/stream", params={"max_seconds": 1},
                          headers=service.auth("reader_all"))
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    assert time.monotonic() - started < 10
    assert "retry: 2000" in response.text


def test_open_streams_per_caller_are_limited(service: Service, client: httpx.Client) -> None:
    """Past MAX_STREAMS open tails of one caller: 429; another caller is not affected; a
    closed stream frees its slot."""
    log = new_log(service, client)
    with contextlib.ExitStack() as stack:
        opened = [stack.enter_context(tail(service, log)) for _ in range(MAX_STREAMS)]
        assert all(t.status == 200 for t in opened)
        response = client.get(f"/v1/logs/{log}/events/stream", params={"max_seconds": 1},
                              headers=service.auth("reader_all"))
        assert response.status_code == 429, response.text
        other = client.get(f"/v1/logs/{log}/events/stream", params={"max_seconds": 1},
                           headers=service.auth("auditor"))
        assert other.status_code == 200
    deadline = time.monotonic() + 10
    while True:
        again = client.get(f"/v1/logs/{log}/events/stream", params={"max_seconds": 1},
                           headers=service.auth("reader_all"))
        if again.status_code == 200 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert again.status_code == 200, again.text


@pytest.mark.parametrize(("params", "field_name"), [
    ({"category": "nope"}, "category"), ({"outcome": "maybe"}, "outcome"),
    ({"since": "yesterday"}, "since"), ({"until": "2025-13-01T00:00:00Z"}, "until"),
    ({"after": -5}, "after"), ({"max_seconds": 0}, "max_seconds"),
    ({"actor": "x" * 513}, "actor")])
def test_bad_stream_filters_are_422_naming_the_field(
        service: Service, client: httpx.Client, params: dict[str, Any],
        field_name: str) -> None:
    """A filter no event can match is refused before the stream starts, naming it."""
    response = client.get("/v1/logs/default/events/stream", params=params,
                          headers=service.auth("reader_all"))
    assert response.status_code == 422, response.text
    assert response.json()["field"] == field_name


def test_bad_last_event_id_is_422(service: Service, client: httpx.Client) -> None:
    """A Last-Event-ID that is not an index is named as such."""
    response = client.get("/v1/logs/default/events/stream",
                          headers={**service.auth("reader_all"), "Last-Event-ID": "abc"})
    assert response.status_code == 422
    assert response.json()["field"] == "Last-Event-ID"


# -- export ----------------------------------------------------------------------------------


def _search(service: Service, client: httpx.Client, log: str,
            **params: Any) -> list[dict[str, Any]]:
    response = client.get(f"/v1/logs/{log}/events", params={"limit": 1000, **params},
                          headers=service.auth("reader_all"))
    assert response.status_code == 200, response.text
    events: list[dict[str, Any]] = response.json()["events"]
    return events


def test_export_jsonl_is_the_search_result_and_recorded_first(
        service: Service, client: httpx.Client) -> None:
    """JSON Lines: the search's rows, newest first; ASCII, split on newlines only; the
    audit.export record (filter, format, count) precedes the file and is not in it."""
    log = new_log(service, client)
    ingest(service, client, log, [event(i) for i in range(9)]
           + [{**event(9), "reason": "line\u2028break and \u00e9"}])
    expected = _search(service, client, log, actor="user-0")
    response = client.get(f"/v1/logs/{log}/export",
                          params={"actor": "user-0", "format": "jsonl"},
                          headers=service.auth("reader_all"))
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/x-ndjson")
    assert response.headers["content-disposition"] == (
        f'attachment; filename="{log}-events.jsonl"')
    assert response.content.isascii()
    lines = [json.loads(line) for line in response.content.split(b"\n") if line]
    assert [(row["index"], row["event"]) for row in lines] == [
        (row["index"], row["event"]) for row in expected]
    assert response.headers["x-sealtrail-rows"] == str(len(expected))
    assert response.headers["x-sealtrail-truncated"] == "false"
    exports = records(service, log, "audit.export")
    assert len(exports) == 1
    meta = exports[0]["metadata"]
    assert meta["results"] == len(expected)
    assert meta["filter"]["actor"] == "user-0"
    assert meta["filter"]["format"] == "jsonl"
    assert exports[0]["actor"]["id"] == f"key:{service.key_id('reader_all')}"


def test_export_csv_has_the_cli_columns_and_the_search_rows(
        service: Service, client: httpx.Client) -> None:
    """CSV: the columns of `query --format csv`, one row per search result; a cell a
    spreadsheet would run as a formula starts with a quote."""
    log = new_log(service, client)
    ingest(service, client, log, [event(i) for i in range(5)])
    expected = _search(service, client, log, category="data_access")
    response = client.get(f"/v1/logs/{log}/export",
                          params={"format": "csv", "category": "data_access"},
                          headers=service.auth("auditor"))
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(response.text, newline="")))
    assert tuple(rows[0]) == CSV_COLUMNS
    assert [int(r[0]) for r in rows[1:]] == [row["index"] for row in expected]
    by_index = {row["index"]: row["event"] for row in expected}
    for r in rows[1:]:
        ev = by_index[int(r[0])]
        assert r[1:7] == [ev["time"], ev["actor"]["id"], ev["action"], ev["outcome"],
                          ev["category"], ev.get("target", {}).get("id")
                          or ev.get("target", {}).get("name", "")]
        assert r[8] == ev["id"]


def test_export_limit_cuts_and_says_so(service: Service, client: httpx.Client) -> None:
    """With more matches than ``limit``: ``limit`` rows (the newest), and the headers and the
    record say the export was cut short."""
    log = new_log(service, client)
    indexes = ingest(service, client, log, [event(i) for i in range(5)])
    response = client.get(f"/v1/logs/{log}/export", params={"format": "jsonl", "limit": 2},
                          headers=service.auth("reader_all"))
    assert response.status_code == 200
    lines = [json.loads(line) for line in response.content.split(b"\n") if line]
    assert [row["index"] for row in lines] == [indexes[4], indexes[3]]
    assert response.headers["x-sealtrail-truncated"] == "true"
    assert response.headers["x-sealtrail-limit"] == "2"
    meta = records(service, log, "audit.export")[-1]["metadata"]
    assert meta["results"] == 2
    assert meta["filter"]["truncated"] is True


@pytest.mark.parametrize(("params", "field_name"), [
    ({"format": "xml"}, "format"), ({"limit": 0}, "limit"), ({"limit": 100_001}, "limit"),
    ({"category": "nope"}, "category"), ({"since": "soon"}, "since")])
def test_bad_export_requests_are_422_naming_the_field(
        service: Service, client: httpx.Client, params: dict[str, Any],
        field_name: str) -> None:
    """A bad format, limit or filter is refused, naming it, and nothing is recorded."""
    response = client.get("/v1/logs/default/export", params=params,
                          headers=service.auth("reader_all"))
    assert response.status_code == 422, response.text
    assert response.json()["field"] == field_name


def test_export_is_refused_on_another_log_and_to_an_admin(service: Service,
                                                          client: httpx.Client) -> None:
    """The export reads event content: readers and auditors, on their logs, only."""
    for caller, log in (("reader_default", "other"), ("admin", "default")):
        response = client.get(f"/v1/logs/{log}/export", headers=service.auth(caller))
        assert response.status_code == 403, (caller, response.text)


# -- an alert's detail -------------------------------------------------------------------------


def _alert(service: Service, log: str, entries: list[int]) -> str:
    store = AlertStore(monitor_db_path(service.data_dir))
    try:
        alert_id = new_alert_id()
        store.put(Alert(alert_id, log, "test.rule", "k", "Test", "high", "open",
                        "2026-01-01T00:00:00Z", "2026-01-01T00:00:00Z", len(entries),
                        entries=entries, updated_by="test"))
    finally:
        store.close()
    return alert_id


def test_alert_detail_has_the_events_that_raised_it(service: Service,
                                                    client: httpx.Client) -> None:
    """A reader gets the alert and its evidence events (an audited read naming the alert);
    an admin the alert without event content; another log's alert is not found."""
    log = new_log(service, client)
    indexes = ingest(service, client, log, [event(i) for i in range(4)])
    alert_id = _alert(service, log, [indexes[1], indexes[3]])
    response = client.get(f"/v1/logs/{log}/alerts/{alert_id}",
                          headers=service.auth("reader_all"))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["id"] == alert_id
    assert body["status"] == "open"
    assert [(e["index"], e["event"]["target"]["id"]) for e in body["events"]] == [
        (indexes[1], "doc-1"), (indexes[3], "doc-3")]
    read = records(service, log, "audit.entries.read")
    assert read[-1]["metadata"]["filter"] == {"alert": alert_id}
    assert read[-1]["metadata"]["results"] == 2
    admin = client.get(f"/v1/logs/{log}/alerts/{alert_id}", headers=service.auth("admin"))
    assert admin.status_code == 200
    assert admin.json()["events"] is None
    assert len(records(service, log, "audit.entries.read")) == 1
    elsewhere = client.get(f"/v1/logs/default/alerts/{alert_id}",
                           headers=service.auth("reader_all"))
    assert elsewhere.status_code == 404
    scoped = client.get(f"/v1/logs/{log}/alerts/{alert_id}",
                        headers=service.auth("reader_default"))
    assert scoped.status_code == 403
