"""The monitor's loop against the store, without a service: grouping, lifecycle races,
reserved actions, crash repair."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from sealtrail import AuditLog
from sealtrail.core.errors import ValidationError
from sealtrail.core.timefmt import format_time
from sealtrail.monitor.alerts import AlertStore, monitor_db_path
from sealtrail.monitor.builtin import builtin_rules
from sealtrail.monitor.rules import Detection
from sealtrail.monitor.runner import Monitor


def _failures(n: int, actor: str = "mallory") -> list[dict[str, object]]:
    return [{"action": "user.login", "actor": {"id": actor}, "outcome": "failure",
             "category": "authentication"} for _ in range(n)]


def _loop(tmp_path: Path, alog: AuditLog) -> Monitor:
    m = Monitor(tmp_path, lambda: [("default", alog)], builtin_rules(),
                AlertStore(monitor_db_path(tmp_path)), clock=lambda: datetime.now(UTC))
    m._in_loop = True
    return m


def test_clients_cannot_write_the_engines_actions(tmp_path: Path) -> None:
    with AuditLog.open(tmp_path) as log:
        for action in ("retention.purge", "retention.archive", "alert.open", "alert.resolve"):
            with pytest.raises(ValidationError) as err:
                log.append({"action": action, "actor": {"id": "x"}, "outcome": "success",
                            "target": {"type": "entries", "id": "purge:1:" + "0" * 64 + ":"
                                       + "0" * 64}})
            assert err.value.field == "events[0].action"
        assert log.size == 0


def test_a_resolve_from_elsewhere_is_not_undone_by_grouping(tmp_path: Path) -> None:
    with AuditLog.open(tmp_path) as log:
        loop = _loop(tmp_path, log)
        log.append_many(_failures(5))
        loop.step()
        (alert,) = loop.store.list("default", rule="builtin.brute_force")
        # Another process (the API) resolves it.
        api = Monitor(tmp_path, lambda: [], [], AlertStore(monitor_db_path(tmp_path)),
                      clock=lambda: datetime.now(UTC))
        api.change_status(log, alert.id, "resolved", actor={"id": "auditor"},
                          reason="false positive: load test")
        # A new detection for the same rule and key reaches the loop before it has seen the
        # change (its cache still says open): grouping must not revert the resolution.
        det = Detection("builtin.brute_force", alert.title, "high", "mallory", [99],
                        format_time(datetime.now(UTC)), tuple(alert.clauses), "again")
        fresh = loop.raise_alert("default", det, alog=log)
        stored = loop.store.get(alert.id)
        assert stored is not None
        assert stored.status == "resolved"
        assert stored.note == "false positive: load test"
        assert stored.updated_by == "auditor"
        assert fresh.id != alert.id  # a new alert, not a reopened one
        assert fresh.status == "open"
        api.store.close()
        loop.store.close()


def test_an_alert_kept_out_of_its_log_by_a_crash_is_recorded_at_start(tmp_path: Path) -> None:
    with AuditLog.open(tmp_path) as log:
        loop = _loop(tmp_path, log)
        loop._in_step = True
        from sealtrail.monitor.runner import system_detection
        alert = loop.raise_alert("default", system_detection(
            "builtin.disk_low", "Disk low", "critical", "/data", "1 MiB free", ()), alog=log)
        loop._pending.clear()
        assert loop.store.get(alert.id).opened_index is None  # type: ignore[union-attr]
        loop.store.close()
        again = _loop(tmp_path, log)
        again._record_unrecorded()
        stored = again.store.get(alert.id)
        assert stored is not None
        assert stored.opened_index is not None
        assert log.read(log.entry(stored.opened_index))["target"]["id"] == alert.id
        again.store.close()
