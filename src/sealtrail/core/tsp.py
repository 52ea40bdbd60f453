"""RFC 3161 Time-Stamp Protocol: the request for a checkpoint, the answer, the token's full check.

A trusted timestamp shows that a state of the log existed at a time a third party (the TSA)
vouches for: the TSA signs ``genTime`` over a digest it was given (the *message imprint*).
sealtrail asks for the SHA-256 of a **checkpoint body** (``<origin>\\n<size>\\n<base64 root>\\n``,
the text the log's key signs, C2SP tlog-checkpoint), not of the whole signed note:

- the body is fixed by (origin, size, root) alone, so an auditor can rebuild it from the tree
  (or from any copy of the checkpoint, whoever signed it) and need not keep the note;
- the note's signature lines change without the state changing (witness cosignatures and the
  forward-secure seal line are appended to the served checkpoint), and a timestamp is about the
  state, not about who else signed it.

What :func:`verify_token` checks, each failure a :class:`TimestampError` naming the check:

1. the token is a CMS ``ContentInfo`` of ``SignedData`` (RFC 5652) whose encapsulated content
   is ``id-ct-TSTInfo`` (RFC 3161 2.4.2), with exactly one signer; the versions are the ones
   RFC 5652 5.1/5.3 prescribe and ``digestAlgorithms`` lists the signer's (fields no check
   reads otherwise: an altered token must not verify, whichever byte was changed);
2. the TSTInfo: version 1, message imprint SHA-256 and equal to the one asked for, the nonce
   (when the caller has the request's) equal;
3. the signed attributes: ``content-type`` is id-ct-TSTInfo and ``message-digest`` is the
   digest of the eContent (RFC 5652 5.4/11.2);
4. the signing certificate is the one the ESS ``signing-certificate`` (v1, RFC 2634) or
   ``signing-certificate-v2`` (RFC 5035/5816) attribute names by hash, is carried in the token
   (the request sets certReq), and is the signer the SignerInfo's ``sid`` names;
5. the signature over the DER of the signed attributes verifies with its public key (RSA
   PKCS#1 v1.5 or PSS, ECDSA, Ed25519), under the digest algorithm the SignerInfo names (a
   signature algorithm naming another hash, or carrying unexpected parameters, is refused);
6. its extended key usage is exactly id-kp-timeStamping and critical (RFC 3161 2.3);
7. it chains to a configured trust anchor, each link's signature checked with ``cryptography``,
   every certificate valid at ``genTime``, issuers CAs (basicConstraints, keyCertSign, path
   length). The chain is checked by hand rather than with ``cryptography.x509.verification``:
   that verifier applies the Web PKI's profile (client or server names, its own key-usage and
   extension rules) and reports a failed path without saying which rule failed, where an
   auditor needs to read which certificate and which rule.

8. with certificate revocation lists given (``crls``: the auditor's, fetched from the CAs'
   distribution points, never the log's), for every certificate of the chain below the
   anchor: no list its issuer signed (the issuer allowed to sign lists) revokes it in a way
   that reaches the token, that is as of (revocation or invalidity date) ``genTime`` or
   before, or for a compromise (``keyCompromise``, ``cACompromise``, ``aACompromise``, or no
   reason given) whenever, since a stolen key could have back-dated the token; and a
   *complete* list of that issuer (not a delta, not partitioned by an issuing distribution
   point, no critical extension left unprocessed) issued after ``genTime`` vouches for it
   (an older list cannot show it was still good then; one issued after the certificate
   expired only if it keeps expired certificates). Revoked after ``genTime`` for another
   reason (superseded, cessation of operation, a hold), the token stays good: it was made
   while the certificate was.

OCSP is not asked: the check is offline by design, and RFC 3161 timestamps are usually kept for
longer than the TSA's certificate status is served; keep the CRLs with the evidence.

Pure: no I/O and no clock. The caller gives the nonce (random) and the trust anchors.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar, Final

from asn1crypto import cms, core, tsp  # type: ignore[import-untyped]
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.x509.oid import CRLEntryExtensionOID, ExtendedKeyUsageOID, ExtensionOID

from sealtrail.core.errors import VerificationError

ID_CT_TSTINFO: Final = "1.2.840.113549.1.9.16.1.4"
ID_SIGNED_DATA: Final = "1.2.840.113549.1.7.2"
MAX_CHAIN: Final = 8
MAX_NONCE_BITS: Final = 128
_GRANTED: Final = ("granted", "granted_with_mods")
_HASHES: Final[dict[str, type[hashes.HashAlgorithm]]] = {
    "sha224": hashes.SHA224, "sha256": hashes.SHA256, "sha384": hashes.SHA384,
    "sha512": hashes.SHA512}


class TimestampError(VerificationError):
    """A timestamp response or token that does not verify; the message names the check."""


class _Response(core.Sequence):  # type: ignore[misc]
    """TimeStampResp as RFC 3161 2.4.2 defines it: the token is OPTIONAL (absent when the TSA
    refuses), where ``asn1crypto.tsp.TimeStampResp`` requires it and so cannot read a refusal."""

    _fields: ClassVar[list[tuple[Any, ...]]] = [
        ("status", tsp.PKIStatusInfo),
        ("time_stamp_token", cms.ContentInfo, {"optional": True})]


@dataclass(frozen=True, slots=True)
class TimestampInfo:
    """What a verified token says: when (``gen_time``), under which TSA policy, by whom."""

    gen_time: datetime
    serial: int
    policy: str
    imprint: bytes
    nonce: int | None
    tsa: str          # the TSA certificate's subject (RFC 4514)
    anchor: str       # the trust anchor the chain ended at (RFC 4514)


def checkpoint_imprint(body: str) -> bytes:
    """The message imprint sealtrail asks a TSA to stamp: SHA-256 of the checkpoint body
    (see the module docstring for why the body and not the note)."""
    return hashlib.sha256(body.encode()).digest()


def build_request(imprint: bytes, nonce: int) -> bytes:
    """A DER TimeStampReq: version 1, the SHA-256 imprint, ``nonce``, certReq true (the token
    then carries the TSA's certificate, so it verifies offline with only the CA)."""
    if len(imprint) != 32:
        raise ValueError("imprint: a SHA-256 digest is 32 bytes")
    if not 0 < nonce < 1 << MAX_NONCE_BITS:
        raise ValueError(f"nonce: a positive integer below 2**{MAX_NONCE_BITS}")
    req = tsp.TimeStampReq({
        "version": "v1",
        "message_imprint": {"hash_algorithm": {"algorithm": "sha256"},
                            "hashed_message": imprint},
        "nonce": nonce,
        "cert_req": True,
    })
    return bytes(req.dump())


def parse_response(der: bytes) -> bytes:
    """The token (DER ContentInfo) of a TimeStampResp whose status is granted (or granted with
    modifications); TimestampError names the status, failure info and text of any other."""
    try:
        resp = _Response.load(der, strict=True)
        info = resp["status"]
        status = info["status"].native
        fail = info["fail_info"].native
        text = info["status_string"].native
        token = resp["time_stamp_token"]
    except Exception as exc:  # see verify_token: malformed input is a verification failure
        raise TimestampError(f"TimeStampResp: not a DER TimeStampResp ({exc})") from exc
    if status not in _GRANTED:
        detail = f"status {status}"
        if fail:
            detail += f", failInfo {', '.join(sorted(str(f) for f in fail))}"
        if text:
            detail += f", text {' '.join(str(t) for t in text)!r}"
        raise TimestampError(f"TimeStampResp: the TSA did not grant the request ({detail})")
    if isinstance(token, core.Void):
        raise TimestampError(f"TimeStampResp: status {status} but no timeStampToken")
    return bytes(token.dump())


def load_anchors(pem: bytes) -> list[x509.Certificate]:
    """The trust anchors of a PEM file (one or more CA certificates)."""
    try:
        certs = x509.load_pem_x509_certificates(pem)
    except ValueError as exc:
        raise TimestampError(f"trust anchors: not PEM certificates ({exc})") from exc
    if not certs:
        raise TimestampError("trust anchors: no certificate in the PEM text")
    return certs


def load_crls(data: bytes) -> list[x509.CertificateRevocationList]:
    """Certificate revocation lists from PEM (one or more) or DER (one); TimestampError when
    there is none or one is malformed."""
    pem = b"-----BEGIN X509 CRL-----" in data
    if pem and data.count(b"-----BEGIN X509 CRL-----") != data.count(b"-----END X509 CRL-----"):
        raise TimestampError("CRL: a PEM block is cut short")
    try:
        if pem:
            crls = []
            for part in data.split(b"-----END X509 CRL-----")[:-1]:
                crls.append(x509.load_pem_x509_crl(part + b"-----END X509 CRL-----\n"))
            return crls
        return [x509.load_der_x509_crl(data)]
    except ValueError as exc:
        raise TimestampError(f"CRL: not a PEM or DER certificate revocation list ({exc})"
                             ) from exc


def verify_token(token: bytes, imprint: bytes, anchors: Sequence[x509.Certificate], *,
                 nonce: int | None = None,
                 crls: Sequence[x509.CertificateRevocationList] | None = None
                 ) -> TimestampInfo:
    """Check a TimeStampToken fully (the numbered steps of the module docstring) and return
    what it says; TimestampError names the first check that fails. ``crls``: check
    revocation too (step 8); None skips it."""
    if not anchors:
        raise TimestampError("trust anchors: none given")
    try:
        return _verify(token, imprint, anchors, nonce, crls)
    except TimestampError:
        raise
    except Exception as exc:  # malformed input is a verification failure, whatever its kind
        # (asn1crypto parses lazily, so a bad length or tag surfaces as ValueError, TypeError,
        # KeyError... at first use; cryptography has its own, such as InvalidVersion)
        raise TimestampError(f"token: malformed ({type(exc).__name__}: {exc})") from exc


def _verify(token: bytes, imprint: bytes, anchors: Sequence[x509.Certificate],
            nonce: int | None,
            crls: Sequence[x509.CertificateRevocationList] | None) -> TimestampInfo:
    # 1. ContentInfo / SignedData / id-ct-TSTInfo, one signer.
    info = cms.ContentInfo.load(token, strict=True)
    if info["content_type"].dotted != ID_SIGNED_DATA:
        raise TimestampError("token: not CMS SignedData")
    signed = info["content"]
    encap = signed["encap_content_info"]
    if encap["content_type"].dotted != ID_CT_TSTINFO:
        raise TimestampError("token: the signed content is not id-ct-TSTInfo")
    econtent = encap["content"]
    if isinstance(econtent, core.Void):
        raise TimestampError("token: the TSTInfo is missing (detached content)")
    raw = bytes(econtent.contents)
    if signed["version"].native != "v3":
        raise TimestampError("SignedData.version: not 3 (RFC 5652 5.1: the content is not "
                             "id-data)")
    signers = signed["signer_infos"]
    if len(signers) != 1:
        raise TimestampError(f"token: {len(signers)} signers; a timestamp has exactly one")
    signer = signers[0]
    want_version = "v1" if signer["sid"].name == "issuer_and_serial_number" else "v3"
    if signer["version"].native != want_version:
        raise TimestampError(f"SignerInfo.version: not {want_version[1:]} for its kind of sid "
                             "(RFC 5652 5.3)")
    # 2. The TSTInfo.
    tst = tsp.TSTInfo.load(raw, strict=True)
    if tst["version"].native != "v1":
        raise TimestampError(f"TSTInfo.version: {tst['version'].native}, not 1")
    mi = tst["message_imprint"]
    if mi["hash_algorithm"]["algorithm"].native != "sha256":
        raise TimestampError("TSTInfo.messageImprint: not SHA-256 "
                             f"({mi['hash_algorithm']['algorithm'].native})")
    stamped = bytes(mi["hashed_message"].native)
    if not hmac.compare_digest(stamped, imprint):
        raise TimestampError("TSTInfo.messageImprint: the TSA stamped another digest "
                             f"({stamped.hex()}) than the checkpoint's ({imprint.hex()})")
    got_nonce = tst["nonce"].native
    if nonce is not None and got_nonce != nonce:
        raise TimestampError(f"TSTInfo.nonce: {got_nonce} is not the request's nonce {nonce} "
                             "(a replayed or misrouted answer)")
    gen_time = tst["gen_time"].native
    if not isinstance(gen_time, datetime) or gen_time.tzinfo is None:
        raise TimestampError("TSTInfo.genTime: not a UTC time")
    # 3. Signed attributes: content-type and message-digest.
    attrs = _attributes(signer)
    if attrs.get("content_type") is None or attrs["content_type"].dotted != ID_CT_TSTINFO:
        raise TimestampError("signed attributes: content-type is not id-ct-TSTInfo")
    digest_name = signer["digest_algorithm"]["algorithm"].native
    if digest_name not in _HASHES:
        raise TimestampError(f"SignerInfo.digestAlgorithm: {digest_name} is not accepted "
                             f"(use one of {', '.join(_HASHES)})")
    if signer["digest_algorithm"]["parameters"].native is not None:
        raise TimestampError("SignerInfo.digestAlgorithm: parameters must be absent or NULL")
    listed = {a["algorithm"].native for a in signed["digest_algorithms"]
              if a["parameters"].native is None}
    if digest_name not in listed:
        raise TimestampError("SignedData.digestAlgorithms: does not list the signer's "
                             f"{digest_name}")
    want = _digest(digest_name, raw)
    md = attrs.get("message_digest")
    if md is None or not hmac.compare_digest(bytes(md.native), want):
        raise TimestampError("signed attributes: message-digest does not match the TSTInfo "
                             "(the token was altered)")
    # 4. The signing certificate: named by ESS, carried in the token, named by sid.
    certs = _certificates(signed)
    cert = _ess_certificate(attrs, certs)
    _check_sid(signer["sid"], cert)
    # 5. The signature over the signed attributes (DER, as a SET OF: RFC 5652 5.4).
    data = b"\x31" + bytes(signer["signed_attrs"].dump())[1:]
    _check_signature(cert, signer, digest_name, data)
    # 6. EKU: only id-kp-timeStamping, critical.
    _check_eku(cert)
    # 7. The chain to an anchor, valid at genTime.
    chain = _chain(cert, certs, anchors, gen_time)
    # 8. Revocation, when the caller gave CRLs.
    if crls is not None:
        _check_revocation(chain, crls, gen_time)
    return TimestampInfo(gen_time, int(tst["serial_number"].native),
                         str(tst["policy"].dotted), stamped,
                         None if got_nonce is None else int(got_nonce),
                         cert.subject.rfc4514_string(), chain[-1].subject.rfc4514_string())


def _digest(name: str, data: bytes) -> bytes:
    h = hashes.Hash(_HASHES[name]())
    h.update(data)
    return h.finalize()


def _attributes(signer: Any) -> dict[str, Any]:
    """The signed attributes by name, each present once with one value (RFC 5652 5.3)."""
    raw = signer["signed_attrs"]
    if isinstance(raw, core.Void) or len(raw) == 0:
        raise TimestampError("SignerInfo: no signed attributes (RFC 3161 needs content-type, "
                             "message-digest and signing-certificate)")
    out: dict[str, Any] = {}
    for attr in raw:
        name = attr["type"].native
        values = attr["values"]
        if name in out or len(values) != 1:
            raise TimestampError(f"signed attributes: {name} must appear once, with one value")
        out[name] = values[0]
    return out


def _certificates(signed: Any) -> list[tuple[bytes, x509.Certificate]]:
    """The token's certificates as (DER, parsed); other certificate choices are skipped."""
    out = []
    found = signed["certificates"]
    if isinstance(found, core.Void):
        return []
    for choice in found:
        if choice.name != "certificate":
            continue
        der = bytes(choice.chosen.dump())
        out.append((der, x509.load_der_x509_certificate(der)))
    return out


def _ess_certificate(attrs: dict[str, Any],
                     certs: list[tuple[bytes, x509.Certificate]]) -> x509.Certificate:
    """The certificate the ESS signing-certificate(-v2) attribute names (its first ESSCertID,
    RFC 5035 5.4: the signer's), found by hash among the token's certificates."""
    if "signing_certificate_v2" in attrs:
        first = attrs["signing_certificate_v2"]["certs"][0]
        algo = first["hash_algorithm"]["algorithm"].native
        if algo not in _HASHES:
            raise TimestampError(f"signing-certificate-v2: hash {algo} is not accepted")
        label = "signing-certificate-v2"
    elif "signing_certificate" in attrs:
        first = attrs["signing_certificate"]["certs"][0]
        algo = "sha1"
        label = "signing-certificate"
    else:
        raise TimestampError("signed attributes: no signing-certificate or "
                             "signing-certificate-v2 (RFC 3161 2.4.2, RFC 5816)")
    want = bytes(first["cert_hash"].native)
    for der, cert in certs:
        got = hashlib.sha1(der).digest() if algo == "sha1" else _digest(algo, der)  # noqa: S324
        if hmac.compare_digest(got, want):
            serial = first["issuer_serial"]
            if not isinstance(serial, core.Void) and serial["serial_number"].native != (
                    cert.serial_number):
                raise TimestampError(f"{label}: issuerSerial does not name the certificate "
                                     "its hash names")
            return cert
    raise TimestampError(f"{label}: the certificate it names is not in the token (the TSA "
                         "ignored certReq, or the token was altered)")


def _check_sid(sid: Any, cert: x509.Certificate) -> None:
    """The SignerInfo's signer identifier names the ESS-named certificate."""
    if sid.name == "issuer_and_serial_number":
        chosen = sid.chosen  # the issuer is compared as DER: an RFC 4514 round trip is lossy
        if (chosen["serial_number"].native != cert.serial_number
                or bytes(chosen["issuer"].dump()) != cert.issuer.public_bytes()):
            raise TimestampError("SignerInfo.sid: names another certificate than the "
                                 "signing-certificate attribute")
        return
    try:
        ski = cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    except x509.ExtensionNotFound as exc:
        raise TimestampError("SignerInfo.sid: a key identifier, but the TSA certificate has "
                             "none") from exc
    if bytes(sid.chosen.native) != ski:
        raise TimestampError("SignerInfo.sid: names another key than the signing-certificate "
                             "attribute's certificate")


def _check_signature(cert: x509.Certificate, signer: Any, digest_name: str,
                     data: bytes) -> None:
    """The SignerInfo's signature over ``data`` with the certificate's public key."""
    algo = signer["signature_algorithm"]
    kind = algo.signature_algo
    if kind != "rsassa_pss":
        if algo["parameters"].native is not None:
            raise TimestampError("SignerInfo.signatureAlgorithm: unexpected parameters")
        try:
            named = algo.hash_algo  # e.g. ecdsa-with-SHA384 names SHA-384
        except ValueError:
            named = None  # a bare algorithm (rsaEncryption): the digest algorithm applies
        if named is not None and kind != "ed25519" and named != digest_name:
            raise TimestampError(f"SignerInfo.signatureAlgorithm: names {named}, the digest "
                                 f"algorithm is {digest_name}")
    signature = bytes(signer["signature"].native)
    key = cert.public_key()
    try:
        if kind == "rsassa_pkcs1v15" and isinstance(key, rsa.RSAPublicKey):
            key.verify(signature, data, padding.PKCS1v15(), _HASHES[digest_name]())
        elif kind == "rsassa_pss" and isinstance(key, rsa.RSAPublicKey):
            params = algo["parameters"]
            pss_hash = params["hash_algorithm"]["algorithm"].native
            if pss_hash not in _HASHES:
                raise TimestampError(f"SignerInfo.signatureAlgorithm: PSS with {pss_hash}")
            mgf = params["mask_gen_algorithm"]["parameters"]["algorithm"].native
            if mgf != pss_hash:
                raise TimestampError("SignerInfo.signatureAlgorithm: PSS with another MGF hash")
            key.verify(signature, data, padding.PSS(padding.MGF1(_HASHES[pss_hash]()),
                                                    int(params["salt_length"].native)),
                       _HASHES[pss_hash]())
        elif kind == "ecdsa" and isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(signature, data, ec.ECDSA(_HASHES[digest_name]()))
        elif kind == "ed25519" and isinstance(key, ed25519.Ed25519PublicKey):
            key.verify(signature, data)
        else:
            raise TimestampError(f"SignerInfo.signatureAlgorithm: {kind} does not fit the TSA "
                                 f"certificate's {type(key).__name__} key, or is not accepted")
    except InvalidSignature as exc:
        raise TimestampError("SignerInfo.signature: does not verify with the TSA certificate "
                             "(the token was altered, or signed by another key)") from exc


def _check_eku(cert: x509.Certificate) -> None:
    """RFC 3161 2.3: the TSA certificate's only extended key usage is id-kp-timeStamping,
    and the extension is critical."""
    name = cert.subject.rfc4514_string()
    try:
        ext = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage)
    except x509.ExtensionNotFound as exc:
        raise TimestampError(f"TSA certificate {name}: no extended key usage (RFC 3161 2.3 "
                             "needs id-kp-timeStamping, critical)") from exc
    if list(ext.value) != [ExtendedKeyUsageOID.TIME_STAMPING]:
        raise TimestampError(f"TSA certificate {name}: extended key usage is not exactly "
                             "id-kp-timeStamping (RFC 3161 2.3)")
    if not ext.critical:
        raise TimestampError(f"TSA certificate {name}: the extended key usage extension is "
                             "not critical (RFC 3161 2.3)")
    try:
        usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        return
    if not (usage.digital_signature or usage.content_commitment):
        raise TimestampError(f"TSA certificate {name}: its key usage allows no signature")


