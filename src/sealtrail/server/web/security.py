"""The headers every console answer carries, and the static files it serves.

The Content Security Policy allows scripts, styles and connections to this origin only and no
inline script or style at all (every behaviour is in an ES module file): an injected
``<script>`` or ``onclick=`` in a page does nothing. Pages are never cached (they carry the
CSRF token and whatever the user may see) nor framed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

from starlette.responses import Response
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

CSP: Final = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
              "connect-src 'self'; font-src 'self'; form-action 'self'; "
              "frame-ancestors 'none'; base-uri 'none'")
HEADERS: Final = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
}
STATIC_DIR: Final = Path(__file__).resolve().parent / "static"
TEMPLATE_DIR: Final = Path(__file__).resolve().parent / "templates"


def harden(response: Response, *, cache: bool = False) -> Response:
    """Put the console's security headers on ``response`` (and no-store unless ``cache``)."""
    response.headers.update(HEADERS)
    if not cache:
        response.headers["Cache-Control"] = "no-store"
    return response


class ConsoleStatic(StaticFiles):
    """The console's scripts and stylesheet (``/ui/static/``), with the console's headers;
    revalidated on each load (``no-cache``) so an upgrade never runs a stale module."""

    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        harden(response, cache=True)
        response.headers["Cache-Control"] = "no-cache"
        if path.endswith(".js"):
            response.headers["Content-Type"] = "text/javascript; charset=utf-8"
        return response
