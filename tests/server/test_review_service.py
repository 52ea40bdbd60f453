"""Regressions for the service reviewer's findings: bad input is a 4xx, not a 500."""

from __future__ import annotations

import base64
import hashlib
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from sealtrail import AuditLog, Client, ConfigError
from sealtrail.core.timefmt import parse_time
from sealtrail.log.apikeys import ApiKeys
from tests.server.conftest import Service, seed_event


@pytest.mark.parametrize("text", ["9999-12-31T23:59:59-23:59", "0001-01-01T00:00:00+23:59"])
def test_times_at_the_calendar_edge_are_invalid_not_a_crash(text: str) -> None:
    """An offset that moves a time outside years 1-9999 is a ValueError."""
    with pytest.raises(ValueError, match="outside"):
        parse_time(text)


def test_edge_times_and_deep_nesting_get_4xx(service: Service, client: httpx.Client) -> None:
    """Search times at the edge, event times at the edge and absurdly nested bodies answer
    4xx with an error body (a client retrying 5xx would resend them forever)."""
    reader, ingest = service.auth("reader_all"), service.auth("ingest_default")
    answers = [
        client.get("/v1/logs/default/events", params={"since": "9999-12-31T23:59:59-23:59"},
                   headers=reader),
        client.post("/v1/logs/default/events", headers=ingest,
                    json=[{**seed_event(), "time": "9999-12-31T23:59:59-23:00"}]),
        client.post("/v1/logs/default/events", headers=ingest,
                    content=b"[" * 100_000 + b"]" * 100_000,
                    ),
        client.post("/v1/logs/default/events", content=b"[" * 100_000 + b"]" * 100_000,
                    headers={**ingest, "content-type": "application/x-ndjson"}),
    ]
    for response in answers:
        assert 400 <= response.status_code < 500, response.text
        assert "error" in response.json()


def test_inclusion_proof_by_leaf_hash_finds_the_entry(service: Service,
                                                      client: httpx.Client) -> None:
    """A proof asked for by leaf hash is the proof of that entry; an unknown or malformed
    hash is a 4xx."""
    auth = service.auth("ingest_default")
    receipt = client.post("/v1/logs/default/events", json=[seed_event(77)],
                          headers=auth).json()["receipts"][0]
    proof = client.get("/v1/logs/default/proof/inclusion",
                       params={"leaf_hash": receipt["leaf_hash"]}, headers=auth)
    assert proof.status_code == 200
    assert proof.json()["leaf_index"] == receipt["index"]
    unknown = base64.b64encode(hashlib.sha256(b"nothing").digest()).decode()
    for value in (unknown, "AAAA"):
        bad = client.get("/v1/logs/default/proof/inclusion", params={"leaf_hash": value},
                         headers=auth)
        assert 400 <= bad.status_code < 500


def test_find_leaf_agrees_with_the_receipts(tmp_path: Path) -> None:
    """The level-0 hash scan returns each entry's own index, across node blocks."""
    with AuditLog.open(tmp_path) as log:
        receipts = log.append_many(seed_event(i) for i in range(200))
        for r in receipts[::17]:
            assert log.find_leaf(r.leaf_hash) == r.index
        assert log.find_leaf(hashlib.sha256(b"absent").digest()) is None


def test_admin_keys_cannot_be_scoped(tmp_path: Path) -> None:
    """An admin key acts on every log, so a scope (which would restrict nothing) is refused."""
    keys = ApiKeys(tmp_path)
    try:
        with pytest.raises(ConfigError, match="every log"):
            keys.create("admin", log="default", name="x", now=datetime.now(UTC))
    finally:
        keys.close()


def test_the_client_token_is_not_in_its_repr() -> None:
    """Error reporters that print locals never see the bearer token."""
    token = "st_0123456789abcdef_" + "S" * 43
    client = Client("http://127.0.0.1:9", token, failure_mode="drop")
    try:
        assert token not in repr(client._cfg)
    finally:
        client.close(timeout=0.1)
