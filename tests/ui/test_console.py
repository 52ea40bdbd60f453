"""The console's frame in a real browser: sign-in (and its failures, lockout, sign-out), the
overview, who may open which page, CSRF and the Content Security Policy."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from sealtrail.log.auditlog import AuditLog
from tests.ui.conftest import PASSWORD, USERS, Console, sign_in, watch_errors

pytestmark = pytest.mark.browser


def _actions(console: Console) -> list[tuple[str, str, str]]:
    """(action, outcome, actor id) of the console's own records in the audit log."""
    with AuditLog.open(console.data_dir, "default", create=False) as alog:
        out = []
        for entry in alog.entries(0):
            ev = alog.read(entry)
            if str(ev.get("action", "")).startswith("sealtrail.console."):
                out.append((ev["action"], ev["outcome"], ev["actor"]["id"]))
        return out


def test_sign_in_form_then_overview(browser: Any, console: Console,
                                    screenshot_dir: Path) -> None:
    """/ui/ without a session is the sign-in form; a good sign-in leaves it for the
    overview, which fills itself from the API with no console error."""
    context = browser.new_context()
    page = context.new_page()
    errors = watch_errors(page)
    page.goto(f"{console.base_url}/ui/")
    assert page.locator("input[name=username]").count() == 1
    assert page.locator("input[name=password]").count() == 1
    assert page.locator("[type=submit]").count() == 1
    page.screenshot(path=str(screenshot_dir / "signin.png"), full_page=True)
    sign_in(page, console.base_url, USERS["auditor"])
    assert page.locator("input[name=password]").count() == 0
    page.wait_for_selector("#integrity dt")
    assert page.locator("#integrity").inner_text().count("Entries") == 1
    page.wait_for_selector("#rate-chart svg")
    page.screenshot(path=str(screenshot_dir / "overview.png"), full_page=True)
    assert errors == []
    assert ("sealtrail.console.sign_in", "success", "user:audrey") in _actions(console)
    context.close()
