"""``POST /v1/logs/{log}/import`` on a real service: a source's file in, all or nothing,
exactly once, limits and roles as for events."""

from __future__ import annotations

import gzip
import json
from collections.abc import Callable

import httpx

from tests.server.conftest import Service


def _okta_like_github(n: int, start: int = 0) -> bytes:
    return json.dumps([{"@timestamp": 1767225600000 + i, "_document_id": f"api-{i}",
                        "action": "repo.destroy", "actor": "mallory", "repo": f"acme/r{i}"}
                       for i in range(start, start + n)]).encode()


def test_import_stores_all_once_and_answers_receipts(service: Service,
                                                      client: httpx.Client) -> None:
    h = service.auth("ingest_default")
    res = client.post("/v1/logs/default/import", params={"source": "github"},
                      content=_okta_like_github(12), headers=h)
    assert res.status_code == 201, res.text
    body = res.json()
    assert (body["records"], body["imported"], body["duplicates"]) == (12, 12, 0)
    assert len(body["receipts"]) == 12
    again = client.post("/v1/logs/default/import", params={"source": "github"},
                        content=gzip.compress(_okta_like_github(14)), headers=h)
    assert again.status_code == 201, again.text
    assert (again.json()["imported"], again.json()["duplicates"]) == (2, 12)
    assert [r["index"] for r in again.json()["receipts"][:12]] == [
        r["index"] for r in body["receipts"]]


def test_a_bad_record_is_named_and_nothing_is_stored(service: Service,
                                                     client: httpx.Client) -> None:
    h = service.auth("ingest_default")
    size = client.get("/v1/logs/default/checkpoint", headers=h).text.splitlines()[1]
    records = json.loads(_okta_like_github(5, start=100))
    del records[3]["@timestamp"]
    res = client.post("/v1/logs/default/import", params={"source": "github"},
                      content=json.dumps(records).encode(), headers=h)
    assert res.status_code == 422
    assert res.json()["field"].startswith("record 4")
    assert client.get("/v1/logs/default/checkpoint", headers=h).text.splitlines()[1] == size
    skip = client.post("/v1/logs/default/import",
                       params={"source": "github", "skip_invalid": "true"},
                       content=json.dumps(records).encode(), headers=h)
    assert skip.status_code == 201
    assert skip.json()["skipped_records"][0]["record"] == "record 4"
    assert skip.json()["imported"] == 4


def test_unknown_source_and_garbage_are_422(service: Service, client: httpx.Client) -> None:
    h = service.auth("ingest_default")
    res = client.post("/v1/logs/default/import", params={"source": "splunk"},
                      content=b"[]", headers=h)
    assert res.status_code == 422
    assert "cloudtrail" in res.json()["error"]
    res = client.post("/v1/logs/default/import", params={"source": "github"},
                      content=b"\xff\xfe not text", headers=h)
    assert res.status_code == 422
    assert res.json()["field"] == "body"


def test_limits_hold_for_imports(start_service: Callable[..., Service]) -> None:
    svc = start_service(max_body=2000, max_events=3)
    with svc.client() as c:
        h = svc.auth("ingest_default")
        big = c.post("/v1/logs/default/import", params={"source": "github"},
                     content=_okta_like_github(100), headers=h)
        assert big.status_code == 413
        many = c.post("/v1/logs/default/import", params={"source": "github"},
                      content=_okta_like_github(4), headers=h)
        assert many.status_code == 413
        # A small gzip that expands past the body limit is refused too.
        bomb = gzip.compress(b"[" + b" " * 50_000 + b"]")
        assert c.post("/v1/logs/default/import", params={"source": "github"},
                      content=bomb, headers=h).status_code == 422


def test_an_id_taken_first_by_another_event_is_a_conflict(service: Service,
                                                          client: httpx.Client) -> None:
    from sealtrail.core.sources import get_source
    from sealtrail.core.sources.base import convert

    h = service.auth("ingest_default")
    body = _okta_like_github(3, start=500)
    real = convert(get_source("github"), body.decode()).events
    taken = client.post("/v1/logs/default/events", headers=h, json=[{
        "id": real[1].id, "actor": {"id": "mallory"}, "action": "github.repo.create",
        "outcome": "success", "time": real[1].time}])
    assert taken.status_code == 201
    res = client.post("/v1/logs/default/import", params={"source": "github"}, content=body,
                      headers=h)
    assert res.status_code == 409
    assert res.json()["conflicts"][0]["record"] == "record 2"
    assert (res.json()["imported"], res.json()["duplicates"]) == (2, 0)


def test_posted_events_may_not_claim_to_be_imported(service: Service,
                                                    client: httpx.Client) -> None:
    """Only the import writes metadata.log_source: rules and reports tell imported records
    from an application's own events by it."""
    res = client.post("/v1/logs/default/events", headers=service.auth("ingest_default"), json=[
        {"actor": {"id": "a"}, "action": "doc.read", "outcome": "success"},
        {"actor": {"id": "a"}, "action": "aws.iam.CreateUser", "outcome": "success",
         "metadata": {"log_source": {"product": "aws", "service": "cloudtrail"}}}])
    assert res.status_code == 422
    assert res.json()["errors"][0]["field"] == "events[1].metadata.log_source"


def _ingested(client: httpx.Client, service: Service) -> float:
    text = client.get("/metrics", headers=service.auth("auditor")).text
    for line in text.split("\n"):
        if line.startswith('sealtrail_ingest_events_total{log="default"}'):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_imports_count_in_the_ingest_metrics(service: Service, client: httpx.Client) -> None:
    before = _ingested(client, service)
    res = client.post("/v1/logs/default/import", params={"source": "github"},
                      content=_okta_like_github(4, start=900),
                      headers=service.auth("ingest_default"))
    assert res.status_code == 201
    assert _ingested(client, service) == before + 4
