"""Console sessions over real HTTP (no browser needed): sign-in with a locked keyring, the idle
timer and background requests, live tails that end with the session, the sign-in limit per
address, and the overview on logs that cannot answer every question.

httpx (rightly) keeps ``Secure`` cookies off plain HTTP, where a browser makes an exception for
loopback; these services run with ``ui_secure_cookies=False`` so the client behaves as the
browser does (tests/ui checks the flags themselves, in Chromium).
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from sealtrail.log.apikeys import ApiKeys
from sealtrail.log.auditlog import AuditLog
from sealtrail.log.users import Users
from sealtrail.server.app import ServiceConfig
from sealtrail.server.serving import build_server
from tests.server.conftest import running

PASSWORD = "correct horse battery staple"


class MovableClock:
    """The service's clock, moved by the test (the idle timeout is 15 minutes)."""

    def __init__(self) -> None:
        self.shift = timedelta(0)

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.shift


def _user(data: Path, name: str = "audrey", role: str = "auditor") -> None:
    users = Users(data)
    try:
        users.create(name, role, PASSWORD, datetime.now(UTC))
    finally:
        users.close()


def sign_in(client: httpx.Client, name: str = "audrey") -> httpx.Response:
    """The form, as a browser posts it (with its login-CSRF token)."""
    form = client.get("/ui/")
    token = re.search(r'name="signin_token" value="([^"]+)"', form.text)
    assert token is not None, form.text[:500]
    return client.post("/ui/sign-in", data={"username": name, "password": PASSWORD,
                                            "signin_token": token.group(1), "next": "/ui/"})


def _records(data: Path, prefix: str) -> list[dict[str, Any]]:
    with AuditLog.open(data, "default", create=False, passphrase="log passphrase") as alog:
        return [ev for ev in (alog.read(e) for e in alog.entries(0))
                if str(ev.get("action", "")).startswith(prefix)]


