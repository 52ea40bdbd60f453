"""The HTTP API (FastAPI): ingest, search, entries, checkpoints, proofs, health, metrics.

Every route names the roles that may call it (:data:`ROUTE_ROLES`, the table in
docs/service.md, and a test that tries every route with every role). A log-scoped key may only
touch its log. Requests that return event content are appended to the log they read as
``audit_access`` events; checkpoint and proof reads are counted in /metrics instead.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import datetime
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Final

import msgspec
from fastapi import Depends, FastAPI, HTTPException, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import (
    get_redoc_html,
    get_swagger_ui_html,
    get_swagger_ui_oauth2_redirect_html,
)
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi.staticfiles import StaticFiles
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.exceptions import HTTPException as StarletteHTTPException

from sealtrail.core.errors import (
    ConfigError,
    FormatError,
    KeyringError,
    SealtrailError,
    StorageError,
    ValidationError,
)
from sealtrail.core.event import Event, validate_event
from sealtrail.core.jsonlines import numbered_lines
from sealtrail.core.sources import claims_import
from sealtrail.core.tiles import TILE_WIDTH, TileRef, parse_tile_path
from sealtrail.core.timefmt import parse_time
from sealtrail.log.apikeys import ApiKeys, Principal
from sealtrail.log.auditlog import LOG_NAME, MAX_BATCH, AuditLog, Clock, system_clock
from sealtrail.log.search import Filter, search
from sealtrail.monitor.alerts import MONITOR_DIR, AlertStore, monitor_db_path
from sealtrail.monitor.config import MonitorConfig
from sealtrail.monitor.dispatch import Dispatcher
from sealtrail.monitor.runner import Monitor
from sealtrail.monitor.sinks import build_sinks
from sealtrail.monitor.watch import Result, Verifier
from sealtrail.server.alerts_api import ROUTES as ALERT_ROUTES
from sealtrail.server.alerts_api import add_alert_routes
from sealtrail.server.import_api import ROUTES as IMPORT_ROUTES
from sealtrail.server.import_api import add_import_routes
from sealtrail.server.logs import Logs
from sealtrail.server.metrics import Metrics, MonitorState
from sealtrail.server.monitor_process import MonitorProcess
from sealtrail.server.ratelimit import RateLimiter
from sealtrail.server.retention_job import RetentionJob
from sealtrail.server.tls import client_cert_sha256

MAX_BODY: Final = 8 * 1024 * 1024
MAX_EVENTS: Final = 10_000
MAX_PAGE: Final = 1000
MAX_ENTRIES: Final = 1000
READERS: Final = frozenset({"reader", "auditor"})
EVERYONE: Final = frozenset({"ingest", "reader", "auditor", "admin"})

# The one table of who may call what (docs/service.md renders it; a test checks it).
ROUTE_ROLES: Final[dict[tuple[str, str], frozenset[str]]] = {
    ("POST", "/v1/logs/{log}/events"): frozenset({"ingest"}),
    ("GET", "/v1/logs/{log}/events"): READERS,
    ("GET", "/v1/logs/{log}/entries"): READERS,
    ("GET", "/v1/logs/{log}/checkpoint"): EVERYONE,
    ("GET", "/v1/logs/{log}/proof/inclusion"): EVERYONE,
    ("GET", "/v1/logs/{log}/proof/consistency"): EVERYONE,
    ("GET", "/tlog/{log}/checkpoint"): EVERYONE,
    ("GET", "/tlog/{log}/tile/entries/{path:path}"): READERS,
    ("GET", "/tlog/{log}/tile/{path:path}"): EVERYONE,
    ("GET", "/v1/logs"): frozenset({"auditor", "admin"}),
    ("POST", "/v1/logs"): frozenset({"admin"}),
    ("GET", "/metrics"): frozenset({"auditor", "admin"}),
    **IMPORT_ROUTES,
    **ALERT_ROUTES,
}
OPEN_ROUTES: Final = frozenset({("GET", "/healthz"), ("GET", "/readyz")})
DOCS_ASSETS: Final = "/docs/assets"
"""Where the API pages' own files are served (Swagger UI, ReDoc: no CDN)."""
DOCS_CSP: Final = ("default-src 'self'; script-src 'self' 'unsafe-inline'; "
                   "style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
                   "worker-src 'self' blob:; connect-src 'self'; frame-ancestors 'none'")
"""The API pages load from this service only (inline: the pages' own bootstrap code)."""

