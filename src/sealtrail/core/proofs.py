"""Proof documents: the JSON that carries inclusion and consistency proofs to a verifier.

Field names are RFC 6962's (``leaf_index``, ``tree_size``, ``audit_path``; ``first``, ``second``,
``consistency``); hashes are standard base64. A proof may carry the signed checkpoint note that
commits to its root, so it can be checked offline with the log's verifier key alone.
"""

from __future__ import annotations

import hmac
import json
from dataclasses import dataclass
from typing import Any

from sealtrail.core import b64
from sealtrail.core.checkpoint import Checkpoint, open_checkpoint
from sealtrail.core.errors import ConsistencyError, FormatError, InclusionError
from sealtrail.core.merkle import verify as merkle_verify
from sealtrail.core.merkle.hashing import leaf_hash
from sealtrail.core.note import Verifier


def _signed(note: str, verifier: Verifier, size: int, root: bytes, *, what: str,
            error: type[InclusionError] | type[ConsistencyError]) -> Checkpoint:
    """Open a checkpoint note and require it to sign exactly (size, root)."""
    cp = open_checkpoint(note, verifier)
    if cp.size != size:
        raise error(f"{what} is for size {size}, the checkpoint for size {cp.size}")
    if not hmac.compare_digest(cp.root, root):
        raise error(f"{what}'s root is not the root the checkpoint signs",
                    expected=cp.root, calculated=root)
    return cp


def _int(doc: dict[str, Any], key: str) -> int:
    value = doc.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise FormatError(f"proof field {key!r} must be a non-negative integer")
    return value


def _hashes(doc: dict[str, Any], key: str) -> tuple[bytes, ...]:
    value = doc.get(key)
    if not isinstance(value, list) or len(value) > 64:
        raise FormatError(f"proof field {key!r} must be a list of at most 64 hashes")
    out = []
    for i, item in enumerate(value):
        if not isinstance(item, str):
            raise FormatError(f"proof field {key}[{i}] must be a base64 string")
        out.append(b64.decode(item, f"{key}[{i}]"))
    return tuple(out)


def _hash(doc: dict[str, Any], key: str) -> bytes:
    value = doc.get(key)
    if not isinstance(value, str):
        raise FormatError(f"proof field {key!r} must be a base64 string")
    return b64.decode(value, key)


def _load(text: str | bytes) -> dict[str, Any]:
    try:
        doc = json.loads(text)
    except (ValueError, UnicodeDecodeError) as exc:
        raise FormatError(f"proof is not JSON: {exc}") from exc
    if not isinstance(doc, dict):
        raise FormatError("proof must be a JSON object")
    return doc


@dataclass(frozen=True, slots=True)
class InclusionProof:
    """An audit path for one leaf in a tree of ``tree_size`` leaves with root ``root_hash``."""

    leaf_index: int
    tree_size: int
    leaf_hash: bytes
    audit_path: tuple[bytes, ...]
    root_hash: bytes
    checkpoint: str | None = None

    def verify(self) -> None:
        """Check the path leads from ``leaf_hash`` to ``root_hash`` (raises InclusionError)."""
        merkle_verify.verify_inclusion(self.leaf_index, self.tree_size, self.leaf_hash,
                                       self.audit_path, self.root_hash)

    def verify_signed(self, verifier: Verifier, leaf: bytes | None = None) -> Checkpoint:
        """The offline check an auditor makes, trusting only the log's verifier key.

        The carried checkpoint must be signed by ``verifier`` for this proof's size and root,
        ``leaf`` (the entry's exact bytes, when given) must hash to ``leaf_hash``, and the path
        must lead from the leaf to the root. Returns the verified checkpoint; raises otherwise.
        """
        if self.checkpoint is None:
            raise InclusionError("the proof carries no checkpoint: ask for one at the latest "
                                 "size, or check the root against a checkpoint you hold")
        cp = _signed(self.checkpoint, verifier, self.tree_size, self.root_hash,
                     what="the inclusion proof", error=InclusionError)
        if leaf is not None and not hmac.compare_digest(leaf_hash(leaf), self.leaf_hash):
            raise InclusionError("the entry's bytes do not hash to the proof's leaf hash")
        self.verify()
        return cp

    def to_json(self) -> dict[str, Any]:
        """The JSON document."""
        doc: dict[str, Any] = {
            "leaf_index": self.leaf_index, "tree_size": self.tree_size,
            "leaf_hash": b64.encode(self.leaf_hash),
            "audit_path": [b64.encode(h) for h in self.audit_path],
            "root_hash": b64.encode(self.root_hash)}
        if self.checkpoint is not None:
            doc["checkpoint"] = self.checkpoint
        return doc

    @classmethod
    def parse(cls, text: str | bytes) -> InclusionProof:
        """Parse the JSON document; malformed input is a FormatError."""
        doc = _load(text)
        cp = doc.get("checkpoint")
        if cp is not None and not isinstance(cp, str):
            raise FormatError("proof field 'checkpoint' must be a note text")
        return cls(_int(doc, "leaf_index"), _int(doc, "tree_size"), _hash(doc, "leaf_hash"),
                   _hashes(doc, "audit_path"), _hash(doc, "root_hash"), cp)


@dataclass(frozen=True, slots=True)
class ConsistencyProof:
    """Proof that the tree of ``second`` leaves extends the tree of ``first`` leaves."""

    first: int
    second: int
    first_root: bytes
    second_root: bytes
    consistency: tuple[bytes, ...]

    def verify(self) -> None:
        """Check the proof links the two roots (raises ConsistencyError)."""
        merkle_verify.verify_consistency(self.first, self.second, self.first_root,
                                         self.second_root, self.consistency)

    def verify_signed(self, verifier: Verifier, first_note: str, second_note: str) -> None:
        """Check two signed checkpoints you hold are linked by this proof (the log only grew)."""
        _signed(first_note, verifier, self.first, self.first_root, what="the first tree head",
                error=ConsistencyError)
        _signed(second_note, verifier, self.second, self.second_root,
                what="the second tree head", error=ConsistencyError)
        self.verify()

    def to_json(self) -> dict[str, Any]:
        """The JSON document."""
        return {"first": self.first, "second": self.second,
                "first_root": b64.encode(self.first_root),
                "second_root": b64.encode(self.second_root),
                "consistency": [b64.encode(h) for h in self.consistency]}

    @classmethod
    def parse(cls, text: str | bytes) -> ConsistencyProof:
        """Parse the JSON document; malformed input is a FormatError."""
        doc = _load(text)
        return cls(_int(doc, "first"), _int(doc, "second"), _hash(doc, "first_root"),
                   _hash(doc, "second_root"), _hashes(doc, "consistency"))
