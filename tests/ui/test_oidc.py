"""Single sign-on with OpenID Connect against a real provider (tests/ui/oidc_provider.py).

Everything crosses real sockets: the service on uvicorn, the provider (authlib's server side)
on uvicorn, httpx or Chromium as the browser. The provider signs real RS256 ID tokens and
checks PKCE, client secrets and one-use codes itself; a test that wants a misbehaving provider
turns its ``id_token_mode``.
"""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import hashlib
import json
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

import httpx
import pytest

from sealtrail.core.errors import ConfigError
from sealtrail.log.users import Users
from sealtrail.server.app import ServiceConfig
from sealtrail.server.web import oidc
from sealtrail.server.web.oidc import (
    CALLBACK_PATH,
    ERRORS,
    PENDING_COOKIE,
    OidcConfig,
    PendingLogin,
    SignInError,
    authorization_url,
    discover,
    exchange_code,
    map_role,
    new_pending,
    validate_id_token,
)
from tests.clirun import sealtrail
from tests.server.conftest import make_data_dir, running
from tests.server.test_serve_cli import serving
from tests.ui.oidc_provider import Provider, running_provider

CLIENT_ID = "sealtrail-console"
SECRET = "client secret: for these tests only"  # spaces and a colon: form-encoded in Basic
ROLE_MAP = {"st-readers": "reader", "st-auditors": "auditor", "st-admins": "admin"}

def run_async(coro: Any) -> Any:
    """Run a coroutine to its end in a thread of its own: Playwright's sync API keeps an
    event loop running in this thread while a browser fixture is alive (asyncio.run here
    would refuse)."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()



@pytest.fixture(scope="module")
def provider() -> Iterator[Provider]:
    """The provider, with users whose groups map to each role, or to none."""
    with running_provider() as p:
        p.add_user("rhea", ["staff", "st-readers"])
        p.add_user("aud", ["st-auditors"])
        p.add_user("root", ["st-readers", "st-admins", "st-auditors"])
        p.add_user("bob", ["marketing", "staff"])
        p.add_user("solo", "st-auditors")  # a single string, not a list
        p.add_user("local", ["st-admins"])
        p.add_user("gone", ["st-readers"])
        yield p


@dataclass(frozen=True)
class Sso:
    """The service under test: where it answers, its data, the API tokens."""

    base_url: str
    data_dir: Path
    tokens: dict[str, str]
    config: ServiceConfig

    @property
    def oidc(self) -> OidcConfig:
        assert self.config.oidc is not None
        return self.config.oidc


@pytest.fixture(scope="module")
def sso(provider: Provider, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sso]:
    """A service configured for the provider (cookies without Secure: httpx, as a browser
    would on plain http to a host other than localhost, sends no Secure cookie over http)."""
    data_dir = tmp_path_factory.mktemp("sso")
    tokens = make_data_dir(data_dir)
    users = Users(data_dir)
    try:
        now = datetime.now(UTC)
        users.create("local", "reader", "a local password, long enough", now)
    finally:
        users.close()
    oidc = OidcConfig(issuer=provider.issuer, client_id=CLIENT_ID, client_secret=SECRET,
                      role_map=ROLE_MAP)
    config = ServiceConfig(data_dir, monitor=None, ui_secure_cookies=False, oidc=oidc)
    with running(config) as url:
        provider.add_client(CLIENT_ID, SECRET, url + CALLBACK_PATH)
        yield Sso(url, data_dir, tokens, config)


@pytest.fixture(autouse=True)
def honest_provider(provider: Provider) -> Iterator[None]:
    """Each test starts with a provider that behaves, and leaves it so."""
    provider.id_token_mode = "good"
    provider.login_as = None
    yield
    provider.id_token_mode = "good"
    provider.login_as = None


def browser_client() -> httpx.Client:
    return httpx.Client(timeout=30)


def start(client: httpx.Client, sso: Sso, provider: Provider, user: str) -> str:
    """Start a sign-in as ``user`` and return the callback URL the provider sends the browser
    to (not yet followed)."""
    provider.login_as = user
    login = client.get(f"{sso.base_url}/ui/oidc/login")
    assert login.status_code == 302, login.text
    assert client.cookies.get(PENDING_COOKIE)
    at_provider = client.get(login.headers["location"])
    assert at_provider.status_code == 302, at_provider.text
    callback = at_provider.headers["location"]
    assert callback.startswith(sso.base_url + CALLBACK_PATH)
    return callback


def finish(client: httpx.Client, callback: str) -> httpx.Response:
    """Follow the callback and whatever it answers with, to the page the browser ends on."""
    return client.get(callback, follow_redirects=True)


def error_of(response: httpx.Response) -> str | None:
    """The ``error`` code of a refused sign-on's landing URL (None when it is not one)."""
    values = parse_qs(urlsplit(str(response.url)).query).get("error")
    return values[0] if values else None


