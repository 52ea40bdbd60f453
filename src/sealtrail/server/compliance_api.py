"""Compliance routes: reports, evidence bundles, the retention policy and legal holds.

The same library calls the CLI makes (``sealtrail report``, ``export --bundle``, ``retention
set|show``, ``hold add|release|list``), so the API and the CLI leave the same entries in the
log; only the actor differs (the key or console user instead of the OS user):

- a report appends ``report.generate`` naming its hash (``compliance/report.py``); its checks'
  evidence quotes who read the trail and which sources sent events, so running one is for
  auditors, like every read of event content. The service also passes the periodic review's
  state (``compliance/review.py``), so the review check is judged;
- an evidence bundle is an audited read (``audit.export``, recorded before a byte is written,
  ``compliance/bundle.py``); it carries whole entries, so it is for auditors only;
- the retention policy and the holds are shown to auditors and admins (they hold no event
  content); setting a policy (``retention.policy.set``), placing a hold (``subject.hold.add``)
  and releasing one (``subject.hold.release``) are administration, each committed with its
  event (``log/retention.py``, ``log/subjects.py``).

Blocking work runs in a worker thread. A bundle is built into a private temporary directory
and unlinked as soon as it is open for streaming, so nothing is left on disk whether or not
the client reads it to the end.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, BinaryIO, Final

from fastapi import APIRouter, HTTPException, Query, Request, Response
from fastapi.responses import StreamingResponse

from sealtrail.compliance.bundle import export_bundle
from sealtrail.compliance.checks import STANDARDS
from sealtrail.compliance.report import FORMATS, generate_report, load_keys, render
from sealtrail.compliance.review import ReviewBook, review_evidence
from sealtrail.core.errors import ValidationError
from sealtrail.core.timefmt import format_time, parse_time
from sealtrail.log.apikeys import Principal
from sealtrail.log.auditlog import AuditLog
from sealtrail.log.retention import (
    CATEGORY_KEYS,
    PRESETS,
    RetentionPolicy,
    load_policy,
    set_policy,
)
from sealtrail.log.search import Filter
from sealtrail.monitor.alerts import alerting_evidence
from sealtrail.server.deps import Service, actor_of, in_thread, json_object, open_log, requires
from sealtrail.server.openapi import ERRORS, answers, json_body
from sealtrail.server.responses import MsgspecJson

AUDITORS: Final = frozenset({"auditor"})
VIEWERS: Final = frozenset({"auditor", "admin"})
ADMINS: Final = frozenset({"admin"})
ROUTES: Final = {
    ("GET", "/v1/logs/{log}/reports"): AUDITORS,
    ("GET", "/v1/logs/{log}/evidence"): AUDITORS,
    ("GET", "/v1/logs/{log}/retention"): VIEWERS,
    ("PUT", "/v1/logs/{log}/retention"): ADMINS,
    ("POST", "/v1/logs/{log}/holds"): ADMINS,
    ("DELETE", "/v1/logs/{log}/holds/{hold}"): ADMINS,
}
MAX_REASON: Final = 4096
MAX_SUBJECT: Final = 256  # an event's subject id is at most 256 characters (core/event.py)
MAX_POLICY_BODY: Final = 64 * 1024
MAX_HOLD_BODY: Final = 2 * (MAX_REASON + MAX_SUBJECT) + 256
MEDIA: Final = {"json": "application/json", "html": "text/html; charset=utf-8",
                "md": "text/markdown; charset=utf-8", "pdf": "application/pdf"}
BUNDLE_KINDS: Final = {"zip": ("zip", "application/zip"),
                       "tar.gz": ("tar.gz", "application/gzip")}
# A report's HTML is one self-contained page (its own <style>); shown from this origin it may
# run nothing and load nothing.
REPORT_CSP: Final = ("default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; "
                     "form-action 'none'; frame-ancestors 'none'")
_DATE: Final = re.compile(r"\d{4}-\d{2}-\d{2}")
_CHUNK: Final = 1 << 20

router = APIRouter()
as_report = requires(ROUTES, "GET", "/v1/logs/{log}/reports")
as_evidence = requires(ROUTES, "GET", "/v1/logs/{log}/evidence")
as_retention = requires(ROUTES, "GET", "/v1/logs/{log}/retention")
as_set_policy = requires(ROUTES, "PUT", "/v1/logs/{log}/retention")
as_hold = requires(ROUTES, "POST", "/v1/logs/{log}/holds")
as_release = requires(ROUTES, "DELETE", "/v1/logs/{log}/holds/{hold}")

_REPORT_ANSWERS: Final = {200: {"description": "The report in the format asked for",
                                "content": {m.split(";")[0]: {"schema": {"type": "string"}}
                                            for m in MEDIA.values()}}, **ERRORS}
_POLICY_BODY: Final = json_body({"type": "object", "properties": {
    "preset": {"type": "string", "enum": list(PRESETS)},
    "policy": {"type": "object", "description": "A policy as docs/retention.md writes it: "
               "name, and per category (default, authentication, ...) min, max, online "
               "durations (90d, 12w, 1y, 36h)"}}},
    "Exactly one of preset and policy")
_HOLD_BODY: Final = json_body({"type": "object", "required": ["subject", "reason"],
                               "properties": {
                                   "subject": {"type": "string", "minLength": 1,
                                               "maxLength": MAX_SUBJECT},
                                   "reason": {"type": "string", "minLength": 1,
                                              "maxLength": MAX_REASON}}},
                              "The data subject's id and why (the matter or legal basis)")
_RELEASE_BODY: Final = json_body({"type": "object", "required": ["subject", "reason"],
                                  "properties": {
                                      "subject": {"type": "string", "minLength": 1,
                                                  "maxLength": MAX_SUBJECT,
                                                  "description": "The held subject's id "
                                                  "(the hold keeps only its pseudonym)"},
                                      "reason": {"type": "string", "minLength": 1,
                                                 "maxLength": MAX_REASON}}},
                                 "The held subject's id and why the hold ends")


# -- reports ------------------------------------------------------------------------------------


@router.get("/v1/logs/{log}/reports", responses=_REPORT_ANSWERS)
async def get_report(  # noqa: PLR0917 - one parameter per documented query option
        log: str, service: Service, principal: Principal = as_report,
        standard: Annotated[str, Query(max_length=32,
                                       description=", ".join(STANDARDS))] = "",
        since: Annotated[str | None, Query(max_length=64, description="Events with time >= "
                                           "this (RFC 3339, or a date: 00:00 UTC)")] = None,
        until: Annotated[str | None, Query(max_length=64, description="Events with time < "
                                           "this [default: now]")] = None,
        format: Annotated[str, Query(max_length=8,
                                     description=", ".join(FORMATS))] = "json",
        download: Annotated[bool, Query(description="Answer as an attachment (a file name "
                                        "in Content-Disposition)")] = False,
        verify: Annotated[bool, Query(description="Run a full verification first when the "
                                      "last one is older than 24 h (the service's verifier "
                                      "normally keeps it fresh)")] = False) -> Response:
    """Run a compliance report over ``since <= time < until``; its hash is appended to the
    log (``report.generate``, the caller as actor) and the entry is the report's receipt."""
    alog = open_log(service, log)
    if standard not in STANDARDS:
        raise ValidationError("standard", f"use one of {', '.join(STANDARDS)}")
    if format not in FORMATS:
        raise ValidationError("format", f"use one of {', '.join(FORMATS)}")
    start, end = _period(since, until)
    config = service.config

    def run() -> tuple[bytes, str]:
        now = alog.now()
        # The service knows the periodic review's state (the CLI may not): the review check
        # is then judged, not left a warning.
        review = review_evidence(ReviewBook(alog, service.alert_store), start, end, now)
        report = generate_report(
            alog, standard, actor=actor_of(principal), since=start, until=end,
            verify_now=verify, keys=load_keys(config.data_dir, config.store),
            alerting=alerting_evidence(config.data_dir, config.store), review=review,
            now=now)
        return render(report, format), report.generated_at

    body, generated = await in_thread(run)
    headers = {"X-Content-Type-Options": "nosniff", "Cache-Control": "private, no-store"}
    if format == "html":
        headers["Content-Security-Policy"] = REPORT_CSP
    if download:
        stamp = generated.replace(":", "").replace("-", "")[:15]
        headers["Content-Disposition"] = (f'attachment; filename="sealtrail-report-{log}-'
                                          f'{standard}-{stamp}.{format}"')
    return Response(body, media_type=MEDIA[format], headers=headers)


