"""The independent cosignature/v1 checker these tests rely on (support.py) is itself checked:
it accepts lines made by the other reference implementation (tests/witness/test_cosignature.py
``reference_line``) and rejects every kind of tampering, so a test that passes through it
could have failed."""

from __future__ import annotations

import base64
import hashlib

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from tests.witness.test_cosignature import reference_line
from tests.witnessing.support import RefKey, check_cosigned, verify_line

NAME = "example.org/checker-witness"
SEED = hashlib.sha256(b"checker seed").digest()
BODY = "example.org/some-log\n42\n" + base64.b64encode(bytes(range(32))).decode() + "\n"
LOG_LINE = "\u2014 example.org/some-log AAAAAAAA" + "A" * 84


def vkey(name: str = NAME, seed: bytes = SEED) -> str:
    pub = Ed25519PrivateKey.from_private_bytes(seed).public_key().public_bytes(
        Encoding.Raw, PublicFormat.Raw)
    kid = hashlib.sha256(name.encode() + b"\n\x04" + pub).digest()[:4]
    data = base64.b64encode(bytes([4]) + pub).decode()
    return f"{name}+{kid.hex()}+{data}"


def test_a_reference_line_verifies() -> None:
    line = reference_line(NAME, SEED, BODY, 1_700_000_000)
    assert verify_line(RefKey.parse(vkey()), BODY, line) == 1_700_000_000
    note = BODY + "\n" + LOG_LINE + "\n" + line + "\n"
    assert check_cosigned(note, [vkey()]) == {NAME: 1_700_000_000}
    # A witness that did not sign is absent, not an error.
    assert check_cosigned(note, [vkey("example.org/other", bytes(32))]) == {}


def _relined(line: str, data: bytes) -> str:
    return line.rsplit(" ", 1)[0] + " " + base64.b64encode(data).decode()


def test_every_tampering_is_rejected() -> None:
    key = RefKey.parse(vkey())
    line = reference_line(NAME, SEED, BODY, 1_700_000_000)
    data = base64.b64decode(line.rsplit(" ", 1)[1])
    with pytest.raises(InvalidSignature):
        verify_line(key, BODY.replace("42", "43"), line)                   # another body
    with pytest.raises(InvalidSignature):
        verify_line(key, BODY, _relined(line, data[:11] + bytes([data[11] ^ 1]) + data[12:]))
    with pytest.raises(InvalidSignature):
        verify_line(key, BODY, _relined(line, data[:-1] + bytes([data[-1] ^ 1])))
    with pytest.raises(AssertionError):
        verify_line(key, BODY, _relined(line, bytes([data[0] ^ 1]) + data[1:]))   # key id
    with pytest.raises(AssertionError):
        verify_line(key, BODY, _relined(line, data[:-1]))                  # truncated
    with pytest.raises(AssertionError):   # a vkey whose key id is not the spec's hash
        RefKey.parse(vkey().replace("+", "+0", 1))
    other = reference_line(NAME, bytes(32), BODY, 1_700_000_000)           # another key
    with pytest.raises((AssertionError, InvalidSignature)):
        verify_line(key, BODY, other)
