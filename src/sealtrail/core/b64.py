"""Strict standard base64: one encoding per byte string.

Python's decoder accepts non-zero padding bits, so two texts could decode to the same bytes; a
flipped bit in a signature's last character would then still verify. Decoding here re-encodes
and compares, so every text has exactly one meaning.
"""

from __future__ import annotations

import base64
import binascii

from sealtrail.core.errors import FormatError


def encode(data: bytes) -> str:
    """Standard, padded base64."""
    return base64.b64encode(data).decode("ascii")


def decode(text: str, what: str) -> bytes:
    """Decode canonical standard base64 or raise FormatError naming ``what``."""
    try:
        raw = base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError) as exc:
        raise FormatError(f"{what}: not valid base64") from exc
    if base64.b64encode(raw).decode("ascii") != text:
        raise FormatError(f"{what}: not canonical base64")
    return raw
