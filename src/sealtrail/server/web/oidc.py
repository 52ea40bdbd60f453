"""Single sign-on to the console with OpenID Connect: the authorization code flow with PKCE.

The relying party's half of OpenID Connect Core 1.0, section 3.1 (the code flow), with
RFC 7636 (PKCE, S256). Two routes, mounted by :mod:`.auth`:

``GET /ui/oidc/login``
    1. Reads the provider's discovery document (``<issuer>/.well-known/openid-configuration``,
       cached an hour; its ``issuer`` must be the configured one exactly).
    2. Makes a fresh ``state`` (binds the answer to this browser: login CSRF), ``nonce``
       (binds the ID token to this request: token replay) and PKCE ``code_verifier`` (binds
       the code to this client: a stolen code is useless), all from :mod:`secrets` through
       authlib.
    3. Keeps them in a short-lived cookie, sealed with AES-GCM under a key only the service
       holds (:class:`PendingLogin`): the pending login survives a restart of nothing and
       reaches whichever ``--workers`` process answers the callback.
    4. Redirects the browser to the provider's authorization endpoint.

``GET /ui/oidc/callback``
    1. Opens the pending cookie (missing, altered or older than :data:`PENDING_TTL`:
       refused) and deletes it in every answer; a pending login is used once (this process
       also remembers the states it consumed until they expire).
    2. Compares ``state`` in constant time.
    3. Exchanges the code at the token endpoint (with the client's credentials and the
       PKCE verifier).
    4. Validates the ID token: its signature against the provider's JWKS (asymmetric
       algorithms only, never ``none`` or HMAC), ``iss``, ``aud`` (and ``azp``), ``exp``,
       ``iat``, ``nonce`` (and ``at_hash``), with authlib's OpenID claims rules on joserfc
       (authlib's own JOSE successor; ``authlib.jose`` is deprecated).
    5. Maps the role claim's values to a sealtrail role through the operator's table
       (several matching values: the highest role); none → refused.
    6. Creates or updates the SSO user (:meth:`sealtrail.log.users.Users.oidc_user`), found
       by the ID token's ``iss`` and ``sub`` (the provider's account, which never changes),
       never by the name claim alone (the user may change it, another account may take it);
       a disabled user is refused, and so is a name another account is bound to.
    7. Starts the session (:func:`sealtrail.server.web.auth.start_session`, which records the
       sign-in).

A failure redirects to ``/ui/?error=<code>`` (codes and their messages in
:data:`ERRORS`) and is recorded as a failed sign-in in the service's audit log. HTTP to the
provider has timeouts and a size limit on every answer; no token, code or secret is logged.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import json
import os
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final
from urllib.parse import quote, urlsplit

import httpx
from authlib.common.security import generate_token  # type: ignore[import-untyped]
from authlib.oauth2.rfc6749.parameters import prepare_grant_uri  # type: ignore[import-untyped]
from authlib.oauth2.rfc7636 import create_s256_code_challenge  # type: ignore[import-untyped]
from authlib.oidc.core import CodeIDToken  # type: ignore[import-untyped]
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from fastapi import Request
from fastapi.responses import RedirectResponse, Response
from joserfc import jwt
from joserfc.errors import InvalidKeyIdError, JoseError
from joserfc.jwk import KeySet

from sealtrail.core.errors import ConfigError, SealtrailError, ValidationError
from sealtrail.log.users import UserInfo, Users
from sealtrail.server.deps import in_thread, service, service_event
from sealtrail.server.web.auth import CONSOLE_TARGET, start_session
from sealtrail.server.web.security import harden

ROLES: Final = ("reader", "auditor", "admin")
"""sealtrail's roles a claim value may map to, lowest first (several matches: the highest)."""
CALLBACK_PATH: Final = "/ui/oidc/callback"
PENDING_COOKIE: Final = "sealtrail_oidc"
PENDING_TTL: Final = 600
"""Seconds a started sign-in may take at the provider (RFC 6749 suggests codes live 10 min)."""
HTTP_TIMEOUT: Final = 10.0
MAX_DOCUMENT: Final = 256 * 1024
"""The largest discovery document, JWKS or token answer read from the provider."""
MAX_ID_TOKEN: Final = 16 * 1024
MAX_PARAM: Final = 2048
DISCOVERY_TTL: Final = 3600.0
JWKS_MIN_REFRESH: Final = 30.0
"""An ID token naming an unknown key refetches the JWKS (key rotation), at most this often."""
LEEWAY: Final = 60
"""Seconds of clock skew allowed on ``exp`` and ``iat``."""
ASYMMETRIC: Final = frozenset({"RS256", "RS384", "RS512", "PS256", "PS384", "PS512",
                               "ES256", "ES384", "ES512", "EdDSA", "Ed25519"})