def _valid_at(cert: x509.Certificate, at: datetime) -> None:
    if not cert.not_valid_before_utc <= at <= cert.not_valid_after_utc:
        raise TimestampError(f"certificate {cert.subject.rfc4514_string()}: not valid at genTime "
                             f"{at.isoformat()} (valid {cert.not_valid_before_utc.isoformat()} "
                             f"to {cert.not_valid_after_utc.isoformat()})")


def _check_issuer(cert: x509.Certificate, below: int) -> None:
    """``cert`` may issue certificates: a CA (basicConstraints), keyCertSign when key usage is
    given, and a path length that allows ``below`` intermediate CAs under it."""
    name = cert.subject.rfc4514_string()
    try:
        bc = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound as exc:
        raise TimestampError(f"certificate {name}: issues a certificate of the chain but is "
                             "not a CA (no basicConstraints)") from exc
    if not bc.ca:
        raise TimestampError(f"certificate {name}: issues a certificate of the chain but is "
                             "not a CA")
    if bc.path_length is not None and below > bc.path_length:
        raise TimestampError(f"certificate {name}: path length {bc.path_length} exceeded")
    try:
        usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        return
    if not usage.key_cert_sign:
        raise TimestampError(f"certificate {name}: its key usage does not allow keyCertSign")


