"""The evolving key and its public material (core/seal.py) against a reference written here
from the design (hashlib, cryptography and a recursive RFC 6962 tree, not the code under test),
and the formats' parse/format rules."""

from __future__ import annotations

import base64
import hashlib
import os
import struct
from datetime import UTC, datetime, timedelta

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from sealtrail.core import seal as core
from sealtrail.core.checkpoint import Checkpoint
from sealtrail.core.errors import FormatError, SignatureError
from sealtrail.core.event import validate_event
from sealtrail.core.note import Signer
from sealtrail.core.redact import Redactor

SEED = bytes(range(32))
ORIGIN = "example.com/log"


# -- the reference ----------------------------------------------------------------------------

def ref_seeds(seed: bytes, n: int) -> list[bytes]:
    """seed_{i+1} = SHA-256("sealtrail/seal/evolve\\n" || seed_i)."""
    out = [seed]
    for _ in range(n - 1):
        out.append(hashlib.sha256(b"sealtrail/seal/evolve\n" + out[-1]).digest())
    return out


def ref_private(seed: bytes) -> Ed25519PrivateKey:
    """Epoch key = Ed25519 from SHA-256("sealtrail/seal/key\\n" || seed_i)."""
    return Ed25519PrivateKey.from_private_bytes(
        hashlib.sha256(b"sealtrail/seal/key\n" + seed).digest())


def ref_public(seed: bytes) -> bytes:
    return ref_private(seed).public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


def ref_mth(leaves: list[bytes]) -> bytes:
    """RFC 6962 section 2.1, recursively, over the leaves (32-byte public keys)."""
    if len(leaves) == 1:
        return hashlib.sha256(b"\x00" + leaves[0]).digest()
    k = 1
    while k * 2 < len(leaves):
        k *= 2
    return hashlib.sha256(b"\x01" + ref_mth(leaves[:k]) + ref_mth(leaves[k:])).digest()


def ref_path(m: int, leaves: list[bytes]) -> list[bytes]:
    """RFC 6962 section 2.1.1 PATH(m, D[n])."""
    if len(leaves) == 1:
        return []
    k = 1
    while k * 2 < len(leaves):
        k *= 2
    if m < k:
        return [*ref_path(m, leaves[:k]), ref_mth(leaves[k:])]
    return [*ref_path(m - k, leaves[k:]), ref_mth(leaves[:k])]


def ref_statement(epoch: int, size: int, root: bytes, prev: bytes) -> bytes:
    b = base64.b64encode
    return (b"sealtrail.org/seal@v1\n" + ORIGIN.encode() + b"\n" + str(epoch).encode() + b"\n"
            + str(size).encode() + b"\n" + b(root) + b"\n" + b(prev) + b"\n")


# -- the tests ----------------------------------------------------------------------------------

def test_evolution_and_epoch_keys_match_the_reference() -> None:
    """Each epoch's seed and public key are the reference's, for 40 epochs."""
    seeds = ref_seeds(SEED, 40)
    assert core.public_keys(SEED, 40) == [ref_public(s) for s in seeds]
    seed = SEED
    for want in seeds[1:]:
        seed = core.evolve(seed)
        assert seed == want


@pytest.mark.parametrize("n", [*range(1, 18), 31, 32, 33, 64, 100])
def test_key_tree_root_and_every_path_match_the_reference(n: int) -> None:
    """The Merkle root over the epochs' keys and each epoch's inclusion path are RFC 6962's,
    and check_key accepts exactly each epoch's own key."""
    keys = [ref_public(s) for s in ref_seeds(SEED, n)]
    tree = core.KeyTree(keys)
    assert tree.root == ref_mth(keys)
    key = core.SealKey(ORIGIN, 1000, 60, n, tree.root)
    for m in range(n):
        assert list(tree.path(m)) == ref_path(m, keys)
        key.check_key(m, keys[m], tree.path(m))
        if n > 1:
            with pytest.raises(SignatureError):
                key.check_key(m, keys[(m + 1) % n], tree.path(m))


