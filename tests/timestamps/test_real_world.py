"""A token from a real TSA (DigiCert, 2018) checked by ``sealtrail.core.tsp``: another
implementation's RFC 3161 structures, verified with the published root they chain to
(tests/timestamps/data/PROVENANCE.md)."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes

from sealtrail.core import tsp
from sealtrail.core.tsp import TimestampError
from tests.timestamps.tsa import Authority

DATA = Path(__file__).parent / "data"
IMPRINT = hashlib.sha256(b"hello\n").digest()
ROOT_SHA256 = "3E9099B5015E8F486C00BCEA9D111EE721FABA355A89BCF1DF69561E3DC6325C"


@pytest.fixture(scope="module")
def token() -> bytes:
    return tsp.parse_response((DATA / "digicert-2018-05-09.tsr").read_bytes())


@pytest.fixture(scope="module")
def root() -> bytes:
    pem = (DATA / "digicert-assured-id-root-ca.pem").read_bytes()
    (cert,) = tsp.load_anchors(pem)
    assert cert.fingerprint(hashes.SHA256()).hex().upper() == ROOT_SHA256
    return pem


def test_digicerts_token_verifies_with_its_root(token: bytes, root: bytes) -> None:
    info = tsp.verify_token(token, IMPRINT, tsp.load_anchors(root))
    assert info.gen_time == datetime(2018, 5, 9, 18, 48, 18, tzinfo=UTC)
    assert info.policy == "2.16.840.1.114412.7.1"
    assert info.nonce is None
    assert info.tsa == "CN=DigiCert SHA2 Timestamp Responder,O=DigiCert,C=US"
    assert info.anchor.startswith("CN=DigiCert Assured ID Root CA")


def test_digicerts_token_is_not_for_another_digest(token: bytes, root: bytes) -> None:
    with pytest.raises(TimestampError, match="messageImprint"):
        tsp.verify_token(token, hashlib.sha256(b"hello").digest(), tsp.load_anchors(root))


def test_digicerts_token_is_refused_under_another_root(token: bytes,
                                                       authority: Authority) -> None:
    with pytest.raises(TimestampError, match="not issued by a trusted CA"):
        tsp.verify_token(token, IMPRINT, tsp.load_anchors(authority.pem()))


def test_digicerts_token_with_a_flipped_signature_bit_fails(token: bytes, root: bytes) -> None:
    altered = token[:-10] + bytes([token[-10] ^ 0x01]) + token[-9:]
    with pytest.raises(TimestampError, match=r"SignerInfo\.signature"):
        tsp.verify_token(altered, IMPRINT, tsp.load_anchors(root))
