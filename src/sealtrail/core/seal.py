"""Forward-secure sealing: an evolving Ed25519 key whose past epochs cannot be signed again.

The signing key of a log lives on the host that stores it, so whoever takes the host can
rewrite history and re-sign it. Sealing (after systemd-journald's forward-secure sealing)
adds a second key that *evolves one way*: the time after ``start`` is cut into ``epochs``
epochs of ``seconds`` each, epoch ``i`` signs with a key derived from a seed ``seed_i``, and as
epoch ``i + 1`` begins ``seed_i`` is replaced by ``seed_{i+1}`` and erased. The chain runs
forwards only::

    seed_{i+1}      = SHA-256("sealtrail/seal/evolve\\n" || seed_i)
    key seed of i   = SHA-256("sealtrail/seal/key\\n" || seed_i)    (an Ed25519 private seed)

so the seed on the host today yields today's key and every later one, never an earlier one:
an attacker holding the host and its current state cannot make a seal of a past epoch.

**The seal key** (what a verifier needs, printed once at ``seal init`` and kept off the host)
commits to every epoch's public key at once: the RFC 6962 Merkle root over the ``epochs``
32-byte public keys, leaf ``i`` being epoch ``i``'s key (:mod:`sealtrail.core.merkle` hashing).
Its text is one line::

    sealtrail-seal/v1 <origin> <start unix seconds> <seconds per epoch> <epochs> <base64 root>

A Merkle root rather than, say, a list of keys keeps the key short enough to write down, and
rather than a forward-secure signature scheme (journald's FSPRG) it needs nothing but SHA-256
and Ed25519. The cost is paid once, at ``init``: deriving 65,536 public keys (7.5 years of
one-hour epochs, the default) takes about 3 seconds here (~46 us each).

**A seal** is epoch ``e``'s Ed25519 signature over the statement (:func:`statement`)::

    sealtrail.org/seal@v1
    <origin>
    <epoch>
    <tree size>
    <base64 root>
    <base64 prev>

``prev`` is the *link* (:func:`link`) of the log's previous recorded seal (32 zero bytes for
the first, the epoch-0 anchor recorded at ``init``): recorded seals form a chain, so one
cannot be dropped from the middle without the next one naming a link that is no longer there.
The first line names the format and is never an origin, so no checkpoint verifier can take a
seal for a tree head. Recorded seals are kept in the log itself (:class:`Recorded`, short
enough for an event's ``target.id``); the seal carried by a served checkpoint is a signed-note
signature line (:func:`seal_line`) that also carries the epoch's public key and its Merkle
inclusion path, so a checkpoint can be checked with the seal key alone (:func:`open_seal_line`).

This module is pure: callers give the time, the seeds and the tree state.
"""

from __future__ import annotations

import hmac
import re
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from hashlib import sha256
from typing import Final

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from sealtrail.core import b64
from sealtrail.core.checkpoint import Checkpoint
from sealtrail.core.errors import (
    FormatError,
    InclusionError,
    SignatureError,
    VerificationError,
)
from sealtrail.core.merkle.hashing import HASH_SIZE, fold_right, leaf_hashes, pair_hashes
from sealtrail.core.merkle.nodes import range_nodes
from sealtrail.core.merkle.proof import plan_inclusion
from sealtrail.core.merkle.verify import root_from_inclusion_proof
from sealtrail.core.note import SIG_PREFIX
from sealtrail.core.note import parse as parse_note

VERSION: Final = "sealtrail-seal/v1"
STATEMENT: Final = "sealtrail.org/seal@v1"
EVOLVE: Final = b"sealtrail/seal/evolve\n"
KEY: Final = b"sealtrail/seal/key\n"
LINK: Final = b"sealtrail/seal/link\n"
SEED_SIZE: Final = 32
NO_LINK: Final = bytes(HASH_SIZE)  # the ``prev`` of the first recorded seal
DEFAULT_SECONDS: Final = 3600
DEFAULT_EPOCHS: Final = 65536
MAX_EPOCHS: Final = 1 << 20     # a 32 MB public key list; 2^20 one-hour epochs is 119 years
MAX_SECONDS: Final = 366 * 86400
# The signed-note key type of a seal line: 0xff ("type identifier extension") followed by
# the format's name (c2sp.org/signed-note), so no other key type can collide with it.
LINE_TYPE: Final = b"\xff" + STATEMENT.encode()
_SIG: Final = 64
_EPOCH_ORIGIN = datetime(1970, 1, 1, tzinfo=UTC)
_NAME = re.compile(r"[^\s+]{1,255}")
_UINT = re.compile(r"0|[1-9][0-9]{0,15}")


