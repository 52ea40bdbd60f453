"""The monitor in a running service: events in, signed alerts out, a lifecycle in the log.

A real uvicorn service on loopback, a real webhook receiver, the built-in pack plus a Sigma rule.
Also: one byte flipped in the SQLite file under the running service reaches the webhook as a
critical alert within 10 s; a failing sink, a nearly full disk, suppression, and restarts.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from sealtrail import AuditLog
from sealtrail.monitor.alerts import AlertStore, monitor_db_path
from sealtrail.monitor.config import build_config
from sealtrail.monitor.sinks import verify_signature
from tests.monitor.receivers import WebhookReceiver, wait_until
from tests.server.conftest import Service, service_at

SECRET = "whsec-test-0123456789"
SIGMA = """
title: Export by a contractor
id: 6f0d6a52-3a2b-4e53-8f57-0b1f9c1d2e3f
logsource:
  product: sealtrail
detection:
  selection:
    action|startswith: report.export
    actor.id|startswith: contractor-
  condition: selection
level: high
"""


def _logins(n: int, actor: str = "mallory", outcome: str = "failure") -> list[dict[str, Any]]:
    return [{"action": "user.login", "actor": {"id": actor, "ip": "203.0.113.9"},
             "outcome": outcome, "category": "authentication",
             "source": {"service": "shop", "host": "web-1"},
             "target": {"type": "account", "id": actor}} for _ in range(n)]


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    with WebhookReceiver() as r:
        yield r


def _config(receiver: WebhookReceiver, tmp_path: Path, **doc: Any) -> Any:
    rules = tmp_path / "rules"
    rules.mkdir(exist_ok=True)
    (rules / "contractor.yml").write_text(SIGMA)
    return build_config(doc, rules_paths=[rules], sinks=[
        {"type": "webhook", "url": receiver.url, "secret": SECRET}])


def _alerts(receiver: WebhookReceiver) -> list[dict[str, Any]]:
    out = []
    for req in list(receiver.requests):
        assert verify_signature(SECRET, req.headers["sealtrail-signature"], req.body,
                                time.time())
        doc = json.loads(req.body)
        if doc.get("type") != "sealtrail.checkpoint":  # published checkpoints (issue 11)
            out.append(doc)
    return out


def _post(svc: Service, events: list[dict[str, Any]]) -> None:
    with svc.client() as c:
        r = c.post("/v1/logs/default/events", json=events, headers=svc.auth("ingest_default"))
        assert r.status_code == 201, r.text


def test_rules_alert_a_webhook_and_the_lifecycle_is_recorded(receiver: WebhookReceiver,
                                                             tmp_path: Path) -> None:
    cfg = _config(receiver, tmp_path)
    with service_at(tmp_path / "data", monitor=cfg) as svc:
        _post(svc, _logins(6))
        _post(svc, [{"action": "report.export", "actor": {"id": "contractor-7"},
                     "outcome": "success", "category": "data_access"}])
        assert wait_until(lambda: {a["rule"] for a in _alerts(receiver)} >= {
            "builtin.brute_force", "6f0d6a52-3a2b-4e53-8f57-0b1f9c1d2e3f"}, 15)
        brute = next(a for a in _alerts(receiver) if a["rule"] == "builtin.brute_force")
        assert brute["key"] == "mallory"
        assert brute["severity"] == "high"
        assert brute["status"] == "open"
        assert "PCI DSS 10.2.1.4" in brute["clauses"]
        # Grouping: more failures by the same actor do not notify again.
        _post(svc, _logins(5))
        time.sleep(1.0)
        assert sum(a["rule"] == "builtin.brute_force" for a in _alerts(receiver)) == 1
        with svc.client() as c:
            listed = c.get("/v1/logs/default/alerts", params={"status": "open"},
                           headers=svc.auth("reader_default")).json()["alerts"]
            ours = next(a for a in listed if a["id"] == brute["id"])
            assert ours["opened_index"] is not None
            # A reader may list but not change; an auditor acknowledges, then resolves.
            r = c.post(f"/v1/logs/default/alerts/{brute['id']}/ack",
                       json={"reason": "checking"}, headers=svc.auth("reader_default"))
            assert r.status_code == 403
            r = c.post(f"/v1/logs/default/alerts/{brute['id']}/ack", json={"reason": ""},
                       headers=svc.auth("auditor"))
            assert r.status_code == 422
            assert r.json()["field"] == "reason"
            r = c.post(f"/v1/logs/default/alerts/{brute['id']}/ack",
                       json={"reason": "SOC ticket 4711: checking with the shop team"},
                       headers=svc.auth("auditor"))
            assert r.status_code == 200, r.text
            assert r.json()["status"] == "acknowledged"
            r = c.post(f"/v1/logs/default/alerts/{brute['id']}/resolve",
                       json={"reason": "password spraying blocked at the WAF"},
                       headers=svc.auth("auditor"))
            assert r.json()["status"] == "resolved"
            r = c.post(f"/v1/logs/default/alerts/{brute['id']}/resolve",
                       json={"reason": "again"}, headers=svc.auth("auditor"))
            assert r.status_code == 409
        assert wait_until(lambda: {a["status"] for a in _alerts(receiver)
                                   if a["id"] == brute["id"]} == {"open", "acknowledged",
                                                                  "resolved"}, 10)
    # The log holds the alert and each change, with who and why.
    with AuditLog.open(tmp_path / "data", "default") as alog:
        events = [alog.read(e) for e in alog.entries(0, alog.size)]
    trail = [e for e in events if e.get("target", {}).get("id") == brute["id"]]
    assert [e["action"] for e in trail] == ["alert.open", "alert.acknowledge", "alert.resolve"]
    assert trail[1]["reason"].startswith("SOC ticket 4711")
    assert trail[1]["actor"]["id"].startswith("key:")
    assert all(e["category"] == "system" for e in trail)


def test_a_flipped_byte_reaches_the_webhook_within_10_seconds(receiver: WebhookReceiver,
                                                              tmp_path: Path) -> None:
    cfg = _config(receiver, tmp_path)
    with service_at(tmp_path / "data", monitor=cfg, verify_delay=0.2,
                    verify_min_interval=1.0) as svc:
        _post(svc, _logins(3, actor="alice", outcome="success"))
        time.sleep(1.5)  # a passing verification first
        db = svc.data_dir / "default" / "log.db"
        con = sqlite3.connect(db)
        con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        (data,) = con.execute("SELECT data FROM chunks ORDER BY start LIMIT 1").fetchone()
        con.close()
        # Flip one byte of an entry in the file itself, not through SQLite.
        raw = bytearray(db.read_bytes())
        at = raw.find(bytes(data)[-40:])
        assert at > 0
        raw[at + 5] ^= 0x01
        db.write_bytes(bytes(raw))
        flipped = time.monotonic()
        assert wait_until(lambda: any(a["rule"] == "builtin.integrity_failure"
                                      for a in _alerts(receiver)), 10.0)
        took = time.monotonic() - flipped
        alert = next(a for a in _alerts(receiver) if a["rule"] == "builtin.integrity_failure")
        assert alert["severity"] == "critical"
        assert "PCI DSS 10.3.4" in alert["clauses"]
        assert took < 10.0
        with svc.client() as c:
            assert c.get("/readyz").status_code == 503
            metrics = c.get("/metrics", headers=svc.auth("auditor")).text
        assert 'sealtrail_verification_ok{log="default"} 0.0' in metrics
        assert "sealtrail_alerts{" in metrics


def test_failing_sink_and_low_disk_raise_trail_alerts(receiver: WebhookReceiver,
                                                      tmp_path: Path) -> None:
    # The disk bound is set above what any disk has free: the check must fire.
    cfg = _config(receiver, tmp_path, disk_min_free={"ratio": 0.999999})
    receiver.fail_next(1000, 503)
    with service_at(tmp_path / "data", monitor=cfg) as svc:
        _post(svc, _logins(6))
        store = AlertStore(monitor_db_path(svc.data_dir))
        try:
            assert wait_until(lambda: {a.rule for a in store.list(None, limit=100)} >= {
                "builtin.disk_low", "builtin.brute_force", "builtin.sink_failing"}, 30)
            failing = store.list(None, rule="builtin.sink_failing")[0]
            assert failing.key == "webhook"
            assert "503" in failing.message
        finally:
            store.close()


def test_suppression_and_restart_resume(receiver: WebhookReceiver, tmp_path: Path) -> None:
    cfg = _config(receiver, tmp_path, suppress=[{"rule": "builtin.brute_force",
                                                 "key": "mallory", "reason": "pentest"}])
    data = tmp_path / "data"
    with service_at(data, monitor=cfg) as svc:
        _post(svc, _logins(6))
        _post(svc, _logins(6, actor="trudy"))
        assert wait_until(lambda: any(a["key"] == "trudy" for a in _alerts(receiver)), 15)
        assert not any(a["key"] == "mallory" for a in _alerts(receiver))
    before = len(_alerts(receiver))
    # Restart on the same data: nothing already judged is judged (or notified) again.
    cfg2 = _config(receiver, tmp_path)
    from sealtrail.server.app import ServiceConfig
    from tests.server.conftest import running
    with running(ServiceConfig(data, monitor=cfg2)) as url:
        with httpx.Client(base_url=url) as c:
            assert c.get("/healthz").status_code == 200
        time.sleep(2.0)
    assert len(_alerts(receiver)) == before


def test_alert_test_reaches_sinks_and_the_report_counts_it(receiver: WebhookReceiver,
                                                           tmp_path: Path) -> None:
    import subprocess
    import sys

    cfg = _config(receiver, tmp_path)
    data = tmp_path / "data"
    cli = [sys.executable, "-m", "sealtrail.cli", "--data", str(data)]
    with service_at(data, monitor=cfg):
        res = subprocess.run([*cli, "alerts", "test", "--reason", "monthly test"],
                             capture_output=True, text=True, timeout=60, check=False)
        assert res.returncode == 0, res.stderr
        assert wait_until(lambda: any(a["rule"] == "builtin.alert_test"
                                      for a in _alerts(receiver)), 15)
        res = subprocess.run([*cli, "report", "--standard", "pci-dss", "--format", "json"],
                             capture_output=True, text=True, timeout=120, check=False)
    report = json.loads(res.stdout)
    alerting = next(c for c in report["checks"] if c["id"] == "alerting")
    assert alerting["status"] == "pass", alerting
    assert alerting["evidence"]["sinks"] == 1