def _issued(child: x509.Certificate, issuer: x509.Certificate) -> bool:
    try:
        child.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def _chain(leaf: x509.Certificate, pool: list[tuple[bytes, x509.Certificate]],
           anchors: Sequence[x509.Certificate], at: datetime) -> list[x509.Certificate]:
    """The path from the TSA certificate to a trust anchor (anchors tried first at each step,
    then the token's certificates), every link's signature and validity at ``at`` checked."""
    path = [leaf]
    current = leaf
    _valid_at(leaf, at)
    for _ in range(MAX_CHAIN):
        if current in anchors:
            return path
        for cand in anchors:
            if cand.subject == current.issuer and _issued(current, cand):
                _check_issuer(cand, len(path) - 1)
                _valid_at(cand, at)
                return [*path, cand]
        nxt = next((c for _, c in pool if c not in path and c.subject == current.issuer
                    and _issued(current, c)), None)
        if nxt is None:
            raise TimestampError(f"certificate chain: {current.subject.rfc4514_string()} was "
                                 "not issued by a trusted CA (issuer "
                                 f"{current.issuer.rfc4514_string()}; trusted: "
                                 f"{'; '.join(a.subject.rfc4514_string() for a in anchors)})")
        _check_issuer(nxt, len(path) - 1)
        _valid_at(nxt, at)
        path.append(nxt)
        current = nxt
    raise TimestampError(f"certificate chain: longer than {MAX_CHAIN} certificates")


