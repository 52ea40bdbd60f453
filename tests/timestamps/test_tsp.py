"""RFC 3161 in the core (``sealtrail.core.tsp``) against a real responder (tests/timestamps/tsa.py)
and the RFC's ASN.1 as ``asn1crypto.tsp`` implements it: requests, answers, the full token check
and each way a token can fail it."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

import pytest
from asn1crypto import tsp  # type: ignore[import-untyped]
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtendedKeyUsageOID

from sealtrail.core import tsp as ours
from sealtrail.core.errors import VerificationError
from sealtrail.core.tsp import TimestampError
from tests.timestamps.tsa import Authority, Responder, SigningKey

BODY = "sealtrail/default\n42\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"
IMPRINT = hashlib.sha256(BODY.encode()).digest()
NONCE = 0x1234_5678_9ABC_DEF1


def token_from(tsa: Responder, nonce: int = NONCE) -> bytes:
    """Ask ``tsa`` (in process) for a token over BODY and take it out of the answer."""
    return ours.parse_response(tsa.answer(ours.build_request(IMPRINT, nonce)))


def anchors(authority: Authority) -> list[x509.Certificate]:
    """The trust anchors as a verifier loads them from PEM."""
    return ours.load_anchors(authority.pem())


def tsa_for(authority: Authority, **options: object) -> Responder:
    """A responder whose TSA certificate ``authority`` issued with ``options``."""
    key, cert = authority.issue_tsa(**options)  # type: ignore[arg-type]
    return Responder(key, cert)


# -- the structures, read with asn1crypto's RFC 3161 module ---------------------------------------

def test_the_request_is_rfc3161_timestampreq() -> None:
    """Version 1, SHA-256 imprint of the checkpoint body, the nonce, certReq true."""
    req = tsp.TimeStampReq.load(ours.build_request(IMPRINT, NONCE), strict=True)
    assert req["version"].native == "v1"
    assert req["message_imprint"]["hash_algorithm"]["algorithm"].native == "sha256"
    assert req["message_imprint"]["hashed_message"].native == IMPRINT
    assert req["nonce"].native == NONCE
    assert req["cert_req"].native is True
    assert ours.checkpoint_imprint(BODY) == IMPRINT


def test_the_responders_answer_is_an_rfc3161_token(authority: Authority) -> None:
    """The responder the tests run answers what RFC 3161 2.4.2 and RFC 5652 specify."""
    tsa = tsa_for(authority)
    resp = tsp.TimeStampResp.load(tsa.answer(ours.build_request(IMPRINT, NONCE)), strict=True)
    assert resp["status"]["status"].native == "granted"
    token = resp["time_stamp_token"]
    assert token["content_type"].native == "signed_data"
    signed = token["content"]
    assert signed["encap_content_info"]["content_type"].native == "tst_info"
    info = signed["encap_content_info"]["content"].parsed
    assert isinstance(info, tsp.TSTInfo)
    assert info["message_imprint"]["hashed_message"].native == IMPRINT
    assert info["nonce"].native == NONCE
    attrs = {a["type"].native for a in signed["signer_infos"][0]["signed_attrs"]}
    assert {"content_type", "message_digest", "signing_certificate_v2"} <= attrs
    assert signed["certificates"][0].chosen.dump() == tsa.cert.public_bytes(Encoding.DER)


def test_requests_with_different_nonces_differ() -> None:
    assert ours.build_request(IMPRINT, 1) != ours.build_request(IMPRINT, 2)
    with pytest.raises(ValueError, match="nonce"):
        ours.build_request(IMPRINT, 0)
    with pytest.raises(ValueError, match="imprint"):
        ours.build_request(IMPRINT[:20], 1)


# -- a good token ---------------------------------------------------------------------------------

def test_a_good_token_verifies_and_says_when(authority: Authority) -> None:
    tsa = tsa_for(authority)
    before = datetime.now(UTC).replace(microsecond=0)
    info = ours.verify_token(token_from(tsa), IMPRINT, anchors(authority), nonce=NONCE)
    assert before - timedelta(seconds=1) <= info.gen_time <= datetime.now(UTC)
    assert info.nonce == NONCE
    assert info.imprint == IMPRINT
    assert info.serial == 1
    assert "sealtrail test TSA" in info.tsa
    assert info.anchor == authority.cert.subject.rfc4514_string()


def test_a_stored_token_verifies_without_the_nonce(authority: Authority) -> None:
    """Offline checks of a recorded token have no request: the imprint binds it."""
    tsa = tsa_for(authority)
    assert ours.verify_token(token_from(tsa), IMPRINT, anchors(authority)).nonce == NONCE


def test_a_chain_through_an_intermediate_ca_verifies(authority: Authority) -> None:
    middle = authority.issue_ca()
    key, cert = middle.issue_tsa()
    tsa = Responder(key, cert, chain=[middle.cert])
    info = ours.verify_token(token_from(tsa), IMPRINT, anchors(authority))
    assert info.anchor == authority.cert.subject.rfc4514_string()


# -- each failure names its check -----------------------------------------------------------------

def test_wrong_nonce_is_refused(authority: Authority) -> None:
    tsa = tsa_for(authority)
    tsa.mode = "wrong_nonce"
    with pytest.raises(TimestampError, match=r"TSTInfo\.nonce"):
        ours.verify_token(token_from(tsa), IMPRINT, anchors(authority), nonce=NONCE)


def test_wrong_imprint_is_refused(authority: Authority) -> None:
    tsa = tsa_for(authority)
    tsa.mode = "wrong_imprint"
    with pytest.raises(TimestampError, match=r"TSTInfo\.messageImprint"):
        ours.verify_token(token_from(tsa), IMPRINT, anchors(authority), nonce=NONCE)


def test_a_token_for_another_checkpoint_is_refused(authority: Authority) -> None:
    tsa = tsa_for(authority)
    other = hashlib.sha256(BODY.replace("42", "43").encode()).digest()
    with pytest.raises(TimestampError, match="another digest"):
        ours.verify_token(token_from(tsa), other, anchors(authority))


def test_eku_not_critical_is_refused(authority: Authority) -> None:
    tsa = tsa_for(authority, eku_critical=False)
    with pytest.raises(TimestampError, match="not critical"):
        ours.verify_token(token_from(tsa), IMPRINT, anchors(authority))


@pytest.mark.parametrize("eku", [
    [ExtendedKeyUsageOID.TIME_STAMPING, ExtendedKeyUsageOID.CODE_SIGNING],
    [ExtendedKeyUsageOID.SERVER_AUTH],
])
def test_eku_other_than_only_timestamping_is_refused(authority: Authority,
                                                     eku: list[x509.ObjectIdentifier]) -> None:
    tsa = tsa_for(authority, eku=eku)
    with pytest.raises(TimestampError, match="not exactly id-kp-timeStamping"):
        ours.verify_token(token_from(tsa), IMPRINT, anchors(authority))


def test_no_eku_is_refused(authority: Authority) -> None:
    tsa = tsa_for(authority, eku=[])
    with pytest.raises(TimestampError, match="no extended key usage"):
        ours.verify_token(token_from(tsa), IMPRINT, anchors(authority))


def test_an_untrusted_ca_is_refused(authority: Authority) -> None:
    """A TSA whose CA the verifier does not trust (a second, unrelated CA)."""
    stranger = Authority.make("another CA, not trusted")
    tsa = tsa_for(stranger)
    with pytest.raises(TimestampError, match="not issued by a trusted CA"):
        ours.verify_token(token_from(tsa), IMPRINT, anchors(authority))


def test_a_ca_with_the_trusted_name_but_another_key_is_refused(authority: Authority) -> None:
    """Same subject as the trusted CA, another key: only the signature tells them apart."""
    impostor = Authority.make(authority.cert.subject.get_attributes_for_oid(
        x509.oid.NameOID.COMMON_NAME)[0].value)  # type: ignore[arg-type]
    tsa = tsa_for(impostor)
    with pytest.raises(TimestampError, match="not issued by a trusted CA"):
        ours.verify_token(token_from(tsa), IMPRINT, anchors(authority))


def test_a_tsa_certificate_expired_at_gentime_is_refused(authority: Authority) -> None:
    now = datetime.now(UTC)
    tsa = tsa_for(authority, not_before=now - timedelta(days=30),
                  not_after=now - timedelta(days=1))
    with pytest.raises(TimestampError, match="not valid at genTime"):
        ours.verify_token(token_from(tsa), IMPRINT, anchors(authority))


def test_a_tsa_certificate_not_yet_valid_at_gentime_is_refused(authority: Authority) -> None:
    now = datetime.now(UTC)
    tsa = tsa_for(authority, not_before=now + timedelta(days=1),
                  not_after=now + timedelta(days=30))
    with pytest.raises(TimestampError, match="not valid at genTime"):
        ours.verify_token(token_from(tsa), IMPRINT, anchors(authority))


def test_an_issuer_that_is_not_a_ca_is_refused(authority: Authority) -> None:
    leafish = authority.issue_ca("not a CA", ca=False)
    key, cert = leafish.issue_tsa()
    tsa = Responder(key, cert, chain=[leafish.cert])
    with pytest.raises(TimestampError, match="not a CA"):
        ours.verify_token(token_from(tsa), IMPRINT, anchors(authority))


def test_content_altered_after_signing_is_refused(authority: Authority) -> None:
    tsa = tsa_for(authority)
    tsa.mode = "tamper"
    with pytest.raises(TimestampError, match="message-digest"):
        ours.verify_token(token_from(tsa), IMPRINT, anchors(authority))


def test_a_token_without_the_tsa_certificate_is_refused(authority: Authority) -> None:
    tsa = tsa_for(authority)
    tsa.mode = "no_cert"
    with pytest.raises(TimestampError, match="not in the token"):
        ours.verify_token(token_from(tsa), IMPRINT, anchors(authority))


def test_every_single_bit_flip_of_a_token_fails(authority: Authority) -> None:
    """Flip the lowest bit of each byte in turn: not one altered token verifies."""
    tsa = tsa_for(authority)
    token = token_from(tsa)
    trusted = anchors(authority)
    ours.verify_token(token, IMPRINT, trusted)
    passed = []
    for pos in range(len(token)):
        altered = token[:pos] + bytes([token[pos] ^ 1]) + token[pos + 1:]
        try:
            ours.verify_token(altered, IMPRINT, trusted)
        except VerificationError:
            continue
        passed.append(pos)
    assert passed == []


def test_a_signature_by_another_key_is_refused(authority: Authority) -> None:
    """The TSA signs with a key that is not its certificate's."""
    key, cert = authority.issue_tsa()
    other_key, _ = authority.issue_tsa()
    tsa = Responder(other_key, cert)
    with pytest.raises(TimestampError, match=r"SignerInfo\.signature"):
        ours.verify_token(token_from(tsa), IMPRINT, anchors(authority))
    del key


