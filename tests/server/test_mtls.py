"""mTLS: ingest keys bound to a client certificate work only over a connection presenting it."""

from __future__ import annotations

import ipaddress
import ssl
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tests.server.conftest import seed_event
from tests.server.test_serve_cli import create_key, run, serving


def _issue(directory: Path, stem: str, subject: str, *, issuer: tuple[x509.Certificate,
           ec.EllipticCurvePrivateKey] | None, ca: bool = False, server: bool = False
           ) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey, Path, Path]:
    """A certificate (self-signed when ``issuer`` is None) and its key, written as PEM."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    signer_cert, signer_key = issuer if issuer is not None else (None, key)
    now = datetime.now(UTC)
    builder = (x509.CertificateBuilder().subject_name(name)
               .issuer_name(signer_cert.subject if signer_cert is not None else name)
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - timedelta(minutes=5))
               .not_valid_after(now + timedelta(days=1))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if server:
        builder = builder.add_extension(x509.SubjectAlternativeName(
            [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        builder = builder.add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
    elif not ca:
        builder = builder.add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
    cert = builder.sign(signer_key, hashes.SHA256())
    cert_path, key_path = directory / f"{stem}.pem", directory / f"{stem}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    key_path.chmod(0o600)
    return cert, key, cert_path, key_path


def _context(ca: Path, cert: Path | None = None, key: Path | None = None) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(ca))
    if cert is not None and key is not None:
        ctx.load_cert_chain(str(cert), str(key))
    return ctx


def test_a_key_bound_to_a_client_certificate_needs_that_certificate(tmp_path: Path) -> None:
    """Over mTLS, a bound ingest key works with its certificate only; an unbound key works
    with or without one; a certificate from another CA is refused by the handshake."""
    data = tmp_path / "data"
    assert run(data, "init").returncode == 0
    ca_cert, ca_key, ca_path, _ = _issue(tmp_path, "ca", "test CA", issuer=None, ca=True)
    _, _, server_cert, server_key = _issue(tmp_path, "server", "127.0.0.1",
                                           issuer=(ca_cert, ca_key), server=True)
    _, _, alice_cert, alice_key = _issue(tmp_path, "alice", "app-a", issuer=(ca_cert, ca_key))
    _, _, bob_cert, bob_key = _issue(tmp_path, "bob", "app-b", issuer=(ca_cert, ca_key))
    _, _, rogue_cert, rogue_key = _issue(tmp_path, "rogue", "rogue", issuer=None)
    bound = create_key(data, "--role", "ingest", "--client-cert", str(alice_cert))
    unbound = create_key(data, "--role", "ingest")
    listed = run(data, "keys", "list").stdout
    assert '"client_cert_sha256":"' in listed.replace(" ", "")
    body = [seed_event(1)]
    with serving(data, tmp_path, "--tls-cert", str(server_cert), "--tls-key", str(server_key),
                 "--client-ca", str(ca_path), scheme="https",
                 verify=_context(ca_path)) as served:

        def post(token: str, ctx: ssl.SSLContext) -> int:
            with httpx.Client(base_url=served.base_url, verify=ctx, timeout=30) as client:
                return client.post("/v1/logs/default/events", json=body,
                                   headers={"Authorization": f"Bearer {token}"}).status_code

        assert post(bound, _context(ca_path, alice_cert, alice_key)) == 201
        assert post(bound, _context(ca_path)) == 401
        assert post(bound, _context(ca_path, bob_cert, bob_key)) == 401
        assert post(unbound, _context(ca_path)) == 201
        assert post(unbound, _context(ca_path, bob_cert, bob_key)) == 201
        try:
            refused: int | None = post(unbound, _context(ca_path, rogue_cert, rogue_key))
        except (httpx.TransportError, ssl.SSLError):
            refused = None
        assert refused is None
