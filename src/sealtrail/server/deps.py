"""What every router needs: the node's state, who is calling, whether their role may, the log.

Each router module declares who may call its routes in a ``ROUTES`` table and takes the
caller's :class:`~sealtrail.log.apikeys.Principal` from :func:`requires` over that table, so a
route cannot be added without naming its roles (the app's ``ROUTE_ROLES`` is the union of the
tables; docs/service.md renders it and a test tries every route with every role). A
log-scoped key may only touch its log. The node's :class:`ServiceState` lives on
``app.state.service``; routes ask for it as :data:`Service`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Annotated, Any, Final

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool

from sealtrail.log.apikeys import Principal
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


def authenticate(request: Request,
                 credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
                 ) -> Principal:
    """The key's principal (401 without a valid key, 429 past its rate)."""
    state = service(request)
    principal = (state.keys.authenticate(credentials.credentials.strip(), state.config.clock(),
                                         client_cert_sha256(request.scope))
                 if credentials is not None else None)
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


def open_log(state: ServiceState, name: str) -> AuditLog:
    """The log ``name`` (404 when there is none: a request never creates a log)."""
    if not state.logs.exists(name):
        raise HTTPException(404, f"no log {name!r}")
    return state.logs.get(name)


def actor_of(principal: Principal) -> dict[str, str]:
    """The key as the actor of the events its requests cause (audited reads, alert changes)."""
    return {"id": f"key:{principal.key_id}", "type": "api_key", "name": principal.name}


async def in_thread(fn: Callable[..., Any], *args: Any) -> Any:
    """Run blocking log work in a worker thread (group commit happens there)."""
    return await run_in_threadpool(fn, *args)


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
