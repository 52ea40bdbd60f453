"""The administration API (``server/admin_api.py``) over a real uvicorn: API keys and console
users, admin only; bad bodies refused naming the field with nothing stored; a key's token in
its creation answer only; every change an event in the service's audit log.

:data:`ADMIN_REQUESTS` gives ``tests/server/test_roles.py`` a valid request for each route.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from sealtrail.core.timefmt import format_time
from sealtrail.log.apikeys import ApiKeys
from sealtrail.log.users import SessionInfo, Users
from sealtrail.server.admin_api import ROUTES
from tests.server.conftest import Service, key_id

PASSWORD = "a long enough password"
_names = itertools.count()


def _fresh_key(service: Service) -> str:
    """The id of an active key made just now (as ``sealtrail keys create``)."""
    keys = ApiKeys(service.data_dir)
    try:
        return key_id(keys.create("reader", log=None, name=f"spare-{next(_names)}",
                                  now=datetime.now(UTC)))
    finally:
        keys.close()


def _fresh_user(service: Service) -> str:
    """The name of an active console user made just now (as ``sealtrail users create``)."""
    name = f"spare-{next(_names)}"
    users = Users(service.data_dir)
    try:
        users.create(name, "reader", PASSWORD, datetime.now(UTC))
    finally:
        users.close()
    return name


# A minimally valid request for each route (test_roles.py runs them as every caller).
ADMIN_REQUESTS: dict[tuple[str, str], Callable[[Service], dict[str, Any]]] = {
    ("GET", "/v1/keys"): lambda _s: {"method": "GET", "url": "/v1/keys"},
    ("POST", "/v1/keys"): lambda _s: {"method": "POST", "url": "/v1/keys", "json": {
        "role": "ingest", "log": "default", "name": f"new-{next(_names)}"}},
    ("POST", "/v1/keys/{key_id}/revoke"): lambda s: {
        "method": "POST", "url": f"/v1/keys/{_fresh_key(s)}/revoke"},
    ("GET", "/v1/users"): lambda _s: {"method": "GET", "url": "/v1/users"},
    ("POST", "/v1/users"): lambda _s: {"method": "POST", "url": "/v1/users", "json": {
        "name": f"new-{next(_names)}", "role": "reader", "password": PASSWORD}},
    ("POST", "/v1/users/{name}/disable"): lambda s: {
        "method": "POST", "url": f"/v1/users/{_fresh_user(s)}/disable"},
}
ADMIN_OK: dict[tuple[str, str], int] = {
    ("POST", "/v1/keys/{key_id}/revoke"): 200, ("POST", "/v1/users/{name}/disable"): 200}
"""The routes whose success is not what test_roles assumes of a POST (201)."""


@pytest.fixture(scope="module")
def admin(client: httpx.Client, service: Service) -> Iterator[httpx.Client]:
    """The module's client, as the admin key."""
    client.headers.update(service.auth("admin"))
    yield client
    del client.headers["Authorization"]


def _state(client: httpx.Client, service: Service) -> tuple[Any, Any]:
    keys = client.get("/v1/keys", headers=service.auth("admin")).json()
    users = client.get("/v1/users", headers=service.auth("admin")).json()
    return keys, users


def _events(client: httpx.Client, service: Service, action: str) -> list[dict[str, Any]]:
    found = client.get("/v1/logs/default/events", params={"action": action, "limit": 1000},
                       headers=service.auth("auditor"))
    assert found.status_code == 200, found.text
    return [row["event"] for row in found.json()["events"]]


def test_every_route_is_for_admins_only(service: Service, client: httpx.Client) -> None:
    """Ingest, reader and auditor keys get 403 and no key 401 on every route, and nothing
    changes."""
    before = _state(client, service)
    for route in ROUTES:
        for caller in ("ingest_all", "ingest_default", "reader_all", "auditor", None):
            request = ADMIN_REQUESTS[route](service)
            headers = service.auth(caller) if caller else {}
            answer = client.request(**request, headers=headers)
            assert answer.status_code == (403 if caller else 401), (route, caller, answer.text)
            assert "token" not in answer.json()
    after = _state(client, service)
    # The spare keys and users the revoke and disable requests made are all that is new.
    assert [k for k in after[0]["keys"] if not k["name"].startswith("spare-")] \
        == [k for k in before[0]["keys"] if not k["name"].startswith("spare-")]
    assert all(k["revoked"] is None for k in after[0]["keys"] if k["name"].startswith("spare-"))
    assert all(u["disabled"] is None for u in after[1]["users"])
    assert not [u for u in after[1]["users"] if u["name"].startswith("new-")]


