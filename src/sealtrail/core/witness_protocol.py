"""C2SP tlog-witness ``add-checkpoint``: the request body and the decision, without I/O.

The body is ``old <size>\\n``, up to 63 base64 consistency-proof lines, an empty line, then a
signed checkpoint note (c2sp.org/tlog-witness). The witness answers:

- 404 when it trusts no key for the checkpoint's origin, 403 when no trusted signature verifies;
- 400 for a malformed body or ``old`` above the checkpoint's size;
- 409 with its own latest size (``text/x.tlog.size``) when ``old`` is not that size, or when the
  sizes are equal and the roots differ (a fork);
- 422 when the consistency proof does not verify;
- 200 with its cosignature lines after the new checkpoint is stored.

:func:`decide` makes that decision from the request and the witness's stored state for the
origin; the caller stores the new state and signs, atomically with the read (the spec's race:
a slow request must not roll the stored size back).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from sealtrail.core import b64
from sealtrail.core.checkpoint import Checkpoint
from sealtrail.core.errors import ConsistencyError, FormatError, SealtrailError
from sealtrail.core.merkle.verify import verify_consistency
from sealtrail.core.note import Verifier, open_note, parse

MAX_PROOF_LINES: Final = 63
MAX_BODY: Final = 1 << 20
SIZE_TYPE: Final = "text/x.tlog.size"
# The largest size a witness stores (SQLite integers are signed 64-bit); a log that large does
# not exist, and a request claiming one is refused, not a crash.
MAX_SIZE: Final = (1 << 63) - 1


@dataclass(frozen=True, slots=True)
class AddCheckpoint:
    """A parsed add-checkpoint request."""

    old: int
    proof: tuple[bytes, ...]
    note: str


@dataclass(frozen=True, slots=True)
class Stored:
    """What the witness holds for one origin: the latest checkpoint it cosigned."""

    size: int
    root: bytes
    note: str


@dataclass(frozen=True, slots=True)
class Decision:
    """The answer: ``status``, its text body and type; ``checkpoint`` to store and cosign on
    200 (its note body is what gets cosigned)."""

    status: int
    body: str
    content_type: str = "text/plain; charset=utf-8"
    checkpoint: Checkpoint | None = None
    text: str = ""


def parse_request(body: bytes) -> AddCheckpoint:
    """The request, or FormatError (a 400) saying what is wrong."""
    if len(body) > MAX_BODY:
        raise FormatError("the request body is too large")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise FormatError("the request body is not UTF-8") from exc
    head, sep, note = text.partition("\n\n")
    if not sep:
        raise FormatError("no empty line between the old size and proof and the checkpoint")
    lines = head.split("\n")
    first = lines[0]
    if not first.startswith("old "):
        raise FormatError("the first line must be 'old <size>'")
    size_text = first[4:]
    if not size_text.isascii() or not size_text.isdigit() or len(size_text) > 20 or (
            len(size_text) > 1 and size_text[0] == "0"):
        raise FormatError("old size: a decimal number without leading zeros")
    proof_lines = lines[1:]
    if len(proof_lines) > MAX_PROOF_LINES:
        raise FormatError(f"at most {MAX_PROOF_LINES} consistency proof lines")
    proof = []
    for line in proof_lines:
        raw = b64.decode(line, "consistency proof line")
        if len(raw) != 32:
            raise FormatError("a consistency proof line is one 32-byte hash")
        proof.append(raw)
    return AddCheckpoint(int(size_text), tuple(proof), note)


def format_request(old: int, proof: list[bytes] | tuple[bytes, ...], note: str) -> bytes:
    """The body a log sends: ``old <size>``, the proof lines, an empty line, the note."""
    if len(proof) > MAX_PROOF_LINES:
        raise FormatError(f"at most {MAX_PROOF_LINES} consistency proof lines")
    lines = [f"old {old}", *(b64.encode(h) for h in proof)]
    return ("\n".join(lines) + "\n\n" + note).encode()


@dataclass(frozen=True, slots=True)
class TrustedLog:
    """A log key trusted for an origin other than the key's name (Go's checksum database
    signs the origin ``go.sum database tree`` with the key ``sum.golang.org``)."""

    origin: str
    verifier: Verifier


def decide(request: AddCheckpoint, trusted: Sequence[Verifier | TrustedLog],
           stored: Stored | None) -> Decision:
    """The witness's answer to ``request`` given the trusted log keys (a bare key is
    trusted for the origin of its name; empty: the origin is unknown) and the witness's
    state for the checkpoint's origin, ``stored``."""
    try:
        parsed = parse(request.note)
        checkpoint = Checkpoint.parse(parsed.text)
    except FormatError as exc:
        return Decision(400, f"the checkpoint is malformed: {exc}\n")
    if checkpoint.size > MAX_SIZE:
        return Decision(400, f"the checkpoint size is above {MAX_SIZE}\n")
    keys = [t.verifier if isinstance(t, TrustedLog) else t for t in trusted
            if (t.origin if isinstance(t, TrustedLog) else t.name) == checkpoint.origin]
    if not keys:
        return Decision(404, f"unknown log origin {checkpoint.origin!r}\n")
    try:
        open_note(request.note, keys)
    except SealtrailError:
        return Decision(403, "no signature by a trusted key of this log verifies\n")
    if request.old > checkpoint.size:
        return Decision(400, "old size is larger than the checkpoint's size\n")
    latest = 0 if stored is None else stored.size
    if request.old != latest:
        return Decision(409, f"{latest}\n", SIZE_TYPE)
    if stored is not None and request.old == checkpoint.size:
        if stored.root != checkpoint.root:
            return Decision(409, f"{latest}\n", SIZE_TYPE)  # a fork at the same size
        return Decision(200, "", checkpoint=checkpoint, text=parsed.text)
    if stored is None:  # old == 0: nothing to be consistent with yet
        if request.proof:
            return Decision(422, "the consistency proof from size 0 must be empty\n")
    else:
        try:
            verify_consistency(request.old, checkpoint.size, stored.root, checkpoint.root,
                               list(request.proof))
        except ConsistencyError:
            return Decision(422, "the consistency proof does not verify\n")
    return Decision(200, "", checkpoint=checkpoint, text=parsed.text)