# Reasons for which a revocation reaches back before its date: the key may have been used by
# someone else earlier (RFC 5280 5.3.1; no reason given is read as the worst).
_COMPROMISE: Final = frozenset({x509.ReasonFlags.key_compromise, x509.ReasonFlags.ca_compromise,
                                x509.ReasonFlags.aa_compromise, x509.ReasonFlags.unspecified})
# CRL extensions that leave a list complete (RFC 5280 5.2): anything else that is critical, a
# delta indicator or an issuing distribution point (a partitioned list) means a certificate
# missing from it may still be revoked, so such a list never vouches for one.
_PLAIN_CRL_EXTENSIONS: Final = frozenset({
    ExtensionOID.CRL_NUMBER, ExtensionOID.AUTHORITY_KEY_IDENTIFIER,
    ExtensionOID.ISSUER_ALTERNATIVE_NAME, ExtensionOID.FRESHEST_CRL,
    ExtensionOID.AUTHORITY_INFORMATION_ACCESS})
_ENTRY_EXTENSIONS: Final = frozenset({CRLEntryExtensionOID.CRL_REASON,
                                      CRLEntryExtensionOID.INVALIDITY_DATE})
# id-ce-expiredCertsOnCRL (RFC 5280 5.2.7 via X.509): the list keeps expired certificates.
_EXPIRED_CERTS_ON_CRL: Final = x509.ObjectIdentifier("2.5.29.60")


