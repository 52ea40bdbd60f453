"""Attack: slowloris — holding the service's connections with requests that never finish.

A client opens connections and sends a request's headers (or its body) a few bytes at a time,
or stops halfway. uvicorn alone waits for the rest forever. The service's server
(:func:`sealtrail.server.serving.build_server`) gives the headers and the body each a deadline
and closes the connection when it passes. A real server on 127.0.0.1 (the real sealtrail app,
in a thread) with short deadlines, and raw sockets as the clients. Nothing here measures time:
each test only requires that the server closes the connection before a generous bound.
"""

from __future__ import annotations

import hashlib
import json
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives import serialization

from sealtrail.log.apikeys import ApiKeys
from sealtrail.server.app import ServiceConfig, create_app
from sealtrail.server.serving import build_server
from tests.client.service import Service, make_service
from tests.ports import free_port
from tests.server.test_mtls import _context, _issue

HEADER_TIMEOUT = 0.5
BODY_TIMEOUT = 1.0
PATIENCE = 20.0  # how long a test waits for the server to close before failing


class Running:
    """The real service served by ``build_server`` in a thread."""

    def __init__(self, svc: Service, **limits: object) -> None:
        self.svc = svc
        app = create_app(ServiceConfig(svc.data))
        self.server = build_server(app, host="127.0.0.1", port=svc.port, lifespan="on",
                                   **limits)  # type: ignore[arg-type]
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 15
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the server did not start")
            time.sleep(0.01)

    def connect(self) -> socket.socket:
        return socket.create_connection(("127.0.0.1", self.svc.port), timeout=PATIENCE)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(15)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Running]:
    running = Running(make_service(tmp_path / "data"), header_timeout=HEADER_TIMEOUT,
                      body_timeout=BODY_TIMEOUT, keep_alive_timeout=1, max_header_bytes=8192)
    try:
        yield running
    finally:
        running.stop()