_AAD: Final = b"sealtrail oidc pending login v1"
_NAME: Final = re.compile(r"[A-Za-z0-9._@+-]{1,64}")

ERRORS: Final = {
    "oidc_unavailable": "The identity provider could not be reached or answered badly.",
    "oidc_state": ("The sign-in expired or did not start in this browser: start it again "
                   "from the sign-in page."),
    "oidc_denied": "The identity provider did not sign you in.",
    "oidc_exchange": "The identity provider refused to complete the sign-in.",
    "oidc_token": "The identity provider's answer did not verify.",
    "oidc_role": ("Your account at the identity provider has no group or role that gives "
                  "access to sealtrail: ask an administrator."),
    "oidc_name": ("Your account at the identity provider has no usable user name, or its name "
                  "is a local sealtrail user's or another account's."),
    "oidc_disabled": "Your sealtrail user is disabled: ask an administrator.",
}
"""The ``error`` codes a failed single sign-on redirects with, and what they tell the user."""


class SignInError(SealtrailError):
    """A single sign-on that did not complete; ``code`` is one of :data:`ERRORS`."""

    http_status = 401

    def __init__(self, code: str, message: str, *, subject: str | None = None,
                 detail: Mapping[str, Any] | None = None) -> None:
        self.code = code
        self.message = message
        self.subject = subject
        self.detail = dict(detail or {})
        super().__init__(f"{code}: {message}")


@dataclass(frozen=True)
class OidcConfig:
    """What the console needs to sign users in with an OpenID Connect provider.

    ``role_map`` maps values of the ``role_claim`` claim (a string or a list of strings, or a
    dotted path into nested claims such as ``realm_access.roles``) to sealtrail roles.
    ``redirect_url`` is the callback URL registered at the provider; None derives it from
    each request (right unless a proxy rewrites the host or scheme). The key that seals the
    pending-login cookie is derived from the client secret, so every node of a deployment
    shares it; a public client (no secret) gets a random one, shared with ``--workers``
    processes through the pickled config.
    """

    issuer: str
    client_id: str
    client_secret: str | None = field(default=None, repr=False)
    role_claim: str = "groups"
    role_map: Mapping[str, str] = field(default_factory=dict)
    redirect_url: str | None = None
    name_claim: str = "preferred_username"
    scopes: tuple[str, ...] = ("openid", "profile", "email")
    pending_key: bytes = field(default=b"", repr=False, compare=False)

    def __post_init__(self) -> None:
        _check_url(self.issuer, "--oidc-issuer")
        if urlsplit(self.issuer).query or urlsplit(self.issuer).fragment:
            raise ConfigError("--oidc-issuer: an issuer URL has no query or fragment")
        if not self.client_id or len(self.client_id) > 256 or not self.client_id.isprintable():
            raise ConfigError("--oidc-client-id: give the client id registered at the provider "
                              "(1 to 256 printable characters)")
        if self.client_secret is not None and not 1 <= len(self.client_secret) <= 1024:
            raise ConfigError("--oidc-client-secret-file: the secret must be 1 to 1024 "
                              "characters")
        for option, value in (("--oidc-role-claim", self.role_claim),
                              ("name_claim", self.name_claim)):
            if not value or len(value) > 128:
                raise ConfigError(f"{option}: a claim name of 1 to 128 characters")
        if not self.role_map:
            raise ConfigError("--oidc-role-map: give at least one VALUE=ROLE (nobody could "
                              "sign in otherwise)")
        for value, role in self.role_map.items():
            if role not in ROLES:
                raise ConfigError(f"--oidc-role-map: {value}={role}: the role must be one of "
                                  f"{', '.join(ROLES)}")
            if not value or len(value) > 256:
                raise ConfigError("--oidc-role-map: a claim value of 1 to 256 characters")
        if self.redirect_url is not None:
            _check_url(self.redirect_url, "--oidc-redirect-url")
        if "openid" not in self.scopes:
            raise ConfigError("scopes: OpenID Connect needs the 'openid' scope")
        object.__setattr__(self, "role_map", dict(self.role_map))
        if not self.pending_key:
            object.__setattr__(self, "pending_key", _derive_key(self.client_secret))

    @property
    def discovery_url(self) -> str:
        """Where the provider's metadata is (OpenID Connect Discovery 1.0, section 4)."""
        return self.issuer.rstrip("/") + "/.well-known/openid-configuration"


