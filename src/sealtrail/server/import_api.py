"""The import route: another system's audit log, posted as its own file, into a log.

``POST /v1/logs/{log}/import?source=cloudtrail`` takes the body as that source writes it (a
CloudTrail log file, possibly gzip; Okta's JSON array; an audit.log...), maps every record
(core/sources/) and appends them all, or stores nothing and names the bad record. It is for
ingest keys, like posting events: an imported record is an event like any other, with the
record kept under ``metadata.original``. Record ids are deterministic, so a retried or
overlapping import stores nothing twice. Imported records count in /metrics like posted events
(ingested, or rejected as too large).
"""

from __future__ import annotations

from typing import Final

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import JSONResponse

from sealtrail.core.errors import ConfigError, ValidationError
from sealtrail.core.event import Event
from sealtrail.core.sources import NAMES, get_source
from sealtrail.core.sources.base import Converted, Source, TooManyRecordsError, input_text
from sealtrail.log.apikeys import Principal
from sealtrail.log.auditlog import MAX_BATCH, AuditLog, Receipt
from sealtrail.log.imports import conflicts, convert_for
from sealtrail.server.deps import Service, in_thread, open_log, read_body, requires
from sealtrail.server.openapi import ERRORS

ROUTES: Final = {("POST", "/v1/logs/{log}/import"): frozenset({"ingest"})}
MAX_SKIPPED_SHOWN: Final = 100
_BODY: Final = {"requestBody": {
    "required": True,
    "description": "The source's own log file: JSON (CloudTrail's {\"Records\": [...]}, a "
                   "JSON array), JSON Lines, or text (auditd); gzip is read as such",
    "content": {media: {"schema": {"type": "string", "format": "binary"}}
                for media in ("application/octet-stream", "application/json",
                              "application/x-ndjson", "text/plain")}}}


router = APIRouter()
as_import = requires(ROUTES, "POST", "/v1/logs/{log}/import")
_ANSWERS: Final = {**ERRORS, 409: {"description": "Some records' ids are taken by different "
                                                 "events; those records were not stored (the "
                                                 "others were: see conflicts)"}}


@router.post("/v1/logs/{log}/import", status_code=201, responses=_ANSWERS,
             openapi_extra=_BODY)
async def post_import(log: str, request: Request, service: Service, *,
                      source: str = Query(..., max_length=32,
                                          description=f"One of {', '.join(NAMES)}",
                                          json_schema_extra={"enum": list(NAMES)}),
                      skip_invalid: bool = Query(False, description="Leave out records "
                                                 "that cannot be imported (listed in the "
                                                 "answer) instead of storing nothing"),
                      principal: Principal = as_import) -> Response:
    """Import a source's audit records: all stored, or none (unless skip_invalid)."""
    alog = open_log(service, log)
    try:
        src = get_source(source)
    except ConfigError as exc:
        raise ValidationError("source", str(exc).removeprefix("--source: ")) from None
    max_body, max_events = service.config.max_body, service.config.max_events
    metrics = service.metrics
    body = await read_body(request, max_body)
    if body is None:
        metrics.rejected.labels("too_large").inc()
        return JSONResponse({"error": f"body larger than {max_body} bytes"},
                            status_code=413)
    try:
        # Reading and mapping cost CPU in proportion to the body: off the event loop.
        converted = await in_thread(_convert, alog, src, body, max_body, skip_invalid,
                                    min(max_events, MAX_BATCH))
    except TooManyRecordsError:
        metrics.rejected.labels("too_large").inc()
        return JSONResponse({"error": f"more than {max_events} records in one request: "
                             "split the file"}, status_code=413)
    receipts = await in_thread(_append, alog, converted.events)
    clashes = await in_thread(conflicts, alog, converted.events, receipts)
    new = [r for r in receipts if not r.duplicate]
    metrics.ingested.labels(log).inc(len(new))
    return JSONResponse({
        "source": src.name, "records": converted.records, "imported": len(new),
        "duplicates": len(receipts) - len(new) - len(clashes),
        "skipped": converted.skipped_count,
        "conflicts": [{"record": converted.wheres[pos], "index": index,
                       "error": "its id is already taken by a different event: this "
                                "record was not stored"}
                      for pos, index in clashes[:MAX_SKIPPED_SHOWN]],
        "skipped_records": [{"record": where, "error": why}
                            for where, why in converted.skipped[:MAX_SKIPPED_SHOWN]],
        "first_index": new[0].index if new else None,
        "last_index": new[-1].index if new else None,
        # The ingest receipt (Receipt.document) without checkpoint_size, as this route answers.
        "receipts": [{k: v for k, v in r.document().items() if k != "checkpoint_size"}
                     for r in receipts]},
        status_code=409 if clashes else 201)


def _convert(alog: AuditLog, src: Source, body: bytes, max_body: int,  # noqa: PLR0917
             skip_invalid: bool, max_records: int) -> Converted:
    return convert_for(alog, src, input_text(body, max_body, "body"),
                       skip_invalid=skip_invalid, max_records=max_records)


def _append(alog: AuditLog, events: list[Event]) -> list[Receipt]:
    return alog.append_validated(events) if events else []