def test_a_key_is_made_and_its_token_shown_once(service: Service, admin: httpx.Client) -> None:
    """201 with the token; the token works; the listing and the audit event name the key but
    never show the token or its secret."""
    expires = format_time(datetime.now(UTC) + timedelta(days=30))
    made = admin.post("/v1/keys", json={"role": "reader", "log": "other", "name": "dashboard",
                                        "expires": expires})
    assert made.status_code == 201, made.text
    body = made.json()
    token = body["token"]
    assert body["key"] == {"id": key_id(token), "role": "reader", "log": "other",
                           "name": "dashboard", "created": body["key"]["created"],
                           "expires": expires, "revoked": None, "client_cert_sha256": None}
    secret = token.rsplit("_", 1)[1]
    assert admin.get("/v1/logs/other/checkpoint",
                     headers={"Authorization": f"Bearer {token}"}).status_code == 200
    assert admin.get("/v1/logs/default/checkpoint",
                     headers={"Authorization": f"Bearer {token}"}).status_code == 403
    listing = admin.get("/v1/keys")
    assert listing.status_code == 200
    assert secret not in listing.text
    assert body["key"] in listing.json()["keys"]
    recorded = [e for e in _events(admin, service, "sealtrail.key.create")
                if e["target"]["id"] == key_id(token)]
    assert len(recorded) == 1
    assert recorded[0]["actor"]["id"] == f"key:{service.key_id('admin')}"
    assert recorded[0]["category"] == "admin"
    assert recorded[0]["metadata"]["role"] == "reader"
    assert secret not in json.dumps(recorded)


@pytest.mark.parametrize(("body", "field"), [
    ({"name": "x"}, "role"),
    ({"role": "root", "name": "x"}, "role"),
    ({"role": 7, "name": "x"}, "role"),
    ({"role": "reader"}, "name"),
    ({"role": "reader", "name": ""}, "name"),
    ({"role": "reader", "name": "x" * 129}, "name"),
    ({"role": "admin", "name": "x", "log": "default"}, "log"),
    ({"role": "ingest", "name": "x", "log": "nosuchlog"}, "log"),
    ({"role": "ingest", "name": "x", "log": 3}, "log"),
    ({"role": "ingest", "name": "x", "expires": "2001-01-01T00:00:00Z"}, "expires"),
    ({"role": "ingest", "name": "x", "expires": "next week"}, "expires"),
    ([{"role": "ingest", "name": "x"}], "body"),
    ("not json", "body"),
    ({"role": "ingest", "name": "x", "pad": "y" * 10_000}, "body"),
])
def test_a_bad_key_body_names_the_field_and_stores_nothing(
        service: Service, admin: httpx.Client, body: Any, field: str) -> None:
    before = admin.get("/v1/keys").json()
    if body == "not json":
        answer = admin.post("/v1/keys", content=b"{role: ingest",
                            headers={"Content-Type": "application/json"})
    else:
        answer = admin.post("/v1/keys", json=body)
    assert answer.status_code == 422, answer.text
    assert answer.json()["field"] == field
    assert "token" not in answer.json()
    assert admin.get("/v1/keys").json() == before


def test_revoke_a_key(service: Service, admin: httpx.Client) -> None:
    """Revoked at once (its token then gets 401), recorded; again 409; unknown 404."""
    token = admin.post("/v1/keys", json={"role": "auditor", "name": "temp"}).json()["token"]
    key = key_id(token)
    bearer = {"Authorization": f"Bearer {token}"}
    assert admin.get("/v1/logs", headers=bearer).status_code == 200
    answer = admin.post(f"/v1/keys/{key}/revoke")
    assert answer.status_code == 200, answer.text
    assert answer.json()["key"]["revoked"] is not None
    assert admin.get("/v1/logs", headers=bearer).status_code == 401
    assert admin.post(f"/v1/keys/{key}/revoke").status_code == 409
    assert admin.post("/v1/keys/0123456789abcdef/revoke").status_code == 404
    assert admin.post("/v1/keys/not-an-id/revoke").status_code == 404
    recorded = [e for e in _events(admin, service, "sealtrail.key.revoke")
                if e["target"]["id"] == key]
    assert len(recorded) == 1
    assert recorded[0]["metadata"]["name"] == "temp"


def test_a_user_is_made_listed_and_disabled(service: Service, admin: httpx.Client) -> None:
    """201 and the user signs in; the listing shows no hash; disable answers 200, ends the
    user's sign-in, and is recorded; again 409; unknown 404."""
    made = admin.post("/v1/users", json={"name": "carol@example.org", "role": "auditor",
                                         "password": PASSWORD})
    assert made.status_code == 201, made.text
    assert made.json()["user"] == {"name": "carol@example.org", "role": "auditor",
                                   "source": "local", "created": made.json()["user"]["created"],
                                   "disabled": None, "mfa": False}
    listing = admin.get("/v1/users")
    assert made.json()["user"] in listing.json()["users"]
    assert "argon2" not in listing.text
    assert PASSWORD not in listing.text
    users = Users(service.data_dir)
    try:
        assert users.sign_in("carol@example.org", PASSWORD, None,
                             datetime.now(UTC)).outcome == "ok"
        again = admin.post("/v1/users", json={"name": "carol@example.org", "role": "admin",
                                              "password": PASSWORD})
        assert again.status_code == 409
        assert again.json()["field"] == "name"
        gone = admin.post("/v1/users/carol@example.org/disable")
        assert gone.status_code == 200, gone.text
        assert gone.json()["user"]["disabled"] is not None
        assert users.sign_in("carol@example.org", PASSWORD, None,
                             datetime.now(UTC)).outcome == "disabled"
    finally:
        users.close()
    assert admin.post("/v1/users/carol@example.org/disable").status_code == 409
    assert admin.post("/v1/users/nobody/disable").status_code == 404
    for action in ("sealtrail.user.create", "sealtrail.user.disable"):
        recorded = [e for e in _events(admin, service, action)
                    if e["target"]["id"] == "carol@example.org"]
        assert len(recorded) == 1, action
        assert recorded[0]["actor"]["id"] == f"key:{service.key_id('admin')}"
        assert PASSWORD not in json.dumps(recorded)


