"""Imported records meet sealtrail's own rules and reports: a record's time is when the other
system wrote it, so an import of last month's CloudTrail is neither a clock off by a month nor,
an hour later, a source gone silent. The join is tested through the real importer and the log,
not with hand-built events."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sealtrail import AuditLog
from sealtrail.core.sources import get_source, is_imported
from sealtrail.core.sources.base import convert
from sealtrail.monitor.builtin import builtin_rules
from sealtrail.monitor.engine import evaluate_events

FIXTURE = Path(__file__).resolve().parent.parent / "sources/fixtures/cloudtrail/trail.json"


def _imported_and_live(tmp_path: Path) -> list[dict[str, object]]:
    month_ago = datetime.now(UTC) - timedelta(days=30)
    records = json.loads(FIXTURE.read_text())["Records"]
    for k, rec in enumerate(records):
        rec["eventTime"] = (month_ago + timedelta(minutes=k)).strftime("%Y-%m-%dT%H:%M:%SZ")
    events = convert(get_source("cloudtrail"), json.dumps({"Records": records})).events
    with AuditLog.open(tmp_path, encryption=False) as log:
        log.append_validated(events)
        log.append({"actor": {"id": "app"}, "action": "doc.read", "outcome": "success",
                    "source": {"service": "billing"}})
        return [log.read(e) for e in log.entries(0)]


def test_imports_raise_no_clock_skew_and_no_silent_source(tmp_path: Path) -> None:
    stored = _imported_and_live(tmp_path)
    assert sum(is_imported(ev) for ev in stored) == len(stored) - 1
    later = datetime.now(UTC) + timedelta(hours=3)
    fired = {(d.rule, d.key) for _, d in evaluate_events(builtin_rules(), stored, now=later)}
    assert not {r for r, _ in fired} & {"builtin.clock_skew"}, fired
    silent = {k for r, k in fired if r == "builtin.source_silent"}
    assert silent == {"billing"}  # the live source only, not every imported service


def test_the_compliance_skew_check_leaves_imports_out(tmp_path: Path) -> None:
    from sealtrail.compliance.checks import STANDARDS  # noqa: F401 - the report's module
    from sealtrail.compliance.report import generate_report

    _imported_and_live(tmp_path)
    with AuditLog.open(tmp_path, create=False) as log:
        report = generate_report(log, "pci-dss", actor={"id": "auditor"})
    skew = next(c for c in report.checks if c.id == "clock-skew")
    assert skew.status != "fail", skew
