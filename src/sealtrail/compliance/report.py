"""Compliance reports: the model, its hash, the receipt in the trail, and four renderings.

A report is the list of :mod:`~sealtrail.compliance.checks` results for one standard and one
period. Its identity is the SHA-256 of its JSON form without the ``receipt`` field, encoded
canonically (sorted keys, no insignificant whitespace, UTF-8): :func:`report_hash`. Generating a
report appends an event to the same log (``action: report.generate``, ``category:
audit_access``, ``target: {type: report, id: sha256:<hex>}``), so anyone holding the JSON can
later recompute the hash and find it in the trail; the event's index is the report's
``receipt``.

Renderings: ``json`` (the hashed form plus ``receipt``), ``md``, ``html`` (Jinja2, autoescaped:
evidence may quote event data) and ``pdf`` (fpdf2 core fonts; text folded to Latin-1).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from sealtrail.compliance.checks import (
    STANDARDS,
    STATUSES,
    CheckResult,
    Context,
    Scan,
    evaluate,
    scan_log,
)
from sealtrail.core.canonical import compact_json
from sealtrail.core.errors import TamperError
from sealtrail.core.timefmt import format_time, parse_time
from sealtrail.log.retention import load_policy

if TYPE_CHECKING:
    from sealtrail.log.apikeys import KeyInfo
    from sealtrail.log.auditlog import AuditLog

FORMAT: Final = "sealtrail-report/1"
FORMATS: Final = ("html", "json", "md", "pdf")
ACTION: Final = "report.generate"
STANDARD_NAMES: Final = {"pci-dss": "PCI DSS v4.0.1", "hipaa": "HIPAA Security Rule",
                         "gdpr": "GDPR", "soc2": "SOC 2 (TSC 2017)",
                         "nist-800-53": "NIST SP 800-53 Rev. 5", "iso27001": "ISO/IEC 27001:2022"}


@dataclass(frozen=True, slots=True)
class Receipt:
    """Where the report's hash was appended to the trail."""

    index: int
    event_id: str
    report_hash: str

    def to_json(self) -> dict[str, Any]:
        """The ``receipt`` field of the JSON form."""
        return {"index": self.index, "event_id": self.event_id, "report_hash": self.report_hash}


@dataclass(frozen=True, slots=True)
class Report:
    """One compliance report (see the module docstring for what is hashed)."""

    standard: str
    log: str
    origin: str
    period_from: str | None
    period_to: str
    generated_at: str
    tree_size: int
    events: int
    checks: tuple[CheckResult, ...]
    receipt: Receipt | None = field(default=None)

    @property
    def counts(self) -> dict[str, int]:
        """How many checks have each status (every status present, zero or not)."""
        out = dict.fromkeys(STATUSES, 0)
        for c in self.checks:
            out[c.status] += 1
        return out

    @property
    def exit_code(self) -> int:
        """The CLI's exit code: 1 when a check fails, else 0."""
        return 1 if any(c.status == "fail" for c in self.checks) else 0

    def body(self) -> dict[str, Any]:
        """The JSON form without ``receipt``: what :func:`report_hash` covers."""
        return {"format": FORMAT, "standard": self.standard,
                "standard_name": STANDARD_NAMES[self.standard], "log": self.log,
                "origin": self.origin,
                "period": {"from": self.period_from, "to": self.period_to},
                "generated_at": self.generated_at, "tree_size": self.tree_size,
                "events_scanned": self.events, "summary": self.counts,
                "checks": [c.to_json() for c in self.checks]}

    @property
    def hash(self) -> str:
        """``sha256:<hex>`` of the canonical body."""
        return report_hash(self.body())

    def to_json(self) -> dict[str, Any]:
        """The full JSON form: the body plus ``receipt`` (None before it is recorded)."""
        return {**self.body(), "receipt": None if self.receipt is None
                else self.receipt.to_json()}


def report_hash(body: Mapping[str, Any]) -> str:
    """``sha256:<hex>`` of a report's JSON form; a ``receipt`` field, if any, is left out."""
    obj = {k: v for k, v in body.items() if k != "receipt"}
    return "sha256:" + hashlib.sha256(compact_json(obj).encode()).hexdigest()


def build_report(scan: Scan, ctx: Context, standard: str, *, log: str, origin: str,
                 period_from: datetime | None, period_to: datetime, tree_size: int) -> Report:
    """The report for a finished scan (pure: no I/O, ``now`` comes in ``ctx``)."""
    if standard not in STANDARDS:
        raise ValueError(f"standard {standard!r}: use one of {', '.join(STANDARDS)}")
    return Report(standard, log, origin,
                  None if period_from is None else format_time(period_from),
                  format_time(period_to), format_time(ctx.now), tree_size, scan.events,
                  tuple(evaluate(scan, ctx, standard)))