def read_until_closed(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes; fails if it never does within PATIENCE."""
    out = b""
    while True:
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            pytest.fail(f"the server kept the connection open; received {out[:200]!r}")
        except ConnectionResetError:
            return out
        if not chunk:
            return out
        out += chunk


def drip(sock: socket.socket, data: bytes, *, every: float = 0.05) -> bytes:
    """Send ``data`` a byte at a time (cycling forever) until the server closes; what it sent."""
    sock.settimeout(every)
    received = b""
    deadline = time.monotonic() + PATIENCE
    i = 0
    while time.monotonic() < deadline:
        try:
            sock.send(data[i % len(data):i % len(data) + 1])
        except (BrokenPipeError, ConnectionResetError):
            return received
        i += 1
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            continue
        except ConnectionResetError:
            return received
        if not chunk:
            return received
        received += chunk
    pytest.fail(f"the server kept a dripping connection open; received {received[:200]!r}")


def events_post(svc: Service, body: bytes, *, length: int | None = None) -> bytes:
    return (b"POST /v1/logs/default/events HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Authorization: Bearer " + svc.ingest.encode() + b"\r\n"
            b"Content-Type: application/json\r\n"
            b"Content-Length: " + str(len(body) if length is None else length).encode() +
            b"\r\n\r\n" + body)


def test_half_the_headers_then_silence(server: Running) -> None:
    with server.connect() as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
        answer = read_until_closed(sock)
    assert answer.startswith(b"HTTP/1.1 408 ")


def test_connect_and_send_nothing(server: Running) -> None:
    with server.connect() as sock:
        answer = read_until_closed(sock)
    assert answer.startswith(b"HTTP/1.1 408 ")


def test_headers_dripped_a_byte_at_a_time(server: Running) -> None:
    """Arriving bytes do not extend the header deadline."""
    with server.connect() as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        answer = drip(sock, b"X-Drip: aaaaaaaaaaaaaaaaaaaaaaaa\r\n")
    assert answer.startswith(b"HTTP/1.1 408 ")


def test_headers_then_part_of_the_body_then_silence(server: Running) -> None:
    body = json.dumps([{"actor": {"id": "slow"}, "action": "slow.post",
                        "outcome": "success"}]).encode()
    with server.connect() as sock:
        sock.sendall(events_post(server.svc, body[:10], length=len(body)))
        answer = read_until_closed(sock)
    assert answer.startswith(b"HTTP/1.1 408 ")
    assert b"201" not in answer.split(b"\r\n", 1)[0]


def test_body_dripped_a_byte_at_a_time(server: Running) -> None:
    with server.connect() as sock:
        sock.sendall(events_post(server.svc, b"", length=1_000_000))
        answer = drip(sock, b"[" + b" " * 100)
    assert answer.startswith(b"HTTP/1.1 408 ")


def test_headers_too_large(server: Running) -> None:
    with server.connect() as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: " + b"a" * 20_000)
        answer = read_until_closed(sock)
    assert answer.startswith(b"HTTP/1.1 400 ")


def test_idle_kept_alive_connection_is_closed(server: Running) -> None:
    with server.connect() as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        answer = read_until_closed(sock)  # answered, then closed after the keep-alive wait
    assert answer.startswith(b"HTTP/1.1 200 ")
    assert answer.count(b"HTTP/1.1") == 1


def test_normal_requests_still_work_and_nothing_slow_was_stored(server: Running) -> None:
    with server.connect() as sock:  # an abandoned slow request first
        sock.sendall(events_post(server.svc, b"[", length=500))
        assert read_until_closed(sock).startswith(b"HTTP/1.1 408 ")
    url = f"http://127.0.0.1:{server.svc.port}"
    with httpx.Client(base_url=url, timeout=10) as http:
        assert http.get("/healthz").status_code == 200
        events = [{"actor": {"id": f"u{n}"}, "action": "fast.post", "outcome": "success"}
                  for n in range(3)]
        res = http.post("/v1/logs/default/events", json=events,
                        headers={"Authorization": f"Bearer {server.svc.ingest}"})
        assert res.status_code == 201, res.text
        # Two requests on one kept-alive connection: the deadlines are per request.
        assert http.get("/healthz").status_code == 200
        assert http.get("/readyz").status_code in (200, 503)
    server.stop()
    assert [ev["action"] for ev in server.svc.stored()] == ["fast.post"] * 3


def test_a_large_body_sent_promptly_is_accepted(server: Running) -> None:
    """The body deadline covers the whole body; a normal client sends 1 MiB well within it."""
    events = [{"actor": {"id": f"u{n}"}, "action": "bulk.post", "outcome": "success",
               "metadata": {"pad": "x" * 1000}} for n in range(900)]
    url = f"http://127.0.0.1:{server.svc.port}"
    with httpx.Client(base_url=url, timeout=30) as http:
        res = http.post("/v1/logs/default/events", json=events,
                        headers={"Authorization": f"Bearer {server.svc.ingest}"})
    assert res.status_code == 201, res.text


def test_the_deadlines_must_be_positive(tmp_path: Path) -> None:
    svc = make_service(tmp_path / "data")
    app = create_app(ServiceConfig(svc.data))
    with pytest.raises(ValueError, match="header_timeout"):
        build_server(app, port=free_port(), header_timeout=0)
    with pytest.raises(ValueError, match="max_header_bytes"):
        build_server(app, port=free_port(), max_header_bytes=0)


def test_over_mtls_the_deadlines_hold_and_certificate_binding_still_works(tmp_path: Path
                                                                           ) -> None:
    """The guarded protocol keeps the client-certificate hash that bound keys need (mTLS)."""
    svc = make_service(tmp_path / "data")
    ca_cert, ca_key, ca_path, _ = _issue(tmp_path, "ca", "test CA", issuer=None, ca=True)
    _, _, server_cert, server_key = _issue(tmp_path, "server", "127.0.0.1",
                                           issuer=(ca_cert, ca_key), server=True)
    alice, _, alice_cert, alice_key = _issue(tmp_path, "alice", "app-a", issuer=(ca_cert, ca_key))
    keys = ApiKeys(svc.data)
    try:
        bound = keys.create("ingest", log=None, name="bound", now=datetime.now(UTC),
                            client_cert_sha256=hashlib.sha256(
                                alice.public_bytes(serialization.Encoding.DER)).hexdigest())
    finally:
        keys.close()
    running = Running(svc, ssl_certfile=str(server_cert), ssl_keyfile=str(server_key),
                      ssl_ca_certs=str(ca_path), ssl_cert_reqs=ssl.CERT_OPTIONAL,
                      header_timeout=HEADER_TIMEOUT, body_timeout=BODY_TIMEOUT)
    try:
        url = f"https://127.0.0.1:{svc.port}"
        body = [{"actor": {"id": "tls"}, "action": "tls.post", "outcome": "success"}]

        def post(ctx: ssl.SSLContext) -> int:
            with httpx.Client(base_url=url, verify=ctx, timeout=30) as http:
                return http.post("/v1/logs/default/events", json=body,
                                 headers={"Authorization": f"Bearer {bound}"}).status_code

        assert post(_context(ca_path, alice_cert, alice_key)) == 201
        assert post(_context(ca_path)) == 401
        raw = socket.create_connection(("127.0.0.1", svc.port), timeout=PATIENCE)
        with _context(ca_path).wrap_socket(raw, server_hostname="127.0.0.1") as sock:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")
            answer = read_until_closed(sock)
        assert answer.startswith(b"HTTP/1.1 408 ")
    finally:
        running.stop()