def signed_in(client: httpx.Client, sso: Sso) -> bool:
    """Whether the client's session is live (the console shows no sign-in form)."""
    page = client.get(f"{sso.base_url}/ui/")
    return page.status_code == 200 and 'name="password"' not in page.text


def sign_ins(sso: Sso) -> list[dict[str, Any]]:
    """The sign-in events recorded in the service's audit log, newest first."""
    with httpx.Client(base_url=sso.base_url, timeout=30) as api:
        answer = api.get("/v1/logs/default/events",
                         params={"action": "sealtrail.console.sign_in", "limit": 50},
                         headers={"Authorization": f"Bearer {sso.tokens['auditor']}"})
    assert answer.status_code == 200, answer.text
    return [row["event"] for row in answer.json()["events"]]


def last_failure(sso: Sso) -> dict[str, Any]:
    failures = [e for e in sign_ins(sso) if e["outcome"] == "failure"]
    assert failures, sign_ins(sso)
    return failures[0]


def with_query(url: str, **changes: str) -> str:
    parts = urlsplit(url)
    query = dict(parse_qs(parts.query))
    flat = {k: v[0] for k, v in query.items()}
    flat.update(changes)
    return urlunsplit(parts._replace(query=urlencode(flat)))


# -- the happy path -----------------------------------------------------------------------


def test_sign_in_lands_on_the_console_with_the_mapped_role(sso: Sso, provider: Provider) -> None:
    """An auditor-group user signs in through the provider and lands on /ui/ as an auditor:
    the console shows no form, the API answers an auditor-only read with the session, and
    the sign-in is recorded with the role."""
    with browser_client() as client:
        callback = start(client, sso, provider, "aud")
        landed = finish(client, callback)
        assert landed.status_code == 200, landed.text
        assert error_of(landed) is None
        assert not client.cookies.get(PENDING_COOKIE)  # one use: gone with the answer
        assert signed_in(client, sso)
        logs = client.get(f"{sso.base_url}/v1/logs")  # auditor or admin only
        assert logs.status_code == 200, logs.text
    users = Users(sso.data_dir)
    try:
        user = users.get("aud")
    finally:
        users.close()
    assert user is not None
    assert (user.role, user.source) == ("auditor", "oidc")
    event = next(e for e in sign_ins(sso) if e["outcome"] == "success")
    assert event["metadata"]["via"] == "oidc"
    assert event["metadata"]["role"] == "auditor"


def test_the_authorization_request_carries_pkce_state_and_nonce(sso: Sso,
                                                                provider: Provider) -> None:
    """What the provider received: the code flow, S256 PKCE, a state and a nonce of fresh
    randomness, the registered redirect URI, and the openid scope."""
    with browser_client() as client:
        start(client, sso, provider, "rhea")
    asked = provider.authorize_requests[-1]
    assert asked["response_type"] == "code"
    assert asked["client_id"] == CLIENT_ID
    assert asked["code_challenge_method"] == "S256"
    assert len(asked["code_challenge"]) == 43
    assert len(asked["state"]) >= 32
    assert len(asked["nonce"]) >= 32
    assert asked["redirect_uri"] == sso.base_url + CALLBACK_PATH
    assert "openid" in asked["scope"].split()
    with browser_client() as again:
        start(again, sso, provider, "rhea")
    second = provider.authorize_requests[-1]
    assert {second["state"], second["nonce"], second["code_challenge"]}.isdisjoint(
        {asked["state"], asked["nonce"], asked["code_challenge"]})


@pytest.mark.parametrize(("user", "role"), [("rhea", "reader"), ("root", "admin"),
                                            ("solo", "auditor")])
def test_role_mapping(sso: Sso, provider: Provider, user: str, role: str) -> None:
    """Each group maps to its role; several mapped groups give the highest; a claim that is a
    single string counts like a list of one."""
    with browser_client() as client:
        landed = finish(client, start(client, sso, provider, user))
        assert error_of(landed) is None
        assert signed_in(client, sso)
        logs = client.get(f"{sso.base_url}/v1/logs")
        assert logs.status_code == (403 if role == "reader" else 200)
    users = Users(sso.data_dir)
    try:
        found = users.get(user)
    finally:
        users.close()
    assert found is not None
    assert found.role == role


def test_a_changed_group_changes_the_role_at_the_next_sign_in(sso: Sso,
                                                              provider: Provider) -> None:
    """The provider is the source of the role: a user moved to another group signs in with
    the new role."""
    provider.add_user("mover", ["st-readers"])
    for groups, role in ((["st-readers"], "reader"), (["st-admins"], "admin")):
        provider.users["mover"]["groups"] = groups
        with browser_client() as client:
            assert error_of(finish(client, start(client, sso, provider, "mover"))) is None
        users = Users(sso.data_dir)
        try:
            found = users.get("mover")
        finally:
            users.close()
        assert found is not None
        assert found.role == role


