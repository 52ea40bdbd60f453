"""A real RFC 3161 time-stamp authority for the tests, on loopback.

It is written from RFC 3161, RFC 5652 (CMS) and RFC 5816 (ESS signing-certificate-v2) with
``asn1crypto`` and ``cryptography`` directly, independent of ``sealtrail.core.tsp``: it parses
each ``TimeStampReq`` it is sent, builds a TSTInfo over the request's imprint and nonce at the
current time, signs it as CMS SignedData (signed attributes content-type, signing-time,
message-digest, signing-certificate-v2) with a TSA key whose certificate a test CA issued, and
answers a ``TimeStampResp``. Nothing is fixed bytes: every answer is built for its request.

``Responder.mode`` makes it misbehave the ways a TSA (or a network in between) can: refuse,
answer another nonce or imprint, alter the token after signing, leave out its certificate,
fail with HTTP 500, or answer more bytes than a client should read.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

from asn1crypto import cms, core, tsp  # type: ignore[import-untyped]
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

POLICY = "1.3.6.1.4.1.55555.3161.1"  # a test policy OID (private enterprise arc)
SigningKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey
_HASH: dict[str, Callable[[], hashes.HashAlgorithm]] = {
    "sha256": hashes.SHA256, "sha384": hashes.SHA384, "sha512": hashes.SHA512}


class TimeStampResp(core.Sequence):  # type: ignore[misc]
    """RFC 3161 2.4.2: the token is OPTIONAL (absent in a refusal)."""

    _fields: ClassVar[list[tuple[Any, ...]]] = [
        ("status", tsp.PKIStatusInfo),
        ("time_stamp_token", cms.ContentInfo, {"optional": True})]


def _name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "sealtrail tests"),
                      x509.NameAttribute(NameOID.COMMON_NAME, common)])


@dataclass
class Authority:
    """A CA key and self-signed certificate (a trust anchor)."""

    key: ec.EllipticCurvePrivateKey
    cert: x509.Certificate

    @classmethod
    def make(cls, common: str = "sealtrail test TSA root",
             now: datetime | None = None) -> Authority:
        """A new self-signed CA, valid from a year ago for ten years."""
        now = now or datetime.now(UTC)
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (x509.CertificateBuilder().subject_name(_name(common)).issuer_name(_name(common))
                .public_key(key.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(now - timedelta(days=365))
                .not_valid_after(now + timedelta(days=3650))
                .add_extension(x509.BasicConstraints(ca=True, path_length=1), critical=True)
                .add_extension(x509.KeyUsage(False, False, False, False, False, True, True,
                                             False, False), critical=True)
                .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                               critical=False)
                .sign(key, hashes.SHA256()))
        return cls(key, cert)

    def issue_ca(self, common: str = "sealtrail test TSA intermediate", *,
                 ca: bool = True) -> Authority:
        """An intermediate CA under this one (``ca=False``: a certificate that is not a CA,
        which must not be accepted as an issuer)."""
        now = datetime.now(UTC)
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (x509.CertificateBuilder().subject_name(_name(common))
                .issuer_name(self.cert.subject).public_key(key.public_key())
                .serial_number(x509.random_serial_number())
                .not_valid_before(now - timedelta(days=30))
                .not_valid_after(now + timedelta(days=1000))
                .add_extension(x509.BasicConstraints(ca=ca, path_length=0 if ca else None),
                               critical=True)
                .sign(self.key, hashes.SHA256()))
        return Authority(key, cert)

    def crl(self, revoked: Sequence[tuple[int, datetime, x509.ReasonFlags | None]] = (),
            *, last_update: datetime | None = None,
            key: ec.EllipticCurvePrivateKey | None = None) -> x509.CertificateRevocationList:
        """A CRL this CA issues (``key``: signed by another key, a forgery), revoking each
        (serial, date, reason or None), issued ``last_update`` (default now)."""
        now = last_update or datetime.now(UTC)
        builder = (x509.CertificateRevocationListBuilder().issuer_name(self.cert.subject)
                   .last_update(now).next_update(now + timedelta(days=7)))
        for serial, when, reason in revoked:
            entry = (x509.RevokedCertificateBuilder().serial_number(serial)
                     .revocation_date(when))
            if reason is not None:
                entry = entry.add_extension(x509.CRLReason(reason), critical=False)
            builder = builder.add_revoked_certificate(entry.build())
        return builder.sign(key or self.key, hashes.SHA256())

    def pem(self) -> bytes:
        """The CA certificate as PEM (what ``--ca-cert`` is given)."""
        return self.cert.public_bytes(serialization.Encoding.PEM)

    def issue_tsa(self, common: str = "sealtrail test TSA", *,
                  eku: list[x509.ObjectIdentifier] | None = None, eku_critical: bool = True,
                  not_before: datetime | None = None, not_after: datetime | None = None,
                  key: SigningKey | None = None) -> tuple[SigningKey, x509.Certificate]:
        """A TSA key (``key``, else a new P-256 one) and its certificate (by default as RFC
        3161 2.3 wants: EKU exactly id-kp-timeStamping, critical; valid from a day ago for a
        year)."""
        now = datetime.now(UTC)
        key = key if key is not None else ec.generate_private_key(ec.SECP256R1())
        usages = [ExtendedKeyUsageOID.TIME_STAMPING] if eku is None else eku
        builder = (x509.CertificateBuilder().subject_name(_name(common))
                   .issuer_name(self.cert.subject).public_key(key.public_key())
                   .serial_number(x509.random_serial_number())
                   .not_valid_before(not_before or now - timedelta(days=1))
                   .not_valid_after(not_after or now + timedelta(days=365))
                   .add_extension(x509.BasicConstraints(ca=False, path_length=None),
                                  critical=True)
                   .add_extension(x509.KeyUsage(True, True, False, False, False, False, False,
                                                False, False), critical=True)
                   .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                                  critical=False))
        if usages:
            builder = builder.add_extension(x509.ExtendedKeyUsage(usages), critical=eku_critical)
        return key, builder.sign(self.key, hashes.SHA256())


def _der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.DER)


@dataclass
class Responder:
    """An RFC 3161 responder over HTTP on 127.0.0.1 (``start`` returns its URL)."""

    key: SigningKey
    cert: x509.Certificate
    mode: str = "ok"
    digest: str = "sha256"      # the signer's digest algorithm (Ed25519: sha512, RFC 8419)
    pss: bool = False           # RSA keys: RSASSA-PSS instead of PKCS#1 v1.5
    sid: str = "issuer_serial"  # or "ski": the signer named by its key identifier
    ess_v1: bool = False        # ESS signing-certificate (SHA-1) instead of -v2
    chain: list[x509.Certificate] = field(default_factory=list)  # sent after its own
    requests: list[bytes] = field(default_factory=list)
    serial: int = 0
    url: str = ""
    _server: ThreadingHTTPServer | None = None

    # -- RFC 3161 ----------------------------------------------------------------------------

    def answer(self, body: bytes) -> bytes:
        """The DER TimeStampResp for one DER TimeStampReq."""
        req = tsp.TimeStampReq.load(body)
        if self.mode == "reject":
            return bytes(TimeStampResp({"status": {
                "status": "rejection", "status_string": ["policy refuses this requester"],
                "fail_info": {"unaccepted_policy"}}}).dump())
        imprint = req["message_imprint"]
        hashed = bytes(imprint["hashed_message"].native)
        if self.mode == "wrong_imprint":
            hashed = hashlib.sha256(b"another state").digest()
        nonce = req["nonce"].native
        if self.mode == "wrong_nonce" and nonce is not None:
            nonce += 1
        self.serial += 1
        now = datetime.now(UTC).replace(microsecond=0)
        tst: dict[str, Any] = {
            "version": "v1", "policy": POLICY,
            "message_imprint": {"hash_algorithm": {"algorithm":
                                                   imprint["hash_algorithm"]["algorithm"].native},
                                "hashed_message": hashed},
            "serial_number": self.serial, "gen_time": now,
            "accuracy": {"seconds": 1}}
        if nonce is not None:
            tst["nonce"] = nonce
        econtent = tsp.TSTInfo(tst).dump()
        cert_der = _der(self.cert)
        attrs = cms.CMSAttributes([
            {"type": "content_type", "values": ["tst_info"]},
            {"type": "signing_time", "values": [cms.Time({"utc_time": now})]},
            {"type": "message_digest",
             "values": [hashlib.new(self.digest, econtent).digest()]},
            self._ess(cert_der),
        ])
        # RFC 5652 5.4: the signature is over the DER of the attributes as a SET OF.
        algorithm, signature = self._sign(attrs.dump())
        ours = asn1_x509.Certificate.load(cert_der)
        if self.sid == "ski":
            ski = self.cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
            sid = cms.SignerIdentifier({"subject_key_identifier": ski.value.digest})
        else:
            sid = cms.SignerIdentifier({"issuer_and_serial_number": {
                "issuer": ours.issuer, "serial_number": ours.serial_number}})
        signer = cms.SignerInfo({
            "version": "v3" if self.sid == "ski" else "v1",
            "sid": sid,
            "digest_algorithm": {"algorithm": self.digest},
            "signed_attrs": attrs,
            "signature_algorithm": algorithm,
            "signature": signature})
        if self.mode == "tamper":
            tst["serial_number"] = self.serial + 1000  # the content differs from what was signed
            econtent = tsp.TSTInfo(tst).dump()
        signed = cms.SignedData({
            "version": "v3",
            "digest_algorithms": [{"algorithm": self.digest}],
            "encap_content_info": {"content_type": "tst_info",
                                   "content": core.ParsableOctetString(econtent)},
            "certificates": [] if self.mode == "no_cert" else [
                ours, *(asn1_x509.Certificate.load(_der(c)) for c in self.chain)],
            "signer_infos": [signer]})
        token = cms.ContentInfo({"content_type": "signed_data", "content": signed})
        return bytes(TimeStampResp({"status": {"status": "granted"},
                                    "time_stamp_token": token}).dump())

    def _ess(self, cert_der: bytes) -> dict[str, Any]:
        """The ESS attribute naming the TSA certificate (RFC 2634 v1 / RFC 5035 v2)."""
        if self.ess_v1:
            return {"type": "signing_certificate", "values": [
                {"certs": [{"cert_hash": hashlib.sha1(cert_der).digest()}]}]}
        return {"type": "signing_certificate_v2",
                "values": [{"certs": [{"cert_hash": hashlib.sha256(cert_der).digest()}]}]}

    def _sign(self, data: bytes) -> tuple[dict[str, Any], bytes]:
        """(signatureAlgorithm, signature) over ``data`` with the TSA key."""
        h = _HASH[self.digest]()
        key = self.key
        if isinstance(key, ed25519.Ed25519PrivateKey):
            return {"algorithm": "ed25519"}, key.sign(data)
        if isinstance(key, rsa.RSAPrivateKey) and self.pss:
            params = {"hash_algorithm": {"algorithm": self.digest},
                      "mask_gen_algorithm": {"algorithm": "mgf1",
                                             "parameters": {"algorithm": self.digest}},
                      "salt_length": h.digest_size, "trailer_field": "trailer_field_bc"}
            return ({"algorithm": "rsassa_pss", "parameters": params},
                    key.sign(data, padding.PSS(padding.MGF1(h), h.digest_size), h))
        if isinstance(key, rsa.RSAPrivateKey):
            return ({"algorithm": f"{self.digest}_rsa"},
                    key.sign(data, padding.PKCS1v15(), h))
        return {"algorithm": f"{self.digest}_ecdsa"}, key.sign(data, ec.ECDSA(h))

    # -- HTTP ----------------------------------------------------------------------------------

    def start(self) -> str:
        """Serve on an ephemeral loopback port; the URL to POST requests to."""
        responder = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length)
                responder.requests.append(body)
                if self.headers.get("Content-Type") != "application/timestamp-query":
                    self._send(415, b"want application/timestamp-query", "text/plain")
                elif responder.mode == "http500":
                    self._send(500, b"internal error", "text/plain")
                elif responder.mode == "huge":
                    self._send(200, b"\x30" * (2 * 1024 * 1024), "application/timestamp-reply")
                else:
                    self._send(200, responder.answer(body), "application/timestamp-reply")

            def _send(self, status: int, data: bytes, kind: str) -> None:
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                         daemon=True).start()
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/tsr"
        return self.url

    def stop(self) -> None:
        """Stop serving (the port is then closed: a TSA that is down)."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