# -- what the OpenAPI document says about answers and bodies ---------------------------------
_ERROR_SCHEMA: Final = {"type": "object", "required": ["error"],
                        "properties": {"error": {"type": "string"}, "field": {"type": "string"},
                                       "errors": {"type": "array"}}}
_ERRORS: Final[dict[int | str, dict[str, Any]]] = {
    code: {"description": why, "content": {"application/json": {"schema": _ERROR_SCHEMA}}}
    for code, why in ((400, "Refused (bad argument, policy)"), (401, "No valid API key"),
                      (403, "The key's role or scope does not allow this"),
                      (404, "No such log, tile or entry"), (413, "Body or batch too large"),
                      (422, "Invalid input; the error names the field"),
                      (429, "Rate limited; see Retry-After"),
                      (503, "Storage or keyring unavailable; nothing was stored"))}


def _answers(media: str, description: str, code: int = 200) -> dict[int | str, dict[str, Any]]:
    """The OpenAPI responses of a route answering ``media`` (plus every error)."""
    body = {"schema": {"type": "string", **({"format": "binary"} if "octet" in media else {})}}
    return {code: {"description": description, "content": {media: body}}, **_ERRORS}


def _json_body(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"requestBody": {"required": True, "description": description,
                            "content": {"application/json": {"schema": schema}}}}


_NOT_READY_SCHEMA: Final = {
    "type": "object", "required": ["log", "reason", "message"],
    "properties": {
        "log": {"type": "string", "description": "The log's name"},
        "reason": {"type": "string", "enum": ["keyring_locked", "does_not_open",
                                              "verification_failed"]},
        "message": {"type": "string", "description": "What failed, for the operator (the "
                    "data directory reads as DATA; no secret or event content)"}}}
_READYZ_ANSWERS: Final[dict[int | str, dict[str, Any]]] = {
    200: {"description": "Every log is ready", "content": {"application/json": {"schema": {
        "type": "object", "required": ["status", "logs"],
        "properties": {"status": {"type": "string", "const": "ready"},
                       "logs": {"type": "integer", "description": "How many logs"}}}}}},
    503: {"description": "Not ready: each log that is not, and why", "content": {
        "application/json": {"schema": {
            "type": "object", "required": ["status", "problems", "not_ready"],
            "properties": {"status": {"type": "string", "const": "not ready"},
                           "problems": {"type": "integer",
                                        "description": "How many problems (not_ready's length)"},
                           "not_ready": {"type": "array", "items": _NOT_READY_SCHEMA}}}}}},
}
_MAX_REASON: Final = 300


def _readiness_problems(logs: Logs, verified: dict[str, Result], data_dir: Path
                        ) -> list[dict[str, str]]:
    """What keeps each log from being ready: ``{"log", "reason", "message"}`` per problem.

    ``reason`` is one of ``keyring_locked`` (no passphrase or key given, a wrong one, or the
    keyring file missing: appends of personal fields are refused), ``does_not_open`` (the log
    cannot be opened at all) and ``verification_failed`` (its last scheduled verification
    failed: tampering, rollback, a replaced database, or storage that cannot be read through).
    The message is the error's own text, one line, with the data directory's path shown as
    ``DATA`` and cut at 300 characters; sealtrail's errors carry no secret or event content.
    """
    def clean(text: str) -> str:
        text = text.replace(str(data_dir), "DATA")
        text = " ".join(text.split())
        return text if len(text) <= _MAX_REASON else text[:_MAX_REASON - 1] + "\u2026"

    problems: list[dict[str, str]] = []
    for name in logs.names():
        try:
            alog = logs.get(name)
        except KeyringError as exc:
            problems.append({"log": name, "reason": "keyring_locked",
                             "message": clean(str(exc))})
        except SealtrailError as exc:
            problems.append({"log": name, "reason": "does_not_open",
                             "message": clean(f"{type(exc).__name__}: {exc}")})
        else:
            if alog.locked_reason:
                problems.append({"log": name, "reason": "keyring_locked",
                                 "message": clean(alog.locked_reason)})
    for name, result in sorted(dict(verified).items()):
        if not result.ok:
            problems.append({"log": name, "reason": "verification_failed",
                             "message": clean(result.problem or "verification failed")})
    return problems


_EVENTS_SCHEMA: Final = msgspec.json.schema(list[Event], ref_template="#/components/schemas/{name}")