# -- refusals -----------------------------------------------------------------------------


def test_no_mapped_role_is_refused_with_a_message_and_an_event(sso: Sso,
                                                              provider: Provider) -> None:
    """A user whose groups map to no role is not signed in: the sign-in page says why, and a
    failed sign-in naming the claim's values is recorded."""
    with browser_client() as client:
        landed = finish(client, start(client, sso, provider, "bob"))
        assert error_of(landed) == "oidc_role"
        assert not signed_in(client, sso)
    event = last_failure(sso)
    assert event["metadata"]["result"] == "oidc_role"
    assert event["metadata"]["via"] == "oidc"
    assert event["metadata"]["values"] == ["marketing", "staff"]
    assert event["metadata"]["sub"] == "sub-bob"
    assert event["actor"]["name"] == "bob"
    assert "groups" in event["reason"]
    users = Users(sso.data_dir)
    try:
        assert users.get("bob") is None  # no record is made for a refused user
    finally:
        users.close()
    assert "administrator" in ERRORS["oidc_role"]


def test_wrong_state_is_refused_before_the_code_is_used(sso: Sso, provider: Provider) -> None:
    """An answer whose state is not this browser's pending sign-in is refused, and its code
    never reaches the token endpoint."""
    with browser_client() as client:
        callback = start(client, sso, provider, "aud")
        before = provider.token_requests
        landed = finish(client, with_query(callback, state="forged-state-" + "x" * 30))
        assert error_of(landed) == "oidc_state"
        assert provider.token_requests == before
        assert not signed_in(client, sso)
    assert last_failure(sso)["metadata"]["result"] == "oidc_state"


def test_a_callback_without_the_pending_cookie_is_refused(sso: Sso,
                                                          provider: Provider) -> None:
    """Login CSRF: an attacker's own code and state, delivered to a victim's browser that
    never started a sign-in, do not sign the victim in as the attacker."""
    with browser_client() as attacker:
        callback = start(attacker, sso, provider, "root")
    with browser_client() as victim:
        landed = finish(victim, callback)
        assert error_of(landed) == "oidc_state"
        assert not signed_in(victim, sso)


def test_an_altered_pending_cookie_is_refused(sso: Sso, provider: Provider) -> None:
    """The pending cookie is sealed: one changed character and it does not open."""
    with browser_client() as client:
        callback = start(client, sso, provider, "aud")
        value = client.cookies[PENDING_COOKIE]
        flipped = value[:20] + ("A" if value[20] != "A" else "B") + value[21:]
        client.cookies.clear()
        client.cookies.set(PENDING_COOKIE, flipped, path=CALLBACK_PATH)
        assert error_of(finish(client, callback)) == "oidc_state"


def test_a_replayed_callback_is_refused(sso: Sso, provider: Provider) -> None:
    """A completed sign-in's callback, replayed by the same browser (its cookie is gone) or
    with a copy of the pending cookie (the state was consumed), signs nobody in."""
    with browser_client() as client:
        callback = start(client, sso, provider, "aud")
        stolen = client.cookies[PENDING_COOKIE]
        assert error_of(finish(client, callback)) is None
        assert error_of(finish(client, callback)) == "oidc_state"
    with browser_client() as thief:
        thief.cookies.set(PENDING_COOKIE, stolen, path=CALLBACK_PATH)
        landed = finish(thief, callback)
        assert error_of(landed) == "oidc_state"
        assert not signed_in(thief, sso)


def test_a_replayed_code_is_refused_by_the_provider(sso: Sso, provider: Provider) -> None:
    """The code is one use at the provider: exchanged once, a second exchange (what another
    service process would attempt with a replayed cookie) is refused as invalid_grant."""
    with browser_client() as client:
        callback = start(client, sso, provider, "aud")
        cookie = client.cookies[PENDING_COOKIE]
    code = parse_qs(urlsplit(callback).query)["code"][0]

    async def twice() -> tuple[dict[str, Any], SignInError]:
        info = await discover(sso.oidc)
        # The pending login as the service sealed it in the browser's cookie.
        pending = PendingLogin.open(cookie, sso.oidc.pending_key,
                                    int(datetime.now(UTC).timestamp()))
        first = await exchange_code(sso.oidc, info, code, pending)
        with pytest.raises(SignInError) as refused:
            await exchange_code(sso.oidc, info, code, pending)
        return first, refused.value

    first, refused = run_async(twice())
    assert isinstance(first["id_token"], str)
    assert refused.code == "oidc_exchange"
    assert "invalid_grant" in refused.message
    assert code in provider.redeemed


@pytest.mark.parametrize("mode", ["bad_signature", "wrong_audience", "expired", "wrong_issuer",
                                  "wrong_nonce"])
