"""The console in a real browser: a real service on loopback with data, users of every role,
and Debian's Chromium driven by Playwright (never a downloaded browser).

Fixtures:

- ``browser`` (tests/conftest.py): one headless Chromium for the session (skips without).
- ``console``: a running service over a data directory with events (personal fields
  included), an alert, API keys and one console user per role (:data:`USERS`).
- ``signed_in_page(role)``: a fresh browser context signed in through the real form as that
  role's user; console errors and failed requests of the page are collected on
  ``page.console_errors`` (tests assert there are none).
- ``screenshot_dir``: where the tests save screenshots of the pages (``test-output/screenshots``
  under the repository, or ``$SEALTRAIL_SCREENSHOTS``); docs/console.md shows some of them.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from sealtrail.log.apikeys import ApiKeys
from sealtrail.log.auditlog import AuditLog
from sealtrail.log.users import Users
from sealtrail.server.app import ServiceConfig
from tests.server.conftest import make_data_dir, running

PASSWORD = "correct horse battery staple"
# role -> console user name
USERS: dict[str, str] = {"reader": "rita", "auditor": "audrey", "admin": "adam"}
REPO = Path(__file__).resolve().parents[2]


def sample_events(n: int = 30) -> list[dict[str, Any]]:
    """Events of every category and outcome, some with personal fields."""
    categories = ["authentication", "data_access", "data_change", "configuration", "admin"]
    outcomes = ["success", "success", "failure", "denied"]
    out = []
    for i in range(n):
        out.append({
            "actor": {"id": f"user-{i % 5}", "ip": f"198.51.100.{i % 7 + 1}",
                      "name": f"Person {i % 5}"},
            "action": ["user.login", "doc.read", "doc.update", "settings.change",
                       "role.grant"][i % 5],
            "category": categories[i % 5],
            "outcome": outcomes[i % 4],
            "target": {"type": "doc", "id": f"doc-{i}"},
            "source": {"service": "billing"},
            "reason": f"sample event {i}",
        })
    return out


@dataclass
class Console:
    """A running console: its URL, data directory, config and API tokens by caller."""

    base_url: str
    data_dir: Path
    config: ServiceConfig
    tokens: dict[str, str]
    users: dict[str, str] = field(default_factory=lambda: dict(USERS))

    def auth(self, caller: str) -> dict[str, str]:
        """The Authorization header of one API key."""
        return {"Authorization": f"Bearer {self.tokens[caller]}"}


def make_console_data(data_dir: Path, events: int = 30) -> dict[str, str]:
    """The data directory: logs, keys (tests/server's), sample events, a user per role."""
    tokens = make_data_dir(data_dir)
    with AuditLog.open(data_dir, "default") as alog:
        alog.append_many(sample_events(events))
    now = datetime.now(UTC)
    users = Users(data_dir)
    try:
        for role, name in USERS.items():
            users.create(name, role, PASSWORD, now)
    finally:
        users.close()
    keys = ApiKeys(data_dir)
    try:
        tokens["ingest_ui"] = keys.create("ingest", log=None, name="ui-ingest", now=now)
    finally:
        keys.close()
    return tokens


@pytest.fixture
def console(tmp_path: Path) -> Iterator[Console]:
    """A running service with data and a console user per role (cookies are Secure: Chromium
    treats loopback as a secure context, as it would a TLS site)."""
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    tokens = make_console_data(data_dir)
    config = ServiceConfig(data_dir, verify_delay=0.5, retention_interval=0)
    with running(config) as url:
        yield Console(url, data_dir, config, tokens)


@pytest.fixture(scope="session")
def screenshot_dir() -> Path:
    """Where screenshots go (kept after the run: CI artefacts, the docs' images)."""
    where = Path(os.environ.get("SEALTRAIL_SCREENSHOTS", REPO / "test-output" / "screenshots"))
    where.mkdir(parents=True, exist_ok=True)
    return where


def watch_errors(page: Any) -> list[str]:
    """Collect the page's console errors, uncaught exceptions and failed requests."""
    errors: list[str] = []
    page.on("console", lambda msg: errors.append(f"console: {msg.text}")
            if msg.type == "error" else None)
    page.on("pageerror", lambda exc: errors.append(f"exception: {exc}"))
    # A request the page's own navigation cancelled (ERR_ABORTED) is not a failure.
    page.on("requestfailed", lambda req: errors.append(f"request failed: {req.url} "
                                                       f"({req.failure})")
            if "/events/stream" not in req.url and "ERR_ABORTED" not in (req.failure or "")
            else None)
    return errors


AXE = REPO / ".cache" / "npm" / "node_modules" / "axe-core" / "axe.min.js"
_AXE_RUN = """async () => {
    const r = await axe.run(document, {runOnly: {type: 'tag',
        values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa']}});
    return r.violations.map(v => ({id: v.id, impact: v.impact,
        nodes: v.nodes.slice(0, 3).map(n => n.target.join(' '))}));
}"""


def axe_violations(page: Any) -> list[dict[str, Any]] | None:
    """axe-core's WCAG 2.0/2.1 A and AA violations on the page as it is now (None when axe
    is not installed: scripts/test fetches it from npm). The page's context must bypass the
    CSP: the console rightly refuses any script it did not serve."""
    if not AXE.exists():
        return None
    page.add_script_tag(path=str(AXE))
    found: list[dict[str, Any]] = page.evaluate(_AXE_RUN)
    return found


def sideways_at_200_percent(page: Any) -> int:
    """How far the page scrolls sideways at 200 % zoom (half the width: 640 px), in px."""
    page.set_viewport_size({"width": 640, "height": 900})
    wide: int = page.evaluate("document.documentElement.scrollWidth - "
                              "document.documentElement.clientWidth")
    return wide


def sign_in(page: Any, base_url: str, name: str, password: str = PASSWORD,
            otp: str | None = None) -> None:
    """Sign in through the real form."""
    page.goto(f"{base_url}/ui/")
    page.fill("input[name=username]", name)
    page.fill("input[name=password]", password)
    if otp is not None:
        page.fill("input[name=otp]", otp)
    page.click("[type=submit]")
    page.wait_for_load_state("load")


@pytest.fixture
def signed_in_page(browser: Any, console: Console) -> Iterator[Callable[[str], Any]]:
    """``signed_in_page(role)``: a new context and page, signed in as that role's user."""
    contexts: list[Any] = []

    def make(role: str) -> Any:
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        contexts.append(context)
        page = context.new_page()
        page.console_errors = watch_errors(page)
        sign_in(page, console.base_url, USERS[role])
        assert page.locator("input[name=password]").count() == 0, page.content()[:2000]
        return page

    yield make
    for context in contexts:
        context.close()
