"""The sync Client against a real service: delivery, outages, crashes, failure modes."""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import stat
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import pytest

from sealtrail.client import Client, ClientError, DeliveryError, Receipt, Rejection
from sealtrail.core.errors import ConfigError, FormatError, ValidationError
from sealtrail.core.uuid7 import make_uuid7

from .service import Service, event, make_service


def spooled(path: Path) -> list[str]:
    """The ids waiting in a spool file, read straight from disk."""
    db = sqlite3.connect(path)
    try:
        return [row[0] for row in db.execute("SELECT id FROM events ORDER BY seq")]
    finally:
        db.close()


class LoseResponses(httpx.BaseTransport):
    """A real HTTP transport that loses the answers to the first ``n`` POSTs after the
    service handled them: the connection breaks after the request was stored."""

    def __init__(self, n: int) -> None:
        self.inner = httpx.HTTPTransport()
        self.left = n

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self.inner.handle_request(request)
        if request.method == "POST" and self.left > 0:
            self.left -= 1
            response.read()
            response.close()
            raise httpx.ReadError("connection lost after the request was sent", request=request)
        return response

    def close(self) -> None:
        self.inner.close()


def test_record_and_flush_store_events_in_order(service: Service, tmp_path: Path) -> None:
    """Recorded events are stored once each, in record order, with matching receipts."""
    with Client(service.url, service.ingest, spool_path=tmp_path / "spool.db") as client:
        ids = [client.record(event(n)) for n in range(5)]
        assert client.flush(10)
        receipts = client.receipts
        assert client.pending == 0
        assert client.delivered == 5
    assert [receipts[i].index for i in ids] == [0, 1, 2, 3, 4]
    assert all(not receipts[i].duplicate for i in ids)
    service.stop()
    assert service.stored_ids() == ids


def test_record_assigns_uuid7_ids_and_times(service: Service, tmp_path: Path) -> None:
    """The client gives each event a UUIDv7 id and its time; keywords and a mapping mix."""
    with Client(service.url, service.ingest, spool_path=tmp_path / "spool.db") as client:
        ident = client.record({"actor": {"id": "alice"}}, action="invoice.read",
                              outcome="success", target={"type": "invoice", "id": "INV-1"})
        assert client.flush(10)
    assert uuid.UUID(ident).version == 7
    service.stop()
    (stored,) = service.read()
    assert stored["id"] == ident
    assert stored["action"] == "invoice.read"
    assert stored["target"] == {"type": "invoice", "id": "INV-1"}
    assert stored["time"].endswith("Z")


def test_invalid_event_is_refused_at_record_and_nothing_is_spooled(
        service: Service, tmp_path: Path) -> None:
    """record() raises ValidationError naming the field; the spool stays empty."""
    spool = tmp_path / "spool.db"
    with Client(service.url, service.ingest, spool_path=spool) as client:
        with pytest.raises(ValidationError) as info:
            client.record(actor={"id": "alice"}, action="x.y", outcome="maybe")
        assert info.value.field == "outcome"
        with pytest.raises(ValidationError) as info:
            client.record(actor={"name": "no id"}, action="x.y", outcome="success")
        assert info.value.field == "actor.id"
        with pytest.raises(ValidationError) as info:
            client.record(event(1, metadata={"blob": "x" * 40_000}))
        assert info.value.field == "event"
        assert client.pending == 0
    assert spooled(spool) == []


def test_outage_spools_durably_then_delivers_in_order_exactly_once(
        service: Service, tmp_path: Path) -> None:
    """With the service down record() returns at once and the events wait on disk (0600);
    when it comes back on the same port they are stored in order, once each."""
    spool = tmp_path / "spool.db"
    with Client(service.url, service.ingest, spool_path=spool, max_backoff=0.5) as client:
        first = client.record(event(0))
        assert client.flush(10)
        service.stop()
        started = time.monotonic()
        ids = [client.record(event(n)) for n in range(1, 4)]
        assert time.monotonic() - started < 1.0
        assert spooled(spool) == ids
        assert client.pending == 3
        assert stat.S_IMODE(spool.stat().st_mode) == 0o600
        assert not client.flush(0.3)
        assert client.retries >= 1
        assert client.last_error is not None
        service.start()
        assert client.flush(10)
        assert spooled(spool) == []
    service.stop()
    assert service.stored_ids() == [first, *ids]


def test_new_client_on_the_same_spool_resumes_delivery(service: Service, tmp_path: Path) -> None:
    """Events left in the spool by a closed client are delivered by the next one."""
    spool = tmp_path / "spool.db"
    service.stop()
    client = Client(service.url, service.ingest, spool_path=spool, max_backoff=0.2)
    ids = [client.record(event(n)) for n in range(4)]
    client.close(timeout=0.2)
    assert spooled(spool) == ids
    service.start()
    with Client(service.url, service.ingest, spool_path=spool) as again:
        assert again.flush(10)
        assert again.delivered == 4
    service.stop()
    assert service.stored_ids() == ids