def test_an_id_token_that_does_not_check_is_refused(sso: Sso, provider: Provider,
                                                    mode: str) -> None:
    """A provider (or someone on its way) that signs with a key not in its JWKS, for another
    audience, too late, as another issuer or for another request: refused, recorded."""
    provider.id_token_mode = mode
    with browser_client() as client:
        landed = finish(client, start(client, sso, provider, "root"))
        assert error_of(landed) == "oidc_token"
        assert not signed_in(client, sso)
    event = last_failure(sso)
    assert event["metadata"]["result"] == "oidc_token"
    expected = {"bad_signature": "signature", "wrong_audience": "aud", "expired": "exp",
                "wrong_issuer": "iss", "wrong_nonce": "nonce"}[mode]
    assert expected in event["reason"], event["reason"]


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def test_a_tampered_id_token_does_not_verify(sso: Sso, provider: Provider) -> None:
    """A real ID token with its groups raised to admin (payload changed, signature kept), or
    with one bit of its signature flipped, or re-signed as ``alg: none``, is refused."""
    with browser_client() as client:
        callback = start(client, sso, provider, "rhea")
        cookie = client.cookies[PENDING_COOKIE]
    code = parse_qs(urlsplit(callback).query)["code"][0]
    now = int(datetime.now(UTC).timestamp())

    async def run() -> list[str]:
        info = await discover(sso.oidc)
        pending = PendingLogin.open(cookie, sso.oidc.pending_key, now)
        tokens = await exchange_code(sso.oidc, info, code, pending)
        good = tokens["id_token"]
        claims = await validate_id_token(sso.oidc, info, tokens, pending, now)
        assert claims["groups"] == ["staff", "st-readers"]
        header, payload, signature = good.split(".")
        raised = json.loads(base64.urlsafe_b64decode(payload + "=="))
        raised["groups"] = ["st-admins"]
        sig = bytearray(base64.urlsafe_b64decode(signature + "=="))
        sig[10] ^= 0x01
        none_header = b64(json.dumps({"alg": "none", "typ": "JWT"}).encode())
        forged = [f"{header}.{b64(json.dumps(raised).encode())}.{signature}",
                  f"{header}.{payload}.{b64(bytes(sig))}",
                  f"{none_header}.{payload}.",
                  "not.a.jwt"]
        reasons = []
        for bad in forged:
            with pytest.raises(SignInError) as refused:
                await validate_id_token(sso.oidc, info, {**tokens, "id_token": bad}, pending,
                                        now)
            assert refused.value.code == "oidc_token"
            reasons.append(refused.value.message)
        return reasons

    reasons = run_async(run())
    assert all("signature" in r or "malformed" in r for r in reasons), reasons


def test_a_denied_authorization_is_refused(sso: Sso, provider: Provider) -> None:
    """The provider answers ``access_denied`` (nobody signed in there): refused, recorded."""
    with browser_client() as client:
        landed = finish(client, start(client, sso, provider, "nobody-at-the-provider"))
        assert error_of(landed) == "oidc_denied"
    assert last_failure(sso)["metadata"]["provider_error"] == "access_denied"


def test_a_disabled_sso_user_is_refused(sso: Sso, provider: Provider) -> None:
    """Disabling the user in sealtrail ends single sign-on for it, whatever the provider
    says."""
    with browser_client() as client:
        assert error_of(finish(client, start(client, sso, provider, "gone"))) is None
    users = Users(sso.data_dir)
    try:
        users.disable("gone", datetime.now(UTC))
    finally:
        users.close()
    with browser_client() as client:
        landed = finish(client, start(client, sso, provider, "gone"))
        assert error_of(landed) == "oidc_disabled"
        assert not signed_in(client, sso)


def test_a_local_user_is_not_taken_over(sso: Sso, provider: Provider) -> None:
    """A provider user named like a local (password) user does not become that user."""
    with browser_client() as client:
        landed = finish(client, start(client, sso, provider, "local"))
        assert error_of(landed) == "oidc_name"
        assert not signed_in(client, sso)
    users = Users(sso.data_dir)
    try:
        local = users.get("local")
    finally:
        users.close()
    assert local is not None
    assert (local.role, local.source) == ("reader", "local")


def test_a_disabled_sso_user_renamed_at_the_provider_stays_refused(sso: Sso,
                                                                   provider: Provider) -> None:
    """The user is the provider's account (``iss`` + ``sub``), not its name claim: a disabled
    user who changes ``preferred_username`` at the provider is still that disabled user, and
    no new user is made for the new name."""
    provider.add_user("dora", ["st-readers"])
    with browser_client() as client:
        assert error_of(finish(client, start(client, sso, provider, "dora"))) is None
    users = Users(sso.data_dir)
    try:
        users.disable("dora", datetime.now(UTC))
    finally:
        users.close()
    provider.users["dora"]["preferred_username"] = "dora.renamed"
    with browser_client() as client:
        landed = finish(client, start(client, sso, provider, "dora"))
        assert error_of(landed) == "oidc_disabled"
        assert not signed_in(client, sso)
    assert last_failure(sso)["actor"]["name"] == "dora"
    users = Users(sso.data_dir)
    try:
        assert users.get("dora.renamed") is None
        dora = users.get("dora")
    finally:
        users.close()
    assert dora is not None
    assert dora.disabled is not None


