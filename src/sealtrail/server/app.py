"""The HTTP API (FastAPI): one router per concern, wired into one app by :func:`create_app`.

The routers (each module's docstring says what its routes are for and who may call them):

======================  ===================================================================
module                  routes
======================  ===================================================================
``ingest_api``          POST /v1/logs/{log}/events
``import_api``          POST /v1/logs/{log}/import
``search_api``          GET /v1/logs/{log}/events, /entries (audited reads of event content)
``tail_api``            GET /v1/logs/{log}/events/stream (live tail, SSE), /export (audited)
``proofs_api``          GET /v1/logs/{log}/checkpoint, /proof/inclusion, /proof/consistency
``tlog_api``            GET /tlog/{log}/... (C2SP tlog-tiles)
``alerts_api``          GET /v1/logs/{log}/alerts, POST .../ack, .../resolve
``review_api``          GET /v1/logs/{log}/reviews[/{period}], POST .../sign-off, ... (review)
``compliance_api``      GET /v1/logs/{log}/reports, /evidence, GET/PUT /retention, /holds
``logs_api``            GET, POST /v1/logs (administration)
``admin_api``           GET, POST /v1/keys, /v1/users; POST .../revoke, .../disable (admin)
``ops_api``             GET /healthz, /readyz, /metrics
``docs_pages``          /docs, /redoc and their files (not in the OpenAPI document)
======================  ===================================================================

Every route names the roles that may call it in its module's ``ROUTES``; :data:`ROUTE_ROLES`
is their union (the table in docs/service.md, and a test that tries every route with every
role). What the routers share (authentication, role checks, opening a log, the node's state)
is :mod:`sealtrail.server.deps`; errors become answers in one place,
:mod:`sealtrail.server.boundary`.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Final

from fastapi import APIRouter, FastAPI
from starlette.routing import BaseRoute, Mount

from sealtrail.server import (
    admin_api,
    alerts_api,
    boundary,
    compliance_api,
    docs_pages,
    import_api,
    ingest_api,
    logs_api,
    openapi,
    ops_api,
    overview_api,
    proofs_api,
    review_api,
    search_api,
    tail_api,
    tlog_api,
)
from sealtrail.server.config import MAX_BODY, MAX_EVENTS, ServiceConfig
from sealtrail.server.deps import EVERYONE, READERS, Route
from sealtrail.server.docs_pages import DOCS_ASSETS, DOCS_CSP, OAUTH2_REDIRECT
from sealtrail.server.ops_api import OPEN_ROUTES
from sealtrail.server.search_api import MAX_ENTRIES, MAX_PAGE
from sealtrail.server.state import ServiceState
from sealtrail.server.web import auth as console_auth
from sealtrail.server.web import pages as console_pages
from sealtrail.server.web.security import STATIC_DIR, ConsoleStatic

__all__ = ["CONSOLE_OPEN_ROUTES", "CONSOLE_STATIC", "DOCS_ASSETS", "DOCS_CSP", "EVERYONE",
           "MAX_BODY", "MAX_ENTRIES", "MAX_EVENTS", "MAX_PAGE", "OPEN_ROUTES", "READERS",
           "ROUTE_ROLES", "ServiceConfig", "create_app"]

# The routers in the order they are matched (and listed in the OpenAPI document): the
# tlog tile paths end in {path:path}, so entry bundles come before hash tiles (tlog_api).
_ROUTERS: Final[tuple[APIRouter, ...]] = (
    docs_pages.router, alerts_api.router, review_api.router,
    import_api.router, ingest_api.router,
    search_api.router, proofs_api.router, tlog_api.router, logs_api.router, ops_api.router,
    compliance_api.router, tail_api.router, overview_api.router,
    console_pages.router, console_auth.router, admin_api.router)

# The console's sign-in, sign-out and single sign-on routes: open to a request with no
# session (each checks its own form or provider answer); their static files are at
# CONSOLE_STATIC.
CONSOLE_OPEN_ROUTES: Final = console_auth.OPEN_ROUTES
CONSOLE_STATIC: Final = "/ui/static"

# The one table of who may call what (docs/service.md renders it; a test checks it).
ROUTE_ROLES: Final[dict[Route, frozenset[str]]] = {
    **ingest_api.ROUTES, **search_api.ROUTES, **proofs_api.ROUTES, **tlog_api.ROUTES,
    **logs_api.ROUTES, **ops_api.ROUTES, **import_api.ROUTES, **alerts_api.ROUTES,
    **compliance_api.ROUTES,
    **review_api.ROUTES,
    **tail_api.ROUTES,
    **overview_api.ROUTES, **console_pages.ROUTES,
    **admin_api.ROUTES,
}


def create_app(config: ServiceConfig) -> FastAPI:
    """The service's ASGI app (``sealtrail serve`` runs it on uvicorn)."""
    state = ServiceState.build(config)

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        state.start()
        yield
        state.stop()

    # The routers' routes, listed flat: since FastAPI 0.137 include_router() keeps an
    # included router as one node of app.routes, and what reads app.routes (the role test,
    # tools) should see every route. The routers set no defaults of their own to inherit.
    routes: list[BaseRoute] = [docs_pages.assets(),
                               Mount(CONSOLE_STATIC, ConsoleStatic(directory=STATIC_DIR),
                                     name="console-static")]
    for router in _ROUTERS:
        routes.extend(router.routes)
    app = FastAPI(title="sealtrail", version="0.1.0", lifespan=lifespan, routes=routes,
                  description="Tamper-evident audit trail: ingest, search, proofs.",
                  docs_url=None, redoc_url=None,  # docs_pages serves them from local files
                  swagger_ui_oauth2_redirect_url=OAUTH2_REDIRECT)
    app.state.service = state
    # The parts tests and tools reach for directly (state.service has them all).
    app.state.logs, app.state.keys = state.logs, state.keys
    app.state.metrics, app.state.verifier = state.metrics, state.verifier
    app.state.retention = state.retention
    boundary.install(app)
    openapi.install(app)
    return app
