"""What every router needs: the node's state, who is calling, whether their role may, the log.

Each router module declares who may call its routes in a ``ROUTES`` table and takes the
caller's :class:`~sealtrail.log.apikeys.Principal` from :func:`requires` over that table, so a
route cannot be added without naming its roles (the app's ``ROUTE_ROLES`` is the union of the
tables; docs/service.md renders it and a test tries every route with every role). A
log-scoped key may only touch its log. The node's :class:`ServiceState` lives on
``app.state.service``; routes ask for it as :data:`Service`.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable, Mapping
from typing import Annotated, Any, Final, cast

import msgspec
from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool

from sealtrail.core.errors import ConfigError, ValidationError
from sealtrail.core.reserved import is_reserved_action
from sealtrail.log.apikeys import Principal, Role
from sealtrail.log.auditlog import AuditLog
from sealtrail.server.ratelimit import RateLimiter
from sealtrail.server.state import ServiceState
from sealtrail.server.tls import client_cert_sha256

READERS: Final = frozenset({"reader", "auditor"})
EVERYONE: Final = frozenset({"ingest", "reader", "auditor", "admin"})

Route = tuple[str, str]
"""A route as the role tables name it: (method, path template)."""


def service(request: Request) -> ServiceState:
    """The node's state (``create_app`` puts it on ``app.state.service``)."""
    state = request.app.state.service
    if not isinstance(state, ServiceState):
        raise TypeError("this app was not built by sealtrail.server.app.create_app")
    return state


Service = Annotated[ServiceState, Depends(service)]
"""A route parameter of this type receives the node's state."""

_bearer = HTTPBearer(auto_error=False, description="An API key: st_<id>_<secret>")


SESSION_COOKIE: Final = "sealtrail_session"
"""The console's session cookie (server/web/auth.py sets it; HttpOnly, SameSite=Strict)."""
CSRF_HEADER: Final = "X-CSRF-Token"
BACKGROUND_HEADER: Final = "X-Sealtrail-Background"
"""Sent (``1``) by console requests no person asked for; they do not reset the idle timer."""
_UNSAFE: Final = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def authenticate(request: Request,
                 credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
                 ) -> Principal:
    """The caller's principal: an API key (``Authorization: Bearer``), else a console
    session (its cookie; a state change must also carry the session's CSRF token). 401
    without either, 403 for a state change without the token, 429 past the caller's rate."""
    state = service(request)
    if credentials is not None:
        principal = state.keys.authenticate(credentials.credentials.strip(),
                                            state.config.clock(),
                                            client_cert_sha256(request.scope))
    else:
        principal = session_principal(request)
    if principal is None:
        state.metrics.rejected.labels("unauthenticated").inc()
        raise HTTPException(401, "a valid API key is required",
                            headers={"WWW-Authenticate": "Bearer"})
    wait = state.limiter.take(principal.key_id)
    if wait:
        state.metrics.rejected.labels("rate_limited").inc()
        raise HTTPException(429, "rate limit exceeded",
                            headers={"Retry-After": RateLimiter.retry_after(wait)})
    return principal


def session_principal(request: Request) -> Principal | None:
    """The principal of the request's console session (None without a live one).

    The session's user is looked up on every request, so disabling a user or an idle or
    absolute timeout ends access at once. A state change (POST, PUT, PATCH, DELETE) must
    carry the session's CSRF token in ``X-CSRF-Token`` (compared in constant time): the
    cookie alone, which a browser attaches by itself, never authorises a change.
    """
    token = request.cookies.get(SESSION_COOKIE)
    if not token or len(token) > 128:
        return None
    state = service(request)
    # A request the page makes by itself (the overview's refresh, the live tail) is checked
    # but does not count as activity: an unattended console still times out (PCI DSS 8.2.8).
    background = (request.headers.get(BACKGROUND_HEADER) == "1"
                  or request.query_params.get("background") == "1")
    info = state.users.session(token, state.config.clock(), touch=not background)
    if info is None:
        return None
    if request.method in _UNSAFE:
        sent = request.headers.get(CSRF_HEADER, "")
        if not hmac.compare_digest(sent.encode(), info.csrf.encode()):
            state.metrics.rejected.labels("forbidden").inc()
            raise HTTPException(403, f"a console change needs the session's {CSRF_HEADER} "
                                "header (reload the page)")
    request.state.session = info
    return Principal(f"user:{info.user}", cast(Role, info.role), None, info.user, kind="user")


def still_allowed(request: Request, principal: Principal) -> Callable[[], bool]:
    """A check, for an answer that lasts (a live tail), that the caller is still who they
    were: the same key not revoked or expired, or the same session not ended, timed out or
    its user disabled, and with the same role. Blocking: run it in a thread."""
    state = service(request)
    credential = request.headers.get("authorization", "").partition(" ")[2].strip()
    cert = client_cert_sha256(request.scope)
    token = request.cookies.get(SESSION_COOKIE, "")

    def check() -> bool:
        now = state.config.clock()
        if principal.kind == "user":
            info = state.users.session(token, now, touch=False)
            return info is not None and info.role == principal.role
        again = state.keys.authenticate(credential, now, cert)
        return again is not None and again.role == principal.role

    return check