@dataclass
class ServiceConfig:
    """What a service node needs: where the data is, how to open keyrings, its limits."""

    data_dir: Path
    passphrase: str | None = None
    clock: Clock = system_clock
    rate: float = 200.0
    burst: float = 400.0
    max_body: int = MAX_BODY
    max_events: int = MAX_EVENTS
    verify_delay: float = 5.0        # seconds after start before the first full verification
    verify_interval: float = 3600.0  # then every this many seconds; 0 turns it off
    verify_min_interval: float = 10.0  # continuous watch: at least this long between runs
    verify_increment_interval: float = 2.0  # new entries against the signed head, this often
    monitor: MonitorConfig | None = field(default_factory=MonitorConfig)  # None: no rules
    # Run the monitor as this child process (``sealtrail monitor ...``) instead of a thread:
    # its rules then use the second core, not this process's interpreter lock.
    monitor_command: list[str] | None = None
    retention_delay: float = 60.0    # seconds after start before the first retention run
    retention_interval: float = 86400.0  # then daily; 0 turns scheduled retention off
    extra: dict[str, Any] = field(default_factory=dict)


class _Json(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return msgspec.json.encode(content)


def _error(status: int, message: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"error": message, **extra}, status_code=status)


def create_app(config: ServiceConfig) -> FastAPI:
    """The service's ASGI app (``sealtrail serve`` runs it on uvicorn)."""
    logs = Logs(config.data_dir, config.passphrase, config.clock)
    keys = ApiKeys(config.data_dir)
    monitor, dispatcher, alert_store = _monitoring(config, logs)
    in_process = config.monitor is not None and config.monitor_command is None
    child = (MonitorProcess(config.monitor_command, monitor)
             if config.monitor_command is not None else None)

    def verified(name: str, result: Result) -> None:
        if not result.ok:
            try:
                alog: AuditLog | None = logs.get(name)
            except SealtrailError:
                alog = None
            monitor.integrity_result(name, result.ok, result.problem, alog)

    verifier = Verifier(logs, config.clock, delay=config.verify_delay,
                        interval=config.verify_interval,
                        min_interval=config.verify_min_interval,
                        increment_interval=config.verify_increment_interval,
                        on_result=verified)
    retention = RetentionJob(logs, config.clock, delay=config.retention_delay,
                             interval=config.retention_interval)
    metrics = Metrics(logs, config.clock, verifier.results)
    metrics.registry.register(MonitorState(monitor, dispatcher))
    limiter = RateLimiter(config.rate, config.burst)
    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        verifier.start()
        retention.start()
        if in_process:
            monitor.start()
        if child is not None:
            child.start()
        yield
        if child is not None:
            child.stop()
        if in_process:
            monitor.stop()
        if dispatcher is not None:
            dispatcher.close(5.0)
        alert_store.close()
        retention.stop()
        verifier.stop()
        logs.close()
        keys.close()

    app = FastAPI(title="sealtrail", version="0.1.0", lifespan=lifespan,
                  description="Tamper-evident audit trail: ingest, search, proofs.",
                  docs_url=None, redoc_url=None)  # served below, from local files
    _add_docs_pages(app)
    app.state.logs = logs
    app.state.keys = keys
    app.state.metrics = metrics
    app.state.verifier = verifier
    app.state.retention = retention

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return JSONResponse({"error": str(exc.detail)}, status_code=exc.status_code,
                            headers=getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def _request_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        metrics.rejected.labels("invalid").inc()
        problems = [{"field": ".".join(str(p) for p in e.get("loc", ())[1:]),
                     "message": str(e.get("msg", ""))} for e in exc.errors()]
        first = problems[0] if problems else {"field": "request", "message": "invalid"}
        return JSONResponse({"error": f"{first['field']}: {first['message']}",
                             "field": first["field"], "errors": problems}, status_code=422)

    @app.exception_handler(SealtrailError)
    async def _sealtrail_error(request: Request, exc: SealtrailError) -> JSONResponse:
        # Each error class carries its status and public text (core/errors.py).
        if isinstance(exc, ValidationError):
            metrics.rejected.labels("invalid").inc()
            return _error(exc.http_status, exc.public_message(), field=exc.field)
        if isinstance(exc, StorageError):
            # A failure of the trail itself (PCI DSS 10.7.2); recording it may fail too.
            with contextlib.suppress(SealtrailError):
                monitor.trail_failure("builtin.storage_error", "Audit storage error",
                                      request.url.path, f"storage failed: {exc}",
                                      severity="critical")
        return _error(exc.http_status, exc.public_message())

    # -- who is calling ---------------------------------------------------------------------

    bearer = HTTPBearer(auto_error=False, description="An API key: st_<id>_<secret>")

    def authenticate(request: Request,
                     credentials: HTTPAuthorizationCredentials | None = Depends(bearer)
                     ) -> Principal:
        principal = (keys.authenticate(credentials.credentials.strip(), config.clock(),
                                       client_cert_sha256(request.scope))
                     if credentials is not None else None)
        if principal is None:
            metrics.rejected.labels("unauthenticated").inc()
            raise HTTPException(401, "a valid API key is required",
                                headers={"WWW-Authenticate": "Bearer"})
        wait = limiter.take(principal.key_id)
        if wait:
            metrics.rejected.labels("rate_limited").inc()
            raise HTTPException(429, "rate limit exceeded",
                                headers={"Retry-After": RateLimiter.retry_after(wait)})
        return principal

    def role(method: str, path: str) -> Callable[..., Principal]:
        allowed = ROUTE_ROLES[(method, path)]

        def check(request: Request, principal: Principal = Depends(authenticate)) -> Principal:
            log = request.path_params.get("log")
            if principal.role not in allowed or (log is not None
                                                 and not principal.may_use(log)):
                metrics.rejected.labels("forbidden").inc()
                raise HTTPException(403, f"role {principal.role!r} may not do this"
                                    + (f" on log {log!r}" if log is not None else ""))
            return principal
        return check

    as_ingest = Depends(role("POST", "/v1/logs/{log}/events"))
    as_search = Depends(role("GET", "/v1/logs/{log}/events"))
    as_entries = Depends(role("GET", "/v1/logs/{log}/entries"))
    as_checkpoint = Depends(role("GET", "/v1/logs/{log}/checkpoint"))
    as_inclusion = Depends(role("GET", "/v1/logs/{log}/proof/inclusion"))
    as_consistency = Depends(role("GET", "/v1/logs/{log}/proof/consistency"))
    as_list_logs = Depends(role("GET", "/v1/logs"))
    as_tlog_checkpoint = Depends(role("GET", "/tlog/{log}/checkpoint"))
    as_tile = Depends(role("GET", "/tlog/{log}/tile/{path:path}"))
    as_bundle = Depends(role("GET", "/tlog/{log}/tile/entries/{path:path}"))
    as_create_log = Depends(role("POST", "/v1/logs"))
    as_metrics = Depends(role("GET", "/metrics"))

    def open_log(name: str) -> AuditLog:
        if not logs.exists(name):
            raise HTTPException(404, f"no log {name!r}")
        return logs.get(name)

    add_alert_routes(app, monitor, role=role, open_log=open_log, in_thread=_in_thread,
                     errors=_ERRORS, body_schema=_json_body)
    def count_import(log: str, what: str, n: int) -> None:
        if what == "ingested":
            metrics.ingested.labels(log).inc(n)
        else:
            metrics.rejected.labels(what).inc(n)

    add_import_routes(app, role=role, open_log=open_log, in_thread=_in_thread,
                      read_body=_read_body,
                      limits=lambda: (config.max_body, config.max_events), errors=_ERRORS,
                      counted=count_import)

    def reader_actor(principal: Principal) -> dict[str, str]:
        return {"id": f"key:{principal.key_id}", "type": "api_key", "name": principal.name}

    # -- ingest ----------------------------------------------------------------------------

    events_body = _json_body({"type": "array", "items": _EVENTS_SCHEMA["items"]},
                             "A JSON array of events (or JSON Lines as application/x-ndjson)")

    @app.post("/v1/logs/{log}/events", status_code=201, responses=_ERRORS,
              openapi_extra=events_body)
    async def post_events(log: str, request: Request,
                          principal: Principal = as_ingest) -> Response:
        """Append a JSON array (or JSON Lines) of events: all stored, or none."""
        alog = open_log(log)
        body = await _read_body(request, config.max_body)
        if body is None:
            metrics.rejected.labels("too_large").inc()
            return _error(413, f"body larger than {config.max_body} bytes")
        try:
            raw = _parse_events(body, request.headers.get("content-type", ""))
        except ValidationError as exc:
            metrics.rejected.labels("invalid").inc()
            return _error(422, str(exc), field=exc.field)
        if len(raw) > min(config.max_events, MAX_BATCH):
            metrics.rejected.labels("too_large").inc()
            return _error(413, f"more than {config.max_events} events in one request")
        events, errors = _validate_all(raw)
        if errors:
            metrics.rejected.labels("invalid").inc()
            return _error(422, f"{len(errors)} invalid event(s); nothing was stored",
                          errors=errors)
        started = time.perf_counter()
        receipts = await _in_thread(alog.append_validated, events)
        metrics.ingest_seconds.labels(log).observe(time.perf_counter() - started)
        metrics.ingested.labels(log).inc(sum(1 for r in receipts if not r.duplicate))
        return _Json({"receipts": [
            {"id": r.id, "index": r.index, "leaf_hash": base64.b64encode(r.leaf_hash).decode(),
             "checkpoint_size": r.checkpoint_size, "duplicate": r.duplicate}
            for r in receipts]}, status_code=201)

    # -- reading event content (audited) ---------------------------------------------------

    @app.get("/v1/logs/{log}/events", responses=_ERRORS)
    async def get_events(  # noqa: PLR0917 - one parameter per documented query filter
            log: str, principal: Principal = as_search,
                         since: str | None = None, until: str | None = None,
                         actor: str | None = None, ip: str | None = None,
                         action: str | None = None, category: str | None = None,
                         outcome: str | None = None, target: str | None = None,
                         source: str | None = None, request_id: str | None = None,
                         trace_id: str | None = None, subject: str | None = None,
                         text: str | None = None,
                         limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 100,
                         cursor: Annotated[int | None, Query(ge=0)] = None,
                         order: str = "newest") -> Response:
        """Search events; newest first by default; ``cursor`` continues a previous page."""
        alog = open_log(log)
        if order not in ("newest", "oldest"):
            raise ValidationError("order", "use newest or oldest")
        flt = Filter(actor=actor, actor_ip=ip, subject=subject, action=action,
                     category=category, outcome=outcome, target=target, source=source,
                     request_id=request_id, trace_id=trace_id,
                     since=_time(since, "since"), until=_time(until, "until"), text=text)
        newest = order == "newest"

        def run() -> tuple[list[dict[str, Any]], int | None]:
            rows = list(search(alog, flt, limit=limit + 1, newest_first=newest,
                               before=cursor if newest else None,
                               after=cursor if not newest else None))
            page = rows[:limit]
            nxt = page[-1][0].index if len(rows) > limit else None
            alog.record_access(reader_actor(principal), "audit.search", role=principal.role,
                               details=flt.describe(alog.pseudonym), results=len(page))
            return [{"index": e.index, "event": ev} for e, ev in page], nxt

        events, nxt = await _in_thread(run)
        return _Json({"events": events, "next_cursor": nxt})

    @app.get("/v1/logs/{log}/entries",
             responses=_answers("application/x-ndjson", "Entries as JSON Lines"))
    async def get_entries(log: str, principal: Principal = as_entries,
                          start: Annotated[int, Query(ge=0)] = 0,
                          end: Annotated[int | None, Query(ge=0)] = None) -> Response:
        """Raw entries ``start <= i < end`` as JSON Lines (at most 1000 per request)."""
        alog = open_log(log)

        def run() -> bytes:
            size = alog.size
            stop = min(size if end is None else min(end, size), start + MAX_ENTRIES)
            if start > stop:
                raise ValidationError("start", f"past the log size {size}")
            alog.refresh_keys()
            lines = [msgspec.json.encode({"index": e.index,
                                          "leaf": base64.b64encode(e.leaf).decode(),
                                          "event": alog.read(e)})
                     for e in alog.entries(start, stop)]
            alog.record_access(reader_actor(principal), "audit.entries.read",
                               role=principal.role,
                               details={"start": str(start), "end": str(stop)},
                               results=len(lines))
            return b"".join(line + b"\n" for line in lines)

        return Response(await _in_thread(run), media_type="application/x-ndjson")

    # -- proof material (counted, not logged) ----------------------------------------------

    @app.get("/v1/logs/{log}/checkpoint",
             responses=_answers("text/plain", "The signed checkpoint note"))
    async def get_checkpoint(log: str, principal: Principal = as_checkpoint) -> Response:
        """The latest signed checkpoint (C2SP signed note)."""
        alog = open_log(log)
        metrics.proof_reads.labels(log, "checkpoint").inc()
        return PlainTextResponse(alog.checkpoint().note)

    @app.get("/v1/logs/{log}/proof/inclusion", responses=_ERRORS)
    async def get_inclusion(log: str, principal: Principal = as_inclusion,
                            index: Annotated[int | None, Query(ge=0)] = None,
                            leaf_hash: str | None = None,
                            size: Annotated[int | None, Query(ge=1)] = None) -> Response:
        """Inclusion proof by index (or by leaf hash, base64) in the tree of ``size``."""
        alog = open_log(log)
        metrics.proof_reads.labels(log, "inclusion").inc()
        if index is None:
            if leaf_hash is None:
                raise ValidationError("index", "give index or leaf_hash")
            index = await _in_thread(_find_leaf, alog, leaf_hash)
        proof = await _in_thread(alog.prove_inclusion, index, size)
        return _Json(proof.to_json())

    @app.get("/v1/logs/{log}/proof/consistency", responses=_ERRORS)
    async def get_consistency(log: str, first: Annotated[int, Query(ge=0)],
                              principal: Principal = as_consistency,
                              second: Annotated[int | None, Query(ge=0)] = None) -> Response:
        """Consistency proof from tree size ``first`` to ``second`` (default: latest)."""
        alog = open_log(log)
        metrics.proof_reads.labels(log, "consistency").inc()
        proof = await _in_thread(alog.prove_consistency, first, second)
        return _Json(proof.to_json())

    # -- C2SP tlog-tiles read paths, for standard tile clients and witnesses ---------------

    @app.get("/tlog/{log}/checkpoint",
             responses=_answers("text/plain", "The signed checkpoint note"))
    async def tlog_checkpoint(log: str, principal: Principal = as_tlog_checkpoint
                              ) -> Response:
        """The checkpoint at the tiles prefix (same note as /v1/.../checkpoint)."""
        alog = open_log(log)
        metrics.proof_reads.labels(log, "checkpoint").inc()
        return PlainTextResponse(alog.checkpoint().note,
                                 headers={"Cache-Control": "no-store"})

    @app.get("/tlog/{log}/tile/entries/{path:path}",
             responses=_answers("application/octet-stream", "An entry bundle"))
    async def tlog_bundle(log: str, path: str, principal: Principal = as_bundle) -> Response:
        """An entry bundle: event content, so readers only, and the read is audited."""
        alog = open_log(log)
        ref = _tile_ref(f"tile/entries/{path}")

        def run() -> bytes:
            body = _tile_bytes(alog, ref)
            first = ref.index * TILE_WIDTH
            alog.record_access(reader_actor(principal), "audit.entries.read",
                               role=principal.role,
                               details={"start": str(first), "end": str(first + ref.width),
                                        "tile": ref.format()}, results=ref.width)
            return body

        return _tile_response(ref, await _in_thread(run))

    @app.get("/tlog/{log}/tile/{path:path}",
             responses=_answers("application/octet-stream", "A hash tile"))
    async def tlog_tile(log: str, path: str, principal: Principal = as_tile) -> Response:
        """A hash tile (no event content); full tiles never change (cached for a year)."""
        alog = open_log(log)
        ref = _tile_ref(f"tile/{path}")
        if ref.level is None:
            raise HTTPException(404, "entry bundles are under tile/entries/")
        metrics.proof_reads.labels(log, "tile").inc()
        return _tile_response(ref, await _in_thread(_tile_bytes, alog, ref))

    # -- administration --------------------------------------------------------------------

    @app.get("/v1/logs", responses=_ERRORS)
    async def list_logs(principal: Principal = as_list_logs
                        ) -> Response:
        """Every log with its size."""
        return _Json({"logs": [{"name": n, "size": logs.get(n).size} for n in logs.names()]})

    @app.post("/v1/logs", status_code=201, responses=_ERRORS, openapi_extra=_json_body(
        {"type": "object", "required": ["name"], "properties": {"name": {
            "type": "string", "pattern": LOG_NAME.pattern}}}, "The new log's name"))
    async def create_log(request: Request, principal: Principal = as_create_log) -> Response:
        """Create a log (tenant): ``{"name": "billing"}``."""
        body = await _read_body(request, 4096)
        try:
            doc = msgspec.json.decode(body or b"")
        except msgspec.DecodeError as exc:
            raise ValidationError("body", "not JSON") from exc
        name = doc.get("name") if isinstance(doc, dict) else None
        if not isinstance(name, str):
            raise ValidationError("name", "required: the log's name")
        for existing in logs.names():
            logs.get(existing)  # a wrong passphrase must not wrap a new keyring: KeyringError
        alog = await _in_thread(logs.create, name)
        return _Json({"name": name, "origin": alog.origin, "vkey": alog.vkey()},
                     status_code=201)

    # -- operations ------------------------------------------------------------------------

    @app.get("/healthz")
    async def healthz() -> Response:
        """The process is up (no authentication: load balancers call it)."""
        return _Json({"status": "ok"})

    @app.get("/readyz", responses=_READYZ_ANSWERS)
    async def readyz() -> Response:
        """Ready (200) when every log opens, its keyring is available to append and its last
        verification passed; else 503 naming each log that is not ready and why (no key:
        load balancers call it; it gives log names and reasons, never a secret or an event)."""
        problems = await _in_thread(_readiness_problems, logs, verifier.results,
                                    config.data_dir)
        if problems:
            return _Json({"status": "not ready", "problems": len(problems),
                          "not_ready": problems}, status_code=503)
        return _Json({"status": "ready", "logs": len(logs.names())})

    @app.get("/metrics", responses=_answers("text/plain", "Prometheus text format"))
    async def get_metrics(principal: Principal = as_metrics
                          ) -> Response:
        """Prometheus metrics."""
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    default_openapi = app.openapi

    def openapi() -> dict[str, Any]:
        """FastAPI's document plus the event model's schemas (from msgspec) it refers to."""
        if app.openapi_schema is None:
            doc = default_openapi()
            schemas = doc.setdefault("components", {}).setdefault("schemas", {})
            schemas.update(_EVENTS_SCHEMA.get("$defs", {}))
            app.openapi_schema = doc
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app


def _add_docs_pages(app: FastAPI) -> None:
    """``/docs`` (Swagger UI) and ``/redoc`` (ReDoc) with their JavaScript, CSS and icon
    served from :data:`DOCS_ASSETS`, files of the ``fastapi-offline`` package, instead of a
    CDN: the pages work on a machine without Internet access and load nothing from elsewhere
    (no Google Fonts, no validator badge)."""
    app.mount(DOCS_ASSETS, StaticFiles(directory=str(_docs_asset_dir())), name="docs-assets")
    redirect = app.swagger_ui_oauth2_redirect_url or "/docs/oauth2-redirect"

    def local_only(page: HTMLResponse) -> HTMLResponse:
        # The pages' own inline scripts and styles, everything else from this service only
        # (ReDoc's footer would fetch a logo from cdn.redoc.ly: blocked, it hides itself).
        page.headers["Content-Security-Policy"] = DOCS_CSP
        return page

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return local_only(get_swagger_ui_html(
            openapi_url=f"{root}{app.openapi_url}", title="sealtrail API",
            swagger_js_url=f"{root}{DOCS_ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{DOCS_ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{root}{DOCS_ASSETS}/favicon.png",
            oauth2_redirect_url=f"{root}{redirect}",
            swagger_ui_parameters={"validatorUrl": None, "persistAuthorization": False}))

    @app.get(redirect, include_in_schema=False)
    async def swagger_ui_redirect() -> HTMLResponse:
        return local_only(get_swagger_ui_oauth2_redirect_html())

    @app.get("/redoc", include_in_schema=False)
    async def redoc(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return local_only(get_redoc_html(
            openapi_url=f"{root}{app.openapi_url}", title="sealtrail API",
            redoc_js_url=f"{root}{DOCS_ASSETS}/redoc.standalone.js",
            redoc_favicon_url=f"{root}{DOCS_ASSETS}/favicon.png", with_google_fonts=False))


def _docs_asset_dir() -> Path:
    """Where ``fastapi-offline`` keeps Swagger UI's and ReDoc's files (a directory of the
    installed package, so StaticFiles can serve it)."""
    return Path(str(resources.files("fastapi_offline") / "static"))


def _tile_ref(path: str) -> TileRef:
    try:
        return parse_tile_path(path)
    except FormatError as exc:
        raise HTTPException(404, str(exc)) from exc


def _tile_bytes(alog: AuditLog, ref: TileRef) -> bytes:
    try:
        return alog.tile(ref)
    except ConfigError as exc:
        raise HTTPException(404, str(exc)) from exc


def _tile_response(ref: TileRef, body: bytes) -> Response:
    # Full hash tiles never change: cache them anywhere. Entry bundles hold event content
    # (readers only) and change when retention retires their entries: never cached.
    immutable = ref.width == TILE_WIDTH and ref.level is not None
    return Response(body, media_type="application/octet-stream", headers={
        "Cache-Control": "public, max-age=31536000, immutable" if immutable
        else "private, no-store"})


def _monitoring(config: ServiceConfig, logs: Logs
                ) -> tuple[Monitor, Dispatcher | None, AlertStore]:
    """The alert store, and a monitor over it: with the rules and sinks when the monitor runs
    in this process, without them (API and trail-failure alerts only) when it runs in a
    child process (``monitor_command``) or not at all."""
    store = AlertStore(monitor_db_path(config.data_dir))
    holder: list[Monitor] = []

    def sink_failed(name: str, error: str, consecutive: int) -> None:
        if holder:
            holder[0].sink_failed(name, error, consecutive)

    cfg = config.monitor if config.monitor_command is None else None
    dispatcher = (Dispatcher(build_sinks(cfg.sinks), config.data_dir / MONITOR_DIR /
                             "outbox.db", on_failure=sink_failed)
                  if cfg is not None and cfg.sinks else None)

    def every_log() -> list[tuple[str, AuditLog]]:
        out = []
        for name in logs.names():
            try:
                out.append((name, logs.get(name)))
            except SealtrailError:
                continue  # /readyz reports a log that does not open
        return out

    monitor = Monitor(config.data_dir, every_log, cfg.rules if cfg is not None else [], store,
                      dispatcher=dispatcher,
                      settings=cfg.settings if cfg is not None else None, clock=config.clock)
    holder.append(monitor)
    return monitor, dispatcher, store


async def _in_thread(fn: Callable[..., Any], *args: Any) -> Any:
    """Run blocking log work in a worker thread (group commit happens there)."""
    from starlette.concurrency import run_in_threadpool  # noqa: PLC0415 - fastapi's own dep
    return await run_in_threadpool(fn, *args)


async def _read_body(request: Request, limit: int) -> bytes | None:
    """The body, or None as soon as it grows past ``limit`` (never read whole)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        return None
    chunks: list[bytes] = []
    total = 0
    async for chunk in request.stream():
        total += len(chunk)
        if total > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def _parse_events(body: bytes, content_type: str) -> list[Any]:
    """A JSON array, or JSON Lines (``application/x-ndjson``), as a list of raw items."""
    if "ndjson" in content_type or "jsonl" in content_type or "json-seq" in content_type:
        items: list[Any] = []
        for n, line in numbered_lines(body):  # LF only: JSON may hold U+2028 unescaped
            try:
                items.append(msgspec.json.decode(line))
            except msgspec.DecodeError as exc:
                raise ValidationError("event", f"malformed JSON: {exc}", line=n) from exc
            except RecursionError as exc:
                raise ValidationError("event", "nested too deeply", line=n) from exc
        return items
    try:
        doc = msgspec.json.decode(body)
    except msgspec.DecodeError as exc:
        raise ValidationError("body", f"malformed JSON: {exc}") from exc
    except RecursionError as exc:
        raise ValidationError("body", "nested too deeply") from exc
    if not isinstance(doc, list):
        raise ValidationError("body", "must be a JSON array of events (or JSON Lines)")
    return doc


def _validate_all(raw: list[Any]) -> tuple[list[Event], list[dict[str, Any]]]:
    """Every event validated; every invalid one reported (index and field)."""
    events: list[Event] = []
    errors: list[dict[str, Any]] = []
    for i, item in enumerate(raw):
        try:
            event = validate_event(item)
            claim = claims_import(event.metadata)
            if claim is not None:
                raise claim
            events.append(event)
        except ValidationError as exc:
            errors.append({"index": i, "field": f"events[{i}].{exc.field}",
                           "message": exc.message})
            if len(errors) >= 100:
                break
    return events, errors


def _time(value: str | None, name: str) -> datetime | None:
    if value is None:
        return None
    try:
        return parse_time(value)
    except ValueError as exc:
        raise ValidationError(name, str(exc)) from exc


def _find_leaf(alog: AuditLog, leaf_hash: str) -> int:
    """The index of the entry with this leaf hash (base64)."""
    try:
        wanted = base64.b64decode(leaf_hash, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValidationError("leaf_hash", "not base64") from exc
    if len(wanted) != 32:
        raise ValidationError("leaf_hash", "a leaf hash is 32 bytes (SHA-256)")
    index = alog.find_leaf(wanted)
    if index is None:
        raise ConfigError("no entry has this leaf hash")
    return index