def test_a_rejection_names_status_failinfo_and_text(authority: Authority) -> None:
    tsa = tsa_for(authority)
    tsa.mode = "reject"
    with pytest.raises(TimestampError, match=r"status rejection, failInfo unaccepted_policy, "
                       r"text 'policy refuses this requester'"):
        ours.parse_response(tsa.answer(ours.build_request(IMPRINT, NONCE)))


@pytest.mark.parametrize("junk", [b"", b"\x30\x00", b"not DER at all", b"\x30\x03\x02\x01\x00"])
def test_malformed_answers_are_verification_failures(junk: bytes) -> None:
    with pytest.raises(TimestampError):
        ours.parse_response(junk)


@pytest.mark.parametrize("junk", [b"", b"\x30\x00", b"\x30\x80\x00\x00", b"\xff" * 40])
def test_malformed_tokens_are_verification_failures(authority: Authority, junk: bytes) -> None:
    with pytest.raises(TimestampError):
        ours.verify_token(junk, IMPRINT, anchors(authority))


def test_anchors_must_be_pem_certificates() -> None:
    with pytest.raises(TimestampError, match="trust anchors"):
        ours.load_anchors(b"-----BEGIN NOTHING-----\n")
    with pytest.raises(TimestampError, match="none given"):
        ours.verify_token(b"\x30\x00", IMPRINT, [])