def _derive_key(secret: str | None) -> bytes:
    """The pending-login cookie's key: from the client secret (the same on every node), else
    random (this process and the workers it hands its config to)."""
    if secret is None:
        return os.urandom(32)
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None,
                info=b"sealtrail oidc pending-login key").derive(secret.encode())


def _check_url(url: str, option: str) -> None:
    """``https``, or plain ``http`` to a loopback host only (a provider on this machine, as in
    tests and development): tokens never cross a network in clear."""
    if len(url) > 2048:
        raise ConfigError(f"{option}: the URL is longer than 2048 characters")
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError as exc:
        raise ConfigError(f"{option}: {url!r} is not a URL") from exc
    if not host or parts.scheme not in ("https", "http"):
        raise ConfigError(f"{option}: {url!r} is not an http(s) URL")
    if parts.scheme == "http" and not _loopback(host):
        raise ConfigError(f"{option}: {url!r} must use https (plain http only to a loopback "
                          "address)")


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def parse_role_map(items: list[str]) -> dict[str, str]:
    """``--oidc-role-map VALUE=ROLE`` options as a table (the last ``=`` splits, so a claim
    value may itself hold one)."""
    table: dict[str, str] = {}
    for item in items:
        value, sep, role = item.rpartition("=")
        if not sep or not value:
            raise ConfigError(f"--oidc-role-map: {item!r} is not VALUE=ROLE")
        table[value] = role.strip()
    return table


def config_from_options(*, issuer: str | None, client_id: str | None, secret: str | None,
                        role_claim: str, role_map: list[str], redirect_url: str | None
                        ) -> OidcConfig | None:
    """``serve``'s ``--oidc-*`` options as a config (None when single sign-on is not asked
    for); ConfigError naming the option when they are incomplete or wrong."""
    if issuer is None and client_id is None:
        if secret is not None or role_map or redirect_url is not None:
            raise ConfigError("--oidc-issuer and --oidc-client-id: the other --oidc-* options "
                              "need them")
        return None
    if issuer is None or client_id is None:
        raise ConfigError("--oidc-issuer and --oidc-client-id go together")
    return OidcConfig(issuer=issuer, client_id=client_id, client_secret=secret,
                      role_claim=role_claim, role_map=parse_role_map(role_map),
                      redirect_url=redirect_url)


# -- the pending login: sealed in a cookie ------------------------------------------------


