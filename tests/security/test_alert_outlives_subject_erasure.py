"""Attack: a data subject is erased from the log, but the monitor still remembers them.

Erasing a subject (``AuditLog.erase_subject``) destroys the key their sealed fields were
sealed under and deletes their blind-index rows, so nothing links the log to them any more.
The monitor keeps its own copies — alert keys and messages (pseudonyms of the subject and of
their sealed fields, such as their IP address), links from alerts to subjects, the rule
engine's per-key state, the outbox's alert bodies — and those used to survive the erasure.
Now the monitor reads the ``subject.erase`` event like any other and removes them.
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
from sealtrail.monitor.builtin import builtin_rules
from sealtrail.monitor.dispatch import Dispatcher
from sealtrail.monitor.privacy import ERASED, PSEUDONYM, pseudonym
from sealtrail.monitor.rules import parse_rule
from sealtrail.monitor.runner import Monitor
from sealtrail.monitor.sinks import WebhookSink
from tests.monitor.receivers import WebhookReceiver, wait_until

ERASED_IP, KEPT_IP = "192.0.2.44", "192.0.2.99"

RULES = [
    *builtin_rules(),
    parse_rule({"id": "local.reads_by_ip", "kind": "threshold", "count": 3, "window": "1h",
                "match": {"action": "record.read"}, "group_by": "actor.ip"}),
    parse_rule({"id": "local.reads_of_subject", "kind": "threshold", "count": 3,
                "window": "1h", "match": {"action": "record.read"}, "group_by": "subjects"}),
    parse_rule({"id": "local.reads_by_nurse", "kind": "threshold", "count": 3,
                "window": "1h", "match": {"action": "record.read"}, "group_by": "actor.id"}),
]


def _read(subject: str, ip: str, nurse: str) -> dict[str, Any]:
    return {"action": "record.read", "category": "data_access", "outcome": "success",
            "actor": {"id": nurse, "ip": ip}, "subjects": [subject], "purpose": "treatment"}


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    with WebhookReceiver() as r:
        yield r


def _files(data: Path) -> bytes:
    return b"".join(p.read_bytes() for p in sorted((data / MONITOR_DIR).iterdir())
                    if p.is_file())


def test_erasing_a_subject_erases_what_the_monitor_kept(tmp_path: Path,
                                                        receiver: WebhookReceiver) -> None:
    data = tmp_path / "data"
    with AuditLog.open(data) as log:
        log.append_many([_read("patient-4410", ERASED_IP, "nurse-7") for _ in range(3)])
        log.append_many([_read("patient-9", KEPT_IP, "nurse-8") for _ in range(3)])
        dispatcher = Dispatcher([WebhookSink(receiver.url, "webhook-secret")],
                                data / MONITOR_DIR / "outbox.db")
        store = AlertStore(monitor_db_path(data))
        monitor = Monitor(data, lambda: [("default", log)], RULES, store,
                          dispatcher=dispatcher, clock=lambda: datetime.now(UTC))
        monitor._in_loop = True
        monitor.step()
        ref = log.pseudonym("patient-4410")
        ip_ps = pseudonym(log, "actor.ip", ERASED_IP)
        kept = {log.pseudonym("patient-9"), pseudonym(log, "actor.ip", KEPT_IP)}
        keys = {(a.rule, a.key) for a in store.list("default")}
        assert ("local.reads_by_ip", ip_ps) in keys
        assert ("local.reads_of_subject", ref) in keys
        assert ("local.reads_by_nurse", "nurse-7") in keys
        assert wait_until(lambda: len(receiver.requests) >= 6, 15)
        assert ip_ps.encode() in _files(data)
        assert ref.encode() in _files(data)

        receipt = log.erase_subject("patient-4410", reason="GDPR request 118",
                                    actor={"id": "dpo"})
        assert log.read(log.entry(receipt.index))["target"]["id"] == ref
        monitor.step()
        monitor.save(force=True)

        alerts = {(a.rule, a.key): a for a in store.list("default")}
        # The subject's alerts stay (the detection happened), their pseudonyms do not.
        for rule in ("local.reads_by_ip", "local.reads_of_subject"):
            a = alerts[(rule, ERASED)]
            assert a.entries == [0, 1, 2]  # evidence kept: those entries now read as erased
            assert PSEUDONYM.search(a.message) is None
            assert ERASED in a.message
        # An alert keyed by a field that is never sealed keeps its key (actor.id is clear in
        # the log itself); the other subject's alerts are untouched.
        assert ("local.reads_by_nurse", "nurse-7") in alerts
        assert {k for _, k in alerts} >= kept
        assert ("builtin.subject_erasure", "") in alerts
        assert store.subject_alerts(ref) == []

        # Nothing the monitor keeps on disk still holds the erased pseudonyms: not the alert
        # index, not the links, not the engine state, not the outbox, not a WAL.
        _, state = store.cursor("default")
        assert ref not in json.dumps(state)
        assert ip_ps not in json.dumps(state)
        dispatcher.close()
        store.close()
    on_disk = _files(data)
    assert ip_ps.encode() not in on_disk
    assert ref.encode() not in on_disk
    for k in kept:
        assert k.encode() in on_disk


def test_a_new_event_after_the_erasure_opens_a_new_alert(tmp_path: Path) -> None:
    """The engine forgot the erased keys: the same address seen again (another subject now)
    is judged from scratch and alerts under its pseudonym again, not into the erased alert."""
    with AuditLog.open(tmp_path) as log:
        log.append_many([_read("patient-4410", ERASED_IP, "nurse-7") for _ in range(3)])
        store = AlertStore(monitor_db_path(tmp_path))
        monitor = Monitor(tmp_path, lambda: [("default", log)], RULES[-3:-2], store,
                          clock=lambda: datetime.now(UTC))
        monitor._in_loop = True
        monitor.step()
        (first,) = store.list("default")
        log.erase_subject("patient-4410", reason="request 119", actor={"id": "dpo"})
        monitor.step()
        assert store.get(first.id).key == ERASED  # type: ignore[union-attr]
        log.append_many([_read("patient-5", ERASED_IP, "nurse-7") for _ in range(2)])
        monitor.step()
        assert len(store.list("default")) == 1  # two events: the window starts afresh
        log.append(_read("patient-5", ERASED_IP, "nurse-7"))
        monitor.step()
        second = next(a for a in store.list("default") if a.id != first.id)
        assert second.key == pseudonym(log, "actor.ip", ERASED_IP)
        assert second.entries == [5, 6, 7]
        store.close()
