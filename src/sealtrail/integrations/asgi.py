"""ASGI middleware (Starlette, FastAPI, any ASGI 3 app): one audit event per HTTP request.

The event (see :mod:`sealtrail.integrations.http`) is recorded when the app starts its
response, before the status line goes out: with a ``fail_closed`` client a request whose
event the service did not store gets no success answer (the error propagates and the server
answers 500). An app that raises before answering is recorded with outcome ``error``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, MutableMapping
from datetime import UTC, datetime
from typing import Any

from sealtrail.client import AsyncClient, Client
from sealtrail.core.timefmt import format_time
from sealtrail.integrations._actor import current_actor
from sealtrail.integrations.http import request_event

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
ActorFn = Callable[[Scope], Mapping[str, Any] | None]

log = logging.getLogger("sealtrail.integrations")


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers") or ():
        if key.lower() == name:
            return bytes(value).decode("latin-1")
    return None


class AuditMiddleware:
    """Wrap ``app`` so each HTTP request is recorded through ``client``.

    ``actor(scope)`` says who made the request (called when the response starts, so it sees
    what authentication in the app put in the scope, e.g. ``scope["user"]`` or
    ``scope["state"]``); None means the current :func:`~sealtrail.integrations.acting_as`
    actor, else ``anonymous``. ``exclude_paths`` are not recorded (health checks);
    ``extra`` fields (``category``, ``source``...) go into every event. With a sync
    :class:`~sealtrail.client.Client` the spool write runs in a worker thread.
    """

    def __init__(self, app: ASGIApp, client: Client | AsyncClient, *,
                 actor: ActorFn | None = None, request_id_header: str = "x-request-id",
                 exclude_paths: Iterable[str] = (), **extra: Any) -> None:
        self.app = app
        self.client = client
        self.actor = actor
        self.request_id_header = request_id_header.lower().encode("latin-1")
        self.exclude_paths = frozenset(exclude_paths)
        self.extra = extra

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Run the app, recording the request when its response starts."""
        if scope.get("type") != "http" or scope.get("path") in self.exclude_paths:
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        when = format_time(datetime.now(UTC))
        recorded = False

        async def record(status: int) -> None:
            nonlocal recorded
            recorded = True
            actor = self.actor(scope) if self.actor is not None else None
            client_addr = scope.get("client")
            doc = request_event(
                method=str(scope.get("method", "GET")), path=str(scope.get("path", "/")),
                status=status, actor=actor if actor is not None else current_actor.get(),
                client_ip=str(client_addr[0]) if client_addr else None,
                request_id=_header(scope, self.request_id_header),
                traceparent=_header(scope, b"traceparent"),
                user_agent=_header(scope, b"user-agent"), time=when,
                duration_ms=(time.perf_counter() - started) * 1000, extra=self.extra)
            if isinstance(self.client, AsyncClient):
                await self.client.record(doc)
            else:
                await asyncio.to_thread(self.client.record, doc)

        async def send_recorded(message: Message) -> None:
            if message.get("type") == "http.response.start" and not recorded:
                await record(int(message.get("status", 500)))
            await send(message)

        try:
            await self.app(scope, receive, send_recorded)
        except BaseException:
            if not recorded:
                try:
                    await record(500)
                except Exception:
                    log.exception("sealtrail: could not record a failed request")
            raise
