"""The witness policy's text form: what it refuses, and that one key cannot count twice."""

from __future__ import annotations

import base64
import hashlib

import pytest

from sealtrail.core.cosignature import Cosigner, CosignerKey, cosigner_key_id
from sealtrail.core.errors import ValidationError
from sealtrail.core.witness_policy import WitnessPolicy

BODY = "example.org/log\n3\n" + "A" * 43 + "=\n"


def test_one_key_under_two_names_is_refused() -> None:
    """The cosigned message does not include the name: an alias line copied from the real
    one would verify, so a policy listing the same key twice is refused outright."""
    signer = Cosigner("w.example/a", hashlib.sha256(b"seed").digest())
    key = signer.key
    alias = CosignerKey("w.example/b", cosigner_key_id("w.example/b", key.public_key),
                        key.public_key)
    # The alias line really would verify: the same signature, under the other name.
    line = signer.line(BODY, 1_800_000_000)
    data = base64.b64decode(line.split(" ")[2])
    assert alias.verify(BODY, data[4:]) == 1_800_000_000
    with pytest.raises(ValidationError, match="share a key"):
        WitnessPolicy.parse(f"witness {key.format()}\nwitness {alias.format()}\nquorum 2\n")


@pytest.mark.parametrize("quorum", ["\u00b2", "\u0662", "\uff11", "two", "1000", "0"])
def test_a_quorum_is_ascii_digits_in_range(quorum: str) -> None:
    """Only 1..n in ASCII digits ('²' passes str.isdigit() but not int(): refused, no crash)."""
    key = Cosigner("w.example/a", hashlib.sha256(b"seed").digest()).key
    with pytest.raises(ValidationError):
        WitnessPolicy.parse(f"witness {key.format()}\nquorum {quorum}\n")


def test_round_trip() -> None:
    keys = [Cosigner(f"w.example/{n}", hashlib.sha256(n.encode()).digest()).key
            for n in "abc"]
    text = "".join(f"witness {k.format()} https://{n}.example\n"
                   for n, k in zip("abc", keys, strict=True)) + "quorum 2\n"
    policy = WitnessPolicy.parse(text)
    assert WitnessPolicy.parse(policy.format()) == policy
    assert policy.quorum == 2