def test_an_sso_user_renamed_at_the_provider_keeps_its_sealtrail_user(
        sso: Sso, provider: Provider) -> None:
    """An enabled user whose name claim changed signs in as the user it was (same name in
    sealtrail, its role following the groups), not as a new one."""
    provider.add_user("eve", ["st-readers"])
    with browser_client() as client:
        assert error_of(finish(client, start(client, sso, provider, "eve"))) is None
    provider.users["eve"]["preferred_username"] = "eve.renamed"
    provider.users["eve"]["groups"] = ["st-auditors"]
    with browser_client() as client:
        assert error_of(finish(client, start(client, sso, provider, "eve"))) is None
        me = client.get(f"{sso.base_url}/ui/")
        assert me.status_code == 200
        assert 'data-user="eve"' in me.text
    users = Users(sso.data_dir)
    try:
        assert users.get("eve.renamed") is None
        eve = users.get("eve")
    finally:
        users.close()
    assert eve is not None
    assert eve.role == "auditor"


def test_another_account_with_the_same_name_claim_is_refused(sso: Sso,
                                                             provider: Provider) -> None:
    """A second provider account whose ``preferred_username`` is an existing SSO user's name
    does not become that user (nor take its role): refused with ``oidc_name``."""
    provider.add_user("bert", ["st-readers"])
    provider.add_user("impostor", ["st-admins"], preferred_username="bert")
    with browser_client() as client:
        assert error_of(finish(client, start(client, sso, provider, "bert"))) is None
    with browser_client() as client:
        landed = finish(client, start(client, sso, provider, "impostor"))
        assert error_of(landed) == "oidc_name"
        assert not signed_in(client, sso)
    assert "another account" in last_failure(sso)["reason"]
    users = Users(sso.data_dir)
    try:
        bert = users.get("bert")
    finally:
        users.close()
    assert bert is not None
    assert bert.role == "reader"
    with browser_client() as client:  # the real bert still signs in
        assert error_of(finish(client, start(client, sso, provider, "bert"))) is None
        assert signed_in(client, sso)


# -- the provider itself checks PKCE ------------------------------------------------------


def pkce_pair() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = b64(hashlib.sha256(verifier.encode()).digest())
    return verifier, challenge


def provider_code(provider: Provider, redirect_uri: str, challenge: str | None) -> httpx.Response:
    params = {"response_type": "code", "client_id": CLIENT_ID, "redirect_uri": redirect_uri,
              "scope": "openid groups", "state": secrets.token_urlsafe(16),
              "nonce": secrets.token_urlsafe(16), "login_hint": "aud"}
    if challenge is not None:
        params.update(code_challenge=challenge, code_challenge_method="S256")
    with httpx.Client(timeout=30) as client:
        return client.get(f"{provider.issuer}/authorize", params=params)


def test_the_provider_checks_the_pkce_verifier(sso: Sso, provider: Provider) -> None:
    """The token endpoint refuses a wrong verifier and a missing one (invalid_grant /
    invalid_request), and the authorization endpoint a request without S256 PKCE; the right
    verifier gets tokens."""
    redirect_uri = sso.base_url + CALLBACK_PATH
    verifier, challenge = pkce_pair()

    def exchange(code: str, code_verifier: str | None) -> httpx.Response:
        form = {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri}
        if code_verifier is not None:
            form["code_verifier"] = code_verifier
        with httpx.Client(timeout=30) as client:
            return client.post(f"{provider.issuer}/token", data=form, auth=(CLIENT_ID, SECRET))

    def code_of(answer: httpx.Response) -> str:
        assert answer.status_code == 302, answer.text
        return parse_qs(urlsplit(answer.headers["location"]).query)["code"][0]

    wrong, _ = pkce_pair()
    refused = exchange(code_of(provider_code(provider, redirect_uri, challenge)), wrong)
    assert refused.status_code == 400
    assert refused.json()["error"] == "invalid_grant"
    missing = exchange(code_of(provider_code(provider, redirect_uri, challenge)), None)
    assert missing.status_code == 400
    assert missing.json()["error"] == "invalid_request"
    no_pkce = provider_code(provider, redirect_uri, None)
    assert no_pkce.status_code == 302
    assert parse_qs(urlsplit(no_pkce.headers["location"]).query)["error"] == ["invalid_request"]
    good = exchange(code_of(provider_code(provider, redirect_uri, challenge)), verifier)
    assert good.status_code == 200, good.text
    assert good.json()["id_token"].count(".") == 2


