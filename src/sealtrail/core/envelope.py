"""Sealed fields and wrapped keys: AES-256-GCM envelopes (NIST SP 800-38D).

An event's personal fields are stored *inside the leaf*, sealed together under one key as
one token (one AES-GCM operation per event, as the performance budget asks)::

    "sealed": {"ct": "<key id>:<base64(nonce[12] || ciphertext || tag[16])>",
               "fields": ["actor.ip", "metadata", ...]}

The plaintext is the fields' values as a canonical JSON array, in the order of ``fields``. The
associated data binds the ciphertext to where it belongs, so a token copied to another log or
event, or a field list edited, reordered or pointed at other fields, fails to open::

    "sealtrail/field/v1" 0x00 origin 0x00 event id 0x00 field path (0x00 field path)...

The leaf commits to the ciphertext, never to the plaintext, so integrity checks need no key, and
destroying a key (erasure) leaves every hash, checkpoint and proof valid.

Keys are wrapped the same way (``wrap``/``unwrap``), with associated data naming the key, so a
wrapped key cannot be swapped for another. Archive segments (``log/archive.py``) wrap a file key
under the log's data key, bound to the log and the entry range (``archive_key_aad``), and seal
their body with :func:`encrypt`, the nonce kept in the segment's header. Every AES-GCM operation
in sealtrail goes through this module. Nonces are 96 random bits from the caller (the core
never reads the OS): with random nonces one key must seal fewer than 2**32 values, which
``sealtrail keys rotate`` keeps far away (docs/encryption.md).

Failures are opaque: :class:`DecryptionError` says *that* a token failed, never why.
"""

from __future__ import annotations

import base64
import binascii
from typing import Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from sealtrail.core.errors import DecryptionError, FormatError

NONCE_BYTES: Final = 12
TAG_BYTES: Final = 16
KEY_BYTES: Final = 32
MAX_KID_CHARS: Final = 64
_FIELD_AAD: Final = b"sealtrail/field/v1\x00"
_KEY_AAD: Final = b"sealtrail/key/v1\x00"
_ARCHIVE_AAD: Final = "sealtrail archive key\x00"


def field_aad(origin: str, event_id: str, path: str) -> bytes:
    """The associated data of sealed fields: their log, event and places in the event.

    ``path`` is one field path, or several joined by NUL (``fields_aad``).
    """
    return b"".join((_FIELD_AAD, origin.encode(), b"\x00", event_id.encode(), b"\x00",
                     path.encode()))


def fields_aad(origin: str, event_id: str, paths: list[str]) -> bytes:
    """The associated data of an event's sealed fields (all of them, in order)."""
    return field_aad(origin, event_id, "\x00".join(paths))


def key_aad(origin: str, kid: str, purpose: str) -> bytes:
    """The associated data of one wrapped key: its log, id and purpose."""
    return b"".join((_KEY_AAD, origin.encode(), b"\x00", kid.encode(), b"\x00",
                     purpose.encode()))


def archive_key_aad(origin: str, start: int, end: int) -> bytes:
    """The associated data of an archive segment's wrapped file key: its log and entry range."""
    return f"{_ARCHIVE_AAD}{origin}\x00{start}\x00{end}".encode()


def encrypt(aead: AESGCM, nonce: bytes, plaintext: bytes, aad: bytes) -> bytes:
    """ciphertext || tag of ``plaintext``; the caller keeps ``nonce`` (12 bytes, never reused)."""
    if len(nonce) != NONCE_BYTES:
        raise ValueError("AES-GCM nonces are 12 bytes")
    return aead.encrypt(nonce, plaintext, aad)


def decrypt(aead: AESGCM, nonce: bytes, ciphertext: bytes, aad: bytes) -> bytes:
    """The plaintext of ``ciphertext`` (from :func:`encrypt`); DecryptionError when it fails,
    a nonce of another length than :func:`encrypt` takes included."""
    if len(nonce) != NONCE_BYTES:
        raise DecryptionError("a sealed value's nonce is not 12 bytes")
    try:
        return aead.decrypt(nonce, ciphertext, aad)
    except InvalidTag as exc:
        raise DecryptionError("a sealed value failed authentication (altered, moved, or "
                              "the wrong key)") from exc


def seal(aead: AESGCM, kid: str, nonce: bytes, aad: bytes, plaintext: bytes) -> str:
    """The token of ``plaintext`` sealed under key ``kid``."""
    blob = nonce + encrypt(aead, nonce, plaintext, aad)
    return f"{kid}:{base64.b64encode(blob).decode()}"


def split_token(token: str) -> tuple[str, bytes]:
    """(key id, nonce || ciphertext || tag) of a token; FormatError when it is not one."""
    kid, sep, text = token.partition(":")
    if not sep or not kid or len(kid) > MAX_KID_CHARS:
        raise FormatError("a sealed field is not '<key id>:<base64>'")
    try:
        blob = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise FormatError("a sealed field's ciphertext is not base64") from exc
    if len(blob) < NONCE_BYTES + TAG_BYTES:
        raise FormatError("a sealed field is too short to be AES-GCM")
    return kid, blob


def open_blob(aead: AESGCM, blob: bytes, aad: bytes) -> bytes:
    """The plaintext of ``blob`` (from :func:`split_token`); DecryptionError when it fails."""
    return decrypt(aead, blob[:NONCE_BYTES], blob[NONCE_BYTES:], aad)


def wrap(kek: AESGCM, nonce: bytes, key: bytes, aad: bytes) -> bytes:
    """``key`` encrypted under ``kek``: nonce || ciphertext || tag."""
    return nonce + encrypt(kek, nonce, key, aad)


def unwrap(kek: AESGCM, blob: bytes, aad: bytes) -> bytes:
    """The key inside a wrapped blob; DecryptionError for a wrong KEK or an altered blob."""
    if len(blob) < NONCE_BYTES + TAG_BYTES:
        raise DecryptionError("a wrapped key is too short")
    return open_blob(kek, blob, aad)
