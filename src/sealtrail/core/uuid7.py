"""UUIDv7 (RFC 9562 §5.7): 48-bit Unix milliseconds, then randomness. Time-ordered ids.

The core builds the id from values it is given (milliseconds and random bytes); the caller
reads the clock and the random source.
"""

from __future__ import annotations

import uuid


def make_uuid7(unix_ms: int, rand: bytes) -> uuid.UUID:
    """A UUIDv7 from a millisecond timestamp and 10 random bytes."""
    if len(rand) != 10:
        raise ValueError("uuid7 needs 10 random bytes")
    value = (unix_ms & ((1 << 48) - 1)) << 80 | int.from_bytes(rand, "big")
    value = (value & ~(0xF << 76)) | (0x7 << 76)          # version 7
    value = (value & ~(0x3 << 62)) | (0x2 << 62)          # variant 10
    return uuid.UUID(int=value)


def uuid7_millis(u: uuid.UUID) -> int | None:
    """The timestamp of a UUIDv7 (None for other versions): used to find earlier copies fast."""
    if u.version != 7:
        return None
    return u.int >> 80