def test_the_provider_checks_the_client_secret(sso: Sso, provider: Provider) -> None:
    """A token request with a wrong client secret is refused (invalid_client)."""
    redirect_uri = sso.base_url + CALLBACK_PATH
    verifier, challenge = pkce_pair()
    answer = provider_code(provider, redirect_uri, challenge)
    code = parse_qs(urlsplit(answer.headers["location"]).query)["code"][0]
    with httpx.Client(timeout=30) as client:
        refused = client.post(f"{provider.issuer}/token", auth=(CLIENT_ID, "wrong"),
                              data={"grant_type": "authorization_code", "code": code,
                                    "redirect_uri": redirect_uri, "code_verifier": verifier})
    assert refused.status_code == 401
    assert refused.json()["error"] == "invalid_client"


def test_a_public_client_signs_in_with_pkce_alone(provider: Provider) -> None:
    """A client without a secret sends its id and the verifier; the provider lets the
    exchange through on PKCE alone, and the ID token checks."""
    redirect_uri = "http://127.0.0.1:9/ui/oidc/callback"
    provider.add_client("public-console", "", redirect_uri)
    config = OidcConfig(issuer=provider.issuer, client_id="public-console", role_map=ROLE_MAP)
    now = int(datetime.now(UTC).timestamp())
    pending = new_pending(redirect_uri, "/ui/", now)

    async def run() -> dict[str, Any]:
        info = await discover(config)
        with httpx.Client(timeout=30) as client:
            answer = client.get(authorization_url(config, info, pending) + "&login_hint=aud")
        back = parse_qs(urlsplit(answer.headers["location"]).query)
        assert back["state"] == [pending.state]
        tokens = await exchange_code(config, info, back["code"][0], pending)
        return await validate_id_token(config, info, tokens, pending, now)

    claims = run_async(run())
    assert claims["aud"] == ["public-console"]
    assert map_role(config, claims) == "auditor"


# -- the client's own pieces --------------------------------------------------------------


def sign_in_directly(provider: Provider, config: OidcConfig, user: str
                     ) -> tuple[dict[str, Any], PendingLogin, int]:
    """One pass of the flow without a service: authorize as ``user``, exchange the code;
    returns the token answer, the pending login and the time."""
    redirect_uri = "http://127.0.0.1:9/ui/oidc/callback"
    if redirect_uri not in provider.clients[config.client_id].redirect_uris:
        provider.clients[config.client_id].redirect_uris.append(redirect_uri)
    now = int(datetime.now(UTC).timestamp())
    pending = new_pending(redirect_uri, "/ui/", now)

    async def run() -> dict[str, Any]:
        info = await discover(config)
        with httpx.Client(timeout=30) as client:
            answer = client.get(authorization_url(config, info, pending) + f"&login_hint={user}")
        code = parse_qs(urlsplit(answer.headers["location"]).query)["code"][0]
        return await exchange_code(config, info, code, pending)

    return run_async(run()), pending, now


def test_a_rotated_provider_key_is_fetched_again(monkeypatch: pytest.MonkeyPatch) -> None:
    """After the provider rotates its signing key, an ID token under the new key id makes the
    client fetch the JWKS again (at most every JWKS_MIN_REFRESH seconds: sooner, refused)."""
    with running_provider() as fresh:
        fresh.add_user("aud", ["st-auditors"])
        fresh.add_client(CLIENT_ID, SECRET)
        config = OidcConfig(issuer=fresh.issuer, client_id=CLIENT_ID, client_secret=SECRET,
                            role_map=ROLE_MAP)

        def check(tokens: dict[str, Any], pending: PendingLogin, now: int) -> dict[str, Any]:
            async def run() -> dict[str, Any]:
                info = await discover(config)
                return await validate_id_token(config, info, tokens, pending, now)
            claims: dict[str, Any] = run_async(run())
            return claims

        assert check(*sign_in_directly(fresh, config, "aud"))["sub"] == "sub-aud"
        fresh.rotate_key()
        rotated = sign_in_directly(fresh, config, "aud")
        with pytest.raises(SignInError) as refused:
            check(*rotated)  # the key set was fetched a moment ago: not again yet
        assert refused.value.code == "oidc_token"
        monkeypatch.setattr(oidc, "JWKS_MIN_REFRESH", 0.0)
        assert check(*rotated)["sub"] == "sub-aud"


def test_answers_larger_than_the_limit_are_refused(provider: Provider) -> None:
    """A discovery document past MAX_DOCUMENT bytes is not read to its end: refused."""
    config = OidcConfig(issuer=provider.issuer, client_id=CLIENT_ID, client_secret=SECRET,
                        role_map=ROLE_MAP)
    provider.padding = oidc.MAX_DOCUMENT
    try:
        with pytest.raises(SignInError) as refused:
            # A moment far ahead: past the cached copy's age, so it is fetched again.
            run_async(discover(config, now=time.monotonic() + 10 * oidc.DISCOVERY_TTL))
    finally:
        provider.padding = 0
    assert refused.value.code == "oidc_unavailable"
    assert "larger than" in refused.value.message


