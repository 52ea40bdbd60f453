"""Real receivers on loopback for the alert-sink tests: a webhook server, syslog listeners
(UDP, TCP, TLS), an SMTP handler, a test CA, and an independent RFC 5424 parser.

The parser is deliberately dumb and written from the RFC, not from ``core/syslog.py``, so the
tests check the formatter against the spec rather than against itself.
"""

from __future__ import annotations

import contextlib
import ipaddress
import re
import socket
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


def wait_until(predicate: Callable[[], bool], timeout: float = 10.0) -> bool:
    """Poll ``predicate`` until it holds or ``timeout`` passes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return predicate()


# --- a test CA ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Pki:
    """A CA and a server certificate for 127.0.0.1/localhost, as PEM files."""

    ca: Path
    cert: Path
    key: Path

    def server_context(self) -> ssl.SSLContext:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(str(self.cert), str(self.key))
        return ctx

    def client_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca))


def make_pki(directory: Path) -> Pki:
    """A fresh CA and a server certificate it issued (SANs: 127.0.0.1 and localhost)."""
    now = datetime.now(UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sealtrail test CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - timedelta(minutes=5)).not_valid_after(now + timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False,
                                       key_encipherment=False, data_encipherment=False,
                                       key_agreement=False, key_cert_sign=True, crl_sign=True,
                                       encipher_only=False, decipher_only=False), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()),
                         critical=False)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
            .issuer_name(ca_name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(minutes=5)).not_valid_after(now + timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]),
                critical=False)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]),
                           critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    paths = Pki(directory / "ca.pem", directory / "server.pem", directory / "server.key")
    paths.ca.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths.key.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                            serialization.PrivateFormat.PKCS8,
                                            serialization.NoEncryption()))
    return paths


# --- webhook receiver ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Received:
    """One request the webhook receiver got; header names lower-cased."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes


class WebhookReceiver:
    """A threaded HTTP server on loopback that records every request.

    ``fail_next(n, status)`` answers the next ``n`` requests with ``status``; ``delay`` makes
    every answer wait (for timeouts). Use as a context manager; ``port`` reuses a port.
    """

    def __init__(self, port: int = 0) -> None:
        self.requests: list[Received] = []
        self.delay = 0.0
        self._failures: list[tuple[int, dict[str, str]]] = []
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                status, extra = receiver._record(Received(
                    "POST", self.path, {k.lower(): v for k, v in self.headers.items()}, body))
                if receiver.delay:
                    time.sleep(receiver.delay)
                payload = b"ok" if status < 300 else b'{"error":"refused by the test"}'
                try:
                    self.send_response(status)
                    for name, value in extra.items():
                        self.send_header(name, value)
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except OSError:  # the client gave up (timeout tests)
                    pass

            def log_message(self, format: str, *args: Any) -> None:
                """Quiet."""

        self._server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self._server.daemon_threads = False  # server_close joins the handler threads
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"poll_interval": 0.05}, daemon=True)

    def _record(self, request: Received) -> tuple[int, dict[str, str]]:
        with self._lock:
            self.requests.append(request)
            if self._failures:
                return self._failures.pop(0)
        return 200, {}

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook/secret-token"

    def fail_next(self, n: int, status: int = 500, headers: dict[str, str] | None = None
                  ) -> None:
        """Answer the next ``n`` requests with ``status`` (and ``headers``)."""
        with self._lock:
            self._failures.extend([(status, headers or {})] * n)

    def start(self) -> Self:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


# --- syslog listeners ---------------------------------------------------------------------------


class UdpListener:
    """Collects syslog datagrams on a loopback UDP port."""

    def __init__(self) -> None:
        self.datagrams: list[bytes] = []
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.settimeout(0.05)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    @property
    def port(self) -> int:
        return int(self._sock.getsockname()[1])

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                data, _ = self._sock.recvfrom(65535)
            except TimeoutError:
                continue
            self.datagrams.append(data)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._sock.close()


class FramingError(Exception):
    """The stream is not octet-counted as RFC 5425 §4.3 says."""


def read_frames(buffer: bytearray) -> list[bytes]:
    """Take every complete ``MSG-LEN SP SYSLOG-MSG`` frame off the front of ``buffer``."""
    out = []
    while buffer:
        match = re.match(rb"([1-9][0-9]{0,8}) ", bytes(buffer[:11]))
        if match is None:
            if len(buffer) >= 11 or not re.fullmatch(rb"[0-9]*", bytes(buffer)):
                raise FramingError(f"bad frame header: {bytes(buffer[:16])!r}")
            break
        size, start = int(match.group(1)), match.end()
        if len(buffer) < start + size:
            break
        out.append(bytes(buffer[start:start + size]))
        del buffer[:start + size]
    return out


