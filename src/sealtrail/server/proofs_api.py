"""Proof material: the signed checkpoint, inclusion and consistency proofs (RFC 6962).

Every role may read these: they hold hashes and a signature, no event content, and are what
monitors, witnesses and clients check the log with. They are counted in /metrics
(``proof_reads``) rather than appended to the log, since monitors poll them.
"""

from __future__ import annotations

import base64
import binascii
from typing import Annotated, Final

from fastapi import APIRouter, Query, Response
from fastapi.responses import PlainTextResponse

from sealtrail.core.errors import ConfigError, ValidationError
from sealtrail.log import witnesses
from sealtrail.log.apikeys import Principal
from sealtrail.log.auditlog import AuditLog
from sealtrail.server.deps import EVERYONE, Service, in_thread, open_log, requires
from sealtrail.server.openapi import ERRORS, answers
from sealtrail.server.responses import MsgspecJson

ROUTES: Final = {
    ("GET", "/v1/logs/{log}/checkpoint"): EVERYONE,
    ("GET", "/v1/logs/{log}/proof/inclusion"): EVERYONE,
    ("GET", "/v1/logs/{log}/proof/consistency"): EVERYONE,
    ("GET", "/v1/logs/{log}/vkey"): EVERYONE,
}

router = APIRouter()
as_checkpoint = requires(ROUTES, "GET", "/v1/logs/{log}/checkpoint")
as_inclusion = requires(ROUTES, "GET", "/v1/logs/{log}/proof/inclusion")
as_consistency = requires(ROUTES, "GET", "/v1/logs/{log}/proof/consistency")
as_vkey = requires(ROUTES, "GET", "/v1/logs/{log}/vkey")


@router.get("/v1/logs/{log}/checkpoint",
            responses=answers("text/plain", "The signed checkpoint note"))
async def get_checkpoint(log: str, service: Service,
                         principal: Principal = as_checkpoint) -> Response:
    """The latest signed checkpoint (C2SP signed note)."""
    alog = open_log(service, log)
    service.metrics.proof_reads.labels(log, "checkpoint").inc()
    # In a thread: the read may wait for the store (a commit in progress), the loop must not.
    note = (await in_thread(alog.checkpoint)).note
    return PlainTextResponse(note)


@router.get("/v1/logs/{log}/vkey", responses=answers("text/plain", "The verifier key"))
async def get_vkey(log: str, service: Service, principal: Principal = as_vkey) -> Response:
    """The log's verifier key (``name+id+base64``), one line: what a client pins on first use.

    Trusting it on first use only helps against a server that changes it later; compare it
    with the key the operator published (``sealtrail vkey``) to trust the first answer too.
    """
    alog = open_log(service, log)
    return PlainTextResponse(alog.vkey() + "\n")


@router.get("/v1/logs/{log}/proof/inclusion", responses=ERRORS)
async def get_inclusion(log: str, service: Service, *, principal: Principal = as_inclusion,
                        index: Annotated[int | None, Query(ge=0)] = None,
                        leaf_hash: str | None = None,
                        size: Annotated[int | None, Query(ge=1)] = None,
                        witnessed: bool = False) -> Response:
    """Inclusion proof by index (or by leaf hash, base64) in the tree of ``size``; with
    ``witnessed=true``, in the tree of the latest witnessed checkpoint, which the proof
    carries with its cosignature lines."""
    alog = open_log(service, log)
    service.metrics.proof_reads.labels(log, "inclusion").inc()
    if index is None:
        if leaf_hash is None:
            raise ValidationError("index", "give index or leaf_hash")
        index = await in_thread(_find_leaf, alog, leaf_hash)
    if witnessed:
        if size is not None:
            raise ValidationError("size", "give size or witnessed=true, not both")
        proof = await in_thread(witnesses.witnessed_inclusion, alog, index)
    else:
        proof = await in_thread(alog.prove_inclusion, index, size)
    return MsgspecJson(proof.to_json())


@router.get("/v1/logs/{log}/proof/consistency", responses=ERRORS)
async def get_consistency(log: str, first: Annotated[int, Query(ge=0)], service: Service,
                          principal: Principal = as_consistency,
                          second: Annotated[int | None, Query(ge=0)] = None) -> Response:
    """Consistency proof from tree size ``first`` to ``second`` (default: latest)."""
    alog = open_log(service, log)
    service.metrics.proof_reads.labels(log, "consistency").inc()
    proof = await in_thread(alog.prove_consistency, first, second)
    return MsgspecJson(proof.to_json())


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
