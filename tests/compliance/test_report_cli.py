"""``sealtrail report``: exit 0 when no check fails, 1 when one does, 2 on a usage error."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

import sealtrail.cli.report  # noqa: F401 - registers the command until cli/app.py imports it
from sealtrail import AuditLog
from sealtrail.cli.app import app
from sealtrail.compliance.report import report_hash

GOOD = {"action": "record.read", "actor": {"id": "u1"}, "outcome": "success",
        "category": "data_access", "source": {"service": "web", "host": "h1"},
        "target": {"type": "record", "id": "r1"}}


def run(tmp_path: Path, *args: str) -> Any:
    return CliRunner().invoke(app, ["--data", str(tmp_path), "report", *args])


@pytest.fixture
def good_log(tmp_path: Path) -> Path:
    with AuditLog.open(tmp_path) as alog:
        alog.append(GOOD)
    return tmp_path


def test_exit_0_when_nothing_fails(good_log: Path) -> None:
    """Warnings (no policy, no alerting context) do not fail; verification runs first."""
    out = good_log / "r.json"
    res = run(good_log, "--standard", "pci-dss", "--format", "json", "--out", str(out))
    assert res.exit_code == 0, res.output
    doc = json.loads(out.read_text())
    assert doc["summary"]["fail"] == 0
    assert next(c for c in doc["checks"] if c["id"] == "verification")["status"] == "pass"


def test_exit_1_when_a_check_fails(tmp_path: Path) -> None:
    """A card number stored in clear fails the secrets check."""
    with AuditLog.open(tmp_path, redaction="off") as alog:
        alog.append({**GOOD, "reason": "card 4111 1111 1111 1111"})
    res = run(tmp_path, "--standard", "soc2", "--format", "md")
    assert res.exit_code == 1
    assert "| secrets: " in res.stdout


@pytest.mark.parametrize("args", [
    ["--standard", "pci", "--format", "json"],
    ["--standard", "gdpr", "--format", "docx"],
    ["--standard", "gdpr", "--format", "json", "--from", "yesterday"],
    ["--standard", "gdpr", "--from", "2025-02-01T00:00:00Z", "--to", "2025-01-01T00:00:00Z"],
    ["--format", "json"],
])
def test_exit_2_on_usage_errors(good_log: Path, args: list[str]) -> None:
    """A bad standard, format or time is a usage error; nothing is recorded."""
    with AuditLog.open(good_log) as alog:
        size = alog.size
    res = run(good_log, *args)
    assert res.exit_code == 2
    with AuditLog.open(good_log) as alog:
        assert alog.size == size


def test_json_hash_matches_the_recorded_event(good_log: Path) -> None:
    """The stdout JSON's hash (without receipt) is the target id of the appended event."""
    res = run(good_log, "--standard", "gdpr", "--format", "json")
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    with AuditLog.open(good_log) as alog:
        ev = alog.read(alog.entry(doc["receipt"]["index"]))
    assert ev["action"] == "report.generate"
    assert ev["target"]["id"] == report_hash(doc) == doc["receipt"]["report_hash"]


def test_pdf_and_html_files(good_log: Path) -> None:
    """--out writes binary PDF and an HTML page with the summary, failing checks or not
    (ISO 27001 wants a documented retention policy: this log has none)."""
    pdf, html = good_log / "r.pdf", good_log / "r.html"
    assert run(good_log, "--standard", "iso27001", "--format", "pdf",
               "--out", str(pdf)).exit_code == 1
    assert pdf.read_bytes().startswith(b"%PDF")
    assert run(good_log, "--standard", "hipaa", "--out", str(html)).exit_code == 0
    assert 'id="summary"' in html.read_text()
