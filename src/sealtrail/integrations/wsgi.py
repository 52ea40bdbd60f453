"""WSGI middleware (Flask, Django, any WSGI app): one audit event per HTTP request.

The event (see :mod:`sealtrail.integrations.http`) is recorded once the app has chosen its
status — after it returned its body iterable (or, for apps that call ``start_response``
lazily, when the first body chunk is produced) and before the server sends anything, so with
a ``fail_closed`` client an unrecorded request gets a 500 instead of its answer. An app that
raises is recorded with outcome ``error``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import UTC, datetime
from types import TracebackType
from typing import Any
from wsgiref.types import StartResponse, WSGIApplication, WSGIEnvironment

from sealtrail.client import Client
from sealtrail.core.timefmt import format_time
from sealtrail.integrations._actor import current_actor
from sealtrail.integrations.http import request_event

ActorFn = Callable[[WSGIEnvironment], Mapping[str, Any] | None]
ExcInfo = tuple[type[BaseException], BaseException, TracebackType] | tuple[None, None, None]

log = logging.getLogger("sealtrail.integrations")


class WSGIAuditMiddleware:
    """Wrap ``app`` so each request is recorded through ``client``.

    ``actor(environ)`` says who made the request (None: the current
    :func:`~sealtrail.integrations.acting_as` actor, else ``anonymous``); ``exclude_paths``
    are not recorded; ``extra`` fields go into every event.
    """

    def __init__(self, app: WSGIApplication, client: Client, *, actor: ActorFn | None = None,
                 request_id_header: str = "X-Request-ID", exclude_paths: Iterable[str] = (),
                 **extra: Any) -> None:
        self.app = app
        self.client = client
        self.actor = actor
        self.request_id_key = "HTTP_" + request_id_header.upper().replace("-", "_")
        self.exclude_paths = frozenset(exclude_paths)
        self.extra = extra

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse
                 ) -> Iterable[bytes]:
        """Run the app; record the request before its answer leaves."""
        path = str(environ.get("SCRIPT_NAME", "")) + str(environ.get("PATH_INFO", ""))
        if path in self.exclude_paths:
            return self.app(environ, start_response)
        request = _Request(self, environ, path)

        def start(status: str, headers: list[tuple[str, str]],
                  exc_info: ExcInfo | None = None) -> Callable[[bytes], object]:
            request.status = _status_code(status)
            if exc_info is not None and exc_info[0] is not None:
                return start_response(status, headers, exc_info)
            return start_response(status, headers)

        try:
            body = self.app(environ, start)
        except BaseException:
            request.failed()
            raise
        if request.status is None:
            return _Recorded(body, request)   # start_response comes with the first chunk
        try:
            request.record(request.status)
        except BaseException:
            _close(body)
            raise
        return body


class _Request:
    def __init__(self, mw: WSGIAuditMiddleware, environ: WSGIEnvironment, path: str) -> None:
        self.mw = mw
        self.environ = environ
        self.path = path
        self.status: int | None = None
        self.recorded = False
        self.started = time.perf_counter()
        self.when = format_time(datetime.now(UTC))

    def record(self, status: int) -> None:
        self.recorded = True
        env = self.environ
        actor = self.mw.actor(env) if self.mw.actor is not None else None
        doc = request_event(
            method=str(env.get("REQUEST_METHOD", "GET")), path=self.path, status=status,
            actor=actor if actor is not None else current_actor.get(),
            client_ip=env.get("REMOTE_ADDR"), request_id=env.get(self.mw.request_id_key),
            traceparent=env.get("HTTP_TRACEPARENT"), user_agent=env.get("HTTP_USER_AGENT"),
            time=self.when, duration_ms=(time.perf_counter() - self.started) * 1000,
            extra=self.mw.extra)
        self.mw.client.record(doc)

    def failed(self) -> None:
        if self.recorded:
            return
        try:
            self.record(500)
        except Exception:
            log.exception("sealtrail: could not record a failed request")


class _Recorded:
    """A body iterable that records the request when the app has set its status."""

    def __init__(self, body: Iterable[bytes], request: _Request) -> None:
        self.body = body
        self.request = request

    def __iter__(self) -> Iterator[bytes]:
        try:
            for chunk in self.body:
                if not self.request.recorded and self.request.status is not None:
                    self.request.record(self.request.status)
                yield chunk
        except Exception:
            self.request.failed()
            raise
        if not self.request.recorded:
            self.request.record(self.request.status or 500)

    def close(self) -> None:
        _close(self.body)


def _close(body: Iterable[bytes]) -> None:
    close = getattr(body, "close", None)
    if callable(close):
        close()


def _status_code(status: str) -> int:
    head = status.split(" ", 1)[0]
    return int(head) if head.isdigit() else 500
