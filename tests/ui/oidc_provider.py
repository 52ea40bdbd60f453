"""A real OpenID Connect provider for the sign-on tests, built from authlib's server side.

Not a stub: authlib's generic :class:`~authlib.oauth2.rfc6749.AuthorizationServer` with the
:class:`~authlib.oauth2.rfc6749.grants.AuthorizationCodeGrant`, the :class:`OpenIDCode`
extension (ID tokens signed RS256 with a fresh RSA key) and :class:`CodeChallenge` (PKCE, S256
required), adapted to Starlette the way authlib's Flask and Django integrations adapt it
(``create_oauth2_request`` / ``create_json_request`` / ``handle_response`` / ``send_signal``),
and served by uvicorn on a real loopback port. It answers:

- ``GET /.well-known/openid-configuration`` — the discovery document;
- ``GET /authorize`` — consents at once for the user named by ``login_hint``, else by
  :attr:`Provider.login_as` (a test's preset), and redirects back with a code;
- ``POST /token`` — the code exchange (client authentication, PKCE verifier, one use a code);
- ``GET /jwks`` — the public key set.

What a test may turn, to play a provider that misbehaves or an attacker on the way:
:attr:`Provider.id_token_mode` (``"good"``, ``"bad_signature"``: signed with a key not in the
JWKS under the same key id, ``"wrong_audience"``, ``"expired"``, ``"wrong_issuer"``,
``"wrong_nonce"``), the users' claims in :attr:`Provider.users`, the signing key
(:meth:`Provider.rotate_key`) and the size of its answers (:attr:`Provider.padding`).
"""

from __future__ import annotations

import hmac
import socket
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, ClassVar
from urllib.parse import parse_qsl

import uvicorn
from authlib.common.security import generate_token  # type: ignore[import-untyped]
from authlib.oauth2.rfc6749 import (  # type: ignore[import-untyped]
    AuthorizationServer,
    ClientMixin,
    JsonPayload,
    JsonRequest,
    OAuth2Error,
    OAuth2Payload,
    OAuth2Request,
)
from authlib.oauth2.rfc6749.errors import InvalidRequestError  # type: ignore[import-untyped]
from authlib.oauth2.rfc6749.grants import AuthorizationCodeGrant  # type: ignore[import-untyped]
from authlib.oauth2.rfc6750 import BearerTokenGenerator  # type: ignore[import-untyped]
from authlib.oauth2.rfc7636 import CodeChallenge  # type: ignore[import-untyped]
from authlib.oidc.core import AuthorizationCodeMixin, OpenIDCode  # type: ignore[import-untyped]
from joserfc.jwk import KeySet, RSAKey
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

KID = "test-key-1"
SCOPES = ["openid", "profile", "email", "groups"]
ID_TOKEN_MODES = ("good", "bad_signature", "wrong_audience", "expired", "wrong_issuer",
                  "wrong_nonce")


@dataclass
class Client(ClientMixin):  # type: ignore[misc]
    """A registered relying party: its id, secret and exact redirect URIs."""

    client_id: str
    client_secret: str
    redirect_uris: list[str] = field(default_factory=list)

    def get_client_id(self) -> str:
        return self.client_id

    def get_default_redirect_uri(self) -> str | None:
        return self.redirect_uris[0] if self.redirect_uris else None

    def get_allowed_scope(self, scope: str | None) -> str:
        asked = (scope or "openid").split()
        return " ".join(s for s in asked if s in SCOPES)

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return redirect_uri in self.redirect_uris

    def check_client_secret(self, client_secret: str) -> bool:
        return bool(self.client_secret) and hmac.compare_digest(client_secret.encode(),
                                                                self.client_secret.encode())

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        if not self.client_secret:  # a public client: PKCE is its only proof
            return method == "none"
        return method in ("client_secret_basic", "client_secret_post")

    def check_response_type(self, response_type: str) -> bool:
        return response_type == "code"

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type == "authorization_code"


@dataclass
class Code(AuthorizationCodeMixin):  # type: ignore[misc]
    """An issued authorization code and what it was issued for."""

    code: str
    client_id: str
    redirect_uri: str
    scope: str
    user: str
    nonce: str | None
    code_challenge: str | None
    code_challenge_method: str | None
    auth_time: int
    expires_at: float

    def get_redirect_uri(self) -> str:
        return self.redirect_uri

    def get_scope(self) -> str:
        return self.scope

    def get_nonce(self) -> str | None:
        return self.nonce

    def get_auth_time(self) -> int:
        return self.auth_time

    def get_acr(self) -> str | None:
        return None

    def get_amr(self) -> list[str] | None:
        return None


