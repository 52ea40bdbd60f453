"""Single-entry receipts in the C2SP ``tlog-proof`` format (https://c2sp.org/tlog-proof).

::

    c2sp.org/tlog-proof@v1
    [extra <base64>]
    index <i>
    <base64 audit path hash, leaf's sibling first>
    ...
    <empty line>
    <the signed checkpoint note, verbatim>

Self-contained and checkable offline with the log's verifier key and the entry's bytes, like a
detached signature. ``extra`` is unauthenticated; sealtrail does not use it.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass

from sealtrail.core import b64
from sealtrail.core.checkpoint import Checkpoint, open_checkpoint
from sealtrail.core.errors import FormatError, InclusionError
from sealtrail.core.merkle import verify as merkle_verify
from sealtrail.core.merkle.hashing import leaf_hash
from sealtrail.core.note import Verifier

HEADER = "c2sp.org/tlog-proof@v1"
_INDEX = re.compile(r"index (0|[1-9]\d{0,19})\Z")
MAX_BYTES = 64 * 1024


@dataclass(frozen=True, slots=True)
class TlogProof:
    """An entry index, its audit path and the checkpoint note the path leads to."""

    index: int
    audit_path: tuple[bytes, ...]
    checkpoint: str
    extra: bytes | None = None

    def format(self) -> str:
        """The proof text."""
        lines = [HEADER]
        if self.extra is not None:
            lines.append("extra " + base64.b64encode(self.extra).decode())
        lines.append(f"index {self.index}")
        lines.extend(b64.encode(h) for h in self.audit_path)
        return "\n".join(lines) + "\n\n" + self.checkpoint

    @classmethod
    def parse(cls, text: str | bytes) -> TlogProof:
        """Parse a proof; anything malformed is a FormatError naming the line."""
        if isinstance(text, str):
            if len(text) > MAX_BYTES:  # each character is at least one byte
                raise FormatError("the tlog-proof is larger than 64 KiB")
            text = text.encode(errors="surrogatepass")
        if len(text) > MAX_BYTES:
            raise FormatError("the tlog-proof is larger than 64 KiB")
        try:
            text = text.decode()
        except UnicodeDecodeError as exc:
            raise FormatError("the tlog-proof is not UTF-8") from exc
        head, sep, note = text.partition("\n\n")
        if not sep:
            raise FormatError("the tlog-proof has no empty line before its checkpoint")
        lines = head.split("\n")
        if lines[0] != HEADER:
            raise FormatError(f"line 1 must be {HEADER!r}")
        pos = 1
        extra = None
        if len(lines) > pos and lines[pos].startswith("extra "):
            try:
                extra = base64.b64decode(lines[pos][6:], validate=True)
            except binascii.Error as exc:
                raise FormatError("line 2: extra data is not base64") from exc
            pos += 1
        if len(lines) <= pos or not (m := _INDEX.match(lines[pos])):
            raise FormatError(f"line {pos + 1} must be 'index <decimal>'")
        index = int(m.group(1))
        if len(lines) - pos - 1 > 64:
            raise FormatError("the audit path must be at most 64 SHA-256 hashes")
        path = tuple(b64.decode(line, f"line {pos + 2 + k}")
                     for k, line in enumerate(lines[pos + 1:]))
        if len(path) > 64 or any(len(h) != 32 for h in path):
            raise FormatError("the audit path must be at most 64 SHA-256 hashes")
        return cls(index, path, note, extra)

    def verify(self, verifier: Verifier, leaf: bytes, origin: str | None = None) -> Checkpoint:
        """Check ``leaf`` is entry ``index`` of the tree the signed checkpoint commits to."""
        cp = open_checkpoint(self.checkpoint, verifier, origin)
        if self.index >= cp.size:
            raise InclusionError(f"index {self.index} is outside the checkpoint's "
                                 f"{cp.size} entries")
        merkle_verify.verify_inclusion(self.index, cp.size, leaf_hash(leaf), self.audit_path,
                                       cp.root)
        return cp
