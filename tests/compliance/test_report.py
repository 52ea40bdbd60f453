"""Compliance reports: each check passes on a good log and fails on a bad one; the report's
hash is recorded in the trail; the HTML escapes event data; the PDF shows the summary."""

from __future__ import annotations

import json
import re
import zlib
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from sealtrail import AuditLog
from sealtrail.compliance.checks import CHECKS, CLAUSES, STANDARDS, CheckResult
from sealtrail.compliance.report import Report, generate_report, render, report_hash
from sealtrail.log.apikeys import KeyInfo
from sealtrail.log.retention import RetentionPolicy, set_policy
from tests.compliance.conftest import Clock

T0 = datetime(2025, 3, 1, tzinfo=UTC)
ME = {"id": "auditor-1", "type": "user"}


@pytest.fixture
def clock() -> Clock:
    """These tests start on T0 of their own (a later date than the shared clock's)."""
    return Clock(T0)


@pytest.fixture
def alog(tmp_path: Path, clock: Clock) -> Iterator[AuditLog]:
    log = AuditLog.open(tmp_path, clock=clock)
    yield log
    log.close()


def good(**extra: Any) -> dict[str, Any]:
    """A security event with all six PCI DSS 10.2.2 fields."""
    ev: dict[str, Any] = {"action": "record.read", "actor": {"id": "u1"}, "outcome": "success",
                          "category": "data_access", "source": {"service": "web", "host": "h1"},
                          "target": {"type": "record", "id": "r1"}}
    ev.update(extra)
    return ev


def check(alog: AuditLog, name: str, standard: str = "pci-dss", **kw: Any) -> CheckResult:
    report = generate_report(alog, standard, actor=ME, record=False, **kw)
    return next(c for c in report.checks if c.id == name)


# -- 1. fields -------------------------------------------------------------------------------


def test_fields_pass_when_every_security_event_has_the_six(alog: AuditLog) -> None:
    """Origin and resource may be sealed (actor.ip, target.name): present, not decrypted."""
    alog.append_many([good(), good(source=None, actor={"id": "u2", "ip": "10.0.0.2"},
                               target={"name": "secret-file"})])
    res = check(alog, "fields")
    assert res.status == "pass"
    assert res.clauses == ("10.2.2",)


def test_fields_fail_lists_missing_fields_and_examples(alog: AuditLog) -> None:
    """A security event without origin or resource fails, naming counts and indexes."""
    alog.append_many([good(), {"action": "user.login", "actor": {"id": "u1"},
                               "outcome": "success", "category": "authentication"},
                      {"action": "note", "actor": {"id": "u1"}, "outcome": "success"}])
    res = check(alog, "fields")
    assert res.status == "fail"
    assert res.evidence["missing"] == {"origin": 1, "resource": 1}
    assert res.evidence["example_indexes"] == [1]
    assert res.fix


# -- 2. coverage -----------------------------------------------------------------------------


def all_classes() -> list[dict[str, Any]]:
    return [good(),
            good(action="user.disable", category="admin"),
            good(action="viewer.search", category="audit_access"),  # audit.* is reserved
            good(action="user.login", category="authentication", outcome="failure"),
            good(action="password.change", category="authentication"),
            good(action="logging.start", category="system"),
            good(action="table.create", category="system")]


def test_coverage_passes_when_each_class_is_seen(alog: AuditLog) -> None:
    """One event of each 10.2.1.x class: pass, counted per source."""
    alog.append_many(all_classes())
    res = check(alog, "coverage")
    assert res.status == "pass", res.summary
    assert set(res.evidence["per_source"]) == {"web"}


def test_coverage_warns_for_classes_never_seen(alog: AuditLog) -> None:
    """Classes never seen cannot be proven logged: warn, listing them."""
    alog.append_many([good(), good(source={"host": "h2"})])
    res = check(alog, "coverage")
    assert res.status == "warn"
    assert "10.2.1.4" in res.evidence["unseen"]
    assert set(res.evidence["per_source"]) == {"web", "(no source.service)"}


# -- 3. reads ---------------------------------------------------------------------------------


def test_reads_pass_when_logged_with_an_actor(alog: AuditLog) -> None:
    """record_access (what every face calls) makes a read with its actor."""
    alog.append(good())
    alog.record_access({"id": "auditor-2"}, "audit.search", role="auditor", details={},
                      results=1)
    res = check(alog, "reads")
    assert res.status == "pass"
    assert res.evidence["top_readers"] == {"auditor-2": 1}