def _when(value: str | None, name: str) -> datetime | None:
    """A period bound: RFC 3339, or a plain date meaning 00:00 UTC (as the CLI takes it)."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    if _DATE.fullmatch(text):
        text += "T00:00:00Z"
    try:
        return parse_time(text)
    except ValueError as exc:
        raise ValidationError(name, f"{value!r}: {exc} (give RFC 3339, e.g. "
                              "2026-10-01T08:00:00Z, or a date, e.g. 2026-10-01)") from exc


def _period(since: str | None, until: str | None) -> tuple[datetime | None, datetime | None]:
    start, end = _when(since, "since"), _when(until, "until")
    if start is not None and end is not None and start >= end:
        raise ValidationError("since", "must be before until")
    return start, end


# -- evidence bundles ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Built:
    """A bundle written and already unlinked: its open file, size and export event."""

    file: BinaryIO
    size: int
    events: int
    export_event: int


def _chunks(file: BinaryIO) -> Iterator[bytes]:
    """The file's bytes; closes it at the end, or when the answer is abandoned."""
    with file:
        while chunk := file.read(_CHUNK):
            yield chunk


@router.get("/v1/logs/{log}/evidence",
            responses=answers("application/octet-stream", "The evidence bundle (zip or "
                              "tar.gz), to check offline with sealtrail verify-bundle"))
