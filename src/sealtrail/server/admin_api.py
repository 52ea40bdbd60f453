"""Administration of who may use the service: API keys and console users (admins only).

- ``GET /v1/keys`` lists the API keys (never a token or its hash); ``POST /v1/keys`` makes
  one and answers its token, once (only its hash is kept: it cannot be shown again);
  ``POST /v1/keys/{key_id}/revoke`` revokes one at once.
- ``GET /v1/users`` lists the console's users (never a password hash or TOTP secret);
  ``POST /v1/users`` makes a local user with a password; ``POST /v1/users/{name}/disable``
  disables one and ends their sessions at once.

Every change is an event in the service's audit log (``deps.service_event``: category
``admin``, sealtrail's own reserved actions ``sealtrail.key.*``, ``sealtrail.user.*``) naming
who made it; never a token or a password. A change that cannot be recorded is undone (the key
revoked, the user disabled) and answered as a failure. A bad body is refused (422 naming the
field) before anything is stored.
"""

from __future__ import annotations

import contextlib
import functools
import re
from datetime import datetime
from typing import Any, Final

from fastapi import APIRouter, HTTPException, Request, Response

from sealtrail.core.errors import ConfigError, SealtrailError, ValidationError
from sealtrail.core.timefmt import parse_time
from sealtrail.log.apikeys import ROLES, KeyInfo, Principal
from sealtrail.log.auditlog import LOG_NAME
from sealtrail.log.users import MAX_PASSWORD, MIN_PASSWORD, USER_NAME, USER_ROLES, UserInfo
from sealtrail.server.deps import (
    Service,
    in_thread,
    json_object,
    requires,
    service_event,
    text_field,
)
from sealtrail.server.openapi import ERRORS, json_body
from sealtrail.server.responses import MsgspecJson, error_response
from sealtrail.server.state import ServiceState

ADMINS: Final = frozenset({"admin"})
ROUTES: Final = {
    ("GET", "/v1/keys"): ADMINS,
    ("POST", "/v1/keys"): ADMINS,
    ("POST", "/v1/keys/{key_id}/revoke"): ADMINS,
    ("GET", "/v1/users"): ADMINS,
    ("POST", "/v1/users"): ADMINS,
    ("POST", "/v1/users/{name}/disable"): ADMINS,
}
MAX_BODY: Final = 8192  # a password of MAX_PASSWORD characters, escaped, and the rest
MAX_KEY_NAME: Final = 128
_KEY_ID: Final = re.compile(r"[0-9a-f]{16}")

router = APIRouter()
as_list_keys = requires(ROUTES, "GET", "/v1/keys")
as_create_key = requires(ROUTES, "POST", "/v1/keys")
as_revoke_key = requires(ROUTES, "POST", "/v1/keys/{key_id}/revoke")
as_list_users = requires(ROUTES, "GET", "/v1/users")
as_create_user = requires(ROUTES, "POST", "/v1/users")
as_disable_user = requires(ROUTES, "POST", "/v1/users/{name}/disable")

_NEW_KEY: Final = json_body({"type": "object", "required": ["role", "name"], "properties": {
    "role": {"type": "string", "enum": list(ROLES)},
    "log": {"type": ["string", "null"], "pattern": LOG_NAME.pattern,
            "description": "ingest and reader keys only: the one log the key may use"},
    "name": {"type": "string", "minLength": 1, "maxLength": MAX_KEY_NAME,
             "description": "what the key is for"},
    "expires": {"type": ["string", "null"], "format": "date-time"}}}, "The new API key")
_NEW_USER: Final = json_body({"type": "object", "required": ["name", "role", "password"],
                              "properties": {
    "name": {"type": "string", "pattern": USER_NAME.pattern},
    "role": {"type": "string", "enum": list(USER_ROLES)},
    "password": {"type": "string", "minLength": MIN_PASSWORD, "maxLength": MAX_PASSWORD}}},
    "The new console user")


def key_json(info: KeyInfo) -> dict[str, Any]:
    """A key as listed: never its token or hash."""
    return {"id": info.id, "role": info.role, "log": info.log, "name": info.name,
            "created": info.created, "expires": info.expires, "revoked": info.revoked,
            "client_cert_sha256": info.client_cert_sha256}


def user_json(info: UserInfo) -> dict[str, Any]:
    """A user as listed: never a password hash or TOTP secret."""
    return {"name": info.name, "role": info.role, "source": info.source,
            "created": info.created, "disabled": info.disabled, "mfa": info.mfa}


def _find_key(service: ServiceState, key_id: str) -> KeyInfo | None:
    return next((k for k in service.keys.listing() if k.id == key_id), None)


# -- API keys -------------------------------------------------------------------------------

@router.get("/v1/keys", responses=ERRORS)
async def list_keys(service: Service, principal: Principal = as_list_keys) -> Response:
    """Every API key, oldest first (no token, no hash)."""
    found = await in_thread(service.keys.listing)
    return MsgspecJson({"keys": [key_json(k) for k in found]})