def test_killed_client_process_loses_no_recorded_event(service: Service, tmp_path: Path) -> None:
    """A client process killed with SIGKILL (half its events sent, half spooled during an
    outage) loses nothing: a new client on its spool delivers the rest, each event once."""
    spool = tmp_path / "spool.db"
    child = subprocess.Popen(
        [sys.executable, str(Path(__file__).with_name("spool_child.py")), service.url,
         service.ingest, str(spool)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdin is not None
        assert child.stdout is not None
        ids = [child.stdout.readline().strip() for _ in range(10)]
        time.sleep(0.3)            # some of phase one is delivered...
        service.stop()             # ...then the service goes away
        child.stdin.write("go\n")
        child.stdin.flush()
        ids += [child.stdout.readline().strip() for _ in range(10)]
        child.send_signal(signal.SIGKILL)
        child.wait(10)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(10)
        for stream in (child.stdin, child.stdout):
            if stream is not None:
                stream.close()
    assert all(uuid.UUID(i).version == 7 for i in ids)
    left = spooled(spool)
    assert len(left) >= 10            # at least phase two waits on disk...
    assert left == ids[-len(left):]   # ...the undelivered tail, in order
    service.start()
    with Client(service.url, service.ingest, spool_path=spool) as again:
        assert again.flush(10)
    service.stop()
    assert service.stored_ids() == ids


def test_lost_answers_are_resent_but_stored_once(service: Service, tmp_path: Path) -> None:
    """When the answer to a stored batch is lost the batch is resent with the same ids and
    the service answers with the original receipts instead of storing them again."""
    with Client(service.url, service.ingest, spool_path=tmp_path / "spool.db",
                transport=LoseResponses(2), max_backoff=0.2) as client:
        ids = [client.record(event(n)) for n in range(3)]
        assert client.flush(10)
        assert client.retries == 2
        assert all(client.receipts[i].duplicate for i in ids)
    service.stop()
    assert service.stored_ids() == ids


def test_replayed_spool_copy_is_not_stored_twice(service: Service, tmp_path: Path) -> None:
    """A spool whose rows were delivered but not yet deleted (a crash in between, here a
    copy of the file) is resent in full without a single second copy in the log."""
    spool, copy = tmp_path / "spool.db", tmp_path / "copy.db"
    service.stop()
    client = Client(service.url, service.ingest, spool_path=spool)
    ids = [client.record(event(n)) for n in range(3)]
    client.close(timeout=0.1)
    shutil.copyfile(spool, copy)
    service.start()
    with Client(service.url, service.ingest, spool_path=spool) as first:
        assert first.flush(10)
    with Client(service.url, service.ingest, spool_path=copy) as replay:
        assert replay.flush(10)
        assert all(replay.receipts[i].duplicate for i in ids)
    service.stop()
    assert service.stored_ids() == ids


def test_fail_closed_raises_when_the_service_is_down(service: Service) -> None:
    """fail_closed: record() raises DeliveryError when the service is down; nothing stored."""
    service.stop()
    with Client(service.url, service.ingest, failure_mode="fail_closed", timeout=1.0) as client:
        started = time.monotonic()
        with pytest.raises(DeliveryError) as info:
            client.record(event(1))
        assert time.monotonic() - started < 2.0
        assert uuid.UUID(info.value.event_id).version == 7
    assert service.stored_ids() == []


def test_fail_closed_returns_once_stored(service: Service) -> None:
    """fail_closed: record() returns only after the service stored the event (receipt kept)."""
    seen: list[Receipt] = []
    with Client(service.url, service.ingest, failure_mode="fail_closed",
                on_receipt=seen.append) as client:
        ident = client.record(event(1))
        assert client.receipts[ident].index == 0
        assert client.flush(1)
    assert [r.id for r in seen] == [ident]
    service.stop()
    assert service.stored_ids() == [ident]


def test_fail_closed_bad_token_is_a_delivery_error(service: Service) -> None:
    """fail_closed with a refused token raises at once (no retries of a 401)."""
    bad = "st_0123456789abcdef_" + "A" * 43
    with Client(service.url, bad, failure_mode="fail_closed") as client:
        with pytest.raises(DeliveryError) as info:
            client.record(event(1))
        assert info.value.status == 401


def test_drop_mode_counts_and_never_blocks(service: Service) -> None:
    """drop: with the service down records return at once; the queue overflow and the
    undeliverable batch are dropped and counted; nothing reaches the log later."""
    service.stop()
    with Client(service.url, service.ingest, failure_mode="drop", max_queue=2,
                max_backoff=0.1) as client:
        started = time.monotonic()
        for n in range(5):
            client.record(event(n))
        assert time.monotonic() - started < 0.5
        assert client.dropped >= 3
        deadline = time.monotonic() + 5
        while client.dropped < 5 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert client.dropped == 5
        assert client.pending == 0
    service.start()
    service.stop()
    assert service.stored_ids() == []


def test_refused_event_is_dead_lettered_and_the_rest_delivered(
        service: Service, tmp_path: Path) -> None:
    """An event the service refuses (here an id dated an hour ahead) is reported, kept in the
    spool's rejected table and not retried; the events around it are stored in order."""
    spool = tmp_path / "spool.db"
    future = str(make_uuid7(time.time_ns() // 1_000_000 + 3_600_000, os.urandom(10)))
    refused: list[Rejection] = []
    with Client(service.url, service.ingest, spool_path=spool, on_rejected=refused.append,
                flush_interval=0.5) as client:
        a = client.record(event(1))
        bad = client.record(event(2, id=future))
        b = client.record(event(3))
        assert client.flush(10)
        assert client.rejected == 1
    assert [(r.id, r.status, r.field) for r in refused] == [(bad, 422, "id")]
    assert refused[0].event["metadata"] == {"n": 2}
    db = sqlite3.connect(spool)
    try:
        rows = db.execute("SELECT id, status, field FROM rejected").fetchall()
    finally:
        db.close()
    assert rows == [(bad, 422, "id")]
    service.stop()
    assert service.stored_ids() == [a, b]


def test_batches_too_large_for_the_service_are_split(tmp_path: Path) -> None:
    """413 (the service takes 2 events per request here) halves batches until they fit."""
    svc = make_service(tmp_path / "data", max_events=2)
    svc.start()
    try:
        with Client(svc.url, svc.ingest, spool_path=tmp_path / "spool.db",
                    batch_size=10, flush_interval=1.0) as client:
            ids = [client.record(event(n)) for n in range(7)]
            assert client.flush(10)
    finally:
        svc.stop()
    assert svc.stored_ids() == ids


def test_rate_limited_client_honours_retry_after(tmp_path: Path) -> None:
    """A 429 is retried no sooner than its Retry-After (1 s), and the events then arrive."""
    svc = make_service(tmp_path / "data", rate=1.0, burst=1.0)
    svc.start()
    try:
        with Client(svc.url, svc.ingest, spool_path=tmp_path / "spool.db") as client:
            first = client.record(event(1))
            assert client.flush(10)
            started = time.monotonic()
            second = client.record(event(2))
            assert client.flush(10)
            assert client.retries >= 1
            assert time.monotonic() - started >= 0.9
    finally:
        svc.stop()
    assert svc.stored_ids() == [first, second]


def test_refused_token_keeps_events_until_a_good_one(service: Service, tmp_path: Path) -> None:
    """A 401 is a configuration problem: events stay spooled (last_error says why) and a
    client with a valid token on the same spool delivers them."""
    spool = tmp_path / "spool.db"
    bad = "st_0123456789abcdef_" + "A" * 43
    client = Client(service.url, bad, spool_path=spool, max_backoff=0.2)
    ids = [client.record(event(n)) for n in range(2)]
    assert not client.flush(0.5)
    assert client.last_error is not None
    assert "401" in client.last_error
    client.close(timeout=0.1)
    assert spooled(spool) == ids
    with Client(service.url, service.ingest, spool_path=spool) as good:
        assert good.flush(10)
    service.stop()
    assert service.stored_ids() == ids


def test_reader_finds_recorded_events(service: Service, tmp_path: Path) -> None:
    """A reader key finds the delivered events through the service's search."""
    with Client(service.url, service.ingest, spool_path=tmp_path / "spool.db") as client:
        ident = client.record(actor={"id": "carol"}, action="report.export", outcome="success")
        assert client.flush(10)
    answer = httpx.get(f"{service.url}/v1/logs/default/events", params={"actor": "carol"},
                       headers={"authorization": f"Bearer {service.reader}"})
    assert answer.status_code == 200
    assert [e["event"]["id"] for e in answer.json()["events"]] == [ident]


def test_default_spool_lives_in_the_state_directory(
        service: Service, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without spool_path the spool is a private file under $XDG_STATE_HOME/sealtrail."""
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    with Client(service.url, service.ingest) as client:
        client.record(event(1))
        assert client.flush(10)
    (path,) = (tmp_path / "state" / "sealtrail").glob("spool-*.db")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700


def test_bad_arguments_are_refused(service: Service, tmp_path: Path) -> None:
    """Unknown failure modes, bad sizes and malformed verifier keys fail at construction."""
    with pytest.raises(ConfigError):
        Client(service.url, service.ingest, failure_mode="hope")
    with pytest.raises(ConfigError):
        Client(service.url, service.ingest, failure_mode="drop", batch_size=0)
    with pytest.raises(ConfigError):
        Client("ftp://example.org", service.ingest, failure_mode="drop")
    with pytest.raises(FormatError):
        Client(service.url, service.ingest, failure_mode="drop", verifier="not+a+key")


def test_closed_client_refuses_records(service: Service, tmp_path: Path) -> None:
    """record() on a closed client raises ClientError; close() twice is harmless."""
    client = Client(service.url, service.ingest, spool_path=tmp_path / "spool.db")
    client.close()
    client.close()
    with pytest.raises(ClientError):
        client.record(event(1))