@dataclass(frozen=True, slots=True)
class PendingLogin:
    """A started sign-in: what the callback must find again, and until when."""

    state: str
    nonce: str
    verifier: str
    redirect_uri: str
    next_path: str
    expires: int

    def seal(self, key: bytes) -> str:
        """The cookie value: AES-GCM over the fields (confidential: the verifier must not
        leak; authenticated: nothing in it can be changed)."""
        body = json.dumps({"s": self.state, "n": self.nonce, "v": self.verifier,
                           "r": self.redirect_uri, "t": self.next_path, "x": self.expires},
                          separators=(",", ":")).encode()
        iv = os.urandom(12)
        sealed = iv + AESGCM(key).encrypt(iv, body, _AAD)
        return base64.urlsafe_b64encode(sealed).rstrip(b"=").decode()

    @classmethod
    def open(cls, value: str, key: bytes, now: int) -> PendingLogin:
        """The pending login in a cookie value; :class:`SignInError` (``oidc_state``) when
        it is malformed, altered, sealed under another key, or expired."""
        if not value or len(value) > 4096:
            raise SignInError("oidc_state", "no pending sign-in in this browser")
        try:
            raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
            body = AESGCM(key).decrypt(raw[:12], raw[12:], _AAD)
            data = json.loads(body)
            pending = cls(str(data["s"]), str(data["n"]), str(data["v"]), str(data["r"]),
                          str(data["t"]), int(data["x"]))
        except (ValueError, InvalidTag, KeyError, TypeError) as exc:
            raise SignInError("oidc_state", "the pending sign-in cookie does not open "
                              "(altered, or sealed by another service)") from exc
        if pending.expires < now:
            raise SignInError("oidc_state", "the sign-in took longer than "
                              f"{PENDING_TTL // 60} minutes")
        return pending


class _Consumed:
    """The states this process completed or refused, until they expire: a pending login
    is used once even if its cookie is replayed (the provider's one-use codes stop a replay
    that reaches another process)."""

    LIMIT: Final = 10_000

    def __init__(self) -> None:
        self._until: dict[str, int] = {}

    def take(self, state: str, expires: int, now: int) -> bool:
        """Mark ``state`` used; False when it was used already."""
        digest = hashlib.sha256(state.encode()).hexdigest()
        if len(self._until) >= self.LIMIT:
            self._until = {k: v for k, v in self._until.items() if v >= now}
        if digest in self._until:
            return False
        self._until[digest] = expires
        return True


_consumed = _Consumed()


# -- talking to the provider --------------------------------------------------------------


@dataclass
class ProviderInfo:
    """A provider's metadata and key set as last fetched (per issuer, per process)."""

    metadata: dict[str, Any]
    fetched: float
    jwks: KeySet | None = None
    jwks_fetched: float = 0.0

    @property
    def authorization_endpoint(self) -> str:
        return str(self.metadata["authorization_endpoint"])

    @property
    def token_endpoint(self) -> str:
        return str(self.metadata["token_endpoint"])

    @property
    def jwks_uri(self) -> str:
        return str(self.metadata["jwks_uri"])

    def algorithms(self) -> list[str]:
        """The ID token algorithms accepted: what the provider says it uses, asymmetric only
        (``none`` and HMAC with a guessable key are never accepted)."""
        offered = self.metadata.get("id_token_signing_alg_values_supported") or ["RS256"]
        algs = [a for a in offered if isinstance(a, str) and a in ASYMMETRIC]
        return algs or ["RS256"]


_providers: dict[str, ProviderInfo] = {}


def _client() -> httpx.AsyncClient:
    return httpx.AsyncClient(timeout=httpx.Timeout(HTTP_TIMEOUT, connect=5.0),
                             follow_redirects=False, trust_env=False)


async def _read_json(response: httpx.Response, what: str) -> Any:
    """The JSON answer of ``response`` read to :data:`MAX_DOCUMENT` bytes at most."""
    body = bytearray()
    async for chunk in response.aiter_bytes():
        body += chunk
        if len(body) > MAX_DOCUMENT:
            raise SignInError("oidc_unavailable",
                              f"the provider's {what} is larger than {MAX_DOCUMENT} bytes")
    try:
        return json.loads(bytes(body))
    except ValueError as exc:
        raise SignInError("oidc_unavailable", f"the provider's {what} is not JSON") from exc


async def _get_json(url: str, what: str) -> dict[str, Any]:
    try:
        async with _client() as client, client.stream("GET", url) as response:
            if response.status_code != 200:
                raise SignInError("oidc_unavailable",
                                  f"the provider's {what} answered {response.status_code}")
            data = await _read_json(response, what)
    except httpx.HTTPError as exc:
        raise SignInError("oidc_unavailable", f"the provider's {what} could not be "
                          f"fetched: {type(exc).__name__}") from exc
    if not isinstance(data, dict):
        raise SignInError("oidc_unavailable", f"the provider's {what} is not a JSON object")
    return data


