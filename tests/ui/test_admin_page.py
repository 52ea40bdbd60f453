"""The administration page (``/ui/admin``, ``admin.html`` + ``admin.js``) in Debian's Chromium:
an admin creates a key (its token shown once, then gone from the page), revokes it after a
confirmation, creates a user, sees a refused body's error, and disables the user; no console
errors. The fixtures are the console's (``tests/ui/conftest.py``, through this directory's
conftest)."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from sealtrail.log.users import Users
from tests.ui.conftest import (
    AXE,
    PASSWORD,
    USERS,
    Console,
    axe_violations,
    sideways_at_200_percent,
    sign_in,
)

pytestmark = pytest.mark.browser


def test_admin_page_keys_and_users(signed_in_page: Callable[[str], Any], console: Console,
                                   screenshot_dir: Path) -> None:
    page = signed_in_page("admin")
    page.goto(f"{console.base_url}/ui/admin")
    page.wait_for_selector("#keys tbody tr[data-key]")
    page.wait_for_selector("#users tbody tr[data-user]")

    # A key: the token is shown once, works, and leaves the page when stored.
    page.fill("#key-name", "page-made key")
    page.select_option("#key-role", "ingest")
    page.select_option("#key-log", "default")
    page.click("#key-form button[type=submit]")
    page.wait_for_selector("#token-box:not(.hidden)")
    token = page.input_value("#token-value")
    assert token.startswith("st_")
    key = token.split("_")[1]
    assert page.locator(f'#keys tr[data-key="{key}"]').count() == 1
    assert httpx.get(f"{console.base_url}/v1/logs/default/checkpoint",
                     headers={"Authorization": f"Bearer {token}"}).status_code == 200
    page.screenshot(path=str(screenshot_dir / "admin-token.png"), full_page=True)
    page.click("#token-done")
    assert page.input_value("#token-value") == ""
    assert token not in page.content()
    listed = httpx.get(f"{console.base_url}/v1/keys", headers=console.auth("admin")).text
    assert token.rsplit("_", 1)[1] not in listed

    # Revoke: the first click asks, Cancel keeps the key, Confirm revokes it.
    row = page.locator(f'#keys tr[data-key="{key}"]')
    row.get_by_role("button", name="Revoke").click()
    row.get_by_role("button", name="Cancel").click()
    assert httpx.get(f"{console.base_url}/v1/logs/default/checkpoint",
                     headers={"Authorization": f"Bearer {token}"}).status_code == 200
    row.get_by_role("button", name="Revoke").click()
    row.get_by_role("button", name="Confirm revoke").click()
    page.wait_for_selector(f'#keys tr[data-key="{key}"] .badge.bad')
    assert httpx.get(f"{console.base_url}/v1/logs/default/checkpoint",
                     headers={"Authorization": f"Bearer {token}"}).status_code == 401

    # A user: a short password is refused with the API's message, nothing made.
    page.fill("#user-name", "pat")
    page.select_option("#user-role", "auditor")
    page.fill("#user-password", "too short")
    page.click("#user-form button[type=submit]")
    page.wait_for_selector("#user-form-error [role=alert]")
    assert "password" in page.inner_text("#user-form-error")
    assert page.locator('#users tr[data-user="pat"]').count() == 0
    page.fill("#user-password", PASSWORD)
    page.click("#user-form button[type=submit]")
    page.wait_for_selector('#users tr[data-user="pat"]')
    assert "created" in page.inner_text("#admin-status")
    users = Users(console.data_dir)
    try:
        assert users.sign_in("pat", PASSWORD, None, datetime.now(UTC)).outcome == "ok"
        row = page.locator('#users tr[data-user="pat"]')
        row.get_by_role("button", name="Disable").click()
        row.get_by_role("button", name="Confirm disable").click()
        page.wait_for_selector('#users tr[data-user="pat"] .badge.bad')
        assert users.sign_in("pat", PASSWORD, None, datetime.now(UTC)).outcome == "disabled"
    finally:
        users.close()
    page.screenshot(path=str(screenshot_dir / "admin.png"), full_page=True)
    # The browser reports the one refused request (the short password) itself; nothing else.
    assert [e for e in page.console_errors if "status of 422" not in e] == []
    assert len(page.console_errors) == 1


def test_admin_page_on_a_narrow_screen(signed_in_page: Callable[[str], Any],
                                       console: Console, screenshot_dir: Path) -> None:
    """At 200 % zoom on a narrow window every form control stays reachable and labelled."""
    page = signed_in_page("admin")
    page.set_viewport_size({"width": 400, "height": 800})
    page.goto(f"{console.base_url}/ui/admin")
    page.wait_for_selector("#users tbody tr[data-user]")
    for control in ("#key-name", "#key-role", "#key-log", "#key-expires", "#user-name",
                    "#user-role", "#user-password"):
        assert page.locator(control).is_visible(), control
        assert page.locator(f'label[for="{control[1:]}"]').count() == 1, control
    page.screenshot(path=str(screenshot_dir / "admin-narrow.png"), full_page=True)
    assert page.console_errors == []


def test_admin_page_is_accessible_and_fits_at_200_percent(browser: Any,
                                                          console: Console) -> None:
    """With a new token shown and a revocation asking for confirmation, axe-core finds no
    WCAG 2.1 A/AA violation, and the page does not scroll sideways at 200 % zoom (the tables
    scroll inside their focusable regions)."""
    if not AXE.is_file():
        pytest.skip("axe-core is not installed (scripts/test installs it into .cache/npm)")
    # The CSP is bypassed in this context only, to inject axe (the other tests keep it).
    context = browser.new_context(viewport={"width": 1280, "height": 900}, bypass_csp=True)
    try:
        page = context.new_page()
        sign_in(page, console.base_url, USERS["admin"])
        page.goto(f"{console.base_url}/ui/admin")
        page.wait_for_selector("#keys tbody tr[data-key]")
        page.fill("#key-name", "a11y key")
        page.click("#key-form button[type=submit]")
        page.wait_for_selector("#token-box:not(.hidden)")
        page.locator("#keys tbody tr[data-key]").first.get_by_role(
            "button", name="Revoke").click()
        found = axe_violations(page)
        assert found == [], json.dumps(found, indent=1)
        wide = sideways_at_200_percent(page)
        assert wide <= 1, f"the page scrolls sideways by {wide}px at 200 % zoom"
    finally:
        context.close()
