"""The HTTP API end to end, over a real uvicorn server on loopback: ingest, search, entries,
proofs that verify offline, audited reads, limits, rate limits, metrics and log creation.

Most tests create a fresh log of their own (as the admin, through the API) so that what they
count is not disturbed by the other tests sharing the module's server.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from sealtrail.core.checkpoint import open_checkpoint
from sealtrail.core.errors import InclusionError
from sealtrail.core.merkle.hashing import leaf_hash
from sealtrail.core.note import Verifier
from sealtrail.core.proofs import ConsistencyProof, InclusionProof
from sealtrail.core.uuid7 import make_uuid7
from sealtrail.log.auditlog import AuditLog
from tests.server.conftest import Service, seed_event, service_at

_names = itertools.count()
BASE_TIME = datetime(2025, 1, 1, tzinfo=UTC)


# -- helpers -------------------------------------------------------------------------------


def new_log(service: Service, client: httpx.Client) -> str:
    """A fresh, empty log created by the admin through the API."""
    name = f"t-{next(_names)}"
    response = client.post("/v1/logs", json={"name": name}, headers=service.auth("admin"))
    assert response.status_code == 201, response.text
    return name


def ingest(service: Service, client: httpx.Client, log: str, events: list[dict[str, Any]],
           caller: str = "ingest_all") -> list[dict[str, Any]]:
    """POST events; require 201; return the receipts."""
    response = client.post(f"/v1/logs/{log}/events", json=events, headers=service.auth(caller))
    assert response.status_code == 201, response.text
    receipts: list[dict[str, Any]] = response.json()["receipts"]
    assert len(receipts) == len(events)
    return receipts


@contextmanager
def opened(service: Service, log: str) -> Iterator[AuditLog]:
    """The log opened with the library, next to the running server."""
    with AuditLog.open(service.data_dir, log, create=False) as alog:
        yield alog


def size_of(service: Service, log: str) -> int:
    """The log's committed size, read with the library."""
    with opened(service, log) as alog:
        return alog.size


def metric(service: Service, client: httpx.Client, sample: str, **labels: str) -> float:
    """One sample's value from /metrics (0 when absent), read as the auditor."""
    response = client.get("/metrics", headers=service.auth("auditor"))
    assert response.status_code == 200, response.text
    for family in text_string_to_metric_families(response.text):
        for s in family.samples:
            if s.name == sample and all(s.labels.get(k) == v for k, v in labels.items()):
                return float(s.value)
    return 0.0


