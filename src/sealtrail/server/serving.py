"""Running the service on uvicorn with limits on slow clients (slowloris).

uvicorn closes idle keep-alive connections (``timeout_keep_alive``) but waits forever for the
rest of a request whose headers or body trickle in, so a few hundred connections sending a byte
every few seconds hold the server's connection slots and memory indefinitely.
:class:`GuardedH11Protocol` (uvicorn's HTTP/1.1 protocol, with the client-certificate hash of
:class:`~sealtrail.server.tls.CertAwareH11Protocol`) adds two deadlines per request:

- the **header timeout**: the request line and every header must have arrived within
  ``header_timeout`` seconds of the connection opening (first request) or of the request's first
  byte (later requests on a kept-alive connection; the wait before that byte is
  ``keep_alive_timeout``). Bytes arriving do not extend it: a client dripping one header byte at
  a time is cut off like one that stopped.
- the **body timeout**: the whole body must have arrived within ``body_timeout`` seconds of the
  end of the headers.

A client past either deadline gets ``408 Request Timeout`` (when no response has started) and
the connection is closed; the application sees the client disconnect. Headers larger than
``max_header_bytes`` are refused with 400 (h11's incomplete-event limit). The TLS handshake is
bounded by asyncio's handshake timeout (60 s).

:func:`build_server` makes the :class:`uvicorn.Server`; :func:`serve` runs it in the foreground
(what ``sealtrail serve`` and ``sealtrail demo`` call instead of ``uvicorn.run``).
:func:`listen` binds the address first, so a command can fail on a taken port before it
prints anything (or creates keys) and hand the bound sockets to :func:`serve`.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import errno
import logging
import os
import socket
import ssl
import sys
from typing import Any, Final

import h11
import uvicorn
from starlette.requests import ClientDisconnect
from uvicorn.server import ServerState

from sealtrail.core.errors import ConfigError
from sealtrail.server.tls import CertAwareH11Protocol

HEADER_TIMEOUT: Final = 10.0
"""Seconds for the request line and headers (from the connection, or the request's first byte)."""
BODY_TIMEOUT: Final = 30.0
"""Seconds for the whole request body, from the end of the headers (8 MiB at ~280 KiB/s)."""
KEEP_ALIVE_TIMEOUT: Final = 5
"""Seconds an idle kept-alive connection waits for the next request's first byte."""
MAX_HEADER_BYTES: Final = 16 * 1024
"""Largest request line plus headers, in bytes; larger ones get 400."""
STARTUP_FAILURE: Final = 3
"""Exit status when the server could not start (the port is taken, say), as uvicorn's."""

_TIMEOUT_BODY = b"request timeout: the request did not arrive in time\n"
REQUEST_TIMEOUT_RESPONSE: Final = (
    b"HTTP/1.1 408 Request Timeout\r\n"
    b"content-type: text/plain; charset=utf-8\r\n"
    b"connection: close\r\n"
    b"content-length: " + str(len(_TIMEOUT_BODY)).encode() + b"\r\n\r\n" + _TIMEOUT_BODY)


class GuardedConfig(uvicorn.Config):
    """A uvicorn configuration that also carries the header and body timeouts."""

    def __init__(self, app: Any, *, header_timeout: float = HEADER_TIMEOUT,
                 body_timeout: float = BODY_TIMEOUT, **kwargs: Any) -> None:
        if not header_timeout > 0 or not body_timeout > 0:
            raise ValueError("header_timeout and body_timeout must be positive")
        super().__init__(app, **kwargs)
        self.header_timeout = float(header_timeout)
        self.body_timeout = float(body_timeout)


class GuardedH11Protocol(CertAwareH11Protocol):
    """uvicorn's HTTP/1.1 protocol with a header deadline and a body deadline per request.

    The deadlines follow h11's view of the client: while it is ``IDLE`` with bytes buffered (or
    the connection is new) the header deadline runs; in ``SEND_BODY`` the body deadline runs;
    once the request is complete (``DONE``) neither does, however long the application takes.
    """

    def __init__(self, config: uvicorn.Config, server_state: ServerState,
                 app_state: dict[str, Any], _loop: asyncio.AbstractEventLoop | None = None
                 ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self.header_timeout = float(getattr(config, "header_timeout", HEADER_TIMEOUT))
        self.body_timeout = float(getattr(config, "body_timeout", BODY_TIMEOUT))
        self._header_timer: asyncio.TimerHandle | None = None
        self._body_timer: asyncio.TimerHandle | None = None
        self.app = _quiet_on_disconnect(self.app, self.logger)

    # -- the protocol's events ----------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._header_timer = self.loop.call_later(self.header_timeout, self._header_expired)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        self._follow()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():
            self._follow()  # a pipelined request may already be partly buffered

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_header()
        self._cancel_body()
        super().connection_lost(exc)

    # -- deadlines ----------------------------------------------------------------------------

    def _follow(self) -> None:
        """Arm or cancel the deadlines for where the client is in its request."""
        state = self.conn.their_state
        if state is h11.IDLE:
            if self.conn.trailing_data[0] and self._header_timer is None:
                self._header_timer = self.loop.call_later(self.header_timeout,
                                                          self._header_expired)
        elif state is h11.SEND_BODY:
            self._cancel_header()
            if self._body_timer is None:
                self._body_timer = self.loop.call_later(self.body_timeout, self._body_expired)
        else:
            self._cancel_header()
            self._cancel_body()

    def _cancel_header(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _cancel_body(self) -> None:
        if self._body_timer is not None:
            self._body_timer.cancel()
            self._body_timer = None

    def _header_expired(self) -> None:
        self._header_timer = None
        if self.transport.is_closing() or self.conn.their_state is not h11.IDLE:
            return
        self.logger.info("%s: request headers not received within %.0fs; connection closed",
                         _peer(self.client), self.header_timeout)
        self.transport.write(REQUEST_TIMEOUT_RESPONSE)
        self.transport.close()

    def _body_expired(self) -> None:
        self._body_timer = None
        if self.transport.is_closing() or self.conn.their_state is not h11.SEND_BODY:
            return
        self.logger.info("%s: request body not received within %.0fs; connection closed",
                         _peer(self.client), self.body_timeout)
        cycle = self.cycle
        if cycle is None or not cycle.response_started:
            self.transport.write(REQUEST_TIMEOUT_RESPONSE)
        self.transport.close()  # connection_lost tells the application the client is gone


def _quiet_on_disconnect(app: Any, logger: logging.Logger) -> Any:
    """``app``, with a request whose client went away while it was read ended quietly.

    Starlette raises ``ClientDisconnect`` when the body cannot be read because the connection
    is gone (cut off by a deadline, or closed by the client); uvicorn would log it as an
    application error with a traceback, once per slow client: a log flood for an attacker.
    """

    async def guarded(scope: Any, receive: Any, send: Any) -> None:
        try:
            await app(scope, receive, send)
        except ClientDisconnect:
            logger.info("the client went away before its request was read")

    return guarded


def _peer(client: tuple[str, int] | None) -> str:
    return f"{client[0]}:{client[1]}" if client else "a client"


MALLOC_ARENAS: Final = 2
"""glibc malloc arenas a serving process may use (unless ``MALLOC_ARENA_MAX`` is set)."""


def limit_malloc_arenas(arenas: int = MALLOC_ARENAS) -> bool:
    """Cap glibc's malloc arenas for this process (``mallopt(M_ARENA_MAX)``); whether it did.

    Each thread that meets a busy arena gets one of its own (up to 8 per core), and request
    bodies of half a megabyte parsed on the server's worker threads leave every arena
    fragmented: the service's memory grew by about 60 MB over two minutes of batched ingest
    with the default, 23 MB with two arenas (bench/soak_bench.py). An operator's own
    ``MALLOC_ARENA_MAX`` wins; off glibc this does nothing.
    """
    if os.environ.get("MALLOC_ARENA_MAX") or not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None)
        return bool(libc.mallopt(_M_ARENA_MAX, arenas))
    except (OSError, AttributeError):
        return False


_M_ARENA_MAX: Final = -8  # glibc's malloc.h


def build_server(app: Any, *, host: str = "127.0.0.1", port: int = 8470,
                 log_level: str = "warning",
                 ssl_certfile: str | None = None, ssl_keyfile: str | None = None,
                 ssl_ca_certs: str | None = None, ssl_cert_reqs: int = ssl.CERT_NONE,
                 header_timeout: float = HEADER_TIMEOUT, body_timeout: float = BODY_TIMEOUT,
                 keep_alive_timeout: int = KEEP_ALIVE_TIMEOUT,
                 max_header_bytes: int = MAX_HEADER_BYTES,
                 max_connections: int | None = None,
                 forwarded_allow_ips: str | None = None,
                 lifespan: str = "auto") -> uvicorn.Server:
    """A :class:`uvicorn.Server` for ``app`` speaking HTTP/1.1 through :class:`GuardedH11Protocol`.

    ``host``, ``port``, ``log_level`` and the ``ssl_*`` arguments are uvicorn's (``ssl_ca_certs``
    with ``ssl_cert_reqs=ssl.CERT_OPTIONAL`` asks clients for a certificate: mTLS).
    ``header_timeout`` (default 10 s) and ``body_timeout`` (default 30 s) are the deadlines
    described in this module; ``keep_alive_timeout`` (default 5 s) closes idle kept-alive
    connections; ``max_header_bytes`` (default 16 KiB) bounds the request line and headers;
    ``max_connections`` (default: no limit) answers 503 beyond that many open connections.
    ``forwarded_allow_ips`` (default: uvicorn's, 127.0.0.1) are the proxies whose
    ``X-Forwarded-For``/``-Proto`` are believed: the client address the console's sign-in
    limit and audit records see.
    """
    if max_header_bytes <= 0:
        raise ValueError("max_header_bytes must be positive")
    limit_malloc_arenas()  # before uvicorn starts its threads
    config = GuardedConfig(
        app, host=host, port=port, log_level=log_level, lifespan=lifespan,
        http=GuardedH11Protocol, ws="none",
        ssl_certfile=ssl_certfile, ssl_keyfile=ssl_keyfile, ssl_ca_certs=ssl_ca_certs,
        ssl_cert_reqs=ssl_cert_reqs,
        header_timeout=header_timeout, body_timeout=body_timeout,
        timeout_keep_alive=keep_alive_timeout,
        h11_max_incomplete_event_size=max_header_bytes,
        limit_concurrency=max_connections,
        **({"forwarded_allow_ips": forwarded_allow_ips, "proxy_headers": True}
           if forwarded_allow_ips is not None else {}))
    return uvicorn.Server(config)


class ListenError(ConfigError):
    """The address to serve on cannot be bound (taken by another program, not this machine's,
    or a privileged port); the message says which and what to do. The CLI exits 2 with it."""


_WHY: Final = {errno.EADDRINUSE: "the port is already in use (another sealtrail or program "
                                 "listens there; stop it or choose another --port)",
               errno.EADDRNOTAVAIL: "the address is not one of this machine's",
               errno.EACCES: "permission denied (ports below 1024 need privileges)"}


def listen(host: str = "127.0.0.1", port: int = 8470, *, backlog: int = 2048
           ) -> list[socket.socket]:
    """Sockets bound to ``host:port`` and listening, for :func:`serve` ``(sockets=...)``.

    Bind before announcing anything: on a taken port this raises :class:`ListenError`
    (``cannot listen on 127.0.0.1:8470: the port is already in use ...``) and nothing was
    started. A name that resolves to several addresses (``localhost``) gets a socket per
    address, as uvicorn's own binding does; port 0 takes one free port (on the first address).
    """
    try:
        infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM,
                                   flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise ListenError(f"cannot listen on {host}: {exc.strerror}") from exc
    seen: list[tuple[socket.AddressFamily, Any]] = []
    for info in infos:
        if (info[0], info[4]) not in seen and info[0] in (socket.AF_INET, socket.AF_INET6):
            seen.append((info[0], info[4]))
    if port == 0:
        seen = seen[:1]
    sockets: list[socket.socket] = []
    try:
        for family, address in seen:
            sock = socket.socket(family, socket.SOCK_STREAM)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # TIME_WAIT only
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            try:
                sock.bind(address)
            except OSError as exc:
                where = f"[{address[0]}]:{port}" if family == socket.AF_INET6 else (
                    f"{address[0]}:{port}")
                why = _WHY.get(exc.errno or 0, exc.strerror or str(exc))
                raise ListenError(f"cannot listen on {where}: {why}") from exc
            sock.listen(backlog)
            sock.setblocking(False)
    except BaseException:
        for sock in sockets:
            sock.close()
        raise
    if not sockets:
        raise ListenError(f"cannot listen on {host}: no IPv4 or IPv6 address")
    return sockets


def serve(app: Any, *, sockets: list[socket.socket] | None = None, **options: Any) -> None:
    """Run :func:`build_server` ``(app, **options)`` in the foreground until interrupted.

    ``sockets`` (from :func:`listen`) are served instead of binding ``host``/``port`` here;
    ``host`` and ``port`` then only name the address. Like ``uvicorn.run``: Ctrl-C (SIGINT)
    stops it quietly, after the application's shutdown (the monitor child stopped, logs
    closed), and a server that could not start exits with status 3.
    """
    server = build_server(app, **options)
    try:
        with contextlib.suppress(KeyboardInterrupt):
            server.run(sockets=sockets)
    finally:
        for sock in sockets or []:
            sock.close()
    if not server.started:
        sys.exit(STARTUP_FAILURE)


__all__ = ["BODY_TIMEOUT", "HEADER_TIMEOUT", "KEEP_ALIVE_TIMEOUT", "MAX_HEADER_BYTES",
           "GuardedConfig", "GuardedH11Protocol", "ListenError", "build_server",
           "listen", "serve"]
