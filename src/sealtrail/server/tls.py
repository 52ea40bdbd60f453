"""TLS for the service, and the client certificate of each connection (mTLS).

uvicorn verifies a client certificate against ``--client-ca`` but does not hand it to the app,
so :class:`CertAwareH11Protocol` (uvicorn's HTTP/1.1 protocol) puts the SHA-256 of the peer's
DER certificate into each request's scope: ``scope["extensions"]["tls"]["client_cert_sha256"]``.
An API key bound to a certificate (``keys create --client-cert FILE``) only works over a
connection that presented that certificate.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from uvicorn.protocols.http.h11_impl import H11Protocol

Scope = MutableMapping[str, Any]
App = Callable[[Scope, Callable[[], Awaitable[Any]], Callable[[Any], Awaitable[None]]],
               Awaitable[None]]


def client_cert_sha256(scope: Scope) -> str | None:
    """The hex SHA-256 of the connection's client certificate, if it presented one."""
    tls = (scope.get("extensions") or {}).get("tls") or {}
    value = tls.get("client_cert_sha256")
    return value if isinstance(value, str) else None


class CertAwareH11Protocol(H11Protocol):
    """uvicorn's h11 protocol, adding the client certificate's hash to every request scope."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        ssl_object = transport.get_extra_info("ssl_object")
        der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
        if der:
            digest = hashlib.sha256(der).hexdigest()
            app: App = self.app

            async def with_cert(scope: Scope, receive: Callable[[], Awaitable[Any]],
                                send: Callable[[Any], Awaitable[None]]) -> None:
                extensions = dict(scope.get("extensions") or {})
                extensions["tls"] = {**extensions.get("tls", {}), "client_cert_sha256": digest}
                await app({**scope, "extensions": extensions}, receive, send)

            self.app = with_cert
