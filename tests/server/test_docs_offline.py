"""``/docs`` (Swagger UI) and ``/redoc`` (ReDoc) work without Internet access: every script,
stylesheet and icon they reference is served by the service itself (from the
``fastapi-offline`` package's files), and nothing else is fetched from anywhere.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpx
import pytest

from tests.server.conftest import Service

# src="..." and href="..." in the page, and any absolute http(s) URL anywhere in it.
ATTR = re.compile(r"""(?:src|href)\s*=\s*["']([^"']+)["']""")
ABSOLUTE = re.compile(r"""https?://[^\s"'<>)]+""")
ASSET_TYPES = {".js": "javascript", ".css": "text/css", ".png": "image/png"}


def _assets(html: str) -> list[str]:
    return ATTR.findall(html)


@pytest.mark.parametrize(("page", "needs"), [
    ("/docs", {"swagger-ui-bundle.js", "swagger-ui.css"}),
    ("/redoc", {"redoc.standalone.js"}),
])
def test_api_pages_reference_only_local_assets_that_answer(
        service: Service, client: httpx.Client, page: str, needs: set[str]) -> None:
    """The page's scripts, stylesheets and icon are on this service, answer 200 with the
    right type, and the page names no other host (no CDN, no Google Fonts, no validator)."""
    response = client.get(page)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/html")
    html = response.text
    assert ABSOLUTE.findall(html) == [], "the page reaches outside the service"
    # ...and the browser is told to fetch nothing from elsewhere (ReDoc's footer logo).
    assert "default-src 'self'" in response.headers["content-security-policy"]
    assert "img-src 'self' data:;" in response.headers["content-security-policy"]
    urls = _assets(html)
    assert {u.rsplit("/", 1)[-1] for u in urls} >= needs, urls
    for url in urls:
        parts = urlsplit(url)
        assert not parts.scheme, url
        assert not parts.netloc, url
        assert parts.path.startswith("/"), url
        asset = client.get(urljoin(service.base_url, url))
        assert asset.status_code == 200, url
        suffix = "." + parts.path.rsplit(".", 1)[-1]
        assert ASSET_TYPES[suffix] in asset.headers["content-type"], (url, asset.headers)
        assert len(asset.content) > 1000, url
    # The spec the page loads is this service's own document.
    assert "/openapi.json" in html
    assert client.get("/openapi.json").json()["info"]["title"] == "sealtrail"


def test_the_swagger_ui_bundle_is_the_real_one(client: httpx.Client) -> None:
    """The served file is Swagger UI's bundle (it defines SwaggerUIBundle), not a stub."""
    html = client.get("/docs").text
    [js] = [u for u in _assets(html) if u.endswith("swagger-ui-bundle.js")]
    assert "SwaggerUIBundle" in client.get(js).text
    [redoc] = [u for u in _assets(client.get("/redoc").text) if u.endswith(".js")]
    assert "Redoc" in client.get(redoc).text


@pytest.mark.browser
def test_docs_render_in_headless_chromium_offline(service: Service, browser: Any) -> None:
    """With Playwright and the system's Chromium (never a downloaded browser), /docs and
    /redoc render the API's operations while every request off this service is refused."""
    outside: list[str] = []
    context = browser.new_context()
    try:
        page = context.new_page()

        def route(r: object) -> None:
            url = r.request.url  # type: ignore[attr-defined]
            if url.startswith(service.base_url):
                r.continue_()  # type: ignore[attr-defined]
            else:
                outside.append(url)
                r.abort()  # type: ignore[attr-defined]

        page.route("**/*", route)
        page.goto(f"{service.base_url}/docs")
        page.wait_for_selector(".opblock", timeout=30_000)
        assert page.locator(".opblock").count() > 10
        page.goto(f"{service.base_url}/redoc")
        page.wait_for_selector("[data-section-id]", timeout=30_000)
        assert page.locator("[data-section-id]").count() > 10
    finally:
        context.close()
    assert outside == []