@pytest.mark.parametrize(("body", "field"), [
    ({"role": "reader", "password": PASSWORD}, "name"),
    ({"name": "a b", "role": "reader", "password": PASSWORD}, "name"),
    ({"name": "x" * 129, "role": "reader", "password": PASSWORD}, "name"),
    ({"name": "dave", "role": "ingest", "password": PASSWORD}, "role"),
    ({"name": "dave", "password": PASSWORD}, "role"),
    ({"name": "dave", "role": "reader"}, "password"),
    ({"name": "dave", "role": "reader", "password": "short"}, "password"),
    ({"name": "dave", "role": "reader", "password": "x" * 1025}, "password"),
    ({"name": "dave", "role": "reader", "password": 123456789012345}, "password"),
    (["dave"], "body"),
])
def test_a_bad_user_body_names_the_field_and_stores_nothing(
        service: Service, admin: httpx.Client, body: Any, field: str) -> None:
    before = admin.get("/v1/users").json()
    answer = admin.post("/v1/users", json=body)
    assert answer.status_code == 422, answer.text
    assert answer.json()["field"] == field
    assert admin.get("/v1/users").json() == before
    if isinstance(body, dict) and isinstance(body.get("password"), str):
        assert body["password"] not in answer.text


def test_a_console_session_of_an_admin_may_and_of_others_may_not(
        service: Service, client: httpx.Client) -> None:
    """The same routes from the console: an admin user's session lists and (with the CSRF
    header) changes; a reader's or auditor's session gets 403."""
    users = Users(service.data_dir)
    try:
        now = datetime.now(UTC)
        sessions: dict[str, tuple[str, SessionInfo]] = {}
        for role in ("admin", "auditor", "reader"):
            user = users.create(f"session-{role}", role, PASSWORD, now)
            sessions[role] = users.start_session(user, now, via="password")
    finally:
        users.close()
    for role, (token, info) in sessions.items():
        cookies = httpx.Cookies()
        cookies.set("sealtrail_session", token, domain="127.0.0.1")
        with httpx.Client(base_url=service.base_url, cookies=cookies, timeout=30) as browser:
            listed = browser.get("/v1/users")
            made = browser.post("/v1/users", json={"name": f"by-{role}", "role": "reader",
                                                   "password": PASSWORD},
                                headers={"X-CSRF-Token": info.csrf})
            if role == "admin":
                assert listed.status_code == 200, listed.text
                assert made.status_code == 201, made.text
                assert browser.post("/v1/keys", json={"role": "reader", "name": "x"}
                                    ).status_code == 403  # no CSRF header
            else:
                assert (listed.status_code, made.status_code) == (403, 403), role
    created = [e for e in _events(client, service, "sealtrail.user.create")
               if e["target"]["id"] == "by-admin"]
    assert [e["actor"] for e in created] == [{"id": "user:session-admin", "type": "user",
                                              "name": "session-admin"}]


def test_a_change_that_cannot_be_recorded_is_undone(
        start_service: Callable[..., Service]) -> None:
    """With the service's audit log missing, a new key is revoked and a new user disabled
    before the refusal is answered: nothing works that the trail does not account for."""
    service = start_service(audit_log="missing")
    with service.client() as client:
        client.headers.update(service.auth("admin"))
        made = client.post("/v1/keys", json={"role": "reader", "name": "unrecorded"})
        assert made.status_code == 400, made.text
        assert "token" not in made.json()
        assert "missing" in made.json()["error"]
        keys = [k for k in client.get("/v1/keys").json()["keys"] if k["name"] == "unrecorded"]
        assert len(keys) == 1
        assert keys[0]["revoked"] is not None
        user = client.post("/v1/users", json={"name": "unrecorded", "role": "admin",
                                              "password": PASSWORD})
        assert user.status_code == 400, user.text
        users = client.get("/v1/users").json()["users"]
        assert [u["disabled"] is not None for u in users if u["name"] == "unrecorded"] == [True]