def test_a_seal_is_the_reference_signature_over_the_reference_statement() -> None:
    """A seal made with epoch 3's seed verifies with the reference epoch-3 key over the
    reference statement; the key of epoch 4 (what an attacker holding seed 4 has) does not
    verify it, and nothing derived from seed 4 reproduces epoch 3's key."""
    seeds = ref_seeds(SEED, 8)
    root, prev = hashlib.sha256(b"r").digest(), hashlib.sha256(b"p").digest()
    seal = core.make_seal(seeds[3], ORIGIN, 3, size=17, root=root, prev=prev)
    pub3 = Ed25519PublicKey.from_public_bytes(ref_public(seeds[3]))
    pub3.verify(seal.signature, ref_statement(3, 17, root, prev))  # raises if not
    seal.verify(ORIGIN, ref_public(seeds[3]))
    with pytest.raises(SignatureError):
        seal.verify(ORIGIN, ref_public(seeds[4]))
    forward = core.public_keys(seeds[4], 4)
    assert ref_public(seeds[3]) not in forward
    assert core.link(ORIGIN, seal) == hashlib.sha256(
        b"sealtrail/seal/link\n" + ref_statement(3, 17, root, prev) + seal.signature).digest()


def test_seal_key_text_round_trips_and_errors_name_the_field() -> None:
    """The one-line seal key parses back to itself; each malformed field is named."""
    key = core.SealKey(ORIGIN, 1_700_000_000, 3600, 65536, bytes(range(32)))
    text = key.format()
    assert text.startswith("sealtrail-seal/v1 example.com/log 1700000000 3600 65536 ")
    assert core.SealKey.parse(text) == key
    assert core.SealKey.parse(text + "\n") == key
    root = base64.b64encode(bytes(32)).decode()
    bad = {
        f"sealtrail-seal/v2 {ORIGIN} 1 60 64 {root}": "version",
        f"sealtrail-seal/v1 {ORIGIN} x 60 64 {root}": "start",
        f"sealtrail-seal/v1 {ORIGIN} 1 060 64 {root}": "seconds",
        f"sealtrail-seal/v1 {ORIGIN} 1 0 64 {root}": "seconds",
        f"sealtrail-seal/v1 {ORIGIN} 1 60 0 {root}": "epochs",
        f"sealtrail-seal/v1 {ORIGIN} 1 60 64 AAAA": "root",
        f"sealtrail-seal/v1 {ORIGIN} 1 60 64": "fields",
        f"sealtrail-seal/v1 a+b 1 60 64 {root}": "origin",
    }
    for text, field in bad.items():
        with pytest.raises(FormatError, match=field):
            core.SealKey.parse(text)


def test_epochs_follow_the_clock() -> None:
    """Epoch i covers [start + i*seconds, start + (i+1)*seconds)."""
    start = datetime(2026, 1, 1, tzinfo=UTC)
    key = core.SealKey(ORIGIN, core.unix_seconds(start), 10, 64, bytes(32))
    assert key.epoch_at(start) == 0
    assert key.epoch_at(start + timedelta(seconds=9.999)) == 0
    assert key.epoch_at(start + timedelta(seconds=10)) == 1
    assert key.epoch_at(start - timedelta(seconds=1)) == -1
    assert key.epoch_start(3) == key.start + 30


def test_recorded_seal_text_round_trips_fits_an_id_and_is_strict() -> None:
    """A recorded seal parses back, fits in the 256 characters of an id even at the largest
    numbers, holds 8-byte hints of root and prev, and any other text is refused."""
    seeds = ref_seeds(SEED, 2)
    root, prev = bytes(range(32)), bytes(range(32, 64))
    seal = core.make_seal(seeds[1], ORIGIN, 1, size=2**53 - 1, root=root, prev=prev)
    text = seal.recorded().format()
    assert len(text) <= 256
    assert text.startswith(f"s1.e1.n{2**53 - 1}.r{root[:8].hex()}.p{prev[:8].hex()}.g")
    rec = core.Recorded.parse(text)
    assert rec.seal(root, prev) == seal
    for bad in (text.upper(), text + "0", text.replace(".e1.", ".e01."),
                text.replace(".g", ".x"), text[:-2]):
        with pytest.raises(FormatError):
            core.Recorded.parse(bad)