async def discover(config: OidcConfig, *, now: float | None = None) -> ProviderInfo:
    """The provider's metadata (cached :data:`DISCOVERY_TTL` seconds per issuer).

    Its ``issuer`` must equal the configured issuer exactly (Discovery 1.0, section 4.3), and
    its endpoints must be https (or loopback http), so a document cannot send the code or
    the client secret anywhere else.
    """
    now = time.monotonic() if now is None else now
    cached = _providers.get(config.issuer)
    if cached is not None and now - cached.fetched < DISCOVERY_TTL:
        return cached
    metadata = await _get_json(config.discovery_url, "discovery document")
    if metadata.get("issuer") != config.issuer:
        raise SignInError("oidc_unavailable", "the discovery document names issuer "
                          f"{str(metadata.get('issuer'))[:200]!r}, not {config.issuer!r}")
    for key in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
        value = metadata.get(key)
        if not isinstance(value, str):
            raise SignInError("oidc_unavailable", f"the discovery document has no {key}")
        try:
            _check_url(value, key)
        except ConfigError as exc:
            raise SignInError("oidc_unavailable",
                              f"the discovery document's {exc}") from exc
    methods = metadata.get("code_challenge_methods_supported")
    if isinstance(methods, list) and "S256" not in methods:
        raise SignInError("oidc_unavailable", "the provider does not offer PKCE with S256")
    info = ProviderInfo(metadata, now)
    _providers[config.issuer] = info
    return info


async def _key_set(info: ProviderInfo, *, refresh: bool) -> KeySet:
    """The provider's JWKS (fetched once, then again on an unknown key id, throttled)."""
    now = time.monotonic()
    if info.jwks is not None and not (refresh and now - info.jwks_fetched > JWKS_MIN_REFRESH):
        return info.jwks
    data = await _get_json(info.jwks_uri, "key set")
    try:
        keys = KeySet.import_key_set(data)  # type: ignore[arg-type]
    except (JoseError, ValueError, TypeError, KeyError) as exc:
        raise SignInError("oidc_unavailable", "the provider's key set does not parse") from exc
    info.jwks, info.jwks_fetched = keys, now
    return keys


def authorization_url(config: OidcConfig, info: ProviderInfo, pending: PendingLogin) -> str:
    """Where the browser goes to sign in: the code flow with PKCE (S256), state and nonce."""
    return str(prepare_grant_uri(
        info.authorization_endpoint, config.client_id, "code",
        redirect_uri=pending.redirect_uri, scope=" ".join(config.scopes), state=pending.state,
        nonce=pending.nonce, code_challenge=create_s256_code_challenge(pending.verifier),
        code_challenge_method="S256"))


def new_pending(redirect_uri: str, next_path: str, now: int) -> PendingLogin:
    """Fresh state, nonce and PKCE verifier (RFC 7636: 43 to 128 characters of the unreserved
    set; 64 here, about 380 bits)."""
    return PendingLogin(state=generate_token(32), nonce=generate_token(32),
                        verifier=generate_token(64), redirect_uri=redirect_uri,
                        next_path=next_path, expires=now + PENDING_TTL)