@router.post("/v1/keys", status_code=201, responses=ERRORS, openapi_extra=_NEW_KEY)
async def create_key(request: Request, service: Service,
                     principal: Principal = as_create_key) -> Response:
    """Make an API key; the answer's ``token`` is shown this once (only its hash is kept)."""
    doc = await json_object(request, MAX_BODY, empty=b"")
    role = text_field(doc, "role")
    if role not in ROLES:
        raise ValidationError("role", f"use one of {', '.join(ROLES)}")
    name = text_field(doc, "name")
    if name is None or not name.strip() or len(name) > MAX_KEY_NAME:
        raise ValidationError("name", f"required: what the key is for, 1 to {MAX_KEY_NAME} "
                              "characters")
    log = text_field(doc, "log", required=False)
    if log is not None:
        if role in ("auditor", "admin"):
            raise ValidationError("log", f"{role} keys act on every log: leave log out")
        if not LOG_NAME.match(log) or not service.logs.exists(log):
            raise ValidationError("log", f"no log {log!r}")
    now = service.config.clock()
    expires = _expiry(text_field(doc, "expires", required=False), now)
    try:
        token = await in_thread(functools.partial(service.keys.create, role, log=log,
                                                  name=name, now=now, expires=expires))
    except ConfigError as exc:
        raise ValidationError("role", str(exc)) from exc
    key_id = token.split("_")[1]
    info = _find_key(service, key_id)
    if info is None:  # pragma: no cover - just made
        raise HTTPException(500, "the new key was not found")
    try:
        await service_event(service, principal, action="sealtrail.key.create",
                            target={"type": "api_key", "id": key_id},
                            metadata={"role": role, "log": log, "name": name,
                                      "expires": info.expires})
    except BaseException:
        # Not recorded, not done: a key nobody can account for must not work.
        await in_thread(service.keys.revoke, key_id, service.config.clock())
        raise
    return MsgspecJson({"token": token, "key": key_json(info)}, status_code=201)


def _expiry(text: str | None, now: datetime) -> datetime | None:
    if text is None:
        return None
    if len(text) > 64:
        raise ValidationError("expires", "an RFC 3339 time")
    try:
        when = parse_time(text)
    except ValueError as exc:
        raise ValidationError("expires", "an RFC 3339 time, e.g. 2027-01-01T00:00:00Z"
                              ) from exc
    if when <= now:
        raise ValidationError("expires", "must be in the future")
    return when


@router.post("/v1/keys/{key_id}/revoke", responses=ERRORS)
async def revoke_key(key_id: str, service: Service,
                     principal: Principal = as_revoke_key) -> Response:
    """Revoke an API key at once (its token stops working on the next request)."""
    found = _find_key(service, key_id) if _KEY_ID.fullmatch(key_id) else None
    if found is None:
        raise HTTPException(404, f"no API key {key_id!r}")
    if found.revoked is not None:
        raise HTTPException(409, f"API key {key_id!r} was revoked already ({found.revoked})")
    now = service.config.clock()
    try:
        await in_thread(service.keys.revoke, key_id, now)
    except ConfigError as exc:  # revoked at the same moment by another request
        raise HTTPException(409, str(exc)) from exc
    await service_event(service, principal, action="sealtrail.key.revoke",
                        target={"type": "api_key", "id": key_id},
                        metadata={"role": found.role, "log": found.log, "name": found.name})
    info = _find_key(service, key_id)
    return MsgspecJson({"key": key_json(info or found)})


# -- console users --------------------------------------------------------------------------

@router.get("/v1/users", responses=ERRORS)
async def list_users(service: Service, principal: Principal = as_list_users) -> Response:
    """Every console user, oldest first (no password hash, no TOTP secret)."""
    found = await in_thread(service.users.listing)
    return MsgspecJson({"users": [user_json(u) for u in found]})


@router.post("/v1/users", status_code=201, responses=ERRORS, openapi_extra=_NEW_USER)
async def create_user(request: Request, service: Service,
                      principal: Principal = as_create_user) -> Response:
    """Make a local console user with a password (at least 12 characters)."""
    doc = await json_object(request, MAX_BODY, empty=b"")
    name = text_field(doc, "name")
    if name is None or not USER_NAME.fullmatch(name):
        raise ValidationError("name", "1 to 128 characters: letters, digits and . _ @ + -, "
                              "starting with a letter or digit")
    role = text_field(doc, "role")
    if role not in USER_ROLES:
        raise ValidationError("role", f"use one of {', '.join(USER_ROLES)}")
    password = text_field(doc, "password")
    if password is None or not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
        raise ValidationError("password", f"{MIN_PASSWORD} to {MAX_PASSWORD} characters")
    taken = error_response(409, f"name: a user named {name!r} exists", field="name")
    if await in_thread(service.users.get, name) is not None:
        return taken
    now = service.config.clock()
    try:
        info = await in_thread(service.users.create, name, role, password, now)
    except ConfigError:  # made at the same moment by another request
        return taken
    try:
        await service_event(service, principal, action="sealtrail.user.create",
                            target={"type": "user", "id": name},
                            metadata={"role": role, "source": "local"})
    except BaseException:
        # Not recorded, not done: a user nobody can account for must not sign in.
        with contextlib.suppress(SealtrailError):  # the recording's failure is reported
            await in_thread(service.users.disable, name, service.config.clock())
        raise
    return MsgspecJson({"user": user_json(info)}, status_code=201)


@router.post("/v1/users/{name}/disable", responses=ERRORS)
async def disable_user(name: str, service: Service,
                       principal: Principal = as_disable_user) -> Response:
    """Disable a console user at once: their sessions end, no sign-in works again."""
    found = await in_thread(service.users.get, name) if USER_NAME.fullmatch(name) else None
    if found is None:
        raise HTTPException(404, f"no user {name!r}")
    if found.disabled is not None:
        raise HTTPException(409, f"user {name!r} was disabled already ({found.disabled})")
    try:
        info = await in_thread(service.users.disable, name, service.config.clock())
    except ConfigError as exc:  # disabled at the same moment by another request
        raise HTTPException(409, str(exc)) from exc
    await service_event(service, principal, action="sealtrail.user.disable",
                        target={"type": "user", "id": name},
                        metadata={"role": info.role, "source": info.source,
                                  "disabled": info.disabled})
    return MsgspecJson({"user": user_json(info)})