# -- the evolving key ---------------------------------------------------------------------

def evolve(seed: bytes) -> bytes:
    """The next epoch's seed (one way: the previous seed cannot be computed back)."""
    _check_seed(seed)
    return sha256(EVOLVE + seed).digest()


def epoch_key(seed: bytes) -> Ed25519PrivateKey:
    """The Ed25519 signing key of the epoch whose seed is ``seed``."""
    _check_seed(seed)
    return Ed25519PrivateKey.from_private_bytes(sha256(KEY + seed).digest())


def public_key(seed: bytes) -> bytes:
    """The 32-byte Ed25519 public key of the epoch whose seed is ``seed``."""
    return epoch_key(seed).public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


def public_keys(seed0: bytes, epochs: int) -> list[bytes]:
    """Every epoch's public key, epoch 0 first (seed0 is epoch 0's seed)."""
    _check_epochs(epochs)
    out: list[bytes] = []
    seed = seed0
    for _ in range(epochs):
        out.append(public_key(seed))
        seed = evolve(seed)
    return out


def _check_seed(seed: bytes) -> None:
    if len(seed) != SEED_SIZE:
        raise FormatError(f"a seal seed is {SEED_SIZE} bytes, got {len(seed)}")


def _check_epochs(epochs: int) -> None:
    if not 1 <= epochs <= MAX_EPOCHS:
        raise FormatError(f"epochs: {epochs} is outside 1..{MAX_EPOCHS}")


# -- the Merkle tree over the epochs' public keys -------------------------------------------

class KeyTree:
    """The RFC 6962 tree whose leaf ``i`` is epoch ``i``'s public key: its root is in the seal
    key, and its inclusion paths tie an epoch's key to that root.

    Only complete subtrees are kept (one list per level, as the log's own tree stores them);
    a path folds them with :func:`~sealtrail.core.merkle.hashing.fold_right` over the ranges
    :func:`~sealtrail.core.merkle.proof.plan_inclusion` plans.
    """

    def __init__(self, keys: Sequence[bytes]) -> None:
        _check_epochs(len(keys))
        for i, key in enumerate(keys):
            if len(key) != 32:
                raise FormatError(f"public key of epoch {i} is {len(key)} bytes, want 32")
        self.keys = tuple(keys)
        levels = [leaf_hashes(keys)]
        while len(levels[-1]) > 1:
            levels.append(pair_hashes(levels[-1]))
        self._levels = levels
        self.root = self._range(0, len(keys))

    def _range(self, start: int, end: int) -> bytes:
        return fold_right([self._levels[n.level][n.index] for n in range_nodes(start, end)])

    def path(self, epoch: int) -> tuple[bytes, ...]:
        """The inclusion path of epoch ``epoch``'s key (leaf sibling first)."""
        return tuple(self._range(a, b) for a, b in plan_inclusion(epoch, len(self.keys)))


# -- the seal key (public, kept off the host) --------------------------------------------