async def exchange_code(config: OidcConfig, info: ProviderInfo, code: str,
                        pending: PendingLogin) -> dict[str, Any]:
    """The token endpoint's answer for ``code`` (RFC 6749 4.1.3 with the PKCE verifier).

    The client authenticates with ``client_secret_basic`` (its id and secret form-encoded
    first, as RFC 6749 2.3.1 says) unless the provider offers only ``client_secret_post``; a
    public client sends its id alone.
    """
    form = {"grant_type": "authorization_code", "code": code,
            "redirect_uri": pending.redirect_uri, "code_verifier": pending.verifier}
    headers = {"Accept": "application/json"}
    if config.client_secret is None:
        form["client_id"] = config.client_id
    else:
        methods = info.metadata.get("token_endpoint_auth_methods_supported")
        if isinstance(methods, list) and "client_secret_basic" not in methods \
                and "client_secret_post" in methods:
            form.update(client_id=config.client_id, client_secret=config.client_secret)
        else:
            pair = f"{quote(config.client_id, safe='')}:{quote(config.client_secret, safe='')}"
            headers["Authorization"] = "Basic " + base64.b64encode(pair.encode()).decode()
    try:
        async with _client() as client, client.stream("POST", info.token_endpoint, data=form,
                                                      headers=headers) as response:
            status = response.status_code
            data = await _read_json(response, "token answer")
    except httpx.HTTPError as exc:
        raise SignInError("oidc_unavailable", "the token endpoint could not be reached: "
                          f"{type(exc).__name__}") from exc
    if status != 200 or not isinstance(data, dict):
        error = data.get("error") if isinstance(data, dict) else None
        shown = re.sub(r"[^A-Za-z0-9_.-]", "", str(error))[:64] if error else str(status)
        raise SignInError("oidc_exchange", f"the token endpoint refused the code ({shown})",
                          detail={"provider_error": shown})
    if not isinstance(data.get("id_token"), str):
        raise SignInError("oidc_exchange", "the token answer has no id_token")
    return data


async def validate_id_token(config: OidcConfig, info: ProviderInfo, tokens: Mapping[str, Any],
                            pending: PendingLogin, now: int) -> dict[str, Any]:
    """The ID token's claims, once its signature (the provider's JWKS), ``iss``, ``aud``,
    ``azp``, ``exp``, ``iat``, ``nonce`` and ``at_hash`` all check (Core 1.0, 3.1.3.7);
    :class:`SignInError` (``oidc_token``) naming the first that does not."""
    raw = tokens["id_token"]
    if len(raw) > MAX_ID_TOKEN:
        raise SignInError("oidc_token", f"the ID token is longer than {MAX_ID_TOKEN} bytes")
    algorithms = info.algorithms()
    try:
        try:
            token = jwt.decode(raw, await _key_set(info, refresh=False), algorithms=algorithms)
        except InvalidKeyIdError:
            token = jwt.decode(raw, await _key_set(info, refresh=True), algorithms=algorithms)
    except JoseError as exc:
        raise SignInError("oidc_token", "the ID token's signature does not verify with the "
                          f"provider's keys ({exc.error})") from exc
    except ValueError as exc:
        raise SignInError("oidc_token", "the ID token is malformed") from exc
    options = {"iss": {"essential": True, "value": config.issuer},
               "aud": {"essential": True, "value": config.client_id},
               "sub": {"essential": True}, "exp": {"essential": True},
               "iat": {"essential": True},
               "nonce": {"essential": True, "value": pending.nonce}}
    params = {"nonce": pending.nonce, "client_id": config.client_id}
    if isinstance(tokens.get("access_token"), str):
        params["access_token"] = tokens["access_token"]
    claims = CodeIDToken(token.claims, token.header, options, params)
    try:
        claims.validate(now=now, leeway=LEEWAY)
    except JoseError as exc:
        why = exc.description or exc.error
        raise SignInError("oidc_token", f"the ID token does not check: {why}",
                          subject=_str_claim(token.claims, "sub")) from exc
    iat = claims.get("iat")
    if not isinstance(iat, int | float) or iat > now + LEEWAY:
        raise SignInError("oidc_token", "the ID token was issued in the future")
    return dict(claims)


# -- from claims to a sealtrail user ------------------------------------------------------


def _claim(claims: Mapping[str, Any], name: str) -> Any:
    """A claim by name, else by dotted path into nested objects (``realm_access.roles``)."""
    if name in claims:
        return claims[name]
    value: Any = claims
    for part in name.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return None
        value = value[part]
    return value


def _str_claim(claims: Mapping[str, Any], name: str) -> str | None:
    value = claims.get(name)
    return value[:256] if isinstance(value, str) else None


