"""The client as a witness: it keeps the newest checkpoint it verified and lets the log only grow.

Pure over texts (the clients fetch them). For each receipt checked (1)-(4):

1. the latest checkpoint note must be signed by the log's verifier key (and name its origin);
2. against the kept checkpoint it must not be smaller (a rollback) nor, at the same size, have
   another root (a fork); when larger, a consistency proof from the kept size to the new one
   must link the two signed roots (RFC 9162 §2.1.4) — then it becomes the kept checkpoint;
3. the receipt's ``checkpoint_size`` must not exceed it (the log promised at least that much);
4. an inclusion proof of the receipt's index in the tree of that size must lead from the
   receipt's leaf hash to the signed root (RFC 9162 §2.1.3).

Every failure raises a :class:`~sealtrail.core.errors.VerificationError` subclass.
"""

from __future__ import annotations

import dataclasses
import hmac

from sealtrail.client.receipt import Receipt
from sealtrail.core.checkpoint import Checkpoint, open_checkpoint
from sealtrail.core.errors import ConsistencyError, InclusionError
from sealtrail.core.note import Verifier
from sealtrail.core.proofs import ConsistencyProof, InclusionProof
from sealtrail.core.witness_policy import Witnessed, WitnessPolicy


class Witness:
    """The newest verified checkpoint of one log, and the checks that move it forward."""

    def __init__(self, verifier: Verifier, kept: str | None = None) -> None:
        self.verifier = verifier
        self._note: str | None = None
        self._kept: Checkpoint | None = None
        if kept is not None:
            self._kept = open_checkpoint(kept, verifier)
            self._note = kept

    @property
    def note(self) -> str | None:
        """The kept checkpoint note (None before the first verification)."""
        return self._note

    @property
    def checkpoint(self) -> Checkpoint | None:
        """The kept checkpoint, parsed."""
        return self._kept

    def open(self, note: str) -> Checkpoint:
        """(1) Verify a fetched checkpoint note's signature and origin."""
        return open_checkpoint(note, self.verifier)

    def consistency_needed(self, cp: Checkpoint) -> tuple[int, int] | None:
        """(2) The sizes of the consistency proof to fetch for ``cp``, or None.

        Raises ConsistencyError for a rollback (smaller than kept) or a fork (same size,
        another root).
        """
        kept = self._kept
        if kept is None:
            return None
        if cp.size < kept.size:
            raise ConsistencyError(f"rollback: the log's checkpoint is for size {cp.size}, "
                                   f"but this client already verified size {kept.size}")
        if cp.size == kept.size:
            if not hmac.compare_digest(cp.root, kept.root):
                raise ConsistencyError(f"fork: two different signed roots for size {cp.size}",
                                       expected=kept.root, calculated=cp.root)
            return None
        if kept.size == 0:
            return None  # the empty tree is a prefix of every tree
        return kept.size, cp.size

    def advance(self, note: str, cp: Checkpoint, proof: str | bytes | None) -> None:
        """(2) Keep ``note`` after checking ``proof`` links it to the kept checkpoint."""
        need = self.consistency_needed(cp)
        if need is not None:
            if proof is None or self._note is None:
                raise ConsistencyError(f"a consistency proof {need[0]} -> {need[1]} is needed")
            parsed = ConsistencyProof.parse(proof)
            if (parsed.first, parsed.second) != need:
                raise ConsistencyError(f"asked for the consistency proof {need[0]} -> {need[1]}, "
                                       f"got {parsed.first} -> {parsed.second}")
            parsed.verify_signed(self.verifier, self._note, note)
        # At the same size the root was checked equal above: the newer text of the same
        # checkpoint (with cosignature lines the service added since) is kept.
        if self._kept is None or cp.size >= self._kept.size:
            self._kept, self._note = cp, note

    def check_covers(self, receipt: Receipt, cp: Checkpoint) -> None:
        """(3) The signed tree ``cp`` must hold at least the tree the receipt promised."""
        if receipt.checkpoint_size > cp.size or not 0 <= receipt.index < cp.size:
            raise ConsistencyError(f"rollback: the receipt of {receipt.id} promised a tree of "
                                   f"at least {receipt.checkpoint_size} entries, the log's "
                                   f"checkpoint has {cp.size}")

    def check_inclusion(self, receipt: Receipt, cp: Checkpoint, note: str,
                        proof: str | bytes) -> None:
        """(3)-(4) Check ``receipt`` against the inclusion proof in the signed tree ``cp``."""
        self.check_covers(receipt, cp)
        parsed = dataclasses.replace(InclusionProof.parse(proof), checkpoint=note)
        if parsed.leaf_index != receipt.index or parsed.tree_size != cp.size:
            raise InclusionError(f"asked for the proof of index {receipt.index} in size "
                                 f"{cp.size}, got index {parsed.leaf_index} in size "
                                 f"{parsed.tree_size}")
        if not hmac.compare_digest(parsed.leaf_hash, receipt.leaf_hash):
            raise InclusionError(f"entry {receipt.index} is not the event {receipt.id} the "
                                 "receipt names", expected=receipt.leaf_hash,
                                 calculated=parsed.leaf_hash)
        parsed.verify_signed(self.verifier)


def check_older(witness: Witness, note: str, cp: Checkpoint, proof: str | bytes | None
                ) -> None:
    """A served checkpoint older than the kept one (the witnessed one lags the newest by a
    round): it must be a prefix of the kept one, proven by ``proof`` (a consistency proof
    from its size to the kept size; None when it is size 0). The kept one stays."""
    kept, kept_note = witness.checkpoint, witness.note
    if kept is None or kept_note is None or cp.size >= kept.size:
        raise ConsistencyError("check_older is for a checkpoint older than the kept one")
    if cp.size == 0:
        return
    if proof is None:
        raise ConsistencyError(f"a consistency proof {cp.size} -> {kept.size} is needed")
    parsed = ConsistencyProof.parse(proof)
    if (parsed.first, parsed.second) != (cp.size, kept.size):
        raise ConsistencyError(f"asked for the consistency proof {cp.size} -> {kept.size}, "
                               f"got {parsed.first} -> {parsed.second}")
    parsed.verify_signed(witness.verifier, note, kept_note)


def policy_of(policy: str | WitnessPolicy) -> WitnessPolicy:
    """A witness policy given as its text form or already parsed."""
    return policy if isinstance(policy, WitnessPolicy) else WitnessPolicy.parse(policy)


def check_witnessed(note: str, policy: WitnessPolicy) -> Witnessed:
    """Which of ``policy``'s witnesses cosigned ``note`` (a note already opened with the
    log's key and moved forward by :meth:`Witness.advance`); a cosignature line claiming a
    policy witness that does not verify raises SignatureError (tampering)."""
    return policy.check(note)