def load_keys(data_dir: str | Path, store: str | None = None) -> list[KeyInfo] | None:
    """The service's API keys, or None when the data directory has no service (embedded).
    ``store``: a PostgreSQL store's keys (shared by its nodes) instead of the directory's."""
    from sealtrail.log.apikeys import DB_FILE, SERVICE_DIR, ApiKeys  # noqa: PLC0415

    if store is None and not (Path(data_dir) / SERVICE_DIR / DB_FILE).exists():
        return None
    keys = ApiKeys(data_dir, store=store)
    try:
        return keys.listing()
    finally:
        keys.close()


def generate_report(alog: AuditLog, standard: str, *, actor: Mapping[str, Any],
                    since: datetime | None = None, until: datetime | None = None,
                    verify_now: bool = False, alerting: Mapping[str, Any] | None = None,
                    keys: Sequence[KeyInfo] | None = None, record: bool = True,
                    now: datetime | None = None,
                    source: Mapping[str, str] | None = None,
                    review: Mapping[str, Any] | None = None) -> Report:
    """Run every check over ``since <= time < until`` and record the report's hash.

    1. ``verify_now``: run a full verification first when the last one is missing or older
       than 24 h (its failure is noted in the log's meta and fails the check, not this call);
    2. scan the period's events once and evaluate the checks;
    3. ``record``: append ``report.generate`` (actor ``actor``) and attach its receipt.

    ``now`` defaults to the log's clock; without ``until`` every event up to now counts.
    ``keys`` are the service's API keys (:func:`load_keys`); ``alerting`` the monitor's
    configuration (``sinks``, ``integrity_watch``, ``last_test_alert``), None when unknown
    here. ``source`` is the recorded event's origin (default: service ``sealtrail`` on this
    host), so the report's own event carries every PCI DSS 10.2.2 field. ``review`` is the
    periodic review's state over the range (:func:`sealtrail.compliance.review.review_evidence`);
    without it the review check is a warning.
    """
    if standard not in STANDARDS:
        raise ValueError(f"standard {standard!r}: use one of {', '.join(STANDARDS)}")
    now = alog.now() if now is None else now
    # 1.
    if verify_now:
        at = alog.stored_notes().get("verified_at")
        if at is None or (now - parse_time(at)).total_seconds() > 24 * 3600:
            # A failure is kept as verify_failed_at, which fails the verification check.
            with contextlib.suppress(TamperError):
                alog.verify()
    # 2.
    meta = alog.stored_notes()
    ctx = Context(now=now, policy=load_policy(alog), meta=meta, alerting=alerting, keys=keys,
                  review=review)
    scan = scan_log(alog, since, until)
    report = build_report(scan, ctx, standard, log=alog.name, origin=alog.origin,
                          period_from=since, period_to=now if until is None else until,
                          tree_size=alog.size)
    if not record:
        return report
    # 3.
    digest = report.hash
    # ``report.generate`` is reserved (core/reserved.py): only sealtrail records a report.
    own = {"actor": dict(actor), "action": ACTION, "outcome": "success",
           "category": "audit_access", "target": {"type": "report", "id": digest},
           "reason": f"{standard} compliance report"}
    if source is not None:
        own["source"] = dict(source)
    receipt = alog.append_own([own])[0]
    return replace(report, receipt=Receipt(receipt.index, receipt.id, digest))


# -- rendering ----------------------------------------------------------------------------------


def render(report: Report, fmt: str) -> bytes:
    """The report in one of :data:`FORMATS`."""
    if fmt == "json":
        return (json.dumps(report.to_json(), sort_keys=True, indent=2, ensure_ascii=False)
                + "\n").encode("utf-8")
    if fmt == "md":
        return render_markdown(report).encode("utf-8")
    if fmt == "html":
        return render_html(report).encode("utf-8")
    if fmt == "pdf":
        return render_pdf(report)
    raise ValueError(f"format {fmt!r}: use one of {', '.join(FORMATS)}")


def _evidence_text(evidence: Mapping[str, Any]) -> str:
    return json.dumps(evidence, sort_keys=True, ensure_ascii=False, separators=(", ", ": "))


def _summary_rows(report: Report) -> list[tuple[str, str]]:
    c = report.counts
    rows = [("Standard", STANDARD_NAMES[report.standard]),
            ("Log", f"{report.log} ({report.origin}), {report.tree_size} entries"),
            ("Period", f"{report.period_from or 'beginning of the log'} to {report.period_to}"),
            ("Generated at", report.generated_at),
            ("Events scanned", str(report.events)),
            ("Result", f"pass {c['pass']}, fail {c['fail']}, warn {c['warn']}, "
                       f"n/a {c['not-applicable']}"),
            ("Report hash", report.hash)]
    if report.receipt is not None:
        rows.append(("Recorded as", f"entry {report.receipt.index} "
                                    f"(event {report.receipt.event_id})"))
    return rows


