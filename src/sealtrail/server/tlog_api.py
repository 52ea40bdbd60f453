"""C2SP tlog-tiles read paths (``/tlog/{log}/...``), for standard tile clients and witnesses.

The checkpoint and hash tiles hold no event content: every role may read them, counted in
/metrics, and with ``serve --public-tlog`` so may a request with no credential at all (tile
clients, monitors, witnesses). The checkpoint served is the latest witnessing round's
(server/witnessing_job.py) while it is fresh: the log's signature, its forward-secure seal and
the witnesses' cosignature lines; else the latest signed checkpoint.
``GET /v1/logs/{log}/witnessing`` says who the witnesses are and how far they have cosigned.
Entry bundles are the entries themselves: readers only, and each read is appended to the log
as an ``audit_access`` event, like a read of /entries. Full hash tiles never change and
are cached for a year; bundles are never cached (retention may retire their entries).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any, Final

from fastapi import APIRouter, HTTPException, Response
from fastapi.responses import PlainTextResponse

from sealtrail.core.errors import ConfigError, FormatError
from sealtrail.core.tiles import TILE_WIDTH, TileRef, parse_tile_path
from sealtrail.log import witnesses
from sealtrail.log.apikeys import Principal
from sealtrail.log.auditlog import AuditLog
from sealtrail.server.deps import (
    EVERYONE,
    READERS,
    Service,
    actor_of,
    in_thread,
    open_log,
    requires,
    requires_or_public,
)
from sealtrail.server.openapi import answers

ROUTES: Final = {
    ("GET", "/tlog/{log}/checkpoint"): EVERYONE,
    ("GET", "/tlog/{log}/tile/entries/{path:path}"): READERS,
    ("GET", "/tlog/{log}/tile/{path:path}"): EVERYONE,
    ("GET", "/v1/logs/{log}/witnessing"): EVERYONE,
}
# Readable without a credential under ``serve --public-tlog`` (no event content).
PUBLIC_WITH_OPTION: Final = frozenset({("GET", "/tlog/{log}/checkpoint"),
                                       ("GET", "/tlog/{log}/tile/{path:path}")})
# A witnessing round older than this is not served: the job is not running here (stopped,
# or not the leader of an idle deployment) and the latest signed checkpoint is fresher.
FRESH: Final = timedelta(seconds=10)

router = APIRouter()
as_tlog_checkpoint = requires_or_public(ROUTES, "GET", "/tlog/{log}/checkpoint")
as_bundle = requires(ROUTES, "GET", "/tlog/{log}/tile/entries/{path:path}")
as_tile = requires_or_public(ROUTES, "GET", "/tlog/{log}/tile/{path:path}")
as_witnessing = requires(ROUTES, "GET", "/v1/logs/{log}/witnessing")


@router.get("/tlog/{log}/checkpoint",
            responses=answers("text/plain", "The signed checkpoint note"))
async def tlog_checkpoint(log: str, service: Service,
                          principal: Principal = as_tlog_checkpoint) -> Response:
    """The checkpoint at the tiles prefix, with its seal and cosignature lines when the
    witnessing round has them (otherwise the same note as /v1/.../checkpoint)."""
    alog = open_log(service, log)
    service.metrics.proof_reads.labels(log, "checkpoint").inc()
    # In a thread: the read may wait for the store (a commit in progress), the loop must not.
    note = await in_thread(witnesses.served_note, alog, FRESH, service.config.clock())
    return PlainTextResponse(note, headers={"Cache-Control": "no-store"})


@router.get("/v1/logs/{log}/witnessing")
async def witnessing(log: str, service: Service,
                     principal: Principal = as_witnessing) -> dict[str, Any]:
    """The log's witnesses and quorum, each one's last answer, and the latest checkpoint
    that met the quorum (its note, with the cosignature lines, to check offline)."""
    alog = open_log(service, log)
    status: dict[str, Any] = await in_thread(witnesses.status, alog, service.config.clock())
    return status


# Registered before the hash tiles: their path pattern would also match tile/entries/...
@router.get("/tlog/{log}/tile/entries/{path:path}",
            responses=answers("application/octet-stream", "An entry bundle"))
async def tlog_bundle(log: str, path: str, service: Service,
                      principal: Principal = as_bundle) -> Response:
    """An entry bundle: event content, so readers only, and the read is audited."""
    alog = open_log(service, log)
    ref = _tile_ref(f"tile/entries/{path}")

    def run() -> bytes:
        body = _tile_bytes(alog, ref)
        first = ref.index * TILE_WIDTH
        alog.record_access(actor_of(principal), "audit.entries.read", role=principal.role,
                           details={"start": str(first), "end": str(first + ref.width),
                                    "tile": ref.format()}, results=ref.width)
        return body

    return _tile_response(ref, await in_thread(run))


@router.get("/tlog/{log}/tile/{path:path}",
            responses=answers("application/octet-stream", "A hash tile"))
async def tlog_tile(log: str, path: str, service: Service,
                    principal: Principal = as_tile) -> Response:
    """A hash tile (no event content); full tiles never change (cached for a year)."""
    alog = open_log(service, log)
    ref = _tile_ref(f"tile/{path}")
    if ref.level is None:
        raise HTTPException(404, "entry bundles are under tile/entries/")
    service.metrics.proof_reads.labels(log, "tile").inc()
    return _tile_response(ref, await in_thread(_tile_bytes, alog, ref))


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