@pytest.mark.parametrize("variant", ["rsa-pkcs1-sha256", "rsa-pss-sha384", "ed25519-sha512",
                                     "ecdsa-sha384", "ess-v1", "sid-ski"])
def test_the_signature_and_signer_forms_tsas_use_verify(authority: Authority,
                                                        variant: str) -> None:
    """RSA PKCS#1 v1.5 and PSS, Ed25519 (RFC 8419), ECDSA with another hash, ESS v1, and a
    signer named by its key identifier: each verifies, and a flipped signature bit does not."""
    key: SigningKey = ec.generate_private_key(ec.SECP256R1())
    options: dict[str, object] = {}
    if variant.startswith("rsa"):
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        options = {"pss": variant.startswith("rsa-pss"), "digest": variant.rsplit("-", 1)[1]}
    elif variant == "ed25519-sha512":
        key = ed25519.Ed25519PrivateKey.generate()
        options = {"digest": "sha512"}
    elif variant == "ecdsa-sha384":
        options = {"digest": "sha384"}
    elif variant == "ess-v1":
        options = {"ess_v1": True}
    else:
        options = {"sid": "ski"}
    _, cert = authority.issue_tsa(key=key)
    tsa = Responder(key, cert, **options)  # type: ignore[arg-type]
    token = token_from(tsa)
    assert ours.verify_token(token, IMPRINT, anchors(authority)).nonce == NONCE
    altered = token[:-3] + bytes([token[-3] ^ 0x01]) + token[-2:]
    with pytest.raises(TimestampError):
        ours.verify_token(altered, IMPRINT, anchors(authority))


