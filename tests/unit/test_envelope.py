"""core/envelope.py: every AES-GCM operation in sealtrail, and the associated data it binds.

The archive's file keys were wrapped and its bodies sealed by hand in log/archive.py; they now
go through :func:`envelope.wrap` and :func:`envelope.encrypt`, which must produce what the hand
code produced (nonce || ciphertext || tag, and ciphertext || tag with the nonce kept aside).
"""

from __future__ import annotations

import base64

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from sealtrail.core import envelope
from sealtrail.core.errors import DecryptionError

KEY = AESGCM(bytes(range(32)))
NONCE = bytes(range(12))


def test_archive_key_aad_is_the_bytes_segments_were_written_with() -> None:
    """Existing segment files open only if these bytes never change."""
    assert envelope.archive_key_aad("log.example/a", 0, 65536) == \
        b"sealtrail archive key\x00log.example/a\x000\x0065536"


def test_wrap_is_nonce_then_aes_gcm() -> None:
    """wrap = nonce || AESGCM.encrypt(nonce, key, aad), as the archive wrote it by hand."""
    aad = envelope.archive_key_aad("o", 1, 2)
    file_key = bytes(32)
    assert envelope.wrap(KEY, NONCE, file_key, aad) == NONCE + KEY.encrypt(NONCE, file_key, aad)
    assert envelope.unwrap(KEY, envelope.wrap(KEY, NONCE, file_key, aad), aad) == file_key


def test_encrypt_keeps_the_nonce_aside() -> None:
    """encrypt is AESGCM.encrypt (the archive body); decrypt reads it back."""
    body, aad = b"compressed body", b"header line\n"
    ct = envelope.encrypt(KEY, NONCE, body, aad)
    assert ct == KEY.encrypt(NONCE, body, aad)
    assert envelope.decrypt(KEY, NONCE, ct, aad) == body


def test_seal_token_is_kid_and_base64_of_the_wrap_layout() -> None:
    """A sealed-field token is ``kid:`` + base64(nonce || ciphertext || tag)."""
    aad = envelope.fields_aad("o", "id", ["actor.ip"])
    token = envelope.seal(KEY, "k1", NONCE, aad, b'["192.0.2.1"]')
    assert token == "k1:" + base64.b64encode(NONCE + KEY.encrypt(NONCE, b'["192.0.2.1"]',
                                                                 aad)).decode()
    kid, blob = envelope.split_token(token)
    assert kid == "k1"
    assert envelope.open_blob(KEY, blob, aad) == b'["192.0.2.1"]'


def test_failures_are_opaque_decryption_errors() -> None:
    """A flipped bit, another aad or another key: DecryptionError, never InvalidTag."""
    aad = b"aad"
    ct = envelope.encrypt(KEY, NONCE, b"x", aad)
    flipped = bytes([ct[0] ^ 1]) + ct[1:]
    for args in ((KEY, NONCE, flipped, aad), (KEY, NONCE, ct, b"other"),
                 (AESGCM(bytes(32)), NONCE, ct, aad)):
        with pytest.raises(DecryptionError):
            envelope.decrypt(*args)
    with pytest.raises(DecryptionError):
        envelope.unwrap(KEY, NONCE, aad)  # shorter than a nonce and a tag


def test_nonces_are_twelve_bytes() -> None:
    """A nonce of another length is refused before anything is encrypted."""
    with pytest.raises(ValueError, match="12 bytes"):
        envelope.encrypt(KEY, bytes(8), b"x", b"")
    with pytest.raises(ValueError, match="12 bytes"):
        envelope.wrap(KEY, bytes(16), bytes(32), b"")


def test_decrypt_refuses_other_nonce_lengths_as_decryption_errors() -> None:
    """A nonce read from a file (an archive header) of another length, one AES-GCM would
    refuse with ValueError or one it would take, is a DecryptionError."""
    ct = envelope.encrypt(KEY, NONCE, b"x", b"")
    for nonce in (b"", bytes(3), bytes(8), NONCE + b"\x00", bytes(200)):
        with pytest.raises(DecryptionError):
            envelope.decrypt(KEY, nonce, ct, b"")