def test_reads_fail_for_an_anonymous_reader_and_warn_when_none(alog: AuditLog) -> None:
    """No read at all: warn; a read as 'unknown': fail."""
    alog.append(good())
    assert check(alog, "reads").status == "warn"
    alog.record_access({"id": "unknown"}, "audit.export", role="reader", details={},
                      results=1)
    res = check(alog, "reads")
    assert res.status == "fail"
    assert res.evidence["example_indexes"] == [1]


# -- 4. verification -----------------------------------------------------------------------


def test_verification_passes_within_a_day(alog: AuditLog, clock: Clock) -> None:
    """A verification an hour ago passes."""
    alog.append(good())
    alog.verify()
    clock.now += timedelta(hours=1)
    assert check(alog, "verification").status == "pass"


def test_verification_fails_when_stale_unless_run_now(alog: AuditLog, clock: Clock) -> None:
    """Two days old: fail with the time; verify_now runs one and passes."""
    alog.append(good())
    alog.verify()
    clock.now += timedelta(days=2)
    res = check(alog, "verification")
    assert res.status == "fail"
    assert res.evidence["verified_at"] == "2025-03-01T00:00:00.000000Z"
    assert check(alog, "verification", verify_now=True).status == "pass"


def test_verification_fails_after_a_failed_run(alog: AuditLog) -> None:
    """verify_failed_at newer than verified_at fails."""
    alog.append(good())
    alog.verify()
    with alog.store.transaction():  # as AuditLog.verify notes a TamperError
        alog.store.set_meta({"verify_failed_at": "2025-03-01T00:00:01.000000Z"})
    res = check(alog, "verification")
    assert res.status == "fail"
    assert "FAILED" in res.summary


# -- 5. retention --------------------------------------------------------------------------


def test_retention_pci_preset_passes_and_short_minimum_fails(alog: AuditLog) -> None:
    """The PCI preset meets 365 d / 90 d; a 30-day policy does not."""
    set_policy(alog, RetentionPolicy.preset("pci-dss"), actor=ME)
    assert check(alog, "retention").status == "pass"
    set_policy(alog, RetentionPolicy.parse({"name": "short", "default": {
        "min": "30d", "max": "60d", "online": "30d"}}), actor=ME)
    res = check(alog, "retention")
    assert res.status == "fail"
    assert any("online" in p for p in res.evidence["problems"])


def test_retention_hipaa_needs_six_years(alog: AuditLog) -> None:
    """The HIPAA preset passes; the PCI one (one year, purged at 2 years) fails for HIPAA."""
    set_policy(alog, RetentionPolicy.preset("hipaa"), actor=ME)
    assert check(alog, "retention", "hipaa").status == "pass"
    set_policy(alog, RetentionPolicy.parse({"default": {"min": "366d", "max": "730d"}}),
               actor=ME)
    assert check(alog, "retention", "hipaa").status == "fail"


def test_retention_gdpr_wants_a_max_for_personal_data(alog: AuditLog) -> None:
    """A category with sealed personal fields and no max warns; the GDPR preset passes."""
    alog.append(good(actor={"id": "u1", "name": "Ann"}))
    set_policy(alog, RetentionPolicy.preset("pci-dss"), actor=ME)
    res = check(alog, "retention", "gdpr")
    assert res.status == "warn"
    assert res.evidence["without_max"] == ["data_access"]
    set_policy(alog, RetentionPolicy.preset("gdpr"), actor=ME)
    assert check(alog, "retention", "gdpr").status == "pass"


def test_retention_soc2_fails_without_a_policy(alog: AuditLog) -> None:
    """SOC 2 / NIST / ISO need a documented policy."""
    alog.append(good())
    assert check(alog, "retention", "soc2").status == "fail"


# -- 6. clock skew -------------------------------------------------------------------------


def test_skew_passes_for_close_clocks(alog: AuditLog, clock: Clock) -> None:
    """Producer time 2 minutes off: within bounds, max skew reported."""
    alog.append(good(time="2025-02-28T23:58:00Z"))
    res = check(alog, "clock-skew")
    assert res.status == "pass"
    assert res.evidence["per_source"]["web"]["max_skew_seconds"] == 120.0


def test_skew_fails_per_source(alog: AuditLog) -> None:
    """One source 10 minutes behind fails; the other source is fine."""
    alog.append_many([good(source={"service": "batch", "host": "b"},
                           time="2025-02-28T23:50:00Z"), good()])
    res = check(alog, "clock-skew")
    assert res.status == "fail"
    assert "batch" in res.summary
    assert "web" not in res.summary
    assert res.evidence["per_source"]["batch"]["example_indexes"] == [0]


# -- 7. alerting ---------------------------------------------------------------------------