def _md_cell(text: str) -> str:
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def render_markdown(report: Report) -> str:
    """A Markdown report: summary, table of checks, then each check's evidence."""
    lines = [f"# Compliance report: {STANDARD_NAMES[report.standard]}", ""]
    lines += ["| | |", "|---|---|"]
    lines += [f"| {k} | {_md_cell(v)} |" for k, v in _summary_rows(report)]
    lines += ["", "## Checks", "", "| Check | Status | Clauses | Result |", "|---|---|---|---|"]
    for c in report.checks:
        lines.append(f"| {_md_cell(c.id)}: {_md_cell(c.title)} | {c.status.upper()} | "
                     f"{_md_cell(', '.join(c.clauses))} | {_md_cell(c.summary)} |")
    lines += ["", "## Evidence", ""]
    for c in report.checks:
        lines += [f"### {c.id} ({c.status})", "", _md_cell(c.summary), ""]
        if c.fix:
            lines += [f"**How to fix:** {_md_cell(c.fix)}", ""]
        if c.evidence:
            lines += ["```json", json.dumps(_to_plain(c), sort_keys=True, indent=2,
                                            ensure_ascii=False).replace("```", "'''"), "```", ""]
    return "\n".join(lines)


def _to_plain(c: CheckResult) -> Any:
    return c.to_json()["evidence"]


def render_html(report: Report) -> str:
    """A self-contained HTML page (Jinja2 with autoescaping)."""
    import jinja2  # noqa: PLC0415 - only HTML needs it

    text = (resources.files("sealtrail.compliance") / "templates" / "report.html.j2"
            ).read_text(encoding="utf-8")
    env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)
    env.filters["evidence"] = lambda c: json.dumps(_to_plain(c), sort_keys=True, indent=2,
                                                   ensure_ascii=False)
    return env.from_string(text).render(
        report=report, title=f"Compliance report: {STANDARD_NAMES[report.standard]}",
        summary=_summary_rows(report), counts=report.counts)


_LATIN1_FOLD: Final = str.maketrans({"\u2014": "-", "\u2013": "-", "\u2264": "<=",
                                     "\u2265": ">=", "\u2026": "...", "\u2018": "'",
                                     "\u2019": "'", "\u201c": '"', "\u201d": '"',
                                     "\u2192": "->", "\u00a0": " "})


def latin1(text: str) -> str:
    """Text the PDF core fonts can show: common symbols spelled out, others become ``?``."""
    return text.translate(_LATIN1_FOLD).encode("latin-1", "replace").decode("latin-1")


def render_pdf(report: Report) -> bytes:
    """A PDF (A4, core fonts): summary, table of checks, evidence per check."""
    from fpdf import FPDF  # noqa: PLC0415 - only PDF needs it
    from fpdf.enums import XPos, YPos  # noqa: PLC0415

    pdf = FPDF(format="A4")
    pdf.set_auto_page_break(auto=True, margin=15)
    pdf.set_title(latin1(f"Compliance report {report.standard}"))
    pdf.set_creator("sealtrail")
    pdf.add_page()
    width = pdf.epw
    pdf.set_font("Helvetica", "B", 16)
    pdf.multi_cell(width, 9, latin1(f"Compliance report: {STANDARD_NAMES[report.standard]}"),
                   new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.ln(2)
    pdf.set_font("Helvetica", size=9)
    with pdf.table(col_widths=(30, 130), first_row_as_headings=False) as table:
        for k, v in _summary_rows(report):
            row = table.row()
            row.cell(latin1(k))
            row.cell(latin1(v))
    pdf.ln(4)
    pdf.set_font("Helvetica", "B", 12)
    pdf.cell(width, 7, "Checks", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.set_font("Helvetica", size=8)
    with pdf.table(col_widths=(45, 18, 35, 82)) as table:
        head = table.row()
        for h in ("Check", "Status", "Clauses", "Result"):
            head.cell(h)
        for c in report.checks:
            row = table.row()
            row.cell(latin1(f"{c.id}: {c.title}"))
            row.cell(c.status.upper())
            row.cell(latin1(", ".join(c.clauses)))
            row.cell(latin1(c.summary + (f"\nFix: {c.fix}" if c.fix else "")))
    pdf.ln(4)
    pdf.set_font("Helvetica", "B", 12)
    pdf.cell(width, 7, "Evidence", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    for c in report.checks:
        pdf.set_font("Helvetica", "B", 9)
        pdf.multi_cell(width, 5, latin1(f"{c.id} ({c.status})"),
                       new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        pdf.set_font("Courier", size=7)
        pdf.multi_cell(width, 3.5, latin1(_evidence_text(_to_plain(c)) or "{}"),
                       new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        pdf.ln(1)
    return bytes(pdf.output())