# -- revocation (step 8: the auditor's CRLs) -------------------------------------------------------

def _revocation(authority: Authority) -> tuple[Responder, bytes, datetime]:
    tsa = tsa_for(authority)
    token = token_from(tsa)
    gen_time = ours.verify_token(token, IMPRINT, anchors(authority)).gen_time
    return tsa, token, gen_time


def test_a_crl_that_does_not_revoke_the_tsa_passes(authority: Authority) -> None:
    tsa, token, _ = _revocation(authority)
    other = x509.random_serial_number()
    crl = authority.crl([(other, datetime.now(UTC), x509.ReasonFlags.key_compromise)])
    info = ours.verify_token(token, IMPRINT, anchors(authority), crls=[crl])
    assert info.serial == tsa.serial


@pytest.mark.parametrize(("offset", "reason", "ok"), [
    (timedelta(days=-1), x509.ReasonFlags.superseded, False),      # before genTime
    (timedelta(days=1), x509.ReasonFlags.superseded, True),        # after, harmless
    (timedelta(days=1), x509.ReasonFlags.cessation_of_operation, True),
    (timedelta(days=1), x509.ReasonFlags.key_compromise, False),   # after, but a compromise
    (timedelta(days=1), None, False),                              # no reason: the worst
])
def test_revocation_reaches_the_token_by_date_or_compromise(
        authority: Authority, offset: timedelta, reason: x509.ReasonFlags | None,
        ok: bool) -> None:
    tsa, token, gen_time = _revocation(authority)
    crl = authority.crl([(tsa.cert.serial_number, gen_time + offset, reason)],
                        last_update=gen_time + timedelta(days=2))
    if ok:
        ours.verify_token(token, IMPRINT, anchors(authority), crls=[crl])
        return
    with pytest.raises(TimestampError, match=r"revocation of certificate .*revoked by"):
        ours.verify_token(token, IMPRINT, anchors(authority), crls=[crl])


def test_a_crl_older_than_the_token_or_forged_or_missing_covers_nothing(
        authority: Authority) -> None:
    _, token, gen_time = _revocation(authority)
    stale = authority.crl(last_update=gen_time - timedelta(hours=1))
    with pytest.raises(TimestampError, match=r"no complete CRL .* issued after genTime"):
        ours.verify_token(token, IMPRINT, anchors(authority), crls=[stale])
    forged = authority.crl(key=ec.generate_private_key(ec.SECP256R1()))
    with pytest.raises(TimestampError, match="no CRL given is signed by its issuer"):
        ours.verify_token(token, IMPRINT, anchors(authority), crls=[forged])
    with pytest.raises(TimestampError, match="no CRL given"):
        ours.verify_token(token, IMPRINT, anchors(authority), crls=[])