class StreamListener:
    """A TCP (or, with ``tls``, TLS) syslog receiver that unframes octet-counted messages.

    ``connections`` counts accepted connections; ``drop_connections()`` closes them from the
    server side (to test reconnection); ``errors`` collects framing errors.
    """

    def __init__(self, tls: ssl.SSLContext | None = None) -> None:
        self.messages: list[bytes] = []
        self.errors: list[str] = []
        self.connections = 0
        self._tls = tls
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.05)
        self._open: list[socket.socket] = []
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)

    @property
    def port(self) -> int:
        return int(self._listener.getsockname()[1])

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            thread = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            with self._lock:
                self._threads.append(thread)
            thread.start()

    def _serve(self, conn: socket.socket) -> None:
        sock = conn
        try:
            conn.settimeout(5)
            if self._tls is not None:
                sock = self._tls.wrap_socket(conn, server_side=True)
            sock.settimeout(0.05)
            with self._lock:
                self.connections += 1
                self._open.append(sock)
            buffer = bytearray()
            while not self._stop.is_set():
                try:
                    chunk = sock.recv(65536)
                except TimeoutError:
                    continue
                if not chunk:
                    break
                buffer += chunk
                frames = read_frames(buffer)
                with self._lock:
                    self.messages.extend(frames)
        except (OSError, FramingError) as exc:
            with self._lock:
                self.errors.append(f"{type(exc).__name__}: {exc}")
        finally:
            sock.close()

    def drop_connections(self) -> None:
        """Close every open connection from this side (shut down, so the peer sees EOF)."""
        with self._lock:
            socks, self._open = self._open, []
        for sock in socks:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)  # TCP FIN, no TLS close_notify: a crash

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        with self._lock:
            threads = list(self._threads)
        for thread in threads:
            thread.join()
        self._listener.close()


# --- RFC 5424, parsed from the spec -------------------------------------------------------------

BOM = b"\xef\xbb\xbf"


@dataclass(frozen=True)
class Syslog5424:
    """One parsed RFC 5424 message."""

    pri: int
    version: int
    timestamp: str
    hostname: str
    app_name: str
    procid: str
    msgid: str
    sd: dict[str, dict[str, str]] = field(default_factory=dict)
    bom: bool = False
    msg: str = ""

    @property
    def facility(self) -> int:
        return self.pri // 8

    @property
    def severity(self) -> int:
        return self.pri % 8


class SyslogParseError(Exception):
    """Not an RFC 5424 message."""


def _parse_sd(text: bytes, i: int) -> tuple[dict[str, dict[str, str]], int]:
    """STRUCTURED-DATA from ``text[i:]`` (RFC 5424 §6.3): ``-`` or ``[id k="v"...]...``."""
    if text[i:i + 1] == b"-":
        return {}, i + 1
    elements: dict[str, dict[str, str]] = {}
    while text[i:i + 1] == b"[":
        j = i + 1
        while text[j:j + 1] not in (b" ", b"]", b""):
            j += 1
        sd_id = text[i + 1:j].decode("ascii")
        params: dict[str, str] = {}
        i = j
        while text[i:i + 1] == b" ":
            eq = text.index(b"=", i)
            name = text[i + 1:eq].decode("ascii")
            if text[eq + 1:eq + 2] != b'"':
                raise SyslogParseError("PARAM-VALUE must be quoted")
            k, value = eq + 2, bytearray()
            while True:
                c = text[k:k + 1]
                if c == b"":
                    raise SyslogParseError("unterminated PARAM-VALUE")
                if c == b"\\" and text[k + 1:k + 2] in (b'"', b"\\", b"]"):
                    value += text[k + 1:k + 2]
                    k += 2
                    continue
                if c == b'"':
                    break
                if c == b"]":
                    raise SyslogParseError("unescaped ] in PARAM-VALUE")
                value += c
                k += 1
            params[name] = value.decode("utf-8")
            i = k + 1
        if text[i:i + 1] != b"]":
            raise SyslogParseError("SD-ELEMENT not closed")
        elements[sd_id] = params
        i += 1
    if not elements:
        raise SyslogParseError("STRUCTURED-DATA is neither - nor [...]")
    return elements, i


def parse_rfc5424(data: bytes) -> Syslog5424:
    """Parse ``<PRI>VERSION SP TIMESTAMP SP HOSTNAME SP APP-NAME SP PROCID SP MSGID SP SD
    [SP MSG]``, checking header fields are printable US-ASCII of legal lengths."""
    match = re.match(rb"<([0-9]{1,3})>([1-9][0-9]{0,2}) ", data)
    if match is None or int(match.group(1)) > 191:
        raise SyslogParseError(f"bad PRI/VERSION: {data[:12]!r}")
    i = match.end()
    fields = []
    for limit in (None, 255, 48, 128, 32):
        end = data.index(b" ", i)
        value = data[i:end]
        if not re.fullmatch(rb"[\x21-\x7e]+", value) or (limit and len(value) > limit):
            raise SyslogParseError(f"bad header field {value!r}")
        fields.append(value.decode("ascii"))
        i = end + 1
    sd, i = _parse_sd(data, i)
    bom, msg = False, b""
    if i < len(data):
        if data[i:i + 1] != b" ":
            raise SyslogParseError("no SP between SD and MSG")
        msg = data[i + 1:]
        if msg.startswith(BOM):
            bom, msg = True, msg[len(BOM):]
    return Syslog5424(int(match.group(1)), int(match.group(2)), fields[0], fields[1],
                      fields[2], fields[3], fields[4], sd, bom, msg.decode("utf-8"))


# --- SMTP -----------------------------------------------------------------------------------------


@dataclass
class Mailbox:
    """An aiosmtpd handler that keeps every message; RCPT to ``refuse`` gets a 550."""

    messages: list[tuple[str, list[str], bytes]] = field(default_factory=list)
    refuse: str = "nobody@example.test"

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str,
                          rcpt_options: list[str]) -> str:
        if address == self.refuse:
            return "550 5.1.1 no such mailbox"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append((str(envelope.mail_from), list(envelope.rcpt_tos),
                              bytes(envelope.original_content)))
        return "250 OK"