@dataclass(frozen=True, slots=True)
class SealKey:
    """What a verifier needs: the log's origin, the epochs' times and the keys' Merkle root."""

    origin: str
    start: int       # unix seconds at which epoch 0 begins
    seconds: int     # length of each epoch
    epochs: int      # how many epochs the key has (its lifetime is epochs * seconds)
    root: bytes      # RFC 6962 root over the epochs' public keys

    def __post_init__(self) -> None:
        if not _NAME.fullmatch(self.origin):
            raise FormatError(f"seal key: origin {self.origin!r} is empty or has spaces or "
                              "'+'")
        if not 0 <= self.start < 1 << 53:
            raise FormatError(f"seal key: start {self.start} is not a unix time in seconds")
        if not 1 <= self.seconds <= MAX_SECONDS:
            raise FormatError(f"seal key: seconds {self.seconds} is outside 1..{MAX_SECONDS}")
        if not 1 <= self.epochs <= MAX_EPOCHS:
            raise FormatError(f"seal key: epochs {self.epochs} is outside 1..{MAX_EPOCHS}")
        if len(self.root) != HASH_SIZE:
            raise FormatError(f"seal key: root is {len(self.root)} bytes, want {HASH_SIZE}")

    def format(self) -> str:
        """The one-line text (no newline)."""
        return (f"{VERSION} {self.origin} {self.start} {self.seconds} {self.epochs} "
                f"{b64.encode(self.root)}")

    @classmethod
    def parse(cls, text: str) -> SealKey:
        """Parse the one-line text; FormatError names the field that is wrong."""
        parts = text.strip().split(" ")
        names = ("version", "origin", "start", "seconds", "epochs", "root")
        if len(parts) != len(names):
            raise FormatError(f"seal key: want the {len(names)} fields "
                              f"'{VERSION} ORIGIN START SECONDS EPOCHS ROOT', got "
                              f"{len(parts)}")
        version, origin, start, seconds, epochs, root = parts
        if version != VERSION:
            raise FormatError(f"seal key: version {version[:40]!r} is not {VERSION!r}")
        nums = []
        for name, value in (("start", start), ("seconds", seconds), ("epochs", epochs)):
            if not _UINT.fullmatch(value):
                raise FormatError(f"seal key: {name} {value[:40]!r} is not a decimal number")
            nums.append(int(value))
        return cls(origin, nums[0], nums[1], nums[2], b64.decode(root, "seal key: root"))

    def key_id(self) -> bytes:
        """The 4-byte signed-note key id of this key's seal lines."""
        return sha256(self.origin.encode() + b"\n" + LINE_TYPE + b"\n"
                      + self.format().encode()).digest()[:4]

    def epoch_at(self, now: datetime) -> int:
        """The epoch ``now`` falls in (negative before ``start``; ``epochs`` or more once the
        key's lifetime is over)."""
        return (unix_seconds(now) - self.start) // self.seconds

    def epoch_start(self, epoch: int) -> int:
        """Unix seconds at which ``epoch`` begins (and ``epoch - 1`` ends)."""
        return self.start + epoch * self.seconds

    def check_key(self, epoch: int, key: bytes, path: Sequence[bytes]) -> None:
        """Raise SignatureError unless ``key`` is epoch ``epoch``'s public key (``path``
        leads from it to :attr:`root`)."""
        if not 0 <= epoch < self.epochs:
            raise SignatureError(f"epoch {epoch} is outside the seal key's 0..{self.epochs - 1}")
        try:
            got = root_from_inclusion_proof(epoch, self.epochs, leaf_hashes([key])[0], path)
        except InclusionError as exc:
            raise SignatureError(f"epoch {epoch}: the key's path is malformed: {exc}") from exc
        if not hmac.compare_digest(got, self.root):
            raise SignatureError(f"epoch {epoch}: the public key given is not the seal key's "
                                 "key of that epoch")


def unix_seconds(now: datetime) -> int:
    """Whole unix seconds of an aware datetime (floor)."""
    if now.tzinfo is None:
        raise FormatError("a time without a time zone")
    delta = now - _EPOCH_ORIGIN
    return delta.days * 86400 + delta.seconds


# -- seals -----------------------------------------------------------------------------------

def statement(origin: str, epoch: int, size: int, root: bytes, prev: bytes) -> bytes:
    """The exact bytes an epoch key signs (the module docstring shows them)."""
    if len(root) != HASH_SIZE or len(prev) != HASH_SIZE:
        raise FormatError("a seal's root and prev are 32-byte hashes")
    if epoch < 0 or size < 0:
        raise FormatError("a seal's epoch and size are not negative")
    return (f"{STATEMENT}\n{origin}\n{epoch}\n{size}\n{b64.encode(root)}\n"
            f"{b64.encode(prev)}\n").encode()


