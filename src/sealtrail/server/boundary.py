"""The service's error boundary: every failure a route lets through becomes one JSON answer.

Routes raise; they do not build error answers for the library's errors. Here, once:

- FastAPI's and Starlette's HTTP errors (401, 403, 404, 429...) keep their status and headers
  and answer ``{"error": detail}``;
- a request FastAPI cannot validate (a query parameter out of range) is 422 naming the field,
  and counts as an invalid request in /metrics;
- a :class:`~sealtrail.core.errors.SealtrailError` answers with the status and public text
  its class carries (core/errors.py); a ``ValidationError`` names its field, and a
  ``StorageError`` is also raised as an alert, since the trail itself failed (PCI DSS 10.7.2).
"""

from __future__ import annotations

import contextlib

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from sealtrail.core.errors import SealtrailError, StorageError, ValidationError
from sealtrail.server.deps import service
from sealtrail.server.responses import error_response


def install(app: FastAPI) -> None:
    """Register the boundary's handlers on ``app``."""
    app.exception_handler(StarletteHTTPException)(_http_error)
    app.exception_handler(RequestValidationError)(_request_error)
    app.exception_handler(SealtrailError)(_sealtrail_error)


async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    return JSONResponse({"error": str(exc.detail)}, status_code=exc.status_code,
                        headers=getattr(exc, "headers", None))


async def _request_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    service(request).metrics.rejected.labels("invalid").inc()
    problems = [{"field": ".".join(str(p) for p in e.get("loc", ())[1:]),
                 "message": str(e.get("msg", ""))} for e in exc.errors()]
    first = problems[0] if problems else {"field": "request", "message": "invalid"}
    return JSONResponse({"error": f"{first['field']}: {first['message']}",
                         "field": first["field"], "errors": problems}, status_code=422)


async def _sealtrail_error(request: Request, exc: SealtrailError) -> JSONResponse:
    state = service(request)
    if isinstance(exc, ValidationError):
        state.metrics.rejected.labels("invalid").inc()
        if exc.position >= 0:
            # About one event of the batch: named by index, in the shape of every 422 that
            # names events (a client never parses the field text).
            return error_response(exc.http_status, exc.public_message(), field=exc.field,
                                  errors=[{"index": exc.position, "field": exc.field,
                                           "message": exc.message}])
        return error_response(exc.http_status, exc.public_message(), field=exc.field)
    if isinstance(exc, StorageError):
        # A failure of the trail itself; recording it may fail too.
        with contextlib.suppress(SealtrailError):
            state.monitor.trail_failure("builtin.storage_error", "Audit storage error",
                                        request.url.path, f"storage failed: {exc}",
                                        severity="critical")
    return error_response(exc.http_status, exc.public_message())
