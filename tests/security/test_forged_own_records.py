"""sealtrail's own record types cannot be forged by a client (issue 11, finding 5).

Every action the engine writes is reserved (core/reserved.py); a client — an ingest key over
HTTP, or a library caller — asking for one gets a 422 naming the field, and nothing of the
request is stored. Also: the set of actions the engine actually writes, collected by running
its code paths, is inside the reserved namespace (so a new own action cannot slip out of it).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sealtrail.core.errors import ValidationError
from sealtrail.core.reserved import is_reserved_action
from sealtrail.log.auditlog import READ_ACTIONS, AuditLog
from sealtrail.log.retention import RetentionPolicy, set_policy
from tests.server.conftest import Service, service_at

FORGED = ["subject.erase", "subject.hold.add", "subject.hold.release", "keys.rotate",
          "audit.search", "audit.entries.read", "audit.export", "audit.subject_export",
          "integrity.failure", "retention.purge", "retention.restore", "alert.open",
          "report.generate", "sealtrail.head.accept", "sealtrail.anything"]


def _forged(action: str, **extra: Any) -> dict[str, Any]:
    return {"actor": {"id": "mallory", "type": "user"}, "action": action,
            "outcome": "success", "category": "audit_access", **extra}


@pytest.fixture(scope="module")
def svc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    with service_at(tmp_path_factory.mktemp("forge")) as service:
        yield service


@pytest.mark.parametrize("action", FORGED)
def test_ingest_key_cannot_forge_an_own_record(svc: Service, action: str) -> None:
    with svc.client() as c:
        before = c.get("/v1/logs/default/checkpoint", headers=svc.auth("auditor")).text
        resp = c.post("/v1/logs/default/events",
                      json=[_forged("doc.read"), _forged(action)],
                      headers=svc.auth("ingest_all"))
        assert resp.status_code == 422, resp.text
        assert "events[1].action" in resp.text
        after = c.get("/v1/logs/default/checkpoint", headers=svc.auth("auditor")).text
    assert before == after  # nothing of the request was stored


def test_a_read_cannot_be_pinned_on_another_key(svc: Service) -> None:
    """A client-made 'read of the trail' acted by ``key:<id>`` (how sealtrail names API keys
    in its read records) would fire the audit-access rule against that key."""
    with svc.client() as c:
        resp = c.post("/v1/logs/default/events",
                      json=[_forged("trail.read", actor={"id": f"key:{svc.key_id('auditor')}"},
                                    metadata={"role": "reader"})],
                      headers=svc.auth("ingest_all"))
    assert resp.status_code == 422
    assert "events[0].actor.id" in resp.text


def test_source_service_sealtrail_is_reserved(svc: Service) -> None:
    with svc.client() as c:
        resp = c.post("/v1/logs/default/events",
                      json=[_forged("doc.read", source={"service": "sealtrail"})],
                      headers=svc.auth("ingest_all"))
    assert resp.status_code == 422
    assert "events[0].source.service" in resp.text


@pytest.mark.parametrize("action", FORGED)
def test_library_caller_cannot_forge_either(tmp_path: Path, action: str) -> None:
    with AuditLog.open(tmp_path) as log:
        with pytest.raises(ValidationError) as info:
            log.append_many([_forged("doc.read"), _forged(action)])
        assert info.value.field == "events[1].action"
        assert log.size == 0


def test_every_action_the_engine_writes_is_reserved(tmp_path: Path) -> None:
    """Run the engine's own writers and collect what they write."""
    with AuditLog.open(tmp_path) as log:
        log.append({"actor": {"id": "nurse"}, "action": "record.read", "outcome": "success",
                    "subjects": ["p-1"]})
        ops = {"id": "ops", "type": "user"}
        for action in READ_ACTIONS:
            log.record_access(ops, action, role="auditor", details={}, results=1)
        log.hold_subject("p-1", reason="case 1", actor=ops)
        log.release_subject("p-1", reason="case closed", actor=ops)
        log.erase_subject("p-1", reason="request 7", actor=ops)
        log.rotate_keys(actor=ops)
        set_policy(log, RetentionPolicy.parse({"default": {"max": "10y"}}), actor=ops)
        log.accept_head(reason="drill", actor=ops)
        own = [log.read(e) for e in log.entries(1)]
    actions = {ev["action"] for ev in own}
    assert len(actions) >= 10
    assert all(is_reserved_action(a) for a in actions), actions
    assert all(ev["source"]["service"] == "sealtrail" for ev in own)