def map_role(config: OidcConfig, claims: Mapping[str, Any]) -> str:
    """The sealtrail role the claims give: the highest role any value of the role claim maps
    to. :class:`SignInError` (``oidc_role``) when none does."""
    value = _claim(claims, config.role_claim)
    values = [value] if isinstance(value, str) else (
        [v for v in value if isinstance(v, str)] if isinstance(value, list) else [])
    roles = {config.role_map[v] for v in values if v in config.role_map}
    if not roles:
        shown = [v[:64] for v in values[:20]]
        raise SignInError(
            "oidc_role", f"no value of the {config.role_claim!r} claim maps to a role "
            f"(the claim has {shown!r})",
            subject=_str_claim(claims, config.name_claim) or _str_claim(claims, "sub"),
            detail={"claim": config.role_claim, "values": shown,
                    "sub": _str_claim(claims, "sub")})
    return max(roles, key=ROLES.index)


def user_name(config: OidcConfig, claims: Mapping[str, Any]) -> str:
    """The console user name: the ``name_claim`` (``preferred_username``), else ``sub``; it
    must be a plain name (letters, digits, ``._@+-``, up to 64)."""
    for name in (config.name_claim, "sub"):
        value = _claim(claims, name)
        if isinstance(value, str) and _NAME.fullmatch(value):
            return value
    raise SignInError("oidc_name", f"neither {config.name_claim!r} nor 'sub' is a usable "
                      "user name", subject=_str_claim(claims, "sub"))


# -- the two routes -----------------------------------------------------------------------


def _config(request: Request) -> OidcConfig:
    config = getattr(service(request).config, "oidc", None)
    if not isinstance(config, OidcConfig):
        raise TypeError("single sign-on is not configured (auth.py checks before calling)")
    return config


def _redirect_uri(config: OidcConfig, request: Request) -> str:
    if config.redirect_url is not None:
        return config.redirect_url
    return str(request.base_url).rstrip("/") + CALLBACK_PATH


def _cookie_path(config: OidcConfig) -> str:
    """Where the browser sends the pending cookie: the callback's path as the browser sees it
    (a proxy that serves the console under a prefix shows it in ``--oidc-redirect-url``)."""
    if config.redirect_url is not None:
        return urlsplit(config.redirect_url).path or CALLBACK_PATH
    return CALLBACK_PATH


def _now(request: Request) -> int:
    return int(service(request).config.clock().timestamp())


def _secure(request: Request) -> bool:
    return bool(getattr(service(request).config, "ui_secure_cookies", True))


async def oidc_login(request: Request) -> Response:
    """``GET /ui/oidc/login``: start a sign-in at the provider (module docstring, steps 1-4)."""
    config = _config(request)
    next_path = request.query_params.get("next", "/ui/")
    if len(next_path) > 512 or not next_path.startswith("/ui/"):
        next_path = "/ui/"
    try:
        info = await discover(config)
    except SignInError as refused:
        return await _refuse(request, refused)
    pending = new_pending(_redirect_uri(config, request), next_path, _now(request))
    response = RedirectResponse(authorization_url(config, info, pending), status_code=302)
    # SameSite=Lax, not Strict: the provider's redirect back is a cross-site navigation, on
    # which a Strict cookie would not be sent. Only the callback's path receives it.
    response.set_cookie(PENDING_COOKIE, pending.seal(config.pending_key), max_age=PENDING_TTL,
                        path=_cookie_path(config), httponly=True, samesite="lax",
                        secure=_secure(request))
    return harden(response)


async def oidc_callback(request: Request) -> Response:
    """``GET /ui/oidc/callback``: finish the sign-in (module docstring, steps 1-7)."""
    state = service(request)
    config = _config(request)
    try:
        next_path, role, name, subject = await _complete(request, config)
        user = await in_thread(_sso_user, state.users, name, role, subject,
                               state.config.clock())
    except SignInError as refused:
        return await _refuse(request, refused)
    response = await start_session(request, user, via="oidc", next_path=next_path)
    response.delete_cookie(PENDING_COOKIE, path=_cookie_path(config))
    return response


