"""``/readyz`` names each log that is not ready and why, and the OpenAPI document says so.

Open to everyone (load balancers call it), so it gives log names and reason codes with the
error's text, never a secret, an event or the data directory's path.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from sealtrail.server.app import ServiceConfig
from tests.server.conftest import Service, make_data_dir, running

PASSPHRASE = "not the passphrase of these logs"


@pytest.mark.usefixtures("passphrase_env")
def test_wrong_passphrase_names_each_log_and_the_reason(start_service: Any) -> None:
    """A passphrase that opens no keyring: 503, one ``keyring_locked`` problem per log."""
    svc: Service = start_service(passphrase=PASSPHRASE)
    with svc.client() as c:
        ready = c.get("/readyz")
    assert ready.status_code == 503, ready.text
    body = ready.json()
    assert body["status"] == "not ready"
    assert body["problems"] == len(body["not_ready"]) == 2
    assert sorted(p["log"] for p in body["not_ready"]) == ["default", "other"]
    for problem in body["not_ready"]:
        assert set(problem) == {"log", "reason", "message"}
        assert problem["reason"] == "keyring_locked"
        assert "passphrase" in problem["message"]  # what is wrong, in words
    assert PASSPHRASE not in ready.text
    assert str(svc.data_dir) not in ready.text


@pytest.mark.usefixtures("passphrase_env")
def test_no_passphrase_at_all_says_the_keyring_is_locked(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No passphrase or key anywhere: each encrypted log is ``keyring_locked``, saying so."""
    make_data_dir(tmp_path)  # made with the suite's passphrase...
    monkeypatch.delenv("SEALTRAIL_PASSPHRASE")  # ...served by a service that has none
    monkeypatch.delenv("SEALTRAIL_KEK", raising=False)
    with running(ServiceConfig(tmp_path, monitor=None)) as base_url:
        ready = httpx.get(f"{base_url}/readyz", timeout=30)
    assert ready.status_code == 503, ready.text
    reasons = {p["log"]: p for p in ready.json()["not_ready"]}
    assert set(reasons) == {"default", "other"}
    assert all(p["reason"] == "keyring_locked" and "locked" in p["message"]
               for p in reasons.values()), reasons


def test_a_log_that_does_not_open_is_named(start_service: Any) -> None:
    """A log whose database is not sealtrail's: ``does_not_open``, with the error's kind."""
    svc: Service = start_service()
    (svc.data_dir / "broken").mkdir()
    (svc.data_dir / "broken" / "log.db").write_bytes(b"this is not a database" * 100)
    with svc.client() as c:
        ready = c.get("/readyz")
    assert ready.status_code == 503, ready.text
    [problem] = ready.json()["not_ready"]
    assert (problem["log"], problem["reason"]) == ("broken", "does_not_open")
    assert "Error" in problem["message"]
    assert str(svc.data_dir) not in ready.text


def test_openapi_declares_both_answers_of_readyz(service: Service, client: httpx.Client
                                                 ) -> None:
    """/readyz declares 200 and 503 with their bodies, and requires no key."""
    doc = client.get("/openapi.json").json()
    op = doc["paths"]["/readyz"]["get"]
    assert set(op["responses"]) >= {"200", "503"}
    not_ready = op["responses"]["503"]["content"]["application/json"]["schema"]
    assert {"status", "problems", "not_ready"} <= set(not_ready["required"])
    item = not_ready["properties"]["not_ready"]["items"]
    assert set(item["properties"]["reason"]["enum"]) == {
        "keyring_locked", "does_not_open", "verification_failed", "store_unreachable"}
    assert "security" not in op
    ready = op["responses"]["200"]["content"]["application/json"]["schema"]
    assert set(ready["required"]) == {"status", "logs", "store", "lag"}
    lag = ready["properties"]["lag"]["items"]
    assert set(lag["required"]) == {"log", "unsigned", "unindexed", "store_ms"}


def test_ready_node_says_its_store_and_each_log_lag(service: Service, client: httpx.Client
                                                   ) -> None:
    """A ready node names its store and, per log, the integration and index lag and how
    long one read of the store took; the lag gauges say the same in /metrics."""
    ready = client.get("/readyz")
    assert ready.status_code == 200, ready.text
    body = ready.json()
    assert body["store"] == "sqlite"
    assert [row["log"] for row in body["lag"]] == ["default", "other"]
    for row in body["lag"]:
        assert "size" not in row  # no key asked: no tenant's size
        assert row["unsigned"] == 0
        assert row["unindexed"] >= 0
        assert row["store_ms"] >= 0
    metrics = client.get("/metrics", headers=service.auth("auditor")).text
    assert 'sealtrail_integration_lag_entries{log="default"} 0.0' in metrics
    assert 'sealtrail_store_up{log="default"} 1.0' in metrics
