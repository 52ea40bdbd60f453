"""The API's pages: ``/docs`` (Swagger UI) and ``/redoc`` (ReDoc), served without a CDN.

Their JavaScript, CSS and icon are files of the ``fastapi-offline`` package, served from
:data:`DOCS_ASSETS` by this service: the pages work on a machine without Internet access and
load nothing from elsewhere (no Google Fonts, no validator badge); :data:`DOCS_CSP` tells the
browser so. The pages carry no data and need no key; the document they load is /openapi.json.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Final

from fastapi import APIRouter, Request
from fastapi.openapi.docs import (
    get_redoc_html,
    get_swagger_ui_html,
    get_swagger_ui_oauth2_redirect_html,
)
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from starlette.routing import Mount

DOCS_ASSETS: Final = "/docs/assets"
"""Where the API pages' own files are served (Swagger UI, ReDoc: no CDN)."""
DOCS_CSP: Final = ("default-src 'self'; script-src 'self' 'unsafe-inline'; "
                   "style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
                   "worker-src 'self' blob:; connect-src 'self'; frame-ancestors 'none'")
"""The API pages load from this service only (inline: the pages' own bootstrap code)."""
OAUTH2_REDIRECT: Final = "/docs/oauth2-redirect"
"""Swagger UI's OAuth2 redirect page (FastAPI's default path)."""

router = APIRouter(include_in_schema=False)


def assets() -> Mount:
    """The pages' files, served at :data:`DOCS_ASSETS` (a mount of its own: an APIRouter's
    routes are path operations)."""
    return Mount(DOCS_ASSETS, StaticFiles(directory=str(_asset_dir())), name="docs-assets")


@router.get("/docs")
async def swagger_ui(request: Request) -> HTMLResponse:
    root = request.scope.get("root_path", "")
    return _local_only(get_swagger_ui_html(
        openapi_url=f"{root}{request.app.openapi_url}", title="sealtrail API",
        swagger_js_url=f"{root}{DOCS_ASSETS}/swagger-ui-bundle.js",
        swagger_css_url=f"{root}{DOCS_ASSETS}/swagger-ui.css",
        swagger_favicon_url=f"{root}{DOCS_ASSETS}/favicon.png",
        oauth2_redirect_url=f"{root}{OAUTH2_REDIRECT}",
        swagger_ui_parameters={"validatorUrl": None, "persistAuthorization": False}))


@router.get(OAUTH2_REDIRECT)
async def swagger_ui_redirect() -> HTMLResponse:
    return _local_only(get_swagger_ui_oauth2_redirect_html())


@router.get("/redoc")
async def redoc(request: Request) -> HTMLResponse:
    root = request.scope.get("root_path", "")
    return _local_only(get_redoc_html(
        openapi_url=f"{root}{request.app.openapi_url}", title="sealtrail API",
        redoc_js_url=f"{root}{DOCS_ASSETS}/redoc.standalone.js",
        redoc_favicon_url=f"{root}{DOCS_ASSETS}/favicon.png", with_google_fonts=False))


def _local_only(page: HTMLResponse) -> HTMLResponse:
    # The pages' own inline scripts and styles, everything else from this service only
    # (ReDoc's footer would fetch a logo from cdn.redoc.ly: blocked, it hides itself).
    page.headers["Content-Security-Policy"] = DOCS_CSP
    return page


def _asset_dir() -> Path:
    """Where ``fastapi-offline`` keeps Swagger UI's and ReDoc's files (a directory of the
    installed package, so StaticFiles can serve it)."""
    return Path(str(resources.files("fastapi_offline") / "static"))