class _Payload(OAuth2Payload):  # type: ignore[misc]
    """A request's parameters (query and form together), with every value of each."""

    def __init__(self, pairs: list[tuple[str, str]]) -> None:
        self._data: dict[str, str] = {}
        self._datalist: defaultdict[str, list[str]] = defaultdict(list)
        for key, value in pairs:
            self._data.setdefault(key, value)
            self._datalist[key].append(value)

    @property
    def data(self) -> dict[str, str]:
        return self._data

    @property
    def datalist(self) -> defaultdict[str, list[str]]:
        return self._datalist


class StarletteOAuth2Request(OAuth2Request):  # type: ignore[misc]
    """authlib's request over what a Starlette request carried (read before, since it is async)."""

    def __init__(self, request: Request, form: list[tuple[str, str]]) -> None:
        super().__init__(request.method, str(request.url), headers=request.headers)
        self._args = dict(request.query_params)
        self._form = dict(form)
        self.payload = _Payload(list(request.query_params.multi_items()) + form)

    @property
    def args(self) -> dict[str, str]:
        return self._args

    @property
    def form(self) -> dict[str, str]:
        return self._form


class _JsonPayload(JsonPayload):  # type: ignore[misc]
    def __init__(self, data: Any) -> None:
        self._data = data

    @property
    def data(self) -> Any:
        return self._data


class StarletteJsonRequest(JsonRequest):  # type: ignore[misc]
    """authlib's JSON request over a Starlette request (not used by the code flow)."""

    def __init__(self, request: Request, data: Any) -> None:
        super().__init__(request.method, str(request.url), request.headers)
        self.payload = _JsonPayload(data)


class CodeGrant(AuthorizationCodeGrant):  # type: ignore[misc]
    """The code grant over the provider's in-memory tables."""

    TOKEN_ENDPOINT_AUTH_METHODS: ClassVar = ["client_secret_basic", "client_secret_post",
                                             "none"]

    @property
    def provider(self) -> Provider:
        server: ProviderServer = self.server
        return server.provider

    def save_authorization_code(self, code: str, request: OAuth2Request) -> None:
        data = request.payload.data
        self.provider.codes[code] = Code(
            code=code, client_id=request.client.get_client_id(),
            redirect_uri=request.payload.redirect_uri, scope=request.scope,
            user=request.user, nonce=data.get("nonce"),
            code_challenge=data.get("code_challenge"),
            code_challenge_method=data.get("code_challenge_method"),
            auth_time=int(time.time()), expires_at=time.monotonic() + 300)

    def query_authorization_code(self, code: str, client: Client) -> Code | None:
        item = self.provider.codes.get(code)
        if item is None or item.client_id != client.client_id:
            return None
        if item.expires_at < time.monotonic():
            return None
        return item

    def delete_authorization_code(self, authorization_code: Code) -> None:
        # One use a code (RFC 6749 4.1.2): a second exchange finds nothing.
        self.provider.codes.pop(authorization_code.code, None)
        self.provider.redeemed.add(authorization_code.code)

    def authenticate_user(self, authorization_code: Code) -> str | None:
        name = authorization_code.user
        return name if name in self.provider.users else None


class S256Challenge(CodeChallenge):  # type: ignore[misc]
    """PKCE with S256 only, and required at the authorization endpoint (not only for public
    clients, as authlib's default is): the provider refuses a client that sends none."""

    SUPPORTED_CODE_CHALLENGE_METHOD: ClassVar = ["S256"]

    def validate_code_challenge(self, grant: CodeGrant, redirect_uri: str) -> None:
        data = grant.request.payload.data
        if not data.get("code_challenge") or data.get("code_challenge_method") != "S256":
            raise InvalidRequestError("PKCE with S256 is required", redirect_uri=redirect_uri)
        super().validate_code_challenge(grant, redirect_uri)