def _check_revocation(chain: list[x509.Certificate],
                      crls: Sequence[x509.CertificateRevocationList], at: datetime) -> None:
    """Step 8 of the module docstring for each certificate below the chain's anchor.

    Every list its issuer signed is evidence of a revocation, whenever it was issued (a
    delta or a partial list too); only a *complete* list issued after ``at`` vouches that a
    certificate it does not name was good then, and, issued after the certificate expired,
    only if it says it keeps expired certificates (RFC 5280 3.3: entries may leave a list
    once their certificate expires).
    """
    for cert, issuer in itertools.pairwise(chain):
        name = cert.subject.rfc4514_string()
        by = issuer.subject.rfc4514_string()
        signed = [c for c in crls if c.issuer == issuer.subject and _crl_signed_by(c, issuer)]
        for crl in signed:
            _not_revoked(crl, cert, at, name, by)
        if not signed:
            raise TimestampError(f"revocation of certificate {name}: no CRL given is signed by "
                                 f"its issuer {by} (with cRLSign)")
        vouching = [c for c in signed if c.last_update_utc >= at and _complete(c)
                    and (c.last_update_utc <= cert.not_valid_after_utc
                         or _keeps_expired(c))]
        if not vouching:
            raise TimestampError(
                f"revocation of certificate {name}: no complete CRL of {by} given was issued "
                f"after genTime {at.isoformat()} (and, if after the certificate expired, "
                "keeps expired certificates); a delta, a partitioned or an older list cannot "
                "show it was still good then")