def test_discovery_insists_on_the_exact_issuer(provider: Provider) -> None:
    """A discovery document naming another issuer than the configured one is refused."""
    config = OidcConfig(issuer=provider.issuer + "/", client_id=CLIENT_ID,
                        client_secret=SECRET, role_map=ROLE_MAP)
    with pytest.raises(SignInError) as refused:
        run_async(discover(config))
    assert refused.value.code == "oidc_unavailable"
    assert "issuer" in refused.value.message


def test_an_unreachable_provider_sends_the_user_back_with_a_message(
        tmp_path: Path) -> None:
    """Discovery fails (nothing listens): the login route redirects to the sign-in page with
    ``oidc_unavailable`` and records the failure; it never hangs past its timeout."""
    make_data_dir(tmp_path)
    oidc = OidcConfig(issuer="http://127.0.0.1:9", client_id=CLIENT_ID, role_map=ROLE_MAP)
    config = ServiceConfig(tmp_path, monitor=None, ui_secure_cookies=False, oidc=oidc)
    with running(config) as url, httpx.Client(timeout=30) as client:
        landed = client.get(f"{url}/ui/oidc/login", follow_redirects=True)
        assert error_of(landed) == "oidc_unavailable"


def test_the_pending_login_expires_and_is_bound_to_its_key() -> None:
    """A pending login opens with its key until it expires; not after, not with another key."""
    key, other = bytes(32), bytes([1]) * 32
    pending = new_pending("https://console.example/ui/oidc/callback", "/ui/", now=1000)
    sealed = pending.seal(key)
    assert PendingLogin.open(sealed, key, now=1000 + 599) == pending
    for value, with_key, now in ((sealed, key, 1000 + 601), (sealed, other, 1000),
                                 ("", key, 1000), ("%%%", key, 1000)):
        with pytest.raises(SignInError) as refused:
            PendingLogin.open(value, with_key, now)
        assert refused.value.code == "oidc_state"


@pytest.mark.parametrize(("changes", "option"), [
    ({"issuer": "http://idp.example.com"}, "--oidc-issuer"),
    ({"issuer": "ftp://idp.example.com"}, "--oidc-issuer"),
    ({"issuer": "https://idp.example.com/?x=1"}, "--oidc-issuer"),
    ({"client_id": ""}, "--oidc-client-id"),
    ({"role_map": {}}, "--oidc-role-map"),
    ({"role_map": {"g": "root"}}, "--oidc-role-map"),
    ({"role_claim": ""}, "--oidc-role-claim"),
    ({"redirect_url": "http://console.example/ui/oidc/callback"}, "--oidc-redirect-url"),
])
def test_config_errors_name_the_option(changes: dict[str, Any], option: str) -> None:
    """Bad settings are refused at start, naming the option to fix; plain http is accepted to
    a loopback provider only."""
    settings: dict[str, Any] = {"issuer": "https://idp.example.com", "client_id": "c",
                                "role_map": {"g": "reader"}, **changes}
    with pytest.raises(ConfigError, match=option):
        OidcConfig(**settings)
    OidcConfig(issuer="http://127.0.0.1:8080", client_id="c", role_map={"g": "reader"})
    OidcConfig(issuer="http://localhost:8080/realms/x", client_id="c", role_map={"g": "admin"})


def test_the_pending_key_is_shared_through_the_secret() -> None:
    """Two nodes configured with the same client secret seal pending logins alike (a callback
    may reach either); the secret is never in the config's repr."""
    one = OidcConfig(issuer="https://idp.example.com", client_id="c", client_secret="s",
                     role_map={"g": "reader"})
    two = OidcConfig(issuer="https://idp.example.com", client_id="c", client_secret="s",
                     role_map={"g": "reader"})
    public = OidcConfig(issuer="https://idp.example.com", client_id="c",
                        role_map={"g": "reader"})
    assert one.pending_key == two.pending_key != public.pending_key
    assert "'s'" not in repr(one)
    assert len(public.pending_key) == 32


# -- the command line ----------------------------------------------------------------------


def set_cookie(response: httpx.Response, name: str) -> str:
    """A cookie's value from ``Set-Cookie`` (read by hand: the service marks its cookies
    Secure, which httpx keeps off plain http; Chromium sends them to loopback, as here)."""
    for header in response.headers.get_list("set-cookie"):
        if header.startswith(name + "="):
            return header.split(";", 1)[0].split("=", 1)[1]
    raise AssertionError(f"no {name} cookie in {response.headers}")