def test_recorded_seals_pass_redaction_untouched() -> None:
    """Ingest redaction (core/redact.py) never alters a recorded seal: 2000 random seals,
    including sizes long enough to look like card numbers, come out as they went in."""
    redactor = Redactor("mask")
    for k in range(2000):
        seal = core.Seal(k % 70000, int.from_bytes(os.urandom(7)) if k % 2 else k,
                         os.urandom(32), os.urandom(32), os.urandom(64))
        target = {"type": "seal", "id": seal.recorded().format()}
        ev = validate_event({"actor": {"id": "sealtrail"}, "action": "sealtrail.seal",
                             "outcome": "success", "target": target})
        out, findings = redactor.redact(ev)
        assert not findings, target
        assert out.to_dict()["target"] == target


def test_seal_line_on_a_checkpoint_verifies_with_the_seal_key_alone() -> None:
    """A checkpoint's seal line carries the epoch key and its path: the seal key alone
    verifies it; a changed checkpoint, another epoch's key, or a flipped byte does not."""
    n = 16
    seeds = ref_seeds(SEED, n)
    keys = [ref_public(s) for s in seeds]
    tree = core.KeyTree(keys)
    key = core.SealKey(ORIGIN, 1000, 60, n, tree.root)
    cp = Checkpoint(ORIGIN, 42, hashlib.sha256(b"root").digest())
    signer = Signer.from_seed(ORIGIN, bytes(32))
    note = signer.sign(cp.format())
    prev = hashlib.sha256(b"prev").digest()
    seal = core.make_seal(seeds[5], ORIGIN, 5, size=cp.size, root=cp.root, prev=prev)
    line = core.seal_line(key, seal, keys[5], tree.path(5))
    assert line.startswith("\u2014 " + ORIGIN + " ")
    sealed = note + line + "\n"
    got = core.open_seal_line(sealed, key)
    assert (got.seal.epoch, got.seal.size, got.seal.prev) == (5, 42, prev)
    # The reference reads the line: key id, u64 epoch, prev, public key, signature, path.
    raw = base64.b64decode(line.split(" ")[2])
    kid = hashlib.sha256(ORIGIN.encode() + b"\n\xffsealtrail.org/seal@v1\n"
                         + key.format().encode()).digest()[:4]
    assert raw[:4] == kid
    assert struct.unpack(">Q", raw[4:12]) == (5,)
    Ed25519PublicKey.from_public_bytes(raw[44:76]).verify(
        raw[76:140], ref_statement(5, 42, cp.root, prev))
    assert [raw[i:i + 32] for i in range(140, len(raw), 32)] == ref_path(5, keys)
    # Another checkpoint under the same line.
    other = signer.sign(Checkpoint(ORIGIN, 43, cp.root).format())
    with pytest.raises(SignatureError):
        core.open_seal_line(other + line + "\n", key)
    # Epoch 6's key posing as epoch 5's.
    forged = core.make_seal(seeds[6], ORIGIN, 5, size=cp.size, root=cp.root, prev=prev)
    with pytest.raises(SignatureError):
        core.open_seal_line(note + core.seal_line(key, forged, keys[6], tree.path(5)) + "\n",
                            key)
    # Every byte of the line's data matters.
    for pos in range(4, len(raw)):
        bad = raw[:pos] + bytes([raw[pos] ^ 1]) + raw[pos + 1:]
        text = f"{note}\u2014 {ORIGIN} {base64.b64encode(bad).decode()}\n"
        with pytest.raises((SignatureError, FormatError)):
            core.open_seal_line(text, key)
    # No line for this seal key.
    with pytest.raises(SignatureError, match="no seal"):
        core.open_seal_line(note, key)