def new_id() -> str:
    """A fresh UUIDv7 (what a client generates to make its retries idempotent)."""
    return str(make_uuid7(time.time_ns() // 1_000_000, os.urandom(10)))


def corpus_event(i: int) -> dict[str, Any]:
    """The i-th event of the search corpus: actors, addresses, actions and times vary with i."""
    ev: dict[str, Any] = {
        "actor": {"id": ("alice", "bob", "carol")[i % 3], "ip": f"198.51.100.{i % 5}"},
        "action": ("doc.read", "doc.write", "user.login", "docs.read")[i % 4],
        "outcome": ("success", "failure")[i % 2],
        "category": "data_access",
        "target": {"type": "doc", "id": f"doc-{i}"},
        "time": (BASE_TIME + timedelta(hours=i)).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    if i % 6 == 0:
        ev["subjects"] = ["patient-7"]
    return ev


# -- ingest --------------------------------------------------------------------------------


def test_ingest_returns_receipts_whose_leaf_hash_is_the_stored_entry_s(
        service: Service, client: httpx.Client) -> None:
    """201 with one receipt per event; each leaf_hash is SHA-256(0x00 || the stored leaf)."""
    log = new_log(service, client)
    receipts = ingest(service, client, log, [seed_event(i) for i in range(3)])
    assert [r["index"] for r in receipts] == [0, 1, 2]
    with opened(service, log) as alog:
        assert alog.size == 3
        for r in receipts:
            leaf = alog.entry(r["index"]).leaf
            assert base64.b64decode(r["leaf_hash"]) == hashlib.sha256(b"\x00" + leaf).digest()
            assert alog.entry(r["index"]).event()["id"] == r["id"]
            assert r["duplicate"] is False
            assert r["checkpoint_size"] >= r["index"] + 1


def test_batch_with_bad_events_lists_each_and_stores_nothing(
        service: Service, client: httpx.Client) -> None:
    """One bad event refuses the batch: 422 naming each bad index and field; size unchanged."""
    log = new_log(service, client)
    ingest(service, client, log, [seed_event()])
    bad_outcome = {**seed_event(1), "outcome": "maybe"}
    no_actor = {k: v for k, v in seed_event(3).items() if k != "actor"}
    response = client.post(f"/v1/logs/{log}/events",
                           json=[seed_event(0), bad_outcome, seed_event(2), no_actor, 42],
                           headers=service.auth("ingest_all"))
    assert response.status_code == 422, response.text
    errors = response.json()["errors"]
    assert [(e["index"], e["field"]) for e in errors] == [
        (1, "events[1].outcome"), (3, "events[3].actor"), (4, "events[4].event")]
    assert size_of(service, log) == 1


def test_a_refusal_found_while_appending_names_the_event_by_index(
        service: Service, client: httpx.Client) -> None:
    """An event the engine refuses while appending (an id dated an hour ahead) is named by
    index in ``errors``, as validation errors are; nothing of the batch is stored."""
    log = new_log(service, client)
    before = size_of(service, log)
    ahead = str(make_uuid7(time.time_ns() // 1_000_000 + 3_600_000, os.urandom(10)))
    response = client.post(f"/v1/logs/{log}/events",
                           json=[seed_event(0), {**seed_event(1), "id": ahead}],
                           headers=service.auth("ingest_all"))
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["field"] == "events[1].id"
    assert [(e["index"], e["field"]) for e in body["errors"]] == [(1, "events[1].id")]
    assert "ahead" in body["errors"][0]["message"]
    assert size_of(service, log) == before


def test_oversized_event_in_a_batch_is_refused_and_stores_nothing(
        service: Service, client: httpx.Client) -> None:
    """An event over the 32 KiB event limit (body well under the body limit) is a 422."""
    log = new_log(service, client)
    big = {**seed_event(1), "metadata": {"blob": "x" * 40_000}}
    response = client.post(f"/v1/logs/{log}/events", json=[seed_event(0), big],
                           headers=service.auth("ingest_all"))
    assert response.status_code == 422, response.text
    assert size_of(service, log) == 0


def test_json_lines_body_is_accepted(service: Service, client: httpx.Client) -> None:
    """A JSON Lines body (application/x-ndjson) is ingested line by line; blank lines skipped."""
    log = new_log(service, client)
    body = b"\n".join(json.dumps(seed_event(i)).encode() for i in range(3)) + b"\n\n"
    response = client.post(f"/v1/logs/{log}/events", content=body,
                           headers={**service.auth("ingest_all"),
                                    "content-type": "application/x-ndjson"})
    assert response.status_code == 201, response.text
    assert [r["index"] for r in response.json()["receipts"]] == [0, 1, 2]
    with opened(service, log) as alog:
        assert [alog.entry(i).event()["actor"]["id"] for i in range(3)] == [
            "seed-0", "seed-1", "seed-2"]


def test_malformed_json_lines_store_nothing(service: Service, client: httpx.Client) -> None:
    """A JSON Lines body with one broken line is a 422 and stores none of its good lines."""
    log = new_log(service, client)
    body = json.dumps(seed_event(0)).encode() + b"\n{not json\n"
    response = client.post(f"/v1/logs/{log}/events", content=body,
                           headers={**service.auth("ingest_all"),
                                    "content-type": "application/x-ndjson"})
    assert response.status_code == 422, response.text
    assert size_of(service, log) == 0


def test_retrying_the_same_ids_is_idempotent(service: Service, client: httpx.Client) -> None:
    """Sending the same ids again answers the original receipts marked duplicate; no growth."""
    log = new_log(service, client)
    events = [{**seed_event(i), "id": new_id()} for i in range(3)]
    first = ingest(service, client, log, events)
    assert not any(r["duplicate"] for r in first)
    again = ingest(service, client, log, events)
    assert all(r["duplicate"] for r in again)
    assert [(r["id"], r["index"], r["leaf_hash"]) for r in again] == [
        (r["id"], r["index"], r["leaf_hash"]) for r in first]
    assert size_of(service, log) == 3


def test_unknown_log_is_404(service: Service, client: httpx.Client) -> None:
    """An unscoped key naming a log that does not exist gets 404 on every log route."""
    assert client.post("/v1/logs/no-such-log/events", json=[seed_event()],
                       headers=service.auth("ingest_all")).status_code == 404
    for url in ("/v1/logs/no-such-log/events", "/v1/logs/no-such-log/entries",
                "/v1/logs/no-such-log/checkpoint", "/tlog/no-such-log/checkpoint"):
        response = client.get(url, headers=service.auth("auditor"))
        assert response.status_code == 404, (url, response.text)
    assert not (service.data_dir / "no-such-log").exists()


def test_concurrent_ingest_assigns_every_event_one_index(
        service: Service, client: httpx.Client) -> None:
    """Parallel POSTs (group commit) store every event once, at distinct indexes; it verifies."""
    log = new_log(service, client)
    indexes: list[int] = []
    lock = threading.Lock()
    failures: list[str] = []

    def worker(n: int) -> None:
        with service.client() as c:
            for k in range(8):
                response = c.post(f"/v1/logs/{log}/events",
                                  json=[seed_event(100 * n + 10 * k + j) for j in range(5)],
                                  headers=service.auth("ingest_all"))
                if response.status_code != 201:
                    failures.append(response.text)
                    continue
                with lock:
                    indexes.extend(r["index"] for r in response.json()["receipts"])

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not failures
    assert sorted(indexes) == list(range(6 * 8 * 5))
    with opened(service, log) as alog:
        assert alog.size == 240
        alog.verify()


# -- limits (a service of their own, with small limits) -------------------------------------


@pytest.fixture(scope="module")
def limited(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """A service with a 4 KiB body limit and at most 3 events per request."""
    with service_at(tmp_path_factory.mktemp("limited"), max_body=4096, max_events=3) as svc:
        yield svc


def test_body_over_the_limit_is_413(limited: Service) -> None:
    """A body over max_body (declared length) is refused with 413 and nothing is stored."""
    big = [{**seed_event(0), "reason": "r" * 4000}, seed_event(1)]
    with limited.client() as c:
        response = c.post("/v1/logs/default/events", json=big,
                          headers=limited.auth("ingest_default"))
    assert response.status_code == 413, response.text
    assert size_of(limited, "default") == 1  # the seed event only


def test_streamed_body_over_the_limit_is_413(limited: Service) -> None:
    """A chunked body with no Content-Length is cut off at the limit too (413)."""
    line = json.dumps(seed_event(0)).encode() + b"\n"

    def chunks() -> Iterator[bytes]:
        for _ in range(4096 // len(line) + 2):
            yield line

    with limited.client() as c:
        response = c.post("/v1/logs/default/events", content=chunks(),
                          headers={**limited.auth("ingest_default"),
                                   "content-type": "application/x-ndjson"})
    assert response.status_code == 413, response.text
    assert size_of(limited, "default") == 1


def test_more_events_than_max_events_is_413(limited: Service) -> None:
    """Four events where three are allowed: 413, nothing stored; three are accepted."""
    with limited.client() as c:
        response = c.post("/v1/logs/default/events", json=[seed_event(i) for i in range(4)],
                          headers=limited.auth("ingest_default"))
        assert response.status_code == 413, response.text
        assert size_of(limited, "default") == 1
        response = c.post("/v1/logs/default/events", json=[seed_event(i) for i in range(3)],
                          headers=limited.auth("ingest_default"))
        assert response.status_code == 201, response.text
    assert size_of(limited, "default") == 4


def test_rate_limit_answers_429_with_retry_after(start_service: Any) -> None:
    """With rate=1/s and bursts of 2, a key's third quick request is 429 with Retry-After."""
    svc: Service = start_service(rate=1, burst=2)
    with svc.client() as c:
        statuses = [c.get("/v1/logs/default/checkpoint", headers=svc.auth("ingest_default"))
                    for _ in range(3)]
        assert [r.status_code for r in statuses] == [200, 200, 429]
        retry = statuses[2].headers.get("retry-after")
        assert retry is not None
        assert retry.isdigit()
        assert int(retry) >= 1
        # The bucket is per key: another key is not held back.
        other = c.get("/v1/logs/default/checkpoint", headers=svc.auth("reader_default"))
        assert other.status_code == 200
        assert metric(svc, c, "sealtrail_rejected_requests_total", reason="rate_limited") >= 1


# -- search --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def corpus(service: Service, client: httpx.Client) -> tuple[str, dict[int, dict[str, Any]]]:
    """A log holding 30 varied events; returns its name and the events by index."""
    log = new_log(service, client)
    events = [corpus_event(i) for i in range(30)]
    receipts = ingest(service, client, log, events)
    return log, {r["index"]: ev for r, ev in zip(receipts, events, strict=True)}


def search(service: Service, client: httpx.Client, log: str,
           caller: str = "reader_all", **params: Any) -> dict[str, Any]:
    """GET the search route; require 200; return the JSON."""
    response = client.get(f"/v1/logs/{log}/events", params={"limit": 1000, **params},
                          headers=service.auth(caller))
    assert response.status_code == 200, response.text
    doc: dict[str, Any] = response.json()
    return doc


def _hour(ev: dict[str, Any]) -> int:
    return int((datetime.fromisoformat(ev["time"]) - BASE_TIME).total_seconds() // 3600)


FILTERS: dict[str, tuple[dict[str, str], Any]] = {
    "actor": ({"actor": "alice"}, lambda ev: ev["actor"]["id"] == "alice"),
    "ip": ({"ip": "198.51.100.3"}, lambda ev: ev["actor"]["ip"] == "198.51.100.3"),
    "action_prefix": ({"action": "doc"}, lambda ev: ev["action"] in ("doc.read", "doc.write")),
    "action_glob": ({"action": "user.*"}, lambda ev: ev["action"] == "user.login"),
    "action_exact": ({"action": "docs.read"}, lambda ev: ev["action"] == "docs.read"),
    "outcome": ({"outcome": "failure"}, lambda ev: ev["outcome"] == "failure"),
    "since_until": ({"since": "2025-01-01T10:00:00Z", "until": "2025-01-01T20:00:00Z"},
                    lambda ev: 10 <= _hour(ev) < 20),
    "subject": ({"subject": "patient-7"}, lambda ev: "patient-7" in ev.get("subjects", ())),
    "target": ({"target": "doc-4"}, lambda ev: ev["target"]["id"] == "doc-4"),
    "text": ({"text": "DOC-2"}, lambda ev: ev["target"]["id"].startswith("doc-2")),
    "actor_and_outcome": ({"actor": "bob", "outcome": "success"},
                          lambda ev: ev["actor"]["id"] == "bob" and ev["outcome"] == "success"),
}


@pytest.mark.parametrize("name", FILTERS)
def test_search_filter_matches_a_reference(
        service: Service, client: httpx.Client,
        corpus: tuple[str, dict[int, dict[str, Any]]], name: str) -> None:
    """Each filter returns exactly the events a plain Python predicate picks, newest first."""
    log, events = corpus
    params, wanted = FILTERS[name]
    doc = search(service, client, log, **params)
    expected = sorted((i for i, ev in events.items() if wanted(ev)), reverse=True)
    assert expected, "the corpus should give every filter something to find"
    assert [e["index"] for e in doc["events"]] == expected
    assert doc["next_cursor"] is None
    for e in doc["events"]:  # personal fields come back opened
        assert e["event"]["actor"]["ip"] == events[e["index"]]["actor"]["ip"]


def test_search_pages_newest_first_then_oldest_without_gaps(
        service: Service, client: httpx.Client) -> None:
    """Cursor pages cover every match exactly once, newest first and with order=oldest."""
    log = new_log(service, client)
    receipts = ingest(service, client, log, [
        {**seed_event(i), "action": "page.view"} for i in range(25)])
    all_indexes = [r["index"] for r in receipts]
    for order, limit, want in (("newest", 10, sorted(all_indexes, reverse=True)),
                               ("oldest", 5, sorted(all_indexes))):
        seen: list[int] = []
        pages = 0
        cursor: int | None = None
        while True:
            params: dict[str, Any] = {"action": "page", "limit": limit, "order": order}
            if cursor is not None:
                params["cursor"] = cursor
            doc = search(service, client, log, **params)
            pages += 1
            page = [e["index"] for e in doc["events"]]
            assert 0 < len(page) <= limit
            seen.extend(page)
            cursor = doc["next_cursor"]
            if cursor is None:
                break
            assert cursor == page[-1]
            assert pages < 20
        assert seen == want, order
        assert pages == -(-25 // limit), order  # no empty trailing page


def test_search_rejects_bad_parameters(service: Service, client: httpx.Client,
                                       corpus: tuple[str, dict[int, dict[str, Any]]]) -> None:
    """A bad order, limit or time is a 422, not a 500."""
    log, _ = corpus
    for params in ({"order": "sideways"}, {"limit": 0}, {"limit": 1001},
                   {"since": "yesterday"}, {"cursor": -1}):
        response = client.get(f"/v1/logs/{log}/events", params=params,
                              headers=service.auth("reader_all"))
        assert response.status_code == 422, (params, response.text)


# -- reads are audited; proof reads are counted --------------------------------------------


def _access_events(service: Service, log: str) -> list[dict[str, Any]]:
    with opened(service, log) as alog:
        return [ev for ev in (alog.read(e) for e in alog.entries(0))
                if ev.get("category") == "audit_access"]


def test_searches_and_entry_reads_are_appended_as_audit_access(
        service: Service, client: httpx.Client) -> None:
    """Each search and entries read adds one audit_access event naming the key that read."""
    log = new_log(service, client)
    ingest(service, client, log, [seed_event(i) for i in range(2)])
    search(service, client, log, caller="reader_all")
    search(service, client, log, caller="reader_all", actor="seed-1", ip="192.0.2.10")
    search(service, client, log, caller="auditor", subject="patient-9")
    entries = client.get(f"/v1/logs/{log}/entries", headers=service.auth("auditor"))
    assert entries.status_code == 200
    access = _access_events(service, log)
    reader, auditor = f"key:{service.key_id('reader_all')}", f"key:{service.key_id('auditor')}"
    assert [(ev["action"], ev["actor"]["id"]) for ev in access] == [
        ("audit.search", reader), ("audit.search", reader), ("audit.search", auditor),
        ("audit.entries.read", auditor)]
    assert all(ev["actor"]["type"] == "api_key" for ev in access)
    # Results: 2 events; 1 match; 0 matches; 2 events + the 3 search records before it.
    assert [ev["metadata"]["results"] for ev in access] == [2, 1, 0, 5]
    recorded = access[1]["metadata"]["filter"]
    assert recorded["actor"] == "seed-1"
    assert recorded["actor_ip"] == "(withheld)"
    subject = access[2]["metadata"]["filter"]["subject"]
    assert "patient-9" not in subject  # named by pseudonym, never in clear


def test_checkpoint_and_proof_reads_add_no_event_but_are_counted(
        service: Service, client: httpx.Client) -> None:
    """Checkpoint, proof and tile reads leave the log unchanged and raise proof_reads_total."""
    log = new_log(service, client)
    ingest(service, client, log, [seed_event(i) for i in range(3)])
    kinds = ("checkpoint", "inclusion", "consistency", "tile")
    before = {k: metric(service, client, "sealtrail_proof_reads_total", log=log, kind=k)
              for k in kinds}
    auth = service.auth("ingest_all")
    for url, params in ((f"/v1/logs/{log}/checkpoint", {}),
                        (f"/tlog/{log}/checkpoint", {}),
                        (f"/v1/logs/{log}/proof/inclusion", {"index": 1}),
                        (f"/v1/logs/{log}/proof/consistency", {"first": 1}),
                        (f"/tlog/{log}/tile/0/000.p/3", {})):
        response = client.get(url, params=params, headers=auth)
        assert response.status_code == 200, (url, response.text)
    after = {k: metric(service, client, "sealtrail_proof_reads_total", log=log, kind=k)
             for k in kinds}
    assert {k: after[k] - before[k] for k in kinds} == {
        "checkpoint": 2, "inclusion": 1, "consistency": 1, "tile": 1}
    assert size_of(service, log) == 3
    assert _access_events(service, log) == []


# -- proofs verify offline ------------------------------------------------------------------


def test_inclusion_proof_from_the_api_verifies_offline(
        service: Service, client: httpx.Client) -> None:
    """An API inclusion proof verifies with only the vkey and the entry's bytes from the API."""
    log = new_log(service, client)
    receipts = ingest(service, client, log, [seed_event(i) for i in range(5)])
    with opened(service, log) as alog:
        verifier = Verifier.parse(alog.vkey())
    lines = client.get(f"/v1/logs/{log}/entries", params={"start": 2, "end": 3},
                       headers=service.auth("reader_all")).text.splitlines()
    leaf = base64.b64decode(json.loads(lines[0])["leaf"])
    by_index = client.get(f"/v1/logs/{log}/proof/inclusion", params={"index": 2},
                          headers=service.auth("ingest_all"))
    assert by_index.status_code == 200, by_index.text
    proof = InclusionProof.parse(by_index.content)
    cp = proof.verify_signed(verifier, leaf)
    assert cp.size == proof.tree_size
    assert proof.leaf_hash == base64.b64decode(receipts[2]["leaf_hash"])
    with pytest.raises(InclusionError):
        proof.verify_signed(verifier, leaf + b" ")
    by_hash = client.get(f"/v1/logs/{log}/proof/inclusion",
                         params={"leaf_hash": receipts[2]["leaf_hash"]},
                         headers=service.auth("ingest_all"))
    assert by_hash.status_code == 200, by_hash.text
    other = InclusionProof.parse(by_hash.content)
    assert other.leaf_index == 2
    other.verify_signed(verifier, leaf)


def test_consistency_proof_from_the_api_verifies_offline(
        service: Service, client: httpx.Client) -> None:
    """Two checkpoints fetched around an ingest are linked by the API's consistency proof."""
    log = new_log(service, client)
    ingest(service, client, log, [seed_event(i) for i in range(3)])
    with opened(service, log) as alog:
        verifier = Verifier.parse(alog.vkey())
    auth = service.auth("reader_all")
    old = client.get(f"/v1/logs/{log}/checkpoint", headers=auth).text
    ingest(service, client, log, [seed_event(i) for i in range(4)])
    new = client.get(f"/v1/logs/{log}/checkpoint", headers=auth).text
    first = open_checkpoint(old, verifier).size
    second = open_checkpoint(new, verifier).size
    assert (first, second) == (3, 7)
    response = client.get(f"/v1/logs/{log}/proof/consistency",
                          params={"first": first, "second": second}, headers=auth)
    assert response.status_code == 200, response.text
    ConsistencyProof.parse(response.content).verify_signed(verifier, old, new)


def test_proof_requests_out_of_range_are_client_errors(
        service: Service, client: httpx.Client) -> None:
    """Proofs and entries past the tree, or without an index, are 4xx (never 5xx)."""
    log = new_log(service, client)
    ingest(service, client, log, [seed_event(i) for i in range(2)])
    auth = service.auth("auditor")
    for url, params in ((f"/v1/logs/{log}/proof/inclusion", {"index": 5}),
                        (f"/v1/logs/{log}/proof/inclusion", {}),
                        (f"/v1/logs/{log}/proof/inclusion", {"leaf_hash": "not base64!"}),
                        (f"/v1/logs/{log}/proof/inclusion",
                         {"leaf_hash": base64.b64encode(b"\x00" * 32).decode()}),
                        (f"/v1/logs/{log}/proof/consistency", {"first": 9}),
                        (f"/v1/logs/{log}/proof/consistency", {}),
                        (f"/v1/logs/{log}/entries", {"start": 5, "end": 9}),
                        (f"/tlog/{log}/tile/0/000.p/9", {}),
                        (f"/tlog/{log}/tile/nonsense", {})):
        response = client.get(url, params=params, headers=auth)
        assert 400 <= response.status_code < 500, (url, params, response.text)


# -- entries and encryption at rest ----------------------------------------------------------


def test_entries_are_json_lines_with_opened_events_and_leaves(
        service: Service, client: httpx.Client) -> None:
    """Entries come back as JSON Lines: index, base64 leaf (hashing to the receipt), event."""
    log = new_log(service, client)
    events = [{**seed_event(i), "actor": {"id": f"a{i}", "ip": f"203.0.113.{i + 1}",
                                          "name": f"Person {i}"}} for i in range(4)]
    receipts = ingest(service, client, log, events)
    response = client.get(f"/v1/logs/{log}/entries", params={"start": 1, "end": 3},
                          headers=service.auth("reader_all"))
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/x-ndjson")
    lines = [json.loads(x) for x in response.text.splitlines()]
    assert [x["index"] for x in lines] == [1, 2]
    for x in lines:
        i = x["index"]
        assert leaf_hash(base64.b64decode(x["leaf"])) == base64.b64decode(
            receipts[i]["leaf_hash"])
        assert x["event"]["actor"] == events[i]["actor"]
        assert x["event"]["id"] == receipts[i]["id"]


def test_entries_are_capped_at_1000_per_request(service: Service, client: httpx.Client) -> None:
    """Asking for more than 1000 entries gives the first 1000."""
    log = new_log(service, client)
    ingest(service, client, log, [{"actor": {"id": f"u{i}"}, "action": "x.y",
                                   "outcome": "success"} for i in range(1005)])
    response = client.get(f"/v1/logs/{log}/entries", params={"start": 0},
                          headers=service.auth("auditor"))
    assert response.status_code == 200
    indexes = [json.loads(x)["index"] for x in response.text.splitlines()]
    assert indexes == list(range(1000))


def test_personal_fields_never_reach_the_disk_in_clear(
        service: Service, client: httpx.Client) -> None:
    """After ingest through the API, the log's files hold no marker IP, name or metadata."""
    log = new_log(service, client)
    secrets = [b"203.0.113.199", b"Zebulon Quixmarker", b"Quixtarget Name", b"quixmeta-value",
               b"2001:db8::1234"]
    ingest(service, client, log, [{
        "actor": {"id": "marker-actor-id", "ip": "203.0.113.199", "name": "Zebulon Quixmarker"},
        "action": "doc.read", "outcome": "success",
        "target": {"id": "doc-1", "name": "Quixtarget Name"},
        "source": {"ip": "2001:db8::1234"},
        "metadata": {"note": "quixmeta-value"}}])
    found = search(service, client, log, ip="203.0.113.199")["events"]
    assert [e["event"]["actor"]["name"] for e in found] == ["Zebulon Quixmarker"]
    files = sorted(p for p in (service.data_dir / log).iterdir() if p.is_file())
    assert any(p.name == "log.db" for p in files)
    data = b"".join(p.read_bytes() for p in files)
    assert b"marker-actor-id" in data  # control: the search would find what is in clear
    for secret in secrets:
        assert secret not in data, secret


# -- operations ------------------------------------------------------------------------------


def test_metrics_count_ingested_events_and_tree_size(
        service: Service, client: httpx.Client) -> None:
    """/metrics has ingest_events_total (duplicates not counted) and tree_size per log."""
    log = new_log(service, client)
    events = [{**seed_event(i), "id": new_id()} for i in range(4)]
    ingest(service, client, log, events)
    ingest(service, client, log, events)  # retried: duplicates
    assert metric(service, client, "sealtrail_ingest_events_total", log=log) == 4
    assert metric(service, client, "sealtrail_tree_size", log=log) == size_of(service, log) == 4
    response = client.get("/metrics", headers=service.auth("admin"))
    assert "sealtrail_ingest_seconds" in response.text


def test_admin_creates_a_log_that_an_unscoped_ingest_key_can_fill(
        service: Service, client: httpx.Client) -> None:
    """POST /v1/logs makes a log (201, vkey); unscoped ingest appends; a duplicate name is 400."""
    name = f"created-{next(_names)}"
    response = client.post("/v1/logs", json={"name": name}, headers=service.auth("admin"))
    assert response.status_code == 201, response.text
    doc = response.json()
    assert doc["name"] == name
    assert doc["origin"] == f"sealtrail/{name}"
    with opened(service, name) as alog:
        assert doc["vkey"] == alog.vkey()
        assert alog.encrypted
    receipts = ingest(service, client, name, [seed_event()], caller="ingest_all")
    assert receipts[0]["index"] == 0
    scoped = client.post(f"/v1/logs/{name}/events", json=[seed_event()],
                         headers=service.auth("ingest_default"))
    assert scoped.status_code == 403
    again = client.post("/v1/logs", json={"name": name}, headers=service.auth("admin"))
    assert again.status_code == 400, again.text
    listed = client.get("/v1/logs", headers=service.auth("auditor")).json()["logs"]
    assert {"name": name, "size": 1} in listed


def test_create_log_rejects_bad_names(service: Service, client: httpx.Client) -> None:
    """Names outside the log-name rule, or no name, are refused (4xx) and create nothing."""
    before = sorted(p.name for p in service.data_dir.iterdir())
    for body in ({"name": "Bad Name"}, {"name": "../escape"}, {"name": "_service"},
                 {"name": ""}, {}, {"name": 7}, ["default"]):
        response = client.post("/v1/logs", json=body, headers=service.auth("admin"))
        assert 400 <= response.status_code < 500, (body, response.text)
    response = client.post("/v1/logs", content=b"{not json",
                           headers={**service.auth("admin"), "content-type": "application/json"})
    assert 400 <= response.status_code < 500, response.text
    assert sorted(p.name for p in service.data_dir.iterdir()) == before


def test_health_and_readiness(client: httpx.Client) -> None:
    """/healthz and /readyz answer 200 without a key when every log opens unlocked."""
    assert client.get("/healthz").status_code == 200
    ready = client.get("/readyz")
    assert ready.status_code == 200, ready.text
    assert ready.json()["status"] == "ready"


def test_error_bodies_have_the_documented_shape(service: Service, client: httpx.Client) -> None:
    """docs/service.md: errors are JSON ``{"error": "..."}``, whatever the status."""
    responses = {
        "401 no key": client.get("/v1/logs/default/checkpoint"),
        "403 role": client.get("/v1/logs/default/entries", headers=service.auth("admin")),
        "404 log": client.get("/v1/logs/no-such-log/checkpoint",
                              headers=service.auth("auditor")),
        "422 query": client.get("/v1/logs/default/events", params={"limit": 0},
                                headers=service.auth("auditor")),
        "422 event": client.post("/v1/logs/default/events", json=[{"action": "x"}],
                                 headers=service.auth("ingest_default")),
        "400 exists": client.post("/v1/logs", json={"name": "default"},
                                  headers=service.auth("admin")),
    }
    for name, response in responses.items():
        assert str(response.status_code) == name.split()[0], (name, response.text)
    wrong = {name: response.text for name, response in responses.items()
             if not isinstance(response.json(), dict) or "error" not in response.json()}
    assert wrong == {}


@pytest.mark.usefixtures("passphrase_env")
def test_wrong_passphrase_is_not_ready_and_stores_nothing(start_service: Any) -> None:
    """A service that cannot open the keyrings says so on /readyz (503) and refuses ingest."""
    svc: Service = start_service(passphrase="not the passphrase of these logs")
    with svc.client() as c:
        ready = c.get("/readyz")
        assert ready.status_code == 503, ready.text
        # Unauthenticated, but says which logs and why (docs/service.md): never the secret.
        assert ready.json()["problems"] == 2
        assert {(p["log"], p["reason"]) for p in ready.json()["not_ready"]} == {
            ("default", "keyring_locked"), ("other", "keyring_locked")}
        assert "not the passphrase" not in ready.text
        response = c.post("/v1/logs/default/events", json=[seed_event()],
                          headers=svc.auth("ingest_default"))
        assert response.status_code == 503, response.text
    assert size_of(svc, "default") == 1


@pytest.mark.usefixtures("passphrase_env")
def test_metrics_still_answer_when_a_keyring_is_unavailable(start_service: Any) -> None:
    """/metrics, what an operator watches during an outage, answers even if keyrings do not open."""
    svc: Service = start_service(passphrase="not the passphrase of these logs")
    with svc.client() as c:
        response = c.get("/metrics", headers=svc.auth("admin"))
    assert response.status_code == 200, response.text


def test_full_hash_tiles_are_cached_entry_bundles_never(service: Service,
                                                        client: httpx.Client) -> None:
    """Hash tiles never change; entry bundles hold content and change under retention."""
    log = new_log(service, client)
    ingest(service, client, log, [seed_event(i) for i in range(256)])
    hashes = client.get(f"/tlog/{log}/tile/0/000", headers=service.auth("reader_all"))
    assert hashes.status_code == 200
    assert hashes.headers["cache-control"] == "public, max-age=31536000, immutable"
    bundle = client.get(f"/tlog/{log}/tile/entries/000", headers=service.auth("reader_all"))
    assert bundle.status_code == 200
    assert bundle.headers["cache-control"] == "private, no-store"
