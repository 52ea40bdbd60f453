"""Producer and consumer joined: the service records each audited read with the reader's
role, and the monitor's ``builtin.audit_access`` rule judges those very events.

A real uvicorn service on loopback with its monitor: an ``auditor`` key and a ``reader`` key
both search the log; the rule must fire for the reader's read and stay quiet for the
auditor's. A rule tested only against hand-made events would not notice the producer
recording another action name or no role at all.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sealtrail import AuditLog
from sealtrail.monitor.config import build_config
from tests.monitor.receivers import wait_until
from tests.server.conftest import Service, service_at


def _alerts(svc: Service) -> list[dict[str, Any]]:
    with svc.client() as c:
        r = c.get("/v1/logs/default/alerts", params={"rule": "builtin.audit_access"},
                  headers=svc.auth("admin"))
        assert r.status_code == 200, r.text
        alerts: list[dict[str, Any]] = r.json()["alerts"]
        return alerts


def test_a_readers_search_alerts_and_an_auditors_does_not(tmp_path: Path) -> None:
    cfg = build_config({}, rules_paths=[], sinks=[])
    with service_at(tmp_path / "data", monitor=cfg) as svc:
        with svc.client() as c:
            # The auditor first: once the reader's alert is there, the monitor has judged
            # the auditor's read too (it reads the log in order).
            for caller in ("auditor", "reader_default"):
                r = c.get("/v1/logs/default/events", params={"actor": "seed-0"},
                          headers=svc.auth(caller))
                assert r.status_code == 200, r.text
        reader, auditor = f"key:{svc.key_id('reader_default')}", f"key:{svc.key_id('auditor')}"
        assert wait_until(lambda: any(a["key"] == reader for a in _alerts(svc)), 20)
        alerts = _alerts(svc)
        assert [a["key"] for a in alerts] == [reader]
        (alert,) = alerts
        assert alert["severity"] == "medium"
        assert "PCI DSS 10.2.1.3" in alert["clauses"]
    # What the rule judged is what the producer wrote: both reads, each with its role.
    with AuditLog.open(tmp_path / "data") as log:
        reads = {}
        for entry in log.entries(0):
            ev = log.read(entry)
            if ev.get("category") == "audit_access" and ev["actor"]["id"] in (reader, auditor):
                reads[ev["actor"]["id"]] = ev
        assert reads[reader]["action"] == "audit.search"
        assert reads[reader]["metadata"]["role"] == "reader"
        assert reads[auditor]["metadata"]["role"] == "auditor"
        assert alert["entries"] == [next(e.index for e in log.entries(0)
                                         if log.read(e) == reads[reader])]