async def get_evidence(  # noqa: PLR0917 - one parameter per documented filter
        log: str, service: Service, principal: Principal = as_evidence,
        since: Annotated[str | None, Query(max_length=64)] = None,
        until: Annotated[str | None, Query(max_length=64)] = None,
        actor: Annotated[str | None, Query(max_length=256)] = None,
        subject: Annotated[str | None, Query(max_length=MAX_SUBJECT)] = None,
        action: Annotated[str | None, Query(max_length=128)] = None,
        category: Annotated[str | None, Query(max_length=32)] = None,
        outcome: Annotated[str | None, Query(max_length=32)] = None,
        target: Annotated[str | None, Query(max_length=256)] = None,
        source: Annotated[str | None, Query(max_length=256)] = None,
        format: Annotated[str, Query(max_length=8,
                                     description="zip or tar.gz")] = "zip",
        open_sealed: Annotated[bool, Query(description="Open sealed personal fields in the "
                                           "bundle (the audit.export record says so)")
                               ] = False) -> Response:
    """An evidence bundle of the matching entries, with their proofs and signed checkpoints.
    The export is recorded (``audit.export``) before a byte of it is written."""
    alog = open_log(service, log)
    if format not in BUNDLE_KINDS:
        raise ValidationError("format", "use zip or tar.gz")
    start, end = _period(since, until)
    flt = Filter(actor=_given(actor), subject=_given(subject), action=_given(action),
                 category=_given(category), outcome=_given(outcome), target=_given(target),
                 source=_given(source), since=start, until=end)
    ext, media = BUNDLE_KINDS[format]
    stamp = format_time(alog.now()).replace(":", "").replace("-", "")[:15]
    name = f"sealtrail-evidence-{log}-{stamp}.{ext}"
    built: _Built = await in_thread(functools.partial(
        _build_bundle, alog, name, flt, actor_of(principal), principal.role, open_sealed))
    return StreamingResponse(
        _chunks(built.file), media_type=media,
        headers={"Content-Disposition": f'attachment; filename="{name}"',
                 "Content-Length": str(built.size), "Cache-Control": "private, no-store",
                 "X-Content-Type-Options": "nosniff",
                 "X-Sealtrail-Events": str(built.events),
                 "X-Sealtrail-Export-Event": str(built.export_event)})


def _given(value: str | None) -> str | None:
    """A filter left empty (a form's blank field) selects everything, like one not sent."""
    return value if value is not None and value.strip() else None


def _build_bundle(alog: AuditLog, name: str, flt: Filter,  # noqa: PLR0917
                  actor: Mapping[str, Any], role: str, opened: bool) -> _Built:
    """Write the bundle in a private temporary directory, open it, and remove it from disk
    (the open file keeps its bytes until the answer has streamed them)."""
    tmp = Path(tempfile.mkdtemp(prefix="sealtrail-evidence-"))
    try:
        path = tmp / name
        summary = export_bundle(alog, path, flt=flt, actor=actor, role=role, opened=opened)
        file = path.open("rb")
        size = os.fstat(file.fileno()).st_size
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return _Built(file, size, summary.events, summary.receipt_index)


# -- retention and legal holds ------------------------------------------------------------------


@router.get("/v1/logs/{log}/retention", responses=ERRORS)
async def get_retention(log: str, service: Service, principal: Principal = as_retention,
                        released: Annotated[bool, Query(description="List released holds "
                                                        "too")] = False) -> Response:
    """The log's retention policy (null: everything is kept), its legal holds (subjects by
    pseudonym) and the scheduled retention job's last run on this node."""
    alog = open_log(service, log)

    def run() -> dict[str, Any]:
        policy = load_policy(alog)
        return {"log": log, "policy": None if policy is None else policy.to_json(),
                "holds": alog.holds(open_only=not released)}

    out = await in_thread(run)
    last = service.retention.results.get(log)
    out["last_run"] = None if last is None else {
        "ok": last.ok, "at": format_time(last.at), "archived": last.archived,
        "purged": last.purged, "problem": last.problem or None}
    out["schedule_seconds"] = service.config.retention_interval
    out["presets"] = dict(PRESETS)
    out["categories"] = list(CATEGORY_KEYS)
    return MsgspecJson(out)


