"""The console's frame in a real browser: sign-in (and its failures, lockout, sign-out), the
overview, who may open which page, CSRF and the Content Security Policy."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from sealtrail.log.auditlog import AuditLog
from sealtrail.log.users import Users
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


def _attempt(page: Any, base_url: str, name: str, password: str) -> None:
    page.goto(f"{base_url}/ui/")
    page.fill("input[name=username]", name)
    page.fill("input[name=password]", password)
    page.click("[type=submit]")
    page.wait_for_load_state("load")


def test_wrong_password_is_refused_then_locked(browser: Any, console: Console) -> None:
    """Wrong passwords keep the form and say so; repeated failures lock the name (even the
    right password is refused while locked); each failure and the lockout are audited."""
    context = browser.new_context()
    page = context.new_page()
    _attempt(page, console.base_url, USERS["auditor"], "not the password at all")
    assert page.locator("input[name=password]").count() == 1
    assert "Wrong user name" in page.locator("#signin-error").inner_text()
    # Ten failures for the reader, spaced out in the recent past (the backoff between them
    # is not waited for here): the tenth locks the name for 30 minutes (PCI DSS 8.3.4).
    users = Users(console.data_dir)
    try:
        start = datetime.now(UTC) - timedelta(minutes=25)
        for i in range(10):
            users.sign_in(USERS["reader"], "still not the password", None,
                          start + timedelta(minutes=2 * i))
    finally:
        users.close()
    _attempt(page, console.base_url, USERS["reader"], PASSWORD)
    assert page.locator("input[name=password]").count() == 1, "locked: even the right one"
    assert "locked" in page.locator("#signin-error").inner_text()
    actions = _actions(console)
    assert ("sealtrail.console.sign_in", "failure", "user:audrey") in actions
    assert ("sealtrail.console.lockout", "denied", "user:rita") in actions
    assert ("sealtrail.console.sign_in", "success", "user:rita") not in actions
    # Another user is not affected by rita's lockout.
    sign_in(page, console.base_url, USERS["auditor"])
    assert page.locator("input[name=password]").count() == 0
    context.close()


def test_unknown_user_is_refused_like_a_wrong_password(browser: Any, console: Console) -> None:
    """An unknown name gets the same answer as a wrong password; the audit record does not
    put the typed text in actor.id (it could be a password typed into the wrong field)."""
    context = browser.new_context()
    page = context.new_page()
    _attempt(page, console.base_url, "hunter2-oops", "whatever password")
    assert "Wrong user name" in page.locator("#signin-error").inner_text()
    assert ("sealtrail.console.sign_in", "failure", "user:(unknown)") in _actions(console)
    assert all("hunter2" not in a[2] for a in _actions(console))
    context.close()


def test_sign_out_ends_the_session(signed_in_page: Callable[[str], Any],
                                   console: Console) -> None:
    """Signing out returns to the form, and the old cookie no longer opens the API."""
    page = signed_in_page("reader")
    cookie = next(c for c in page.context.cookies() if c["name"] == "sealtrail_session")
    assert cookie["httpOnly"]
    assert cookie["secure"]
    assert cookie["sameSite"] == "Strict"
    page.click("text=Sign out")
    page.wait_for_load_state("load")
    assert page.locator("input[name=password]").count() == 1
    with httpx.Client(base_url=console.base_url,
                      cookies={"sealtrail_session": cookie["value"]}) as client:
        answer = client.get("/v1/logs/default/overview")
    assert answer.status_code == 401
    assert ("sealtrail.console.sign_out", "success", "user:rita") in _actions(console)


def test_reader_cannot_open_admin_or_auditor_pages(signed_in_page: Callable[[str], Any],
                                                   console: Console) -> None:
    """A reader sees no link to them, gets a 403 page on them, and the API refuses the
    auditor-only reads the pages would make (the same route-role table)."""
    page = signed_in_page("reader")
    nav = page.locator("nav").inner_text()
    assert "Administration" not in nav
    assert "Compliance" not in nav
    assert "Review" not in nav
    for path in ("/ui/admin", "/ui/logs/default/compliance", "/ui/logs/default/review"):
        answer = page.goto(f"{console.base_url}{path}")
        assert answer is not None, path
        assert answer.status == 403, path
        assert "not open to the reader role" in page.locator("main").inner_text()
    status = page.evaluate(
        "async () => (await fetch('/v1/logs/default/reports?standard=soc2')).status")
    assert status == 403
    status = page.evaluate("async () => (await fetch('/v1/users')).status")
    assert status == 403


def test_admin_reads_no_event_content(signed_in_page: Callable[[str], Any],
                                      console: Console) -> None:
    """The admin console has no explorer, and its session is refused event content."""
    page = signed_in_page("admin")
    assert "Explorer" not in page.locator("nav").inner_text()
    answer = page.goto(f"{console.base_url}/ui/logs/default/events/0")
    assert answer is not None
    assert answer.status == 403
    status = page.evaluate("async () => (await fetch('/v1/logs/default/entries?start=0&end=1'))"
                           ".status")
    assert status == 403


def test_a_change_needs_the_csrf_token(signed_in_page: Callable[[str], Any],
                                       console: Console) -> None:
    """With the session cookie alone a change is refused (403); with the page's token it is
    done. The cookie is what a forged cross-site request would carry, never the token."""
    page = signed_in_page("admin")
    body = '{"role": "reader", "name": "csrf-probe", "log": "default"}'
    without = page.evaluate(
        "async (b) => (await fetch('/v1/keys', {method: 'POST', body: b, "
        "headers: {'Content-Type': 'application/json'}})).status", body)
    assert without == 403
    wrong = page.evaluate(
        "async (b) => (await fetch('/v1/keys', {method: 'POST', body: b, "
        "headers: {'Content-Type': 'application/json', 'X-CSRF-Token': 'x'}})).status", body)
    assert wrong == 403
    keys = httpx.get(f"{console.base_url}/v1/keys", headers=console.auth("admin")).json()
    assert all(k["name"] != "csrf-probe" for k in keys["keys"])
    done = page.evaluate(
        "async (b) => (await fetch('/v1/keys', {method: 'POST', body: b, headers: "
        "{'Content-Type': 'application/json', 'X-CSRF-Token': document.querySelector("
        "'meta[name=csrf-token]').content}})).status", body)
    assert done == 201


def test_a_cross_site_form_cannot_act_for_the_user(
        signed_in_page: Callable[[str], Any], console: Console, tmp_path: Path) -> None:
    """A page on another site (``localhost`` is another site than ``127.0.0.1``) that posts a
    form to the service changes nothing: the cookie is SameSite=Strict and the token is
    missing. Checked on sign-out (a form route) and on the API."""
    page = signed_in_page("admin")
    port = console.base_url.rsplit(":", 1)[1]
    attack = (f'<form id="f" method="post" action="http://127.0.0.1:{port}/v1/keys">'
              '<input name="role" value="admin"><input name="name" value="evil"></form>'
              '<form id="g" method="post" action="http://127.0.0.1:'
              f'{port}/ui/sign-out"></form>')
    page.route("http://localhost:9/attack", lambda route: route.fulfill(
        status=200, content_type="text/html", body=attack))
    page.goto("http://localhost:9/attack")
    with page.expect_navigation():
        page.evaluate("document.getElementById('f').submit()")
    assert "evil" not in str(httpx.get(f"{console.base_url}/v1/keys",
                                       headers=console.auth("admin")).json())
    page.goto("http://localhost:9/attack")
    with page.expect_navigation():
        page.evaluate("document.getElementById('g').submit()")
    # Still signed in: the forged sign-out did not end the session.
    page.goto(f"{console.base_url}/ui/admin")
    assert page.locator("body").get_attribute("data-user") == USERS["admin"]
    assert ("sealtrail.console.sign_out", "success", "user:adam") not in _actions(console)


def test_every_answer_carries_the_strict_csp(console: Console) -> None:
    """Pages, the sign-in form and the static files all carry a CSP with no inline script
    or style, no framing, and connections to this origin only."""
    with httpx.Client(base_url=console.base_url) as client:
        for path in ("/ui/", "/ui/static/api.js", "/ui/logs/default/events",
                     "/ui/static/console.css"):
            csp = client.get(path).headers["content-security-policy"]
            assert "script-src 'self';" in csp, path
            assert "unsafe-inline" not in csp, path
            assert "frame-ancestors 'none'" in csp, path
            assert "connect-src 'self'" in csp, path
            assert "style-src 'self';" in csp, path


def test_idle_session_ends_after_15_minutes(browser: Any, tmp_path: Path) -> None:
    """PCI DSS 8.2.8: a session idle for more than 15 minutes needs a new sign-in (the
    service's clock is moved, not waited for); activity within the window keeps it."""
    from datetime import timedelta

    from sealtrail.server.app import ServiceConfig
    from tests.server.conftest import running
    from tests.ui.conftest import make_console_data

    shift = [timedelta(0)]

    def clock() -> Any:
        from datetime import UTC, datetime
        return datetime.now(UTC) + shift[0]

    data = tmp_path / "d"
    data.mkdir()
    make_console_data(data, events=3)
    with running(ServiceConfig(data, clock=clock, retention_interval=0)) as url:
        context = browser.new_context()
        page = context.new_page()
        sign_in(page, url, USERS["auditor"])
        assert page.locator("input[name=password]").count() == 0
        shift[0] = timedelta(minutes=14)
        page.goto(f"{url}/ui/")
        assert page.locator("input[name=password]").count() == 0
        shift[0] = timedelta(minutes=14 + 16)
        page.goto(f"{url}/ui/")
        assert page.locator("input[name=password]").count() == 1
        context.close()


def _totp(secret_b32: str, at: float) -> str:
    """RFC 6238 written out here (not the code under test): HMAC-SHA-1, 30 s, 6 digits."""
    import base64
    import hashlib
    import hmac
    import struct

    key = base64.b32decode(secret_b32 + "=" * (-len(secret_b32) % 8), casefold=True)
    mac = hmac.new(key, struct.pack(">Q", int(at // 30)), hashlib.sha1).digest()
    offset = mac[-1] & 0x0F
    code = (struct.unpack(">I", mac[offset:offset + 4])[0] & 0x7FFFFFFF) % 1_000_000
    return f"{code:06d}"


def test_totp_second_factor(browser: Any, console: Console) -> None:
    """A user with TOTP enrolled needs the code: without it the form asks for it, a wrong
    one is refused, the right one (computed independently) signs in."""
    import time
    from datetime import UTC, datetime

    from sealtrail.log.users import Users

    users = Users(console.data_dir)
    try:
        secret = users.enroll_totp(USERS["admin"], datetime.now(UTC))
    finally:
        users.close()
    context = browser.new_context()
    page = context.new_page()
    _attempt(page, console.base_url, USERS["admin"], PASSWORD)
    assert "one-time code" in page.locator("#signin-error").inner_text()
    sign_in(page, console.base_url, USERS["admin"], otp="000000" if _totp(
        secret, time.time()) != "000000" else "111111")
    assert page.locator("input[name=password]").count() == 1
    sign_in(page, console.base_url, USERS["admin"], otp=_totp(secret, time.time()))
    assert page.locator("input[name=password]").count() == 0
    context.close()