def _not_revoked(crl: x509.CertificateRevocationList, cert: x509.Certificate, at: datetime,
                 name: str, by: str) -> None:
    revoked = crl.get_revoked_certificate_by_serial_number(cert.serial_number)
    if revoked is None:
        return
    try:
        reason = revoked.extensions.get_extension_for_class(x509.CRLReason).value.reason
    except x509.ExtensionNotFound:
        reason = x509.ReasonFlags.unspecified
    if reason == x509.ReasonFlags.remove_from_crl:
        return  # a delta list lifting a hold
    when = revoked.revocation_date_utc
    try:
        invalid = revoked.extensions.get_extension_for_class(x509.InvalidityDate).value
        when = min(when, invalid.invalidity_date_utc)
    except x509.ExtensionNotFound:
        pass
    if when <= at or reason in _COMPROMISE:
        raise TimestampError(f"revocation of certificate {name}: revoked by {by} as of "
                             f"{when.isoformat()} ({reason.value}), "
                             + ("before genTime" if when <= at else "a compromise, which "
                                "reaches back before genTime"))


def _complete(crl: x509.CertificateRevocationList) -> bool:
    """Whether the list claims to name every revoked certificate of its issuer."""
    for ext in crl.extensions:
        if ext.oid in (ExtensionOID.DELTA_CRL_INDICATOR,
                       ExtensionOID.ISSUING_DISTRIBUTION_POINT):
            return False
        if ext.critical and ext.oid not in _PLAIN_CRL_EXTENSIONS:
            return False
    return not any(ext.critical and ext.oid not in _ENTRY_EXTENSIONS
                   for entry in crl for ext in entry.extensions)


def _keeps_expired(crl: x509.CertificateRevocationList) -> bool:
    return any(ext.oid == _EXPIRED_CERTS_ON_CRL for ext in crl.extensions)


def _crl_signed_by(crl: x509.CertificateRevocationList, issuer: x509.Certificate) -> bool:
    """The issuer signed the list and may sign lists (keyUsage cRLSign when it has one)."""
    try:
        usage = issuer.extensions.get_extension_for_class(x509.KeyUsage).value
        if not usage.crl_sign:
            return False
    except x509.ExtensionNotFound:
        pass
    key = issuer.public_key()
    if not isinstance(key, (rsa.RSAPublicKey, ec.EllipticCurvePublicKey,
                            ed25519.Ed25519PublicKey)):
        return False
    try:
        return crl.is_signature_valid(key)
    except (ValueError, TypeError, InvalidSignature):
        return False


__all__ = ["ID_CT_TSTINFO", "TimestampError", "TimestampInfo", "build_request",
           "checkpoint_imprint", "load_anchors", "load_crls", "parse_response",
           "verify_token"]