async def _complete(request: Request, config: OidcConfig) -> tuple[str, str, str, str]:
    """Steps 1-5 of the callback: where the user was heading, the role, the user name and
    the subject (``iss``, a newline, ``sub``), or a refusal."""
    now = _now(request)
    pending = PendingLogin.open(request.cookies.get(PENDING_COOKIE, ""), config.pending_key,
                                now)
    params = request.query_params
    sent_state = params.get("state", "")
    if not hmac.compare_digest(sent_state.encode()[:MAX_PARAM], pending.state.encode()):
        raise SignInError("oidc_state", "the answer's state is not this browser's sign-in")
    if not _consumed.take(pending.state, pending.expires, now):
        raise SignInError("oidc_state", "this sign-in was completed or refused already")
    if "error" in params:
        error = re.sub(r"[^A-Za-z0-9_.-]", "", params["error"])[:64]
        raise SignInError("oidc_denied", f"the provider answered {error!r}",
                          detail={"provider_error": error})
    code = params.get("code", "")
    if not code or len(code) > MAX_PARAM:
        raise SignInError("oidc_exchange", "the provider's answer has no code")
    info = await discover(config)
    tokens = await exchange_code(config, info, code, pending)
    claims = await validate_id_token(config, info, tokens, pending, now)
    role = map_role(config, claims)
    return pending.next_path, role, user_name(config, claims), subject_of(claims)


def subject_of(claims: Mapping[str, Any]) -> str:
    """The provider's account the ID token is about: ``iss``, a newline, ``sub`` (both
    required and validated; ``iss`` is the configured issuer, a URL without a newline, so
    the pair is read back unambiguously). ``sub`` is unique and never reassigned within an
    issuer (OpenID Connect Core 1.0, 2 and 5.7), unlike ``preferred_username``."""
    iss, sub = claims.get("iss"), claims.get("sub")
    if not isinstance(iss, str) or not isinstance(sub, str) or not iss or not sub \
            or "\n" in iss or len(sub) > 255:
        raise SignInError("oidc_token", "the ID token has no usable 'iss' and 'sub'")
    return f"{iss}\n{sub}"


def _sso_user(users: Users, name: str, role: str, subject: str, now: datetime) -> UserInfo:
    """Step 6: the SSO user record (made or its role updated), the one bound to the
    provider's account; refused when disabled, or when the name is a local (password)
    user's or another account's, which single sign-on never takes over."""
    try:
        user = users.oidc_user(name, role, now, subject=subject)
    except (ConfigError, ValidationError) as exc:
        raise SignInError("oidc_name", str(exc), subject=name) from exc
    if user.disabled is not None:
        raise SignInError("oidc_disabled", "the user is disabled", subject=user.name)
    return user


async def _refuse(request: Request, refused: SignInError) -> Response:
    """Record the failed sign-in and send the browser to the sign-in page with the code."""
    state = service(request)
    actor: dict[str, Any] = {"id": "user:(unknown)", "type": "user",
                             "name": refused.subject or "(single sign-on)"}
    if request.client is not None:
        actor["ip"] = request.client.host
    metadata: dict[str, Any] = {"via": "oidc", "result": refused.code,
                                "issuer": _config(request).issuer, **refused.detail}
    await service_event(state, actor, action="sealtrail.console.sign_in",
                        target=CONSOLE_TARGET, category="authentication", outcome="failure",
                        reason=refused.message[:500], metadata=metadata)
    response = RedirectResponse(f"/ui/?error={refused.code}", status_code=303)
    response.delete_cookie(PENDING_COOKIE, path=_cookie_path(_config(request)))
    return harden(response)


__all__ = ["CALLBACK_PATH", "ERRORS", "PENDING_COOKIE", "OidcConfig", "PendingLogin",
           "ProviderInfo", "SignInError", "authorization_url", "config_from_options",
           "discover", "exchange_code", "map_role", "new_pending", "oidc_callback",
           "oidc_login", "parse_role_map", "user_name", "validate_id_token"]