def test_alerting_states(alog: AuditLog) -> None:
    """None: warn; configured and tested a week ago: pass; never tested: fail."""
    alog.append(good())
    assert check(alog, "alerting").status == "warn"
    ok = {"sinks": 2, "integrity_watch": True, "last_test_alert": "2025-02-22T00:00:00Z"}
    assert check(alog, "alerting", alerting=ok).status == "pass"
    res = check(alog, "alerting", alerting={"sinks": 0, "integrity_watch": True})
    assert res.status == "fail"
    assert "never tested" in res.summary


# -- 8. secrets ----------------------------------------------------------------------------


def test_secrets_pass_when_redacted_at_ingest(alog: AuditLog) -> None:
    """The default redaction masks a card at ingest: nothing in clear."""
    alog.append(good(reason="paid with 4111 1111 1111 1111"))
    assert check(alog, "secrets").status == "pass"


def test_secrets_fail_when_stored_in_clear(tmp_path: Path, clock: Clock) -> None:
    """With redaction off, a card and a bearer token stay in clear: fail, by kind and path."""
    with AuditLog.open(tmp_path, clock=clock, redaction="off") as log:
        log.append_many([good(reason="paid with 4111 1111 1111 1111"),
                         good(target={"id": "Bearer abcdefghijklmnop1234567890"})])
        res = check(log, "secrets")
    assert res.status == "fail"
    assert res.evidence["kinds"] == {"bearer": 1, "card": 1}
    assert res.evidence["paths"] == {"reason": 1, "target.id": 1}
    assert res.evidence["example_indexes"] == [0, 1]
    assert "4111" not in json.dumps(res.to_json())


# -- 9. erasure ----------------------------------------------------------------------------


def request(rid: str) -> dict[str, Any]:
    return {"action": "gdpr.erasure.request", "actor": {"id": "dpo"}, "outcome": "success",
            "category": "admin", "request_id": rid, "target": {"type": "data_subject"}}


def test_erasure_closed_requests_pass(alog: AuditLog, clock: Clock) -> None:
    """A request closed by a later event with the same request_id passes."""
    alog.append(request("req-1"))
    clock.now += timedelta(days=40)
    alog.append({"action": "gdpr.erasure.reject", "actor": {"id": "dpo"}, "outcome": "denied",
                 "category": "admin", "request_id": "req-1", "reason": "Art. 17(3)(b)"})
    res = check(alog, "erasure", "gdpr")
    assert res.status == "pass"
    assert res.evidence["outcomes"] == {"denied": 1}


def test_erasure_open_past_30_days_fails(alog: AuditLog, clock: Clock) -> None:
    """A request open for 31 days fails; one 5 days old is still pending."""
    alog.append(request("req-1"))
    clock.now += timedelta(days=26)
    alog.append(request("req-2"))
    clock.now += timedelta(days=5)
    res = check(alog, "erasure", "gdpr")
    assert res.status == "fail"
    assert res.evidence["overdue_indexes"] == [0]
    assert res.evidence["open"] == 2


def test_erasure_is_not_applicable_to_pci(alog: AuditLog) -> None:
    """A check a standard does not ask for is n/a, with the reason."""
    res = check(alog, "erasure", "pci-dss")
    assert res.status == "not-applicable"
    assert "erasure" in res.summary


# -- 10. roles -----------------------------------------------------------------------------


def key(kid: str, role: str, revoked: str | None = None) -> KeyInfo:
    return KeyInfo(kid, role, None, kid, "2025-01-01T00:00:00Z", None, revoked)


def test_roles_pass_when_separated(alog: AuditLog) -> None:
    """One admin, an ingest and a reader key (a fourth admin is revoked): pass."""
    keys = [key("a1", "admin"), key("i1", "ingest"), key("r1", "reader"),
            key("a2", "admin", revoked="2025-02-01T00:00:00Z")]
    assert check(alog, "roles", keys=keys).status == "pass"


def test_roles_fail_with_too_many_admins_or_admin_actors(alog: AuditLog) -> None:
    """Three active admins fail; so does an admin key acting in events; none: warn."""
    assert check(alog, "roles").status == "warn"
    three = [key("a1", "admin"), key("a2", "admin"), key("a3", "admin"), key("i1", "ingest")]
    assert check(alog, "roles", keys=three).status == "fail"
    # An admin key acting: what the service records when one reads the trail.
    alog.record_access({"id": "key:a1", "type": "api_key"}, "audit.search", role="admin",
                       details={}, results=0)
    res = check(alog, "roles", keys=[key("a1", "admin"), key("i1", "ingest")])
    assert res.status == "fail"
    assert res.evidence["admin_keys_as_actors"] == {"a1": 1}


# -- the report as a whole -----------------------------------------------------------------


def test_every_check_maps_every_standard() -> None:
    """The clause table covers each (check, standard) with clauses or an n/a reason."""
    for name in CHECKS:
        assert set(CLAUSES[name]) == set(STANDARDS), name
        for value in CLAUSES[name].values():
            assert value