@router.put("/v1/logs/{log}/retention", responses=ERRORS, openapi_extra=_POLICY_BODY)
async def put_retention(log: str, request: Request, service: Service,
                        principal: Principal = as_set_policy) -> Response:
    """Set the log's retention policy, from a preset or a policy document; the change is a
    ``retention.policy.set`` event committed with it."""
    alog = open_log(service, log)
    doc = await json_object(request, MAX_POLICY_BODY, too_large="policy")
    unknown = sorted(set(doc) - {"preset", "policy"})
    if unknown:
        raise ValidationError(unknown[0], "unknown field; give preset or policy")
    if ("preset" in doc) == ("policy" in doc):
        raise ValidationError("policy", "give exactly one of preset and policy")
    if "preset" in doc:
        preset = doc["preset"]
        if not isinstance(preset, str):
            raise ValidationError("preset", f"use one of {', '.join(PRESETS)}")
        policy = RetentionPolicy.preset(preset)
    else:
        policy = _parse_policy(doc["policy"])
    receipt = await in_thread(functools.partial(set_policy, alog, policy,
                                                actor=actor_of(principal)))
    return MsgspecJson({"policy": policy.to_json(), "index": receipt.index})


def _parse_policy(value: Any) -> RetentionPolicy:
    """A policy document; its errors name the field under ``policy.``."""
    if not isinstance(value, dict):
        raise ValidationError("policy", "a retention policy is a JSON object")
    try:
        return RetentionPolicy.parse(value)
    except ValidationError as exc:
        raise ValidationError(f"policy.{exc.field}", exc.message) from exc


@router.post("/v1/logs/{log}/holds", status_code=201, responses=ERRORS,
             openapi_extra=_HOLD_BODY)
async def post_hold(log: str, request: Request, service: Service,
                    principal: Principal = as_hold) -> Response:
    """Place a legal hold on a data subject: its erasure is refused, and retention keeps its
    entries, until the hold is released (``subject.hold.add``)."""
    alog = open_log(service, log)
    subject, reason = await _subject_reason(request)

    def run() -> dict[str, Any]:
        receipt = alog.hold_subject(subject, reason=reason, actor=actor_of(principal))
        ref = _ref(alog, subject)
        numbers = [h["hold"] for h in alog.holds() if h["subject_ref"] == ref]
        return {"hold": max(numbers) if numbers else None, "subject_ref": ref,
                "event_index": receipt.index}

    return MsgspecJson(await in_thread(run), status_code=201)


@router.delete("/v1/logs/{log}/holds/{hold}", responses=ERRORS, openapi_extra=_RELEASE_BODY)
async def delete_hold(log: str, hold: int, request: Request, service: Service,
                      principal: Principal = as_release) -> Response:
    """Release a legal hold (``subject.hold.release``). The hold keeps only the subject's
    pseudonym, so the body names the subject, which must be the hold's; every open hold on
    that subject ends (as ``sealtrail hold release`` does)."""
    alog = open_log(service, log)
    subject, reason = await _subject_reason(request)

    def run() -> dict[str, Any]:
        open_holds = {h["hold"]: h for h in alog.holds()}
        if hold not in open_holds:
            raise HTTPException(404, f"no open legal hold #{hold} in log {log!r}")
        ref = _ref(alog, subject)
        if open_holds[hold]["subject_ref"] != ref:
            raise ValidationError("subject", f"is not the subject of hold #{hold}")
        receipt = alog.release_subject(subject, reason=reason, actor=actor_of(principal))
        return {"released": sorted(n for n, h in open_holds.items()
                                   if h["subject_ref"] == ref),
                "subject_ref": ref, "event_index": receipt.index}

    return MsgspecJson(await in_thread(run))


def _ref(alog: AuditLog, subject: str) -> str:
    """The subject's pseudonym as holds show it (``ref:`` + base64url)."""
    from sealtrail.log.subjects import ref_text  # noqa: PLC0415 - holds only

    return ref_text(alog.subject_ref(subject))


async def _subject_reason(request: Request) -> tuple[str, str]:
    """The ``subject`` and ``reason`` of a hold change (both required, length-limited)."""
    doc = await json_object(request, MAX_HOLD_BODY, too_large="reason")
    subject, reason = doc.get("subject"), doc.get("reason")
    if not isinstance(subject, str) or not subject.strip():
        raise ValidationError("subject", "required: the data subject's id")
    if len(subject) > MAX_SUBJECT:
        raise ValidationError("subject", f"at most {MAX_SUBJECT} characters")
    if not isinstance(reason, str) or not reason.strip():
        raise ValidationError("reason", "required: say why (the matter or legal basis)")
    if len(reason) > MAX_REASON:
        raise ValidationError("reason", f"at most {MAX_REASON} characters")
    return subject, reason
