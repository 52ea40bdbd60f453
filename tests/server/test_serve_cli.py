"""``sealtrail serve`` and ``sealtrail keys create|list|revoke`` as an operator runs them.

Each server here is the real console command in a subprocess, on a free loopback port; keys
come from the real ``keys`` commands. The TLS test serves HTTPS with a self-signed certificate
made here and trusts exactly that certificate.
"""

from __future__ import annotations

import ipaddress
import json
import os
import signal
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from sealtrail.log.auditlog import AuditLog
from tests.ports import free_port
from tests.server.conftest import seed_event

# ``python -m sealtrail`` has no __main__ module; the CLI package has one.
SEALTRAIL = [sys.executable, "-m", "sealtrail.cli"]


def run(data: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run ``sealtrail --data DATA ARGS`` to completion."""
    return subprocess.run([*SEALTRAIL, "--data", str(data), *args], capture_output=True,
                          text=True, timeout=60, check=False, stdin=subprocess.DEVNULL,
                          env={**os.environ, "COLUMNS": "200"})


def create_key(data: Path, *args: str) -> str:
    """``keys create ARGS``; the token is the last line of stdout."""
    res = run(data, "keys", "create", *args)
    assert res.returncode == 0, res.stderr
    return res.stdout.strip().splitlines()[-1]


@dataclass
class Served:
    """A running ``sealtrail serve``: its process and where it answers."""

    proc: subprocess.Popen[bytes]
    base_url: str


@contextmanager
def serving(data: Path, tmp: Path, *args: str, scheme: str = "http",
            verify: ssl.SSLContext | bool = True) -> Iterator[Served]:
    """Start ``sealtrail serve --port P ARGS``, wait for /healthz, terminate it afterwards."""
    port = free_port()
    log_path = tmp / f"serve-{port}.log"
    with log_path.open("wb") as out, subprocess.Popen(
            [*SEALTRAIL, "--data", str(data), "serve", "--port", str(port), *args],
            stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT) as proc:
        try:
            base_url = f"{scheme}://127.0.0.1:{port}"
            deadline = time.monotonic() + 30
            with httpx.Client(base_url=base_url, verify=verify, timeout=2) as client:
                while True:
                    if proc.poll() is not None:
                        pytest.fail(f"serve exited {proc.returncode}: {log_path.read_text()}")
                    try:
                        if client.get("/healthz").status_code == 200:
                            break
                    except httpx.TransportError:
                        pass
                    if time.monotonic() > deadline:
                        pytest.fail(f"serve did not answer in 30 s: {log_path.read_text()}")
                    time.sleep(0.1)
            yield Served(proc, base_url)
        finally:
            if proc.poll() is None:
                proc.terminate()
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:  # pragma: no cover - a hung shutdown
                proc.kill()
                proc.wait()
                raise


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data directory with an initialised ``default`` log."""
    d = tmp_path_factory.mktemp("cli") / "data"
    res = run(d, "init")
    assert res.returncode == 0, res.stderr
    return d


@pytest.fixture(scope="module")
def served(data: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """``sealtrail serve`` on loopback, plain HTTP, over ``data``."""
    with serving(data, tmp_path_factory.mktemp("serve")) as s:
        yield s
    # uvicorn shuts down gracefully on SIGTERM, then re-raises it for the exit status.
    assert s.proc.returncode in (0, -signal.SIGTERM)


def test_serve_ingests_with_a_key_from_keys_create(data: Path, served: Served) -> None:
    """An ingest key made by ``keys create`` appends one event to the served log."""
    token = create_key(data, "--role", "ingest", "--log", "default", "--name", "billing")
    assert token.startswith("st_")
    with AuditLog.open(data, create=False) as alog:
        before = alog.size
    with httpx.Client(base_url=served.base_url, timeout=30) as client:
        response = client.post("/v1/logs/default/events", json=[seed_event()],
                               headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 201, response.text
    receipt = response.json()["receipts"][0]
    with AuditLog.open(data, create=False) as alog:
        assert alog.size == before + 1
        assert alog.entry(receipt["index"]).event()["id"] == receipt["id"]


def test_keys_list_shows_keys_but_never_a_token(data: Path) -> None:
    """``keys list`` gives id, role, scope and name of each key, and no token or secret."""
    token = create_key(data, "--role", "reader", "--log", "default", "--name", "listed-key")
    key_id, secret = token[3:19], token[20:]
    res = run(data, "keys", "list")
    assert res.returncode == 0, res.stderr
    rows = [json.loads(line) for line in res.stdout.splitlines()]
    row = next(r for r in rows if r["id"] == key_id)
    assert (row["role"], row["log"], row["name"], row["revoked"]) == (
        "reader", "default", "listed-key", None)
    assert set(row) == {"id", "role", "log", "name", "created", "expires", "revoked",
                        "client_cert_sha256"}
    assert token not in res.stdout + res.stderr
    assert secret not in res.stdout + res.stderr


def test_keys_revoke_makes_the_token_fail_on_the_running_server(
        data: Path, served: Served) -> None:
    """After ``keys revoke ID`` in another process, the server answers that token with 401."""
    token = create_key(data, "--role", "reader", "--name", "to-revoke")
    key_id = token.split("_")[1]
    auth = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=served.base_url, timeout=30) as client:
        assert client.get("/v1/logs/default/checkpoint", headers=auth).status_code == 200
        res = run(data, "keys", "revoke", key_id)
        assert res.returncode == 0, res.stderr
        assert client.get("/v1/logs/default/checkpoint", headers=auth).status_code == 401
    listed = [json.loads(x) for x in run(data, "keys", "list").stdout.splitlines()]
    assert next(r for r in listed if r["id"] == key_id)["revoked"] is not None
    again = run(data, "keys", "revoke", key_id)
    assert again.returncode == 2


def test_keys_create_refuses_bad_role_and_past_expiry(data: Path) -> None:
    """An unknown role, a scoped auditor or an expiry in the past exit 2 and print no token."""
    for args in (["--role", "root"], ["--role", "auditor", "--log", "default"],
                 ["--role", "reader", "--expires", "2001-01-01T00:00:00Z"]):
        res = run(data, "keys", "create", *args)
        assert res.returncode == 2, (args, res.stdout, res.stderr)
        assert "st_" not in res.stdout


def test_serve_refuses_plain_http_off_loopback(data: Path) -> None:
    """``serve --host 0.0.0.0`` without TLS exits 2 naming TLS, before listening anywhere."""
    res = subprocess.run([*SEALTRAIL, "--data", str(data), "serve", "--host", "0.0.0.0",
                          "--port", str(free_port())], capture_output=True, text=True,
                         timeout=60, check=False, stdin=subprocess.DEVNULL,
                         env={**os.environ, "COLUMNS": "200"})
    assert res.returncode == 2, res.stderr
    assert "TLS" in res.stderr or "tls" in res.stderr


def test_serve_needs_both_tls_files(data: Path, tmp_path: Path) -> None:
    """``--tls-cert`` without ``--tls-key`` is a usage error (exit 2)."""
    cert, _ = self_signed(tmp_path)
    res = run(data, "serve", "--port", str(free_port()), "--tls-cert", str(cert))
    assert res.returncode == 2, res.stderr


def self_signed(directory: Path) -> tuple[Path, Path]:
    """A self-signed ECDSA certificate for 127.0.0.1 (and localhost); PEM cert and key paths."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sealtrail test")])
    now = datetime.now(UTC)
    cert = (x509.CertificateBuilder()
            .subject_name(name).issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(minutes=5))
            .not_valid_after(now + timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([
                x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                x509.DNSName("localhost")]), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]),
                           critical=False)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    key_path.chmod(0o600)
    return cert_path, key_path


def test_serve_with_tls_answers_https(data: Path, tmp_path: Path) -> None:
    """With --tls-cert/--tls-key the server speaks HTTPS that verifies against the cert."""
    cert, key = self_signed(tmp_path)
    trust = ssl.create_default_context(cafile=str(cert))
    with serving(data, tmp_path, "--tls-cert", str(cert), "--tls-key", str(key),
                 scheme="https", verify=trust) as s:
        with httpx.Client(base_url=s.base_url, verify=trust, timeout=30) as client:
            response = client.get("/healthz")
            assert response.status_code == 200
            assert response.url.scheme == "https"
        # The same port does not answer plain HTTP.
        plain = s.base_url.replace("https://", "http://")
        with httpx.Client(base_url=plain, timeout=5) as client:
            try:
                answered: int | None = client.get("/healthz").status_code
            except httpx.TransportError:
                answered = None
        assert answered != 200
    assert s.proc.returncode in (0, -signal.SIGTERM)
