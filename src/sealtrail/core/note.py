"""C2SP signed-note with Ed25519 (c2sp.org/signed-note), compatible with Go's sumdb/note.

A note is UTF-8 text ending in a newline, a blank line, then signature lines
``— <name> base64(key_id[4] || signature)``. The key id is
``SHA-256(name || 0x0A || 0x01 || public_key)[:4]``; the verifier key text (*vkey*) is
``<name>+<hex key id>+base64(0x01 || public_key)`` and the private key text (*skey*, Go's format)
``PRIVATE+KEY+<name>+<hex key id>+base64(0x01 || seed)``.

Verification follows the spec: signatures by unknown keys are ignored, a known key whose
signature fails rejects the note, and at least one known key must verify.
"""

from __future__ import annotations

import functools
import hmac
import re
from collections.abc import Callable
from dataclasses import dataclass
from hashlib import sha256

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from sealtrail.core import b64
from sealtrail.core.errors import FormatError, SignatureError

ALG_ED25519 = 0x01
SIG_PREFIX = "\u2014 "
MAX_SIGNATURES = 100
MAX_NOTE_BYTES = 1 << 20


def _check_name(name: str) -> None:
    if not name or "+" in name or any(c.isspace() for c in name):
        raise FormatError(f"key name {name!r} is empty or has '+' or spaces")


def key_id(name: str, alg: int, public_key: bytes) -> bytes:
    """The 4-byte C2SP key id of a key."""
    return sha256(name.encode() + b"\n" + bytes([alg]) + public_key).digest()[:4]


def parse_vkey(vkey: str, alg: int, what: str, check_name: Callable[[str], None] | None = None
               ) -> tuple[str, bytes, bytes]:
    """(name, key id, 32-byte public key) of a C2SP vkey ``name+hexid+base64(alg || key)``
    whose key type is ``alg`` (0x01 a note key, 0x04 a cosigner key); FormatError naming
    ``what`` otherwise. The base64 part may itself contain '+'."""
    parts = vkey.strip().split("+", 2)
    if len(parts) != 3:
        raise FormatError(f"{what}: want name+keyid+key")
    name, hexid, keytext = parts
    (check_name or _check_name)(name)
    if len(hexid) != 8:
        raise FormatError(f"{what}: key id must be 8 hex digits")
    try:
        kid = bytes.fromhex(hexid)
    except ValueError as exc:
        raise FormatError(f"{what}: key id is not hex") from exc
    raw = b64.decode(keytext, what)
    if len(raw) != 33 or raw[0] != alg:
        raise FormatError(f"{what}: only Ed25519 (type 0x{alg:02x}, 32 bytes) is supported")
    if not hmac.compare_digest(kid, key_id(name, alg, raw[1:])):
        raise FormatError(f"{what}: key id does not match the key")
    return name, kid, raw[1:]


@dataclass(frozen=True, slots=True)
class Verifier:
    """A trusted Ed25519 note key: its name, id and public key."""

    name: str
    key_id: bytes
    public_key: bytes

    @classmethod
    def parse(cls, vkey: str) -> Verifier:
        """Parse ``name+hexid+base64(0x01||pubkey)``; the base64 part may itself contain '+'."""
        return cls(*parse_vkey(vkey, ALG_ED25519, "verifier key"))

    def format(self) -> str:
        """The vkey text."""
        key = b64.encode(bytes([ALG_ED25519]) + self.public_key)
        return f"{self.name}+{self.key_id.hex()}+{key}"

    def verify(self, message: bytes, signature: bytes) -> bool:
        """True when the Ed25519 signature over ``message`` is valid (internal helper)."""
        try:
            _public_key(self.public_key).verify(signature, message)
        except (InvalidSignature, ValueError):
            return False
        return True


@functools.lru_cache(maxsize=64)
def _private_key(seed: bytes) -> Ed25519PrivateKey:
    """Key objects are costly to build (~70 us); a log signs once per commit with one key."""
    return Ed25519PrivateKey.from_private_bytes(seed)


@functools.lru_cache(maxsize=64)
def _public_key(raw: bytes) -> Ed25519PublicKey:
    return Ed25519PublicKey.from_public_bytes(raw)