def requires(routes: Mapping[Route, frozenset[str]], method: str, path: str) -> Any:
    """The dependency (``principal: Principal = requires(...)``) that lets in only the roles
    ``routes`` names for this route, and a scoped key only on its own log (403 otherwise).

    Looked up when the router module is imported: a route missing from its table fails then.
    """
    allowed = routes[(method, path)]

    def check(request: Request, principal: Annotated[Principal, Depends(authenticate)]
              ) -> Principal:
        log = request.path_params.get("log")
        if principal.role not in allowed or (log is not None and not principal.may_use(log)):
            service(request).metrics.rejected.labels("forbidden").inc()
            raise HTTPException(403, f"role {principal.role!r} may not do this"
                                + (f" on log {log!r}" if log is not None else ""))
        return principal

    return Depends(check)


def requires_or_public(routes: Mapping[Route, frozenset[str]], method: str, path: str
                       ) -> Any:
    """:func:`requires`, except that with ``serve --public-tlog`` a request carrying no
    credential at all (no key, no session cookie) is let in as the anonymous principal:
    the checkpoint and hash tiles hold no event content, and tile clients, monitors and
    witnesses follow a log without an account. A credential that is sent is still checked
    (a bad key is 401, not anonymous)."""
    checked = requires(routes, method, path).dependency

    async def check(request: Request) -> Principal:
        state = service(request)
        if (state.config.public_tlog and "authorization" not in request.headers
                and SESSION_COOKIE not in request.cookies):
            # The same rate as a key's, per client address.
            client = request.client.host if request.client is not None else "unknown"
            wait = state.limiter.take(f"anonymous:{client}")
            if wait:
                state.metrics.rejected.labels("rate_limited").inc()
                raise HTTPException(429, "rate limit exceeded",
                                    headers={"Retry-After": RateLimiter.retry_after(wait)})
            return PUBLIC
        credentials = await _bearer(request)
        principal = await run_in_threadpool(authenticate, request, credentials)
        return cast(Principal, checked(request, principal))

    return Depends(check)


# The caller of a public tile route (``serve --public-tlog``): no key, no role of the table.
PUBLIC: Final = Principal("anonymous", cast(Role, "public"), None, "anonymous", kind="public")


def open_log(state: ServiceState, name: str) -> AuditLog:
    """The log ``name`` (404 when there is none: a request never creates a log)."""
    if not state.logs.exists(name):
        raise HTTPException(404, f"no log {name!r}")
    return state.logs.get(name)


def actor_of(principal: Principal) -> dict[str, str]:
    """The caller as the actor of the events its requests cause (audited reads, alert
    changes): the API key, or the console user."""
    if principal.kind == "user":
        return {"id": principal.key_id, "type": "user", "name": principal.name}
    return {"id": f"key:{principal.key_id}", "type": "api_key", "name": principal.name}


async def service_event(state: ServiceState, who: Principal | Mapping[str, Any], *,
                        action: str, target: Mapping[str, Any], outcome: str = "success",
                        category: str = "admin", reason: str | None = None,
                        metadata: Mapping[str, Any] | None = None,
                        log: str | None = None) -> None:
    """Record one of the service's own events (a console sign-in, an administration change)
    in ``log`` (default: the service's audit log, ``ServiceConfig.audit_log``), durably,
    before the caller answers: a change that cannot be recorded is not reported done.

    ``action`` must be a reserved one (``sealtrail.<area>.<verb>``): it is appended as
    sealtrail's own record, which no client key can forge.
    """
    name = log or state.config.audit_log
    if not state.logs.exists(name):
        raise ConfigError(f"the service's audit log {name!r} does not exist: create it "
                          f"(sealtrail --log {name} init) or name another with serve "
                          "--audit-log")
    if not is_reserved_action(action):
        raise ValueError(f"service events use a reserved action, not {action!r}")
    alog = state.logs.get(name)
    actor = actor_of(who) if isinstance(who, Principal) else dict(who)
    event: dict[str, Any] = {"actor": actor, "action": action, "outcome": outcome,
                             "category": category, "target": dict(target)}
    if reason is not None:
        event["reason"] = reason
    if metadata:
        event["metadata"] = dict(metadata)
    # A service whose keyring is locked (no passphrase) still records who signed in and what
    # changed, without the personal fields it cannot seal (the address, the typed name,
    # the details): a record with less is better than a console nobody can sign in to.
    kept, _ = alog.without_unsealable(event)
    await in_thread(alog.append_own, [kept])


async def in_thread(fn: Callable[..., Any], *args: Any) -> Any:
    """Run blocking log work in a worker thread (group commit happens there)."""
    return await run_in_threadpool(fn, *args)


async def json_object(request: Request, limit: int, *, too_large: str = "body",
                      empty: bytes = b"{}") -> dict[str, Any]:
    """The request's JSON object, never read past ``limit`` bytes: 422 naming ``too_large``
    (the field that makes a body large: a note, a reason) when it is larger, ``body`` when it
    is not a JSON object. An empty body reads as ``empty``."""
    raw = await read_body(request, limit)
    if raw is None:
        raise ValidationError(too_large, f"the body is larger than {limit} bytes")
    try:
        doc = msgspec.json.decode(raw or empty)
    except msgspec.DecodeError as exc:
        raise ValidationError("body", "not JSON") from exc
    if not isinstance(doc, dict):
        raise ValidationError("body", "a JSON object is expected")
    return doc


def text_field(doc: Mapping[str, Any], name: str, *, required: bool = True) -> str | None:
    """A string field of a JSON body (422 naming it when it is missing or not a string)."""
    value = doc.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, str):
        raise ValidationError(name, "required: a string" if required else "a string or null")
    return value


async def read_body(request: Request, limit: int) -> bytes | None:
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