@pytest.fixture
def locked(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A service over an encrypted log whose passphrase it was not given (locked)."""
    data = tmp_path / "d"
    with AuditLog.open(data, "default", passphrase="log passphrase") as alog:
        alog.append({"actor": {"id": "u1", "ip": "192.0.2.1"}, "action": "a.b",
                     "outcome": "success"})
    _user(data)
    config = ServiceConfig(data, ui_secure_cookies=False, retention_interval=0,
                           verify_interval=0)
    with running(config) as url:
        yield url, data


def test_sign_in_with_a_locked_keyring_is_recorded_without_personal_fields(
        locked: tuple[str, Path]) -> None:
    """A service with no passphrase cannot seal: the sign-in still happens and is on record,
    without the address (which it could not seal), and the reason says so."""
    url, data = locked
    with httpx.Client(base_url=url) as client:
        answer = sign_in(client)
        assert answer.status_code == 303, answer.text[:500]
        assert client.get("/ui/").status_code == 200
        overview = client.get("/v1/logs/default/overview")
        assert overview.status_code == 200, overview.text
        assert overview.json()["retention"]["holds"] is None
        assert "keyring" in overview.json()["retention"]["holds_note"]
    (record,) = [r for r in _records(data, "sealtrail.console.sign_in")
                 if r["outcome"] == "success"]
    assert record["actor"]["id"] == "user:audrey"
    assert "ip" not in record["actor"]
    assert "keyring is locked" in record["reason"]


def test_overview_of_an_unencrypted_log(tmp_path: Path) -> None:
    """No holds exist without encryption: the overview says so instead of failing."""
    data = tmp_path / "d"
    with AuditLog.open(data, "default", encryption=False) as alog:
        alog.append({"actor": {"id": "u1"}, "action": "a.b", "outcome": "success",
                     "category": "admin"})
    _user(data)
    config = ServiceConfig(data, ui_secure_cookies=False, retention_interval=0)
    with running(config) as url, httpx.Client(base_url=url) as client:
        assert sign_in(client).status_code == 303
        doc = client.get("/v1/logs/default/overview").json()
    assert doc["retention"]["holds"] is None
    assert doc["activity"]["by_category"]["admin"] == 1  # beside the sign-in's own record


def test_background_requests_do_not_keep_an_idle_session(tmp_path: Path) -> None:
    """The overview's refresh (marked background) is answered but is not activity: after 15
    idle minutes the session ends however often the page refreshed; a request a person made
    keeps it."""
    data = tmp_path / "d"
    with AuditLog.open(data, "default") as alog:
        alog.append({"actor": {"id": "u1"}, "action": "a.b", "outcome": "success"})
    _user(data)
    clock = MovableClock()
    background = {"X-Sealtrail-Background": "1"}
    config = ServiceConfig(data, ui_secure_cookies=False, clock=clock, retention_interval=0)
    with running(config) as url, httpx.Client(base_url=url) as client:
        assert sign_in(client).status_code == 303
        for minutes in (5, 10, 14):
            clock.shift = timedelta(minutes=minutes)
            assert client.get("/v1/logs/default/overview", headers=background).status_code \
                == 200
        clock.shift = timedelta(minutes=16)
        assert client.get("/v1/logs/default/overview", headers=background).status_code == 401
        # The same with a person's request in between: it stays alive.
        clock.shift = timedelta(0)
        assert sign_in(client).status_code == 303
        clock.shift = timedelta(minutes=10)
        assert client.get("/v1/logs/default/overview").status_code == 200
        clock.shift = timedelta(minutes=20)
        assert client.get("/v1/logs/default/overview", headers=background).status_code == 200


def test_a_live_tail_ends_when_its_user_is_disabled(tmp_path: Path) -> None:
    """A stream opened by a session stops within seconds of the user being disabled (it
    does not run on to its max_seconds)."""
    data = tmp_path / "d"
    with AuditLog.open(data, "default") as alog:
        alog.append({"actor": {"id": "u1"}, "action": "a.b", "outcome": "success"})
    _user(data, "rita", "reader")
    config = ServiceConfig(data, ui_secure_cookies=False, retention_interval=0)
    with running(config) as url, httpx.Client(base_url=url, timeout=30) as client:
        assert sign_in(client, "rita").status_code == 303
        started = time.monotonic()

        def disable() -> None:
            time.sleep(1.0)
            users = Users(data)
            try:
                users.disable("rita", datetime.now(UTC))
            finally:
                users.close()

        worker = threading.Thread(target=disable)
        worker.start()
        with client.stream("GET", "/v1/logs/default/events/stream",
                           params={"max_seconds": 120, "background": 1}) as stream:
            assert stream.status_code == 200
            text = "".join(stream.iter_text())
        worker.join()
        assert time.monotonic() - started < 30
        assert "may no longer read" in text


def test_a_live_tail_ends_when_its_key_is_revoked(tmp_path: Path) -> None:
    """The same for an API key revoked while its stream is open."""
    data = tmp_path / "d"
    with AuditLog.open(data, "default") as alog:
        alog.append({"actor": {"id": "u1"}, "action": "a.b", "outcome": "success"})
    keys = ApiKeys(data)
    token = keys.create("reader", log=None, name="tail", now=datetime.now(UTC))
    keys.close()
    config = ServiceConfig(data, ui_secure_cookies=False, retention_interval=0)
    with running(config) as url, httpx.Client(base_url=url, timeout=30) as client:
        def revoke() -> None:
            time.sleep(1.0)
            again = ApiKeys(data)
            try:
                again.revoke(token.split("_")[1], datetime.now(UTC))
            finally:
                again.close()

        worker = threading.Thread(target=revoke)
        worker.start()
        started = time.monotonic()
        with client.stream("GET", "/v1/logs/default/events/stream",
                           params={"max_seconds": 120},
                           headers={"Authorization": f"Bearer {token}"}) as stream:
            text = "".join(stream.iter_text())
        worker.join()
        assert time.monotonic() - started < 30
        assert "may no longer read" in text


def test_junk_posts_do_not_spend_the_address_allowance(tmp_path: Path) -> None:
    """Posts without the form's token are refused before the per-address limit is touched,
    so they cannot lock others behind the same address out; real attempts are limited."""
    data = tmp_path / "d"
    with AuditLog.open(data, "default") as alog:
        alog.append({"actor": {"id": "u1"}, "action": "a.b", "outcome": "success"})
    _user(data)
    config = ServiceConfig(data, ui_secure_cookies=False, retention_interval=0)
    with running(config) as url, httpx.Client(base_url=url) as client:
        for _ in range(15):
            assert client.post("/ui/sign-in", data={"username": "x", "password": "y"}
                               ).status_code == 400
        assert sign_in(client).status_code == 303
        client.cookies.clear()  # signed out: each attempt below starts at the form
        codes = []
        for _ in range(14):
            form = client.get("/ui/").text
            token = re.search(r'name="signin_token" value="([^"]+)"', form)
            assert token is not None
            codes.append(client.post("/ui/sign-in", data={
                "username": "nobody", "password": "wrong password here",
                "signin_token": token.group(1)}).status_code)
        assert 429 in codes


def test_forwarded_allow_ips_reaches_uvicorn() -> None:
    """``serve --forwarded-allow-ips`` names the proxies whose X-Forwarded-For is believed."""
    server = build_server(object(), forwarded_allow_ips="10.0.0.7")
    assert server.config.forwarded_allow_ips == "10.0.0.7"
    assert server.config.proxy_headers


def test_overview_counts_follow_new_entries(tmp_path: Path) -> None:
    """The overview's counts are kept up to date entry by entry: after more appends they
    equal a count from scratch (a second service over the same data counts everything)."""
    data = tmp_path / "d"
    with AuditLog.open(data, "default") as alog:
        alog.append_many([{"actor": {"id": "u"}, "action": "a.b", "outcome": "success",
                           "category": "admin"}] * 5)
    keys = ApiKeys(data)
    token = keys.create("auditor", log=None, name="ov", now=datetime.now(UTC))
    keys.close()
    auth = {"Authorization": f"Bearer {token}"}

    def activity(url: str) -> dict[str, Any]:
        doc: dict[str, Any] = httpx.get(f"{url}/v1/logs/default/overview",
                                        headers=auth).json()["activity"]
        return doc

    config = ServiceConfig(data, retention_interval=0, verify_interval=0, monitor=None)
    with running(config) as url:
        assert activity(url)["by_category"] == {"admin": 5}
        with AuditLog.open(data, "default", create=False) as alog:
            alog.append_many([{"actor": {"id": "u"}, "action": "a.c", "outcome": "failure",
                               "category": "data_access"}] * 3)
        after = activity(url)
        assert after["by_category"] == {"admin": 5, "data_access": 3}
        assert after["by_outcome"] == {"success": 5, "failure": 3}
        assert sum(b["count"] for b in after["buckets"]) == 8
    with running(config) as again:
        fresh = activity(again)
    assert fresh["by_category"] == after["by_category"]
    assert fresh["buckets"] == after["buckets"] or fresh["since"] != after["since"]