def link(origin: str, seal: Seal) -> bytes:
    """The chain link of a seal: what the next recorded seal names as its ``prev``."""
    return sha256(LINK + seal.statement(origin) + seal.signature).digest()


HINT: Final = 8  # bytes of the root and prev a recorded seal names (diagnostics only)
_RECORDED = re.compile(r"s1\.e(0|[1-9][0-9]{0,15})\.n(0|[1-9][0-9]{0,15})"
                       r"\.r([0-9a-f]{16})\.p([0-9a-f]{16})\.g([0-9a-f]{128})")


@dataclass(frozen=True, slots=True)
class Recorded:
    """A seal as recorded in the log (an event's ``target.id``)::

        s1.e<epoch>.n<size>.r<root hint>.p<prev hint>.g<signature>

    The root and prev are not stored whole: a verifier derives them (the log's tree at
    ``size``, the link of the seal recorded before), and the signature covers them whole. The
    first 8 bytes of each are kept as hints, so that a failure can say which of them differs
    (the tree was changed, or a seal before was dropped) rather than only that the signature
    fails. Lower-case hex, each field glued to a letter, no ``:`` or ``=``: the text can match
    none of the patterns ingest redaction replaces (core/redact.py: no ``name: value``, no
    vendor key prefix, no digit run a card check could take) and fits the 256 characters an
    id may have (195 at most).
    """

    epoch: int
    size: int
    root_hint: bytes
    prev_hint: bytes
    signature: bytes

    def format(self) -> str:
        """The recorded text."""
        return (f"s1.e{self.epoch}.n{self.size}.r{self.root_hint.hex()}."
                f"p{self.prev_hint.hex()}.g{self.signature.hex()}")

    @classmethod
    def parse(cls, text: str) -> Recorded:
        """Parse :meth:`format`'s text; FormatError when it is not exactly that form."""
        m = _RECORDED.fullmatch(text)
        if m is None:
            raise FormatError("recorded seal: want s1.e<epoch>.n<size>.r<16 hex>.p<16 hex>."
                              "g<128 hex>")
        return cls(int(m[1]), int(m[2]), bytes.fromhex(m[3]), bytes.fromhex(m[4]),
                   bytes.fromhex(m[5]))

    def seal(self, root: bytes, prev: bytes) -> Seal:
        """The whole seal, given the root and prev the verifier derived."""
        return Seal(self.epoch, self.size, root, prev, self.signature)


@dataclass(frozen=True, slots=True)
class Seal:
    """One seal: epoch ``epoch`` signed the tree of ``size`` entries with root ``root``,
    following the recorded seal whose link is ``prev``."""

    epoch: int
    size: int
    root: bytes
    prev: bytes
    signature: bytes

    def statement(self, origin: str) -> bytes:
        """What the epoch key signed."""
        return statement(origin, self.epoch, self.size, self.root, self.prev)

    def recorded(self) -> Recorded:
        """The seal as recorded in the log (:class:`Recorded`)."""
        return Recorded(self.epoch, self.size, self.root[:HINT], self.prev[:HINT],
                        self.signature)

    def verify(self, origin: str, key: bytes) -> None:
        """Raise SignatureError unless ``key`` (the epoch's public key) signed this seal."""
        try:
            Ed25519PublicKey.from_public_bytes(key).verify(self.signature,
                                                           self.statement(origin))
        except (InvalidSignature, ValueError) as exc:
            raise SignatureError(f"the seal of epoch {self.epoch} (size {self.size}) does not "
                                 "verify under that epoch's key") from exc


def make_seal(seed: bytes, origin: str, epoch: int, *, size: int, root: bytes,
              prev: bytes) -> Seal:
    """Seal the tree ``(size, root)`` with the key of the epoch whose seed is ``seed``."""
    sig = epoch_key(seed).sign(statement(origin, epoch, size, root, prev))
    return Seal(epoch, size, root, prev, sig)


