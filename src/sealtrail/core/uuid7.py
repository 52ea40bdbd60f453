"""UUIDv7 (RFC 9562 §5.7): 48-bit Unix milliseconds, then randomness. Time-ordered ids.

The core builds the id from values it is given (milliseconds and random bytes); the caller
reads the clock and the random source.
"""

from __future__ import annotations

import uuid


def _uuid7_int(unix_ms: int, rand: bytes) -> int:
    """The 128-bit value of a UUIDv7 from a millisecond timestamp and 10 random bytes."""
    if len(rand) != 10:
        raise ValueError("uuid7 needs 10 random bytes")
    value = (unix_ms & ((1 << 48) - 1)) << 80 | int.from_bytes(rand, "big")
    value = (value & ~(0xF << 76)) | (0x7 << 76)          # version 7
    return (value & ~(0x3 << 62)) | (0x2 << 62)           # variant 10


def make_uuid7(unix_ms: int, rand: bytes) -> uuid.UUID:
    """A UUIDv7 from a millisecond timestamp and 10 random bytes."""
    return uuid.UUID(int=_uuid7_int(unix_ms, rand))


def uuid7_text(unix_ms: int, rand: bytes) -> str:
    """The canonical text of one UUIDv7 (what ``str(make_uuid7(...))`` gives, without building
    a ``uuid.UUID``): the SDK's ``record()`` makes one per event."""
    h = f"{_uuid7_int(unix_ms, rand):032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def uuid7_ms(ident: bytes) -> int | None:
    """The millisecond timestamp of a 16-byte UUIDv7, None for other versions.

    The log finds earlier copies of an id by this time (see ``log/recent_ids.py``).
    """
    if ident[6] >> 4 != 7:
        return None
    return int.from_bytes(ident[:6], "big")


_VERSION = bytes(0x70 | (b & 0x0F) for b in range(256))   # byte 6: version 7
_VARIANT = bytes(0x80 | (b & 0x3F) for b in range(256))   # byte 8: variant 10


def uuid7_texts(unix_ms: int, rand: bytes) -> list[tuple[str, bytes]]:
    """Many UUIDv7s at once from ``10 * n`` random bytes: (canonical text, 16 bytes) pairs.

    The hot path of appending: the version and variant bits of every id are set with two
    slice translations, and the text cut from one hex string.
    """
    if len(rand) % 10:
        raise ValueError("uuid7 needs 10 random bytes per id")
    prefix = (unix_ms & ((1 << 48) - 1)).to_bytes(6, "big")
    raw = bytearray(b"".join(prefix + rand[k:k + 10] for k in range(0, len(rand), 10)))
    raw[6::16] = raw[6::16].translate(_VERSION)
    raw[8::16] = raw[8::16].translate(_VARIANT)
    h = raw.hex()
    out = []
    for k in range(0, len(raw), 16):
        x = h[2 * k:2 * k + 32]
        out.append((f"{x[:8]}-{x[8:12]}-{x[12:16]}-{x[16:20]}-{x[20:]}", bytes(raw[k:k + 16])))
    return out