def test_every_certificate_below_the_anchor_needs_its_issuers_crl(authority: Authority) -> None:
    middle = authority.issue_ca()
    key, cert = middle.issue_tsa()
    tsa = Responder(key, cert, chain=[middle.cert])
    token = token_from(tsa)
    with pytest.raises(TimestampError, match="intermediate"):
        ours.verify_token(token, IMPRINT, anchors(authority), crls=[middle.crl()])
    ours.verify_token(token, IMPRINT, anchors(authority), crls=[middle.crl(), authority.crl()])
    revoked_middle = authority.crl([(middle.cert.serial_number, datetime.now(UTC),
                                     x509.ReasonFlags.ca_compromise)])
    with pytest.raises(TimestampError, match=r"intermediate.*cACompromise"):
        ours.verify_token(token, IMPRINT, anchors(authority),
                          crls=[middle.crl(), revoked_middle])


def test_crls_load_from_pem_and_der(authority: Authority) -> None:
    one, two = authority.crl(), authority.crl()
    pem = one.public_bytes(Encoding.PEM) + two.public_bytes(Encoding.PEM)
    assert len(ours.load_crls(pem)) == 2
    assert len(ours.load_crls(one.public_bytes(Encoding.DER))) == 1
    with pytest.raises(TimestampError, match="CRL"):
        ours.load_crls(b"not a crl")


def _with_extension(authority: Authority, extension: x509.ExtensionType, *,
                    critical: bool) -> x509.CertificateRevocationList:
    """A complete-looking CRL of ``authority`` that does not name the TSA, plus one
    extension (a delta indicator, an issuing distribution point, or an unknown one)."""
    now = datetime.now(UTC)
    return (x509.CertificateRevocationListBuilder().issuer_name(authority.cert.subject)
            .last_update(now).next_update(now + timedelta(days=7))
            .add_extension(extension, critical=critical).sign(authority.key, hashes.SHA256()))


@pytest.mark.parametrize("extension", [
    x509.DeltaCRLIndicator(7),
    x509.IssuingDistributionPoint(None, None, only_contains_user_certs=False,
                                  only_contains_ca_certs=True, only_some_reasons=None,
                                  indirect_crl=False, only_contains_attribute_certs=False),
    x509.UnrecognizedExtension(x509.ObjectIdentifier("1.3.6.1.4.1.55555.9"), b"\x05\x00"),
])
def test_a_delta_partial_or_unreadable_list_never_vouches(
        authority: Authority, extension: x509.ExtensionType) -> None:
    """RFC 5280 5.2: a certificate missing from a delta or a partitioned list, or from one
    with a critical extension we do not process, may still be revoked."""
    _, token, _ = _revocation(authority)
    crl = _with_extension(authority, extension, critical=True)
    with pytest.raises(TimestampError, match="no complete CRL"):
        ours.verify_token(token, IMPRINT, anchors(authority), crls=[crl])


def test_every_signed_list_is_evidence_and_the_invalidity_date_counts(
        authority: Authority) -> None:
    """An older list that revoked the TSA before genTime fails the token even beside a fresh
    one that forgot it; a revocation dated after genTime but invalid since before it too."""
    tsa, token, gen_time = _revocation(authority)
    old = authority.crl([(tsa.cert.serial_number, gen_time - timedelta(days=1),
                          x509.ReasonFlags.superseded)], last_update=gen_time - timedelta(hours=1))
    with pytest.raises(TimestampError, match="before genTime"):
        ours.verify_token(token, IMPRINT, anchors(authority), crls=[old, authority.crl()])
    now = datetime.now(UTC)
    entry = (x509.RevokedCertificateBuilder().serial_number(tsa.cert.serial_number)
             .revocation_date(gen_time + timedelta(days=1))
             .add_extension(x509.CRLReason(x509.ReasonFlags.superseded), critical=False)
             .add_extension(x509.InvalidityDate(
                 (gen_time - timedelta(days=1)).replace(tzinfo=None)), critical=False)
             .build())
    invalid = (x509.CertificateRevocationListBuilder().issuer_name(authority.cert.subject)
               .last_update(now).next_update(now + timedelta(days=7))
               .add_revoked_certificate(entry).sign(authority.key, hashes.SHA256()))
    with pytest.raises(TimestampError, match="before genTime"):
        ours.verify_token(token, IMPRINT, anchors(authority), crls=[invalid])


def test_a_cut_pem_crl_is_refused(authority: Authority) -> None:
    pem = authority.crl().public_bytes(Encoding.PEM)
    with pytest.raises(TimestampError, match="cut short"):
        ours.load_crls(pem + pem[: len(pem) // 2])