class IdTokens(OpenIDCode):  # type: ignore[misc]
    """The OpenID extension: signs ID tokens with the provider's key (or, per
    :attr:`Provider.id_token_mode`, gets one wrong on purpose)."""

    def __init__(self, provider: Provider) -> None:
        super().__init__(require_nonce=True)
        self.provider = provider

    def exists_nonce(self, nonce: str, request: OAuth2Request) -> bool:
        return any(c.nonce == nonce for c in self.provider.codes.values())

    def resolve_client_private_key(self, client: Client) -> RSAKey:
        if self.provider.id_token_mode == "bad_signature":
            return self.provider.rogue_key
        return self.provider.key

    def get_client_algorithm(self, client: Client) -> str:
        return "RS256"

    def get_encode_header(self, client: Client) -> dict[str, str]:
        return {"alg": "RS256", "kid": str(self.provider.key.kid)}

    def get_client_claims(self, client: Client) -> dict[str, Any]:
        mode = self.provider.id_token_mode
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.provider.issuer + ("/other" if mode == "wrong_issuer" else ""),
            "aud": ["someone-else"] if mode == "wrong_audience" else [client.client_id],
            "iat": now, "exp": now + 300}
        if mode == "expired":
            claims.update(iat=now - 7200, exp=now - 3600)
        return claims

    def get_authorization_code_claims(self, authorization_code: Code) -> dict[str, Any]:
        claims: dict[str, Any] = super().get_authorization_code_claims(authorization_code)
        if self.provider.id_token_mode == "wrong_nonce":
            claims["nonce"] = "not-the-nonce-that-was-sent"
        return claims

    def generate_user_info(self, user: str, scope: str) -> dict[str, Any]:
        return dict(self.provider.users[user])


class ProviderServer(AuthorizationServer):  # type: ignore[misc]
    """authlib's generic authorization server, adapted to Starlette."""

    def __init__(self, provider: Provider) -> None:
        super().__init__(scopes_supported=SCOPES)
        self.provider = provider
        self.signals: list[str] = []
        self.register_token_generator(
            "default", BearerTokenGenerator(lambda **_: generate_token(42)))
        self.register_grant(CodeGrant, [IdTokens(provider), S256Challenge(required=True)])

    def query_client(self, client_id: str) -> Client | None:
        return self.provider.clients.get(client_id)

    def save_token(self, token: dict[str, Any], request: OAuth2Request) -> None:
        self.provider.tokens.append(token)

    def create_oauth2_request(self, request: Any) -> OAuth2Request:
        if not isinstance(request, OAuth2Request):
            raise TypeError("build the request with StarletteOAuth2Request (bodies are async)")
        return request

    def create_json_request(self, request: Any) -> JsonRequest:
        if not isinstance(request, JsonRequest):
            raise TypeError("build the request with StarletteJsonRequest (bodies are async)")
        return request

    def handle_response(self, status: int, body: Any, headers: list[tuple[str, str]]
                        ) -> Response:
        if isinstance(body, dict):
            response: Response = JSONResponse(body, status_code=status)
        else:
            response = Response(body or b"", status_code=status)
        for name, value in headers:
            response.headers[name] = value
        return response

    def send_signal(self, name: str, *args: Any, **kwargs: Any) -> None:
        self.signals.append(name)