@dataclass(frozen=True, slots=True)
class Signer:
    """An Ed25519 note signing key. Never logged: ``repr`` hides the seed."""

    name: str
    key_id: bytes
    seed: bytes

    def __repr__(self) -> str:
        return f"Signer(name={self.name!r}, key_id={self.key_id.hex()})"

    @classmethod
    def from_seed(cls, name: str, seed: bytes) -> Signer:
        """A signer from a 32-byte Ed25519 seed."""
        _check_name(name)
        if len(seed) != 32:
            raise FormatError("signing key: seed must be 32 bytes")
        pub = Ed25519PrivateKey.from_private_bytes(seed).public_key().public_bytes(
            Encoding.Raw, PublicFormat.Raw)
        return cls(name, key_id(name, ALG_ED25519, pub), seed)

    @classmethod
    def parse(cls, skey: str) -> Signer:
        """Parse Go's ``PRIVATE+KEY+name+hexid+base64(0x01||seed)``."""
        parts = skey.strip().split("+", 4)
        if len(parts) != 5 or parts[0] != "PRIVATE" or parts[1] != "KEY":
            raise FormatError("signing key: want PRIVATE+KEY+name+keyid+key")
        name, hexid, keytext = parts[2], parts[3], parts[4]
        raw = b64.decode(keytext, "signing key")
        if len(raw) != 33 or raw[0] != ALG_ED25519:
            raise FormatError("signing key: only Ed25519 is supported")
        signer = cls.from_seed(name, raw[1:])
        if signer.key_id.hex() != hexid:
            raise FormatError("signing key: key id does not match the key")
        return signer

    def format(self) -> str:
        """The skey text (secret: write it only to a 0600 file)."""
        return (f"PRIVATE+KEY+{self.name}+{self.key_id.hex()}+"
                f"{b64.encode(bytes([ALG_ED25519]) + self.seed)}")

    def verifier(self) -> Verifier:
        """The matching verifier key."""
        pub = Ed25519PrivateKey.from_private_bytes(self.seed).public_key().public_bytes(
            Encoding.Raw, PublicFormat.Raw)
        return Verifier(self.name, self.key_id, pub)

    def sign(self, text: str) -> str:
        """A signed note of ``text`` (which must end in a newline) with this key's line."""
        _check_text(text)
        sig = _private_key(self.seed).sign(text.encode())
        return f"{text}\n{SIG_PREFIX}{self.name} {b64.encode(self.key_id + sig)}\n"


@dataclass(frozen=True, slots=True)
class SignatureLine:
    """One parsed signature line."""

    name: str
    key_id: bytes
    signature: bytes


@dataclass(frozen=True, slots=True)
class Note:
    """A parsed signed note: the signed text and its signature lines."""

    text: str
    signatures: tuple[SignatureLine, ...]


_CONTROL = re.compile(r"[\x00-\x09\x0b-\x1f\x7f]")


def _check_text(text: str) -> None:
    if not text.endswith("\n"):
        raise FormatError("note text must end with a newline")
    if _CONTROL.search(text):
        raise FormatError("note text has a control character")


def parse(note: str | bytes) -> Note:
    """Split a note into text and signature lines; raise FormatError if malformed."""
    if isinstance(note, bytes):
        if len(note) > MAX_NOTE_BYTES:
            raise FormatError("note is too large")
        try:
            note = note.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise FormatError("note is not valid UTF-8") from exc
    if len(note) > MAX_NOTE_BYTES:
        raise FormatError("note is too large")
    cut = note.rfind("\n\n")
    if cut < 0:
        raise FormatError("note has no blank line before its signatures")
    text, sigblock = note[: cut + 1], note[cut + 2:]
    _check_text(text)
    if not sigblock.endswith("\n"):
        raise FormatError("note signatures must end with a newline")
    lines = sigblock[:-1].split("\n")
    if len(lines) > MAX_SIGNATURES:
        raise FormatError("note has too many signatures")
    sigs: list[SignatureLine] = []
    for line in lines:
        if not line.startswith(SIG_PREFIX):
            raise FormatError("note signature line does not start with an em dash and a space")
        name, sep, data = line[len(SIG_PREFIX):].partition(" ")
        if not sep:
            raise FormatError("note signature line has no signature")
        _check_name(name)
        raw = b64.decode(data, "note signature")
        if len(raw) < 5:
            raise FormatError("note signature is too short")
        sigs.append(SignatureLine(name, raw[:4], raw[4:]))
    return Note(text, tuple(sigs))


def open_note(note: str | bytes, verifiers: list[Verifier]) -> Note:
    """Parse and verify a note: raise unless some known key verifies and none fails."""
    parsed = parse(note)
    message = parsed.text.encode()
    verified = False
    for sig in parsed.signatures:
        for v in verifiers:
            if v.name == sig.name and hmac.compare_digest(v.key_id, sig.key_id):
                if not v.verify(message, sig.signature):
                    raise SignatureError(f"signature by {sig.name} does not verify")
                verified = True
    if not verified:
        raise SignatureError("no signature by a trusted key")
    return parsed
