"""Administration of the logs (tenants) a node serves: list them, create one.

Listing (names and sizes, no content) is for auditors and admins; creating is for admins.
A request naming an unknown log elsewhere gets 404: logs are created here or by
``sealtrail init``, never as a side effect.
"""

from __future__ import annotations

from typing import Final

import msgspec
from fastapi import APIRouter, Request, Response

from sealtrail.core.errors import ValidationError
from sealtrail.log.apikeys import Principal
from sealtrail.log.auditlog import LOG_NAME
from sealtrail.server.deps import Service, in_thread, read_body, requires
from sealtrail.server.openapi import ERRORS, json_body
from sealtrail.server.responses import MsgspecJson

ROUTES: Final = {
    ("GET", "/v1/logs"): frozenset({"auditor", "admin"}),
    ("POST", "/v1/logs"): frozenset({"admin"}),
}
MAX_CREATE_BODY: Final = 4096

router = APIRouter()
as_list_logs = requires(ROUTES, "GET", "/v1/logs")
as_create_log = requires(ROUTES, "POST", "/v1/logs")
_NEW_LOG: Final = json_body({"type": "object", "required": ["name"], "properties": {"name": {
    "type": "string", "pattern": LOG_NAME.pattern}}}, "The new log's name")


@router.get("/v1/logs", responses=ERRORS)
async def list_logs(service: Service, principal: Principal = as_list_logs) -> Response:
    """Every log with its size."""
    logs = service.logs
    return MsgspecJson({"logs": [{"name": n, "size": logs.get(n).size}
                                 for n in logs.names()]})


@router.post("/v1/logs", status_code=201, responses=ERRORS, openapi_extra=_NEW_LOG)
async def create_log(request: Request, service: Service,
                     principal: Principal = as_create_log) -> Response:
    """Create a log (tenant): ``{"name": "billing"}``."""
    body = await read_body(request, MAX_CREATE_BODY)
    try:
        doc = msgspec.json.decode(body or b"")
    except msgspec.DecodeError as exc:
        raise ValidationError("body", "not JSON") from exc
    name = doc.get("name") if isinstance(doc, dict) else None
    if not isinstance(name, str):
        raise ValidationError("name", "required: the log's name")
    for existing in service.logs.names():
        service.logs.get(existing)  # a wrong passphrase must not wrap a new keyring
    alog = await in_thread(service.logs.create, name)
    return MsgspecJson({"name": name, "origin": alog.origin, "vkey": alog.vkey()},
                       status_code=201)
