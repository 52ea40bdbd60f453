"""Every console page, as every role that may open it, in a real browser: it renders with no
console error and no failed request, passes an axe-core accessibility scan (WCAG 2 A/AA),
reads at 200 % zoom (half the width: no sideways scrolling), and is saved as a screenshot
(docs/console.md shows them).

axe-core is a test-only dependency from the npm registry (``scripts/test`` installs it into
``.cache/npm``); it is injected into the page by the test with the page's CSP bypassed for
that context only, since the console's own CSP (rightly) refuses any script it did not serve.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from sealtrail.server.web.pages import PAGES
from tests.ui.conftest import (
    AXE,
    USERS,
    Console,
    axe_violations,
    sideways_at_200_percent,
    sign_in,
    watch_errors,
)

pytestmark = pytest.mark.browser

CASES = [(role, path) for role in USERS for path, page in PAGES.items() if role in page.roles]


def _url(path: str) -> str:
    return path.replace("{log}", "default").replace("{index}", "3")


def _settle(page: Any) -> None:
    """Wait until the page's module has done its first round of requests."""
    page.wait_for_load_state("networkidle")
    if page.locator("[data-proof-status]").count():
        page.wait_for_function(
            "document.querySelector('[data-proof-status]').dataset.proofStatus !== 'checking'",
            timeout=15000)


@pytest.mark.parametrize(("role", "path"), CASES, ids=[f"{r}:{p}" for r, p in CASES])
def test_page_renders_cleanly_and_is_accessible(browser: Any, console: Console,
                                                screenshot_dir: Path, role: str,
                                                path: str) -> None:
    """No console error or failed request, no axe violation, no sideways scroll at 200 %."""
    context = browser.new_context(viewport={"width": 1280, "height": 900}, bypass_csp=True)
    try:
        page = context.new_page()
        errors = watch_errors(page)
        sign_in(page, console.base_url, USERS[role])
        answer = page.goto(f"{console.base_url}{_url(path)}")
        assert answer is not None
        assert answer.status == 200, (path, answer.status)
        _settle(page)
        name = PAGES[path].template.removesuffix(".html")
        page.screenshot(path=str(screenshot_dir / f"{name}-{role}.png"), full_page=True)
        assert errors == [], errors
        found = axe_violations(page)
        assert found in ([], None), json.dumps(found, indent=1)
        # 200 % zoom: the same page at half the CSS width must not scroll sideways.
        wide = sideways_at_200_percent(page)
        assert wide <= 1, f"{path} scrolls sideways by {wide}px at 200 % zoom"
        page.screenshot(path=str(screenshot_dir / f"{name}-{role}-narrow.png"))
    finally:
        context.close()


def test_axe_is_installed_for_ci() -> None:
    """The accessibility scan is not silently skipped where npm is available."""
    import shutil

    if shutil.which("npm") is None:
        pytest.skip("no npm: the scan cannot be installed here")
    assert AXE.exists(), "run scripts/test (it installs axe-core into .cache/npm)"
