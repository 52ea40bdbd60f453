"""Attack: read a sealed IP address (or user agent, or name) through the monitor.

``actor.ip`` is sealed in the log: only a key allowed to read events may see it. A rule that
groups by it (one IP spraying passwords at many accounts) used to put the address in clear in
the alert's key and message, which admin API keys may list, which the monitor keeps in
``monitor.db`` and the outbox, which sinks carry to chat rooms, and which the rule engine's
saved state held too. Now every value read from a sealed path is a keyed pseudonym; the rule
still groups and fires exactly as before.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from sealtrail import AuditLog
from sealtrail.monitor.alerts import MONITOR_DIR, AlertStore, monitor_db_path
from sealtrail.monitor.config import build_config
from sealtrail.monitor.dispatch import Dispatcher
from sealtrail.monitor.privacy import pseudonym
from sealtrail.monitor.rules import parse_rule
from sealtrail.monitor.runner import Monitor
from sealtrail.monitor.sinks import WebhookSink
from tests.monitor.receivers import WebhookReceiver, wait_until
from tests.server.conftest import service_at

IP = "203.0.113.77"
AGENT = "Mozilla/5.0 (X11; Linux) sprayer/9.9 unique-agent-7f3a"
NAME = "Ada Lovelace-Byron"

RULES = [
    parse_rule({"id": "local.spray_by_ip", "kind": "threshold", "severity": "high",
                "match": {"action": "user.login", "outcome": "failure"},
                "group_by": "actor.ip", "count": 3, "window": "5m",
                "message": "{title}: {count} failures from {key}"}),
    parse_rule({"id": "local.agent_and_ip", "kind": "match",
                "match": {"action": "user.login", "actor.ip": "203.0.113.*"},
                "group_by": ["actor.id", "actor.user_agent", "actor"]}),
    parse_rule({"id": "local.new_ip", "kind": "first_seen", "field": "actor.ip",
                "group_by": "actor.id", "learn_events": 1,
                "match": {"action": "user.login"}}),
    parse_rule({"id": "local.many_names", "kind": "threshold", "count": 2, "window": "5m",
                "distinct": "actor.name", "group_by": "metadata.tenant",
                "match": {"action": "user.login"}}),
]


def _login(actor: str, ip: str = IP, outcome: str = "failure") -> dict[str, Any]:
    return {"action": "user.login", "category": "authentication", "outcome": outcome,
            "actor": {"id": actor, "ip": ip, "user_agent": AGENT, "name": NAME + actor},
            "metadata": {"tenant": "acme"}}


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    with WebhookReceiver() as r:
        yield r


def _files(data: Path) -> bytes:
    """Every byte the monitor keeps on disk (databases, their WAL and journals)."""
    return b"".join(p.read_bytes() for p in sorted((data / MONITOR_DIR).iterdir())
                    if p.is_file())


def test_sealed_values_never_reach_alerts_files_or_sinks(tmp_path: Path,
                                                         receiver: WebhookReceiver) -> None:
    data = tmp_path / "data"
    with AuditLog.open(data) as log:
        assert "actor.ip" in log.sealed_paths
        log.append(_login("carol", ip="198.51.100.1", outcome="success"))
        log.append_many([_login(a) for a in ("alice", "bob", "carol", "dave")])
        sink = WebhookSink(receiver.url, "s3cret-webhook-key")
        dispatcher = Dispatcher([sink], data / MONITOR_DIR / "outbox.db")
        store = AlertStore(monitor_db_path(data))
        monitor = Monitor(data, lambda: [("default", log)], RULES, store,
                          dispatcher=dispatcher, clock=lambda: datetime.now(UTC))
        monitor._in_loop = True  # this monitor owns delivery, as the service's loop does
        monitor.step()
        monitor.save(force=True)
        alerts = store.list("default")
        by_rule = {a.rule: a for a in alerts}
        assert set(by_rule) == {r.id for r in RULES}  # every rule still fires

        # Grouping by the sealed field works, under a keyed pseudonym of the address.
        spray = by_rule["local.spray_by_ip"]
        assert spray.key == pseudonym(log, "actor.ip", IP)
        assert spray.key.startswith("ps:")
        assert spray.message == f"{spray.title}: 3 failures from {spray.key}"
        assert pseudonym(log, "actor.ip", IP) != pseudonym(log, "actor.ip", "203.0.113.78")
        assert pseudonym(log, "actor.id", "alice") == "alice"  # actor.id is never sealed
        # A key mixing clear and sealed fields keeps the clear ones; a parent of a sealed
        # field (``actor`` holds ``actor.ip``) is pseudonymised whole.
        mixed = by_rule["local.agent_and_ip"].key.split("|")
        assert mixed[0] in {"alice", "bob", "carol", "dave"}
        assert mixed[1].startswith("ps:")
        assert mixed[2].startswith("ps:")
        assert "198.51.100.1" not in by_rule["local.new_ip"].message
        assert "'ps:" in by_rule["local.new_ip"].message  # the new value, pseudonymous

        secrets = [IP, AGENT, NAME, "198.51.100.1", "sprayer/9.9", "Lovelace"]
        listed = json.dumps([a.to_dict() for a in alerts])
        for s in secrets:
            assert s not in listed, s
        # The alert.open events in the log hold the same pseudonyms.
        opened = [log.read(log.entry(a.opened_index)) for a in alerts
                  if a.opened_index is not None]
        assert len(opened) == len(alerts)
        assert not any(s in json.dumps(ev) for ev in opened for s in secrets)

        # The sinks receive no sealed value.
        assert wait_until(lambda: len(receiver.requests) >= len(alerts), 15)
        dispatcher.flush(10)
        for req in receiver.requests:
            for s in secrets:
                assert s.encode() not in req.body, s

        # Nor does any file the monitor keeps: alerts, engine state, outbox.
        _, state = store.cursor("default")
        assert state is not None
        assert pseudonym(log, "actor.name", NAME + "dave") in json.dumps(state)  # distinct
        dispatcher.close()
        store.close()
    on_disk = _files(data)
    for s in secrets:
        assert s.encode() not in on_disk, s


def test_an_unencrypted_log_keeps_its_clear_values(tmp_path: Path) -> None:
    """Nothing is sealed in a log created unencrypted (its values are in clear in the log
    itself): grouping uses the values as they are."""
    with AuditLog.open(tmp_path / "plain", encryption=False) as log:
        assert log.sealed_paths == ()
        log.append_many([_login(a) for a in ("alice", "bob", "carol")])
        store = AlertStore(monitor_db_path(tmp_path / "plain"))
        monitor = Monitor(tmp_path / "plain", lambda: [("default", log)], RULES[:1], store,
                          clock=lambda: datetime.now(UTC))
        monitor.step()
        (alert,) = store.list("default")
        assert alert.key == IP
        store.close()


def test_an_admin_key_listing_alerts_sees_no_sealed_value(tmp_path: Path) -> None:
    """The attack as an admin would make it: a running service, a rule grouping by the
    sealed ``actor.ip``, and the alert list (open to admin keys, which may read no event
    content) shows the alert under the address's pseudonym only."""
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "spray.yml").write_text(
        "id: local.spray_by_ip\nkind: threshold\nmatch: {action: user.login, outcome: failure}\n"
        "group_by: actor.ip\ncount: 3\nwindow: 5m\nseverity: high\n")
    cfg = build_config({"builtin": False}, rules_paths=[rules], sinks=[])
    with service_at(tmp_path / "data", monitor=cfg) as svc, svc.client() as c:
        r = c.post("/v1/logs/default/events", json=[_login(a) for a in ("a", "b", "c")],
                   headers=svc.auth("ingest_default"))
        assert r.status_code == 201, r.text

        def listed() -> list[dict[str, Any]]:
            got = c.get("/v1/logs/default/alerts", headers=svc.auth("admin"))
            assert got.status_code == 200, got.text
            alerts: list[dict[str, Any]] = got.json()["alerts"]
            return alerts

        assert wait_until(lambda: bool(listed()), 20)
        (alert,) = listed()
        raw = c.get("/v1/logs/default/alerts", headers=svc.auth("admin")).text
    assert alert["rule"] == "local.spray_by_ip"
    assert alert["key"].startswith("ps:")
    for s in (IP, AGENT, NAME):
        assert s not in raw
    with AuditLog.open(tmp_path / "data") as log:
        assert alert["key"] == pseudonym(log, "actor.ip", IP)
