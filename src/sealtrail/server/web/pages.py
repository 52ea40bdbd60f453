"""The console's pages (``GET /ui/...``): who may open each, and how one is rendered.

A page is a template plus the ES module that gives it behaviour; the data comes from the
``/v1`` API, which the module calls with the session cookie (the page itself shows no event
content, so what a role may see is decided by the API's route-role table, once). Each page
names its roles in :data:`ROUTES`, part of the service's one table (``server/app.py``): a
bearer key of an allowed role may fetch the page too (tools, the role test), a request with
neither key nor session gets the sign-in form (200: it is the page a person arriving should
see), a bad key 401, a role not allowed a plain 403 page.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Final

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape

from sealtrail.log.apikeys import Principal
from sealtrail.server.deps import _bearer, authenticate, service, session_principal
from sealtrail.server.web.security import TEMPLATE_DIR, harden

CONSOLE_ROLES: Final = frozenset({"reader", "auditor", "admin"})
READERS: Final = frozenset({"reader", "auditor"})
AUDITORS: Final = frozenset({"auditor", "admin"})


@dataclass(frozen=True, slots=True)
class Page:
    """One page: its template, its module, its navigation id, who may open it."""

    template: str
    module: str
    nav: str
    roles: frozenset[str]
    title: str


PAGES: Final[dict[str, Page]] = {
    "/ui/": Page("overview.html", "overview.js", "overview", CONSOLE_ROLES, "Overview"),
    "/ui/logs/{log}/events": Page("explorer.html", "explorer.js", "explorer", READERS,
                                  "Explorer"),
    "/ui/logs/{log}/events/{index}": Page("event.html", "event.js", "explorer", READERS,
                                          "Event"),
    "/ui/logs/{log}/alerts": Page("alerts.html", "alerts.js", "alerts", CONSOLE_ROLES,
                                  "Alerts"),
    "/ui/logs/{log}/review": Page("review.html", "review.js", "review", AUDITORS, "Review"),
    "/ui/logs/{log}/compliance": Page("compliance.html", "compliance.js", "compliance",
                                      AUDITORS, "Compliance"),
    "/ui/admin": Page("admin.html", "admin.js", "admin", frozenset({"admin"}),
                      "Administration"),
}
ROUTES: Final = {("GET", path): page.roles for path, page in PAGES.items()}

# The navigation, in order: (nav id, label, path template, roles that see the link).
NAV: Final = (
    ("overview", "Overview", "/ui/", CONSOLE_ROLES),
    ("explorer", "Explorer", "/ui/logs/{log}/events", READERS),
    ("alerts", "Alerts", "/ui/logs/{log}/alerts", CONSOLE_ROLES),
    ("review", "Review", "/ui/logs/{log}/review", AUDITORS),
    ("compliance", "Compliance", "/ui/logs/{log}/compliance", AUDITORS),
    ("admin", "Administration", "/ui/admin", frozenset({"admin"})),
)
_INDEX: Final = re.compile(r"^[0-9]{1,15}\Z")

templates: Final = Environment(loader=FileSystemLoader(TEMPLATE_DIR),
                               autoescape=select_autoescape(default=True, default_for_string=True),
                               auto_reload=False, trim_blocks=True, lstrip_blocks=True)


def render(request: Request, template: str, status: int = 200, **context: Any) -> HTMLResponse:
    """A template as a hardened HTML answer (``context`` plus what every page has)."""
    context.setdefault("user", None)
    context.setdefault("role", None)
    context.setdefault("csrf", "")
    context.setdefault("logs", [])
    context.setdefault("log", None)
    context.setdefault("page", "")
    context.setdefault("module", None)
    context.setdefault("nav", [])
    context.setdefault("oidc", getattr(service(request).config, "oidc", None) is not None)
    html = templates.get_template(template).render(**context)
    return harden(HTMLResponse(html, status_code=status))  # type: ignore[return-value]


async def viewer(request: Request) -> Principal | None:
    """The caller: a bearer key if one is sent (HTTPException when it is bad), else the
    console session (None without one)."""
    credentials = await _bearer(request)
    if credentials is not None:
        return authenticate(request, credentials)
    if "authorization" in request.headers:  # another scheme: a tool, answered as the API is
        raise HTTPException(401, "a valid API key is required")
    return session_principal(request)


def signin_page(request: Request, *, status: int = 401, error: str | None = None,
                name: str = "", otp: bool = False, next_path: str = "/ui/") -> HTMLResponse:
    """The sign-in form (``/ui/`` and every page without a session)."""
    from sealtrail.server.web.auth import signin_form  # noqa: PLC0415 - auth imports pages

    return signin_form(request, status=status, error=error, name=name, otp=otp,
                       next_path=next_path)


def problem_page(request: Request, status: int, message: str,
                 principal: Principal | None = None) -> HTMLResponse:
    """A page that says what went wrong (403, 404, 429) in plain words."""
    response = render(request, "message.html", status=status, title=f"{status}",
                      message=message, **_chrome(request, principal, None, ""))
    if status == 401:
        response.headers["WWW-Authenticate"] = "Bearer"
    return response


def _chrome(request: Request, principal: Principal | None, log: str | None,
            nav_id: str) -> dict[str, Any]:
    """What the frame of every signed-in page shows: who, the logs, the navigation."""
    if principal is None:
        return {}
    state = service(request)
    names = [n for n in state.logs.names() if principal.may_use(n)]
    current = log if log is not None else (state.config.audit_log
                                           if state.config.audit_log in names
                                           else (names[0] if names else None))
    session = getattr(request.state, "session", None)
    nav = [(nid, label, path.replace("{log}", current or ""), nid == nav_id)
           for nid, label, path, roles in NAV
           if principal.role in roles and (current is not None or "{log}" not in path)]
    return {"user": principal.name, "role": principal.role, "logs": names, "log": current,
            "csrf": session.csrf if session is not None else "", "nav": nav,
            "kind": principal.kind}


def _page_endpoint(path: str, page: Page) -> Callable[[Request], Awaitable[HTMLResponse]]:
    async def show(request: Request) -> HTMLResponse:
        try:
            principal = await viewer(request)
        except HTTPException as exc:
            if exc.status_code == 401:
                return signin_page(request, next_path=request.url.path)
            return problem_page(request, exc.status_code, str(exc.detail))
        if principal is None:
            # No key and no session: a person arriving. The form is the answer (200: a
            # browser logs a 401 page as an error), not a challenge.
            return signin_page(request, status=200, next_path=request.url.path)
        log = request.path_params.get("log")
        if principal.role not in page.roles or (log is not None
                                                and not principal.may_use(log)):
            service(request).metrics.rejected.labels("forbidden").inc()
            return problem_page(request, 403, f"The {page.title} page is not open to the "
                                f"{principal.role} role.", principal)
        state = service(request)
        if log is not None and not state.logs.exists(log):
            return problem_page(request, 404, f"There is no log {log!r}.", principal)
        index = request.path_params.get("index")
        if index is not None and not _INDEX.match(index):
            return problem_page(request, 404, "An event is named by its index, a number.",
                                principal)
        if log is None and "{log}" not in path:
            # A page of no one log (the overview) shows the one asked for, if it may.
            asked = request.query_params.get("log")
            if asked is not None and principal.may_use(asked) and state.logs.exists(asked):
                log = asked
        return render(request, page.template, title=page.title, page=page.nav,
                      module=page.module, index=index,
                      **_chrome(request, principal, log, page.nav))

    show.__name__ = "page_" + page.template.removesuffix(".html")
    show.__doc__ = f"The console's {page.title} page ({path})."
    return show


router = APIRouter(include_in_schema=False)
for _path, _page in PAGES.items():
    router.add_api_route(_path, _page_endpoint(_path, _page), methods=["GET"],
                         response_class=HTMLResponse)


