"""cosignature/v1 (C2SP tlog-cosignature, Ed25519) checked against a second implementation
written here from the spec with ``cryptography`` and ``struct`` directly (not the code under
test), and against the spec's own example line."""

from __future__ import annotations

import base64
import hashlib
import struct

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from sealtrail.core.cosignature import (
    Cosigner,
    CosignerKey,
    add_lines,
    cosignatures,
    signed_message,
)
from sealtrail.core.errors import FormatError, SignatureError
from sealtrail.core.note import Signer

BODY = "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"
SEED = bytes(range(32))
NAME = "witness.example.com/w1"


def reference_line(name: str, seed: bytes, body: str, timestamp: int) -> str:
    """The spec, written out: key id SHA-256(name || 0x0A || 0x04 || pub)[:4]; signature
    over "cosignature/v1\\ntime T\\n" || body; line data kid || u64be(T) || sig."""
    private = Ed25519PrivateKey.from_private_bytes(seed)
    pub = private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    kid = hashlib.sha256(name.encode() + b"\n\x04" + pub).digest()[:4]
    message = b"cosignature/v1\ntime " + str(timestamp).encode() + b"\n" + body.encode()
    data = kid + struct.pack(">Q", timestamp) + private.sign(message)
    return "\u2014 " + name + " " + base64.b64encode(data).decode()


def log_note() -> str:
    """The checkpoint as the log signs it (its own 0x01 line first)."""
    return Signer.from_seed("example.com/behind-the-sofa", bytes(32)).sign(BODY)


def test_our_line_is_the_reference_line() -> None:
    ours = Cosigner(NAME, SEED).line(BODY, 1679315147)
    assert ours == reference_line(NAME, SEED, BODY, 1679315147)


def test_a_reference_cosignature_verifies_with_our_key() -> None:
    note = log_note() + reference_line(NAME, SEED, BODY, 1700000000) + "\n"
    key = Cosigner(NAME, SEED).key
    assert cosignatures(note, [key]) == {NAME: 1700000000}


def test_vkey_round_trip_and_type() -> None:
    key = Cosigner(NAME, SEED).key
    text = key.format()
    assert text.startswith(f"{NAME}+{key.key_id.hex()}+")
    assert base64.b64decode(text.split("+", 2)[2])[0] == 0x04
    assert CosignerKey.parse(text) == key
    log_vkey = Signer.from_seed(NAME, SEED).verifier().format()  # type 0x01: a log's key
    with pytest.raises(FormatError, match="0x04"):
        CosignerKey.parse(log_vkey)
    name, kid, rest = text.split("+", 2)
    with pytest.raises(FormatError, match="key id"):
        CosignerKey.parse(f"{name}+{'00000000' if kid != '00000000' else '11111111'}+{rest}")


def test_the_spec_example_line_carries_its_time() -> None:
    """The spec's example cosignature (c2sp.org/tlog-cosignature): key id, then the time
    1679315147 as a big-endian u64, then 64 bytes of signature."""
    data = base64.b64decode("jWbPPwAAAABkGFDLEZMHwSRaJNiIDoe9DYn/zXcrtPHeolMI5OWXEhZCB9dl"
                            "rDJsX3b2oyin1nPZqhf5nNo0xUe+mbIUBkBIfZ+qnA==")
    assert len(data) == 4 + 8 + 64
    assert struct.unpack(">Q", data[4:12])[0] == 1679315147
    assert signed_message(BODY, 1679315147).startswith(b"cosignature/v1\ntime 1679315147\n")


def test_tampering_is_an_error_not_an_absence() -> None:
    key = Cosigner(NAME, SEED).key
    good = add_lines(log_note(), [Cosigner(NAME, SEED).line(BODY, 1700000000)])
    assert cosignatures(good, [key]) == {NAME: 1700000000}
    forged_body = good.replace("20852163", "20852164")
    with pytest.raises(SignatureError):
        cosignatures(forged_body, [key])
    line = good.rstrip("\n").rsplit("\n", 1)[1]
    data = bytearray(base64.b64decode(line.split(" ", 2)[2]))
    data[11] ^= 1  # another time than the one signed
    other = good.replace(line, f"\u2014 {NAME} {base64.b64encode(bytes(data)).decode()}")
    with pytest.raises(SignatureError):
        cosignatures(other, [key])


def test_unknown_keys_and_the_logs_own_line_are_ignored() -> None:
    note = add_lines(log_note(), [Cosigner("other.example/w", bytes(32)).line(BODY, 5)])
    assert cosignatures(note, [Cosigner(NAME, SEED).key]) == {}


def test_extension_lines_are_signed_too() -> None:
    body = BODY + "an extension line\n"
    note = Signer.from_seed("example.com/behind-the-sofa", bytes(32)).sign(body)
    note = add_lines(note, [reference_line(NAME, SEED, body, 42)])
    assert cosignatures(note, [Cosigner(NAME, SEED).key]) == {NAME: 42}


def test_bad_inputs_name_the_problem() -> None:
    with pytest.raises(FormatError, match="2\\^63"):
        signed_message(BODY, 1 << 63)
    with pytest.raises(FormatError, match="seed"):
        Cosigner(NAME, b"short")
    with pytest.raises(FormatError, match="name"):
        Cosigner("two words", SEED)
    assert "seed=<hidden>" in repr(Cosigner(NAME, SEED))
    assert SEED.hex() not in repr(Cosigner(NAME, SEED))
