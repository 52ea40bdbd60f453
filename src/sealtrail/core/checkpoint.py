"""C2SP tlog-checkpoint: the signed statement of a log's size and root (c2sp.org/tlog-checkpoint).

Body: ``<origin>\\n<size>\\n<base64 root>\\n`` then optional extension lines, signed as a signed
note (:mod:`sealtrail.core.note`). The size is decimal without leading zeros.
"""

from __future__ import annotations

from dataclasses import dataclass

from sealtrail.core import b64, note
from sealtrail.core.errors import FormatError
from sealtrail.core.merkle.hashing import HASH_SIZE


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """A parsed checkpoint body: origin, tree size, root hash, extension lines."""

    origin: str
    size: int
    root: bytes
    extensions: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.origin or "\n" in self.origin:
            raise FormatError("checkpoint origin must be one non-empty line")
        if self.size < 0:
            raise FormatError("checkpoint size must not be negative")
        if len(self.root) != HASH_SIZE:
            raise FormatError(f"checkpoint root must be {HASH_SIZE} bytes")
        for ext in self.extensions:
            if not ext or "\n" in ext:
                raise FormatError("checkpoint extension lines must be non-empty single lines")

    def format(self) -> str:
        """The note text (what gets signed)."""
        lines = [self.origin, str(self.size), b64.encode(self.root), *self.extensions]
        return "\n".join(lines) + "\n"

    @classmethod
    def parse(cls, text: str) -> Checkpoint:
        """Parse a checkpoint body (the note text, without signatures)."""
        if not text.endswith("\n"):
            raise FormatError("checkpoint must end with a newline")
        lines = text[:-1].split("\n")
        if len(lines) < 3:
            raise FormatError("checkpoint needs origin, size and root lines")
        origin, size_text, root_text, *ext = lines
        if not size_text.isascii() or not size_text.isdigit() or (
                len(size_text) > 1 and size_text[0] == "0") or len(size_text) > 20:
            raise FormatError("checkpoint size is not a decimal number without leading zeros")
        size = int(size_text)
        if size >= 1 << 64:
            raise FormatError("checkpoint size does not fit in 64 bits")
        return cls(origin, size, b64.decode(root_text, "checkpoint root"), tuple(ext))


@dataclass(frozen=True, slots=True)
class SignedCheckpoint:
    """A checkpoint together with the full note text that signs it."""

    checkpoint: Checkpoint
    note: str


def sign(cp: Checkpoint, signer: note.Signer) -> SignedCheckpoint:
    """Sign a checkpoint as a note."""
    return SignedCheckpoint(cp, signer.sign(cp.format()))


def open_checkpoint(text: str | bytes, verifier: note.Verifier,
                    origin: str | None = None) -> Checkpoint:
    """Verify a signed checkpoint note against a trusted key and (optionally) an origin."""
    parsed = note.open_note(text, [verifier])
    cp = Checkpoint.parse(parsed.text)
    want = origin if origin is not None else verifier.name
    if cp.origin != want:
        raise FormatError(f"checkpoint origin {cp.origin!r} is not the expected {want!r}")
    return cp
