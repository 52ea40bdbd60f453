"""Fixtures for the in-browser proof tests: a headless Chromium, and a page that can import the
console's ES modules (``static/tlog.js``) to run them against the Python implementation.

Kept out of ``conftest.py`` (the lead's) so both can grow independently: test modules import
what they use from here. The browser is Debian's ``chromium`` driven by Playwright; nothing is
downloaded.
"""

from __future__ import annotations

import functools
import http.server
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import sealtrail.server

STATIC = Path(sealtrail.server.__file__).parent / "web" / "static"


def chromium_path() -> str:
    """The system Chromium, or skip (``.ci/run`` installs it with apt)."""
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        pytest.skip("no system chromium")
    return path


class _Quiet(http.server.SimpleHTTPRequestHandler):
    """Serves the static directory; no request log on stderr, modules as JavaScript."""

    # The base declares it an instance attribute; a class-level override is how it is meant.
    extensions_map = {  # noqa: RUF012
        **http.server.SimpleHTTPRequestHandler.extensions_map, ".js": "text/javascript"}

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the test output is for failures."""


@pytest.fixture(scope="session")
def static_url() -> Iterator[str]:
    """The console's static directory served on loopback (for module-only tests that need
    no service: the module is imported as the console imports it)."""
    handler = functools.partial(_Quiet, directory=str(STATIC))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, name="static", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


@pytest.fixture(scope="module")
def proof_browser() -> Iterator[Any]:
    """A headless Chromium for one test module (Playwright's sync API)."""
    sync_api = pytest.importorskip("playwright.sync_api")
    executable = chromium_path()
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, headless=True)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture(scope="module")
def tlog_page(proof_browser: Any, static_url: str) -> Iterator[Any]:
    """A page on the static server, where ``import('/tlog.js')`` loads the module under test."""
    context = proof_browser.new_context()
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(static_url + "/")
    try:
        yield page
    finally:
        context.close()
    assert errors == [], errors
