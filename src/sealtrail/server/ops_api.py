"""Operations: liveness (/healthz), readiness (/readyz) and Prometheus metrics (/metrics).

/healthz and /readyz need no key (load balancers call them: :data:`OPEN_ROUTES`); /readyz names
logs and reasons, never a secret or an event. /metrics is for auditors and admins.

Each answer is the answering process's: with ``serve --workers N`` /healthz says which worker
answered (``pid``) and whether it leads (runs the background jobs, server/leader.py), and
/metrics counts that worker's requests only.
"""

from __future__ import annotations

import functools
import os
from typing import Any, Final

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from sealtrail.log.apikeys import Principal
from sealtrail.server.deps import Route, Service, in_thread, requires
from sealtrail.server.openapi import answers
from sealtrail.server.readiness import REASONS, log_lag, readiness_problems
from sealtrail.server.responses import MsgspecJson

ROUTES: Final = {("GET", "/metrics"): frozenset({"auditor", "admin"})}
OPEN_ROUTES: Final[frozenset[Route]] = frozenset({("GET", "/healthz"), ("GET", "/readyz")})

router = APIRouter()
as_metrics = requires(ROUTES, "GET", "/metrics")

_NOT_READY_SCHEMA: Final = {
    "type": "object", "required": ["log", "reason", "message"],
    "properties": {
        "log": {"type": "string", "description": "The log's name"},
        "reason": {"type": "string", "enum": list(REASONS)},
        "message": {"type": "string", "description": "What failed, for the operator (the "
                    "data directory reads as DATA; no secret or event content)"}}}
_LAG_SCHEMA: Final[dict[str, Any]] = {
    "type": "object", "required": ["log", "unsigned", "unindexed", "store_ms"],
    "properties": {
        "log": {"type": "string"},
        "unsigned": {"type": "integer", "description": "Entries past the signed checkpoint "
                     "(integration lag; 0: integration runs in the sequencing transaction)"},
        "unindexed": {"type": "integer", "description": "Entries the blind index has not "
                      "caught up with yet"},
        "store_ms": {"type": "number", "description": "One consistent read of the store, "
                     "in milliseconds (the store's health)"}}}
_READYZ_ANSWERS: Final[dict[int | str, dict[str, Any]]] = {
    200: {"description": "Every log is ready", "content": {"application/json": {"schema": {
        "type": "object", "required": ["status", "logs", "store", "lag"],
        "properties": {"status": {"type": "string", "const": "ready"},
                       "logs": {"type": "integer", "description": "How many logs"},
                       "store": {"type": "string", "enum": ["sqlite", "postgresql"],
                                 "description": "Where this node's logs are kept"},
                       "lag": {"type": "array", "items": _LAG_SCHEMA}}}}}},
    503: {"description": "Not ready: each log that is not, and why", "content": {
        "application/json": {"schema": {
            "type": "object", "required": ["status", "problems", "not_ready"],
            "properties": {"status": {"type": "string", "const": "not ready"},
                           "problems": {"type": "integer",
                                        "description": "How many problems (not_ready's length)"},
                           "not_ready": {"type": "array", "items": _NOT_READY_SCHEMA}}}}}},
}
_HEALTHZ_ANSWERS: Final[dict[int | str, dict[str, Any]]] = {
    200: {"description": "The process is up", "content": {"application/json": {"schema": {
        "type": "object", "required": ["status", "leader", "pid"],
        "properties": {
            "status": {"type": "string", "const": "ok"},
            "leader": {"type": "boolean", "description": "Whether the answering process "
                       "leads its data directory (runs verification, retention and the "
                       "monitor)"},
            "pid": {"type": "integer", "description": "The answering process's id (one "
                    "of the workers with serve --workers N)"}}}}}},
}


@router.get("/healthz", responses=_HEALTHZ_ANSWERS)
async def healthz(service: Service) -> Response:
    """The process is up (no authentication: load balancers call it); which process answered
    and whether it leads."""
    return MsgspecJson({"status": "ok", "leader": service.leadership.leader,
                        "pid": os.getpid()})


@router.get("/readyz", responses=_READYZ_ANSWERS)
async def readyz(service: Service) -> Response:
    """Ready (200) when every log opens, its keyring is available to append and its last
    verification passed; else 503 naming each log that is not ready and why (no key:
    load balancers call it; it gives log names and reasons, never a secret or an event)."""
    problems = await in_thread(readiness_problems, service.logs, service.verifier.results,
                               service.config.data_dir)
    if problems:
        return MsgspecJson({"status": "not ready", "problems": len(problems),
                            "not_ready": problems}, status_code=503)
    # No sizes: /readyz answers without a key (log names it gives already, as problems do).
    lag = await in_thread(functools.partial(log_lag, service.logs, sizes=False))
    return MsgspecJson({"status": "ready", "logs": len(service.logs.names()),
                        "store": "sqlite" if service.config.store is None else "postgresql",
                        "lag": lag})


@router.get("/metrics", responses=answers("text/plain", "Prometheus text format"))
async def get_metrics(service: Service, principal: Principal = as_metrics) -> Response:
    """Prometheus metrics."""
    return Response(generate_latest(service.metrics.registry), media_type=CONTENT_TYPE_LATEST)