@dataclass
class Provider:
    """The provider's state: its issuer URL, keys, clients, users and what it issued."""

    issuer: str = ""
    key: RSAKey = field(default_factory=lambda: RSAKey.generate_key(
        2048, parameters={"kid": KID, "use": "sig", "alg": "RS256"}))
    rogue_key: RSAKey = field(default_factory=lambda: RSAKey.generate_key(
        2048, parameters={"kid": KID, "use": "sig", "alg": "RS256"}))
    clients: dict[str, Client] = field(default_factory=dict)
    users: dict[str, dict[str, Any]] = field(default_factory=dict)
    login_as: str | None = None
    id_token_mode: str = "good"
    codes: dict[str, Code] = field(default_factory=dict)
    redeemed: set[str] = field(default_factory=set)
    tokens: list[dict[str, Any]] = field(default_factory=list)
    authorize_requests: list[dict[str, str]] = field(default_factory=list)
    token_requests: int = 0
    retired: list[RSAKey] = field(default_factory=list)
    padding: int = 0

    def add_user(self, name: str, groups: list[str] | str, **claims: Any) -> None:
        """A user the provider signs in: ``sub`` is stable, ``groups`` carries the roles."""
        self.users[name] = {"sub": f"sub-{name}", "preferred_username": name,
                            "name": name.title(), "groups": groups, **claims}

    def add_client(self, client_id: str, client_secret: str, *redirect_uris: str) -> Client:
        """Register a relying party (its redirect URIs are matched exactly); an empty secret
        makes a public client (token requests authenticate with PKCE alone)."""
        client = Client(client_id, client_secret, list(redirect_uris))
        self.clients[client_id] = client
        return client

    def rotate_key(self) -> None:
        """Sign with a new key under a new key id from now on (the JWKS publishes only it,
        and the rogue key takes its id)."""
        kid = f"test-key-{len(self.retired) + 2}"
        self.retired.append(self.key)
        self.key = RSAKey.generate_key(2048, parameters={"kid": kid, "use": "sig",
                                                         "alg": "RS256"})
        self.rogue_key = RSAKey.generate_key(2048, parameters={"kid": kid, "use": "sig",
                                                               "alg": "RS256"})

    def jwks(self) -> dict[str, Any]:
        """The public key set the provider publishes (never the rogue key), padded on request
        (a provider whose answers are too large)."""
        keys = dict(KeySet([self.key]).as_dict(private=False))
        if self.padding:
            keys["padding"] = "x" * self.padding
        return keys

    def discovery(self) -> dict[str, Any]:
        """The OpenID provider metadata (OpenID Connect Discovery 1.0, section 3)."""
        return {
            "issuer": self.issuer,
            "authorization_endpoint": f"{self.issuer}/authorize",
            "token_endpoint": f"{self.issuer}/token",
            "jwks_uri": f"{self.issuer}/jwks",
            "response_types_supported": ["code"],
            "grant_types_supported": ["authorization_code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "scopes_supported": SCOPES,
            "token_endpoint_auth_methods_supported": ["client_secret_basic",
                                                      "client_secret_post", "none"],
            "code_challenge_methods_supported": ["S256"],
            "claims_supported": ["sub", "iss", "aud", "exp", "iat", "nonce",
                                 "preferred_username", "name", "groups"],
            **({"padding": "x" * self.padding} if self.padding else {}),
        }


def build_app(provider: Provider) -> Starlette:
    """The provider's HTTP face: discovery, authorize, token, jwks."""
    server = ProviderServer(provider)

    async def discovery(request: Request) -> Response:
        return JSONResponse(provider.discovery())

    async def jwks(request: Request) -> Response:
        return JSONResponse(provider.jwks())

    async def authorize(request: Request) -> Response:
        provider.authorize_requests.append(dict(request.query_params))
        req = StarletteOAuth2Request(request, [])
        user = request.query_params.get("login_hint") or provider.login_as
        try:
            grant = server.get_consent_grant(req, end_user=user)
        except OAuth2Error as error:
            response: Response = server.handle_error_response(req, error)
            return response
        if user not in provider.users:
            # Nobody to sign in: the user "denies" (authlib redirects with access_denied).
            user = None
        answer: Response = server.create_authorization_response(req, grant_user=user,
                                                                grant=grant)
        return answer

    async def token(request: Request) -> Response:
        provider.token_requests += 1
        body = await request.body()
        if len(body) > 16384:
            return JSONResponse({"error": "invalid_request"}, status_code=413)
        pairs = parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True)
        response: Response = server.create_token_response(StarletteOAuth2Request(request, pairs))
        return response

    return Starlette(routes=[
        Route("/.well-known/openid-configuration", discovery),
        Route("/authorize", authorize),
        Route("/token", token, methods=["POST"]),
        Route("/jwks", jwks),
    ])


@contextmanager
def running_provider(provider: Provider | None = None) -> Iterator[Provider]:
    """Serve a provider with uvicorn on 127.0.0.1 and a free port, in a thread; its issuer is
    ``http://127.0.0.1:<port>`` (the port is bound first, so the issuer is known before the
    first request)."""
    provider = provider or Provider()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    provider.issuer = f"http://127.0.0.1:{sock.getsockname()[1]}"
    server = uvicorn.Server(uvicorn.Config(build_app(provider), log_level="warning",
                                           lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]},
                              name="uvicorn-oidc-provider", daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 20
        while not server.started:
            if not thread.is_alive():
                raise RuntimeError("the OIDC provider stopped before it started")
            if time.monotonic() > deadline:
                raise RuntimeError("the OIDC provider did not start within 20 s")
            time.sleep(0.01)
        yield provider
    finally:
        server.should_exit = True
        thread.join(20)
        sock.close()