def test_serve_with_oidc_options_and_two_workers(provider: Provider, tmp_path: Path) -> None:
    """``sealtrail serve --workers 2`` with the ``--oidc-*`` options (the secret from a file)
    signs a provider user in; sign-ins that start in one worker process and come back to the
    other work, since the pending login travels sealed in the cookie."""
    data = tmp_path / "data"
    tokens = make_data_dir(data)
    secret_file = tmp_path / "client-secret"
    secret_file.write_text(SECRET + "\n")
    client_id = "cli-console"
    with serving(data, tmp_path, "--workers", "2", "--no-monitor",
                 "--oidc-issuer", provider.issuer, "--oidc-client-id", client_id,
                 "--oidc-client-secret-file", str(secret_file),
                 "--oidc-role-map", "st-auditors=auditor",
                 "--oidc-role-map", "st-admins=admin") as served:
        provider.add_client(client_id, SECRET, served.base_url + CALLBACK_PATH)
        provider.login_as = "aud"
        for _ in range(4):  # new connections: the kernel spreads them over the workers
            with httpx.Client(timeout=30) as client:
                login = client.get(f"{served.base_url}/ui/oidc/login")
                assert login.status_code == 302, login.text
                pending = set_cookie(login, PENDING_COOKIE)
                back = client.get(login.headers["location"]).headers["location"]
            with httpx.Client(timeout=30) as client:
                landed = client.get(back, headers={"Cookie": f"{PENDING_COOKIE}={pending}"})
                assert landed.status_code == 200, (landed.status_code, landed.headers)
                session = set_cookie(landed, "sealtrail_session")
            with httpx.Client(timeout=30) as client:
                logs = client.get(f"{served.base_url}/v1/logs",
                                  headers={"Cookie": f"sealtrail_session={session}"})
                assert logs.status_code == 200, logs.text
        with httpx.Client(timeout=30) as api:
            found = api.get(f"{served.base_url}/v1/logs/default/events",
                            params={"action": "sealtrail.console.sign_in"},
                            headers={"Authorization": f"Bearer {tokens['auditor']}"})
        assert [row["event"]["metadata"]["via"] for row in found.json()["events"]] == \
            ["oidc"] * 4


@pytest.mark.parametrize(("args", "named"), [
    (["--oidc-issuer", "http://idp.example.com", "--oidc-client-id", "c",
      "--oidc-role-map", "g=reader"], "--oidc-issuer"),
    (["--oidc-issuer", "https://idp.example.com", "--oidc-client-id", "c"],
     "--oidc-role-map"),
    (["--oidc-issuer", "https://idp.example.com", "--oidc-client-id", "c",
      "--oidc-role-map", "g"], "--oidc-role-map"),
    (["--oidc-issuer", "https://idp.example.com", "--oidc-client-id", "c",
      "--oidc-role-map", "g=owner"], "--oidc-role-map"),
    (["--oidc-role-map", "g=reader"], "--oidc-issuer"),
    (["--oidc-issuer", "https://idp.example.com", "--oidc-role-map", "g=reader"],
     "--oidc-client-id"),
])
def test_serve_refuses_bad_oidc_options(tmp_path: Path, args: list[str], named: str) -> None:
    """Incomplete or wrong ``--oidc-*`` options stop ``serve`` before it listens (exit 2),
    naming the option."""
    make_data_dir(tmp_path)
    ran = sealtrail("--data", tmp_path, "serve", "--port", "0", "--no-monitor", *args,
                    text=True)
    assert ran.returncode == 2, (ran.stdout, ran.stderr)
    assert named in ran.stderr


# -- in a real browser --------------------------------------------------------------------


@pytest.mark.browser
def test_sign_in_with_sso_in_chromium(sso: Sso, provider: Provider, browser: Any,
                                      screenshot_dir: Path) -> None:
    """Chromium follows the sign-in page's single sign-on link through the provider and lands
    on the console signed in (the session cookie survives the cross-site return)."""
    provider.login_as = "aud"
    context = browser.new_context()
    try:
        page = context.new_page()
        page.goto(f"{sso.base_url}/ui/")
        page.screenshot(path=str(screenshot_dir / "signin-sso.png"), full_page=True)
        page.click("text=Sign in with single sign-on")
        page.wait_for_url(f"{sso.base_url}/ui/**")
        page.wait_for_load_state("load")
        page.wait_for_function("() => !location.pathname.startsWith('/ui/oidc/')")
        assert page.locator("input[name=password]").count() == 0, page.content()[:2000]
        assert "aud" in page.content()
        provider.login_as = "bob"
        fresh = browser.new_context().new_page()
        fresh.goto(f"{sso.base_url}/ui/oidc/login")
        fresh.wait_for_url("**/ui/?error=oidc_role")
        assert fresh.locator("input[name=password]").count() == 1
        assert "ask an administrator" in fresh.locator("#sso-error").inner_text()
        fresh.screenshot(path=str(screenshot_dir / "signin-sso-refused.png"), full_page=True)
        fresh.context.close()
    finally:
        context.close()
