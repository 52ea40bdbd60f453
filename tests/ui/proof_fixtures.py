"""Fixtures for the in-browser proof tests: a page that can import the console's ES modules
(``static/tlog.js``, ``static/pins.js``) to run them against the Python implementation, and a
console service that can be stopped and started again on the same address (the same browser
origin, so the same localStorage) over another data directory.

Kept out of ``conftest.py`` (the lead's: it provides ``browser``) so both can grow
independently: test modules import what they use from here.
"""

from __future__ import annotations

import functools
import http.server
import threading
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

import pytest
import uvicorn

import sealtrail.server
from sealtrail.server.app import ServiceConfig, create_app

STATIC = Path(sealtrail.server.__file__).parent / "web" / "static"


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
def tlog_page(browser: Any, static_url: str) -> Iterator[Any]:
    """A page on the static server, where ``import('/tlog.js')`` loads the module under test."""
    context = browser.new_context()
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(static_url + "/")
    try:
        yield page
    finally:
        context.close()
    assert errors == [], errors


@contextmanager
def running_on(config: ServiceConfig, port: int) -> Iterator[str]:
    """The app on uvicorn at 127.0.0.1:``port`` in a thread (as tests/server's ``running``,
    on a given port); yields its base URL."""
    server = uvicorn.Server(uvicorn.Config(create_app(config), host="127.0.0.1", port=port,
                                           log_level="warning"))
    thread = threading.Thread(target=server.run, name="uvicorn-proof", daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 20
        while not server.started:
            if not thread.is_alive():
                raise RuntimeError("uvicorn stopped before it started")
            if time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start within 20 s")
            time.sleep(0.01)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(20)
        if thread.is_alive():  # pragma: no cover - a hung shutdown is a failure of its own
            raise RuntimeError("uvicorn did not stop within 20 s")


def serve_console(data_dir: Path, port: int) -> AbstractContextManager[str]:
    """A console service over ``data_dir`` (made by ``make_console_data``) on ``port``; no
    monitor (its alert events are not what these tests look at)."""
    return running_on(ServiceConfig(data_dir, monitor=None, retention_interval=0), port)