@pytest.mark.parametrize("standard", STANDARDS)
def test_report_for_each_standard(alog: AuditLog, standard: str) -> None:
    """Every standard gets all ten checks; applicable ones carry clauses."""
    alog.append_many(all_classes())
    report = generate_report(alog, standard, actor=ME)
    assert [c.id for c in report.checks] == list(CHECKS)
    for c in report.checks:
        assert (c.status == "not-applicable") == (not c.clauses)


def test_period_limits_the_events(alog: AuditLog, clock: Clock) -> None:
    """--from/--to select on event time: a bad event outside the period does not count."""
    alog.append({"action": "user.login", "actor": {"id": "u"}, "outcome": "success",
                 "category": "authentication"})
    clock.now += timedelta(days=10)
    alog.append(good())
    report = generate_report(alog, "pci-dss", actor=ME, record=False,
                             since=T0 + timedelta(days=1))
    assert report.events == 1
    assert report.checks[0].status == "pass"


def test_hash_is_recorded_in_the_trail(alog: AuditLog) -> None:
    """The JSON form's hash (without receipt) is the target of the report.generate event."""
    alog.append(good())
    report = generate_report(alog, "pci-dss", actor=ME)
    assert report.receipt is not None
    doc = json.loads(render(report, "json"))
    digest = report_hash(doc)
    assert doc["receipt"]["report_hash"] == digest == report.hash
    ev = alog.read(alog.entry(doc["receipt"]["index"]))
    assert ev["action"] == "report.generate"
    assert ev["category"] == "audit_access"
    assert ev["target"] == {"type": "report", "id": digest}
    assert ev["actor"]["id"] == ME["id"]
    tampered = dict(doc, summary={**doc["summary"], "fail": 0})
    assert report_hash(tampered) != digest


def sample(alog: AuditLog) -> Report:
    alog.append(good())
    alog.record_access({"id": "<script>alert(1)</script>"}, "audit.search", role="reader",
                      details={},
                       results=1)
    return generate_report(alog, "pci-dss", actor=ME)


def test_html_has_the_summary_and_escapes_event_data(alog: AuditLog) -> None:
    """Summary counts and hash on top; an actor id with <script> is escaped."""
    report = sample(alog)
    html = render(report, "html").decode()
    c = report.counts
    assert f"pass {c['pass']}" in html
    assert f"fail {c['fail']}" in html
    assert report.hash in html
    assert "<script>" not in html
    assert "&lt;script&gt;" in html
    assert html.index('id="summary"') < html.index('id="checks"')


def pdf_text(data: bytes) -> str:
    """The text drawn by an fpdf2 document (its content streams, inflated)."""
    out = []
    for m in re.finditer(rb"stream\r?\n(.*?)\r?\nendstream", data, re.DOTALL):
        try:
            out.append(zlib.decompress(m.group(1)).decode("latin-1"))
        except zlib.error:
            out.append(m.group(1).decode("latin-1"))
    return "\n".join(out)


def test_pdf_has_the_summary(alog: AuditLog) -> None:
    """A PDF whose text holds the summary counts and the report hash."""
    report = sample(alog)
    data = render(report, "pdf")
    assert data.startswith(b"%PDF")
    text = pdf_text(data)
    c = report.counts
    assert (f"pass {c['pass']}, fail {c['fail']}, warn {c['warn']}, "
            f"n/a {c['not-applicable']}") in text
    assert report.hash[:20] in text


def test_markdown_escapes_table_cells(alog: AuditLog) -> None:
    """Markdown has the summary, one table row per check."""
    report = sample(alog)
    md = render(report, "md").decode()
    assert md.startswith("# Compliance report: PCI DSS")
    rows: Mapping[str, int] = {c.id: md.count(f"| {c.id}: ") for c in report.checks}
    assert all(n == 1 for n in rows.values())


def test_one_pass_reads_each_entry_once(alog: AuditLog, monkeypatch: pytest.MonkeyPatch
                                        ) -> None:
    """All checks share one pass: entries() is called once, read() never."""
    alog.append_many(all_classes())
    calls = {"entries": 0, "read": 0}
    entries, read = alog.entries, alog.read

    def counting_entries(*a: Any, **k: Any) -> Any:
        calls["entries"] += 1
        return entries(*a, **k)

    def counting_read(*a: Any, **k: Any) -> Any:
        calls["read"] += 1
        return read(*a, **k)

    monkeypatch.setattr(alog, "entries", counting_entries)
    monkeypatch.setattr(alog, "read", counting_read)
    generate_report(alog, "gdpr", actor=ME)
    assert calls == {"entries": 1, "read": 0}