# -- seals on served checkpoints (a signed-note signature line) -----------------------------

def seal_line(key: SealKey, seal: Seal, public: bytes, path: Sequence[bytes]) -> str:
    """A signed-note signature line carrying ``seal`` (of a checkpoint's origin, size and
    root), without a newline: ``— <origin> base64(key id || epoch u64 || prev || public key
    || signature || path)``. Note verifiers that do not know the seal key ignore it; one that
    has the seal key checks it with :func:`open_seal_line`, needing nothing else."""
    blob = (key.key_id() + struct.pack(">Q", seal.epoch) + seal.prev + public
            + seal.signature + b"".join(path))
    return f"{SIG_PREFIX}{key.origin} {b64.encode(blob)}"


@dataclass(frozen=True, slots=True)
class LineSeal:
    """A checkpoint's seal line, verified: the checkpoint it seals and the seal."""

    checkpoint: Checkpoint
    seal: Seal


def open_seal_line(note: str, key: SealKey) -> LineSeal:
    """Find and verify the seal line of a checkpoint note with the seal key alone.

    Raises SignatureError when the note has no line for this seal key or the line does not
    verify (the epoch's key is not in the seal key's tree, or it did not sign this
    checkpoint's origin, size and root); FormatError when the note is malformed. The log's
    own signature is the caller's to check (:func:`~sealtrail.core.checkpoint.open_checkpoint`).
    """
    parsed = parse_note(note)
    cp = Checkpoint.parse(parsed.text)
    if cp.origin != key.origin:
        raise SignatureError(f"the checkpoint's origin {cp.origin!r} is not the seal key's "
                             f"{key.origin!r}")
    kid = key.key_id()
    lines = [s for s in parsed.signatures
             if s.name == key.origin and hmac.compare_digest(s.key_id, kid)]
    if not lines:
        raise SignatureError("the checkpoint carries no seal by this seal key")
    # Another line may share the origin and the 4-byte key id by chance: one must verify.
    problems: list[VerificationError] = []
    for line in lines:
        try:
            return _open_line(cp, line.signature, key)
        except VerificationError as exc:
            problems.append(exc)
    raise problems[0]


def _open_line(cp: Checkpoint, raw: bytes, key: SealKey) -> LineSeal:
    fixed = 8 + HASH_SIZE + 32 + _SIG
    if len(raw) < fixed or (len(raw) - fixed) % HASH_SIZE:
        raise FormatError("seal line: wrong length")
    (epoch,) = struct.unpack_from(">Q", raw)
    prev = raw[8:8 + HASH_SIZE]
    public = raw[8 + HASH_SIZE:8 + HASH_SIZE + 32]
    sig = raw[8 + HASH_SIZE + 32:fixed]
    path = [raw[i:i + HASH_SIZE] for i in range(fixed, len(raw), HASH_SIZE)]
    key.check_key(epoch, public, path)
    seal = Seal(epoch, cp.size, cp.root, prev, sig)
    seal.verify(cp.origin, public)
    return LineSeal(cp, seal)


def find_seal_line(note: str, key: SealKey) -> LineSeal | None:
    """:func:`open_seal_line` for a note that may carry no seal: None when it has no line by
    this seal key (a checkpoint saved before sealing began, or from another server), else
    the verified seal (SignatureError / FormatError when that line does not verify)."""
    parsed = parse_note(note)
    kid = key.key_id()
    if not any(s.name == key.origin and hmac.compare_digest(s.key_id, kid)
               for s in parsed.signatures):
        return None
    return open_seal_line(note, key)


__all__ = ["DEFAULT_EPOCHS", "DEFAULT_SECONDS", "NO_LINK", "STATEMENT", "VERSION", "KeyTree",
           "LineSeal", "Recorded", "Seal", "SealKey", "epoch_key", "evolve", "find_seal_line",
           "link", "make_seal", "open_seal_line", "public_key", "public_keys", "seal_line",
           "statement", "unix_seconds"]
