"""The ingest route: ``POST /v1/logs/{log}/events``, a batch of events stored whole or not at all.

For ingest keys only. The body is a JSON array or JSON Lines, read up to the service's
``max_body``; every event is validated before anything is stored, and an invalid batch is
answered 422 listing each invalid event by ``index`` (:mod:`sealtrail.server.batch`). A stored
batch answers one receipt per event, in order; an event whose id is already in the log is a
``duplicate`` (a retry), not stored twice.
"""

from __future__ import annotations

import time
from typing import Final

from fastapi import APIRouter, Request, Response

from sealtrail.core.errors import ValidationError
from sealtrail.log.apikeys import Principal
from sealtrail.log.auditlog import MAX_BATCH
from sealtrail.server.batch import parse_events, validate_all
from sealtrail.server.deps import Service, in_thread, open_log, read_body, requires
from sealtrail.server.openapi import ERRORS, EVENTS_SCHEMA, json_body
from sealtrail.server.responses import MsgspecJson, error_response

ROUTES: Final = {("POST", "/v1/logs/{log}/events"): frozenset({"ingest"})}

router = APIRouter()
as_ingest = requires(ROUTES, "POST", "/v1/logs/{log}/events")
_EVENTS_BODY: Final = json_body({"type": "array", "items": EVENTS_SCHEMA["items"]},
                                "A JSON array of events (or JSON Lines as application/x-ndjson)")


@router.post("/v1/logs/{log}/events", status_code=201, responses=ERRORS,
             openapi_extra=_EVENTS_BODY)
async def post_events(log: str, request: Request, service: Service,
                      principal: Principal = as_ingest) -> Response:
    """Append a JSON array (or JSON Lines) of events: all stored, or none."""
    alog = open_log(service, log)
    config, metrics = service.config, service.metrics
    body = await read_body(request, config.max_body)
    if body is None:
        metrics.rejected.labels("too_large").inc()
        return error_response(413, f"body larger than {config.max_body} bytes")
    try:
        raw = parse_events(body, request.headers.get("content-type", ""))
    except ValidationError as exc:
        metrics.rejected.labels("invalid").inc()
        return error_response(422, str(exc), field=exc.field)
    if len(raw) > min(config.max_events, MAX_BATCH):
        metrics.rejected.labels("too_large").inc()
        return error_response(413, f"more than {config.max_events} events in one request")
    events, errors = validate_all(raw)
    if errors:
        metrics.rejected.labels("invalid").inc()
        return error_response(422, f"{len(errors)} invalid event(s); nothing was stored",
                              errors=errors)
    started = time.perf_counter()
    receipts = await in_thread(alog.append_validated, events)
    metrics.ingest_seconds.labels(log).observe(time.perf_counter() - started)
    metrics.ingested.labels(log).inc(sum(1 for r in receipts if not r.duplicate))
    return MsgspecJson({"receipts": [r.document() for r in receipts]}, status_code=201)
