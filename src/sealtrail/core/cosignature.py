"""C2SP tlog-cosignature ``cosignature/v1`` (Ed25519): a witness's signature on a checkpoint.

A cosignature is a note signature line ``— <cosigner name> base64(key_id || timestamped
signature)`` added to a checkpoint the cosigner checked was consistent with the last one it
saw for that log. It differs from the log's own signature in three ways (c2sp.org/
tlog-cosignature):

- the key id is ``SHA-256(name || 0x0A || 0x04 || public_key)[:4]`` (type 0x04, not 0x01), and
  the verifier key text ``name+hexid+base64(0x04 || public_key)``;
- the signature is a ``timestamped_signature``: the signing time as a big-endian u64 (POSIX
  seconds, at most 2^63 - 1) followed by the 64-byte Ed25519 signature;
- the signed message is ``cosignature/v1\\n`` then ``time <decimal, no leading zeros>\\n`` then
  the whole checkpoint body (with any extension lines, without the signature lines).

This module is pure (no clock, no randomness): callers give the time and the key seed. It is
the building block of issue 17's witnesses (sealtrail as a witness, and a log that collects
cosignatures); the protocol and state live above it.
"""

from __future__ import annotations

import hmac
import struct
from dataclasses import dataclass
from hashlib import sha256
from typing import Final

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from sealtrail.core import b64
from sealtrail.core.errors import FormatError, SignatureError
from sealtrail.core.note import SIG_PREFIX, parse, parse_vkey

ALG_COSIGNATURE_V1: Final = 0x04
HEADER: Final = "cosignature/v1\n"
MAX_TIMESTAMP: Final = (1 << 63) - 1
_NAME_FORBIDDEN: Final = frozenset(" +\n")


def cosigner_key_id(name: str, public_key: bytes) -> bytes:
    """The 4-byte key id of an Ed25519 cosigner key (type 0x04)."""
    return sha256(name.encode() + b"\n" + bytes([ALG_COSIGNATURE_V1]) + public_key).digest()[:4]


def signed_message(body: str, timestamp: int) -> bytes:
    """What a cosignature signs: the header line, the time line, the checkpoint body."""
    if not 0 <= timestamp <= MAX_TIMESTAMP:
        raise FormatError(f"cosignature time {timestamp} is outside 0..2^63-1")
    if not body.endswith("\n"):
        raise FormatError("a checkpoint body ends with a newline")
    return f"{HEADER}time {timestamp}\n{body}".encode()


def _check_name(name: str) -> None:
    if not name or any(c in _NAME_FORBIDDEN for c in name) or not name.isprintable():
        raise FormatError(f"cosigner name {name!r}: non-empty, printable, no space or '+'")


@dataclass(frozen=True, slots=True)
class CosignerKey:
    """A cosigner's public key: what a log (or a client) trusts a witness by."""

    name: str
    key_id: bytes
    public_key: bytes

    @classmethod
    def parse(cls, vkey: str) -> CosignerKey:
        """Parse ``name+hexid+base64(0x04 || public_key)`` (FormatError naming what is wrong)."""
        return cls(*parse_vkey(vkey, ALG_COSIGNATURE_V1, "cosigner key", _check_name))

    def format(self) -> str:
        """The vkey text."""
        key = b64.encode(bytes([ALG_COSIGNATURE_V1]) + self.public_key)
        return f"{self.name}+{self.key_id.hex()}+{key}"

    def verify(self, body: str, signature: bytes) -> int:
        """The time of a valid cosignature (``timestamp || Ed25519 signature``) of ``body``;
        SignatureError when it does not verify."""
        if len(signature) != 72:
            raise SignatureError(f"cosignature by {self.name}: want 72 bytes, got "
                                 f"{len(signature)}")
        (timestamp,) = struct.unpack(">Q", signature[:8])
        if timestamp > MAX_TIMESTAMP:
            raise SignatureError(f"cosignature by {self.name}: time past 2^63-1")
        try:
            Ed25519PublicKey.from_public_bytes(self.public_key).verify(
                signature[8:], signed_message(body, timestamp))
        except (InvalidSignature, ValueError) as exc:
            raise SignatureError(f"cosignature by {self.name} does not verify") from exc
        return int(timestamp)


@dataclass(frozen=True, slots=True)
class Cosigner:
    """A witness's signing key. Never logged: ``repr`` hides the seed."""

    name: str
    seed: bytes

    def __repr__(self) -> str:
        return f"Cosigner(name={self.name!r}, seed=<hidden>)"

    def __post_init__(self) -> None:
        _check_name(self.name)
        if len(self.seed) != 32:
            raise FormatError("a cosigner seed is 32 bytes")

    @property
    def key(self) -> CosignerKey:
        """The matching public key."""
        pub = Ed25519PrivateKey.from_private_bytes(self.seed).public_key().public_bytes(
            Encoding.Raw, PublicFormat.Raw)
        return CosignerKey(self.name, cosigner_key_id(self.name, pub), pub)

    def line(self, body: str, timestamp: int) -> str:
        """The cosignature line (``— name base64(...)``, no newline) for a checkpoint body."""
        sig = Ed25519PrivateKey.from_private_bytes(self.seed).sign(
            signed_message(body, timestamp))
        data = self.key.key_id + struct.pack(">Q", timestamp) + sig
        return f"{SIG_PREFIX}{self.name} {b64.encode(data)}"


def cosignatures(note: str, keys: list[CosignerKey]) -> dict[str, int]:
    """The trusted cosigners whose cosignature on ``note`` verifies, with each one's time.

    Lines of other keys (the log's own, unknown witnesses) are ignored, as the signed-note
    spec says; a line that names a trusted key and does not verify is an error (the note was
    tampered with), not an absent cosignature.
    """
    parsed = parse(note)
    found: dict[str, int] = {}
    for line in parsed.signatures:
        for key in keys:
            if key.name == line.name and hmac.compare_digest(key.key_id, line.key_id):
                found[key.name] = key.verify(parsed.text, line.signature)
    return found


def add_lines(note: str, lines: list[str]) -> str:
    """A note with more signature lines appended (each ``— name base64``, no newline)."""
    parse(note)  # a well-formed note only
    for line in lines:
        if not line.startswith(SIG_PREFIX) or "\n" in line:
            raise FormatError("a cosignature line starts with an em dash and has no newline")
    return note + "".join(line + "\n" for line in lines)
