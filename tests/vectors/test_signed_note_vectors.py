"""C2SP signed-note vectors (spec example, Go's sumdb/note, a sum.golang.org checkpoint).

The vectors (``data/signed-note.json``, see ``data/PROVENANCE.md``) must verify with
:func:`sealtrail.core.note.open_note`, and every single-bit change of a note's bytes must make it
fail with a :class:`~sealtrail.core.errors.VerificationError`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sealtrail.core import b64, note
from sealtrail.core.checkpoint import Checkpoint, open_checkpoint, sign
from sealtrail.core.errors import FormatError, SignatureError, VerificationError
from sealtrail.core.note import Signer, Verifier, open_note

DATA = Path(__file__).parent / "data" / "signed-note.json"


@dataclass(frozen=True)
class NoteVector:
    """One published note with its verifier key (and, for one, the signing key)."""

    vkey: str
    note: str
    skey: str | None
    source: str


def _load() -> list[NoteVector]:
    doc: dict[str, Any] = json.loads(DATA.read_text(encoding="utf-8"))
    return [NoteVector(n["vkey"], n["note"], n.get("skey"), n["source"]) for n in doc["notes"]]


NOTES = _load()
PETER = next(n for n in NOTES if n.skey is not None)
SUMDB = next(n for n in NOTES if n.vkey.startswith("sum.golang.org+"))


def _id(v: NoteVector) -> str:
    return v.vkey.split("+", 1)[0]


@pytest.mark.parametrize("v", NOTES, ids=_id)
def test_note_vectors_verify(v: NoteVector) -> None:
    """Each published note verifies with its published verifier key, as text and as bytes."""
    verifier = Verifier.parse(v.vkey)
    opened = open_note(v.note, [verifier])
    assert v.note.startswith(opened.text)
    assert [s.name for s in opened.signatures] == [verifier.name]
    assert opened.signatures[0].key_id == verifier.key_id
    assert open_note(v.note.encode("utf-8"), [verifier]) == opened


@pytest.mark.parametrize("v", NOTES, ids=_id)
def test_vkey_round_trips(v: NoteVector) -> None:
    """Verifier.parse then format gives back the exact vkey text."""
    assert Verifier.parse(v.vkey).format() == v.vkey


def test_resigning_reproduces_go_note() -> None:
    """Re-signing the PeterNeumann text with Go's skey reproduces the published note exactly."""
    assert PETER.skey is not None
    signer = Signer.parse(PETER.skey)
    assert signer.format() == PETER.skey
    assert signer.verifier().format() == PETER.vkey
    text = note.parse(PETER.note).text
    assert signer.sign(text) == PETER.note
    assert "AYEKFALV" not in repr(signer)


def test_sumdb_checkpoint_parses() -> None:
    """The sum.golang.org note is a tlog-checkpoint of size 6476701 with a 32-byte root."""
    verifier = Verifier.parse(SUMDB.vkey)
    cp = Checkpoint.parse(open_note(SUMDB.note, [verifier]).text)
    assert cp.origin == "go.sum database tree"
    assert cp.size == 6476701
    assert cp.root == b64.decode("mb8QLQIs0Z0yP5Cstq6guj87oXWeC9gEM8oVikmm9Wk=", "root")
    assert cp.extensions == ()
    assert cp.format() == note.parse(SUMDB.note).text
    assert open_checkpoint(SUMDB.note, verifier, origin="go.sum database tree") == cp


def test_sumdb_checkpoint_origin_is_checked() -> None:
    """open_checkpoint rejects the checkpoint when its origin is not the one expected."""
    verifier = Verifier.parse(SUMDB.vkey)
    with pytest.raises(FormatError):
        open_checkpoint(SUMDB.note, verifier)  # default origin is the key name, sum.golang.org
    with pytest.raises(FormatError):
        open_checkpoint(SUMDB.note, verifier, origin="go.sum database tree2")


@pytest.mark.parametrize("v", NOTES, ids=_id)
def test_every_bit_flip_fails(v: NoteVector) -> None:
    """Every single-bit change of every byte of the note's UTF-8 makes open_note raise."""
    verifiers = [Verifier.parse(v.vkey)]
    data = v.note.encode("utf-8")
    tried = 0
    for i in range(len(data)):
        for bit in range(8):
            bad = data[:i] + bytes([data[i] ^ (1 << bit)]) + data[i + 1:]
            with pytest.raises(VerificationError):
                open_note(bad, verifiers)
            tried += 1
    assert tried == 8 * len(data)


@pytest.mark.parametrize("v", NOTES, ids=_id)
def test_truncations_and_extensions_fail(v: NoteVector) -> None:
    """Dropping the last byte, the signature block or adding text fails verification."""
    verifiers = [Verifier.parse(v.vkey)]
    text = note.parse(v.note).text
    for bad in (v.note[:-1], text, text + "\n", "x" + v.note, text + "x\n" + v.note[len(text):],
                v.note + "\n", v.note + "junk\n", ""):
        with pytest.raises(VerificationError):
            open_note(bad, verifiers)


@pytest.mark.parametrize("v", NOTES, ids=_id)
def test_wrong_key_is_signature_error(v: NoteVector) -> None:
    """A note checked against a different key (same name, or another name) is a SignatureError."""
    name = _id(v)
    impostor = Signer.from_seed(name, bytes(range(32))).verifier()
    with pytest.raises(SignatureError):
        open_note(v.note, [impostor])
    other = Signer.from_seed("someone.else", bytes(32)).verifier()
    with pytest.raises(SignatureError):
        open_note(v.note, [other])
    with pytest.raises(SignatureError):
        open_note(v.note, [])


def test_known_key_with_bad_signature_rejects_note() -> None:
    """A note whose known key's signature fails is rejected even when another known key verifies."""
    a = Signer.from_seed("alice", bytes([1]) * 32)
    b = Signer.from_seed("bob", bytes([2]) * 32)
    text = "hello\n"
    good = a.sign(text)
    forged = b.sign("hello?\n").split("\n\n", 1)[1]
    with pytest.raises(SignatureError):
        open_note(good + forged, [a.verifier(), b.verifier()])


def _cosigned(text: str, signers: list[Signer]) -> str:
    """A note of ``text`` carrying one signature line per signer."""
    lines = [s.sign(text)[len(text) + 1:] for s in signers]
    return text + "\n" + "".join(lines)


def test_unknown_key_signatures_are_ignored() -> None:
    """Signatures by keys the verifier does not know are ignored when a known key verifies."""
    known = Signer.from_seed("log.example", bytes([7]) * 32)
    unknown = Signer.from_seed("witness.example", bytes([9]) * 32)
    text = "log.example\n12\n" + b64.encode(bytes(32)) + "\n"
    both = _cosigned(text, [unknown, known])
    opened = open_note(both, [known.verifier()])
    assert opened.text == text
    assert [s.name for s in opened.signatures] == ["witness.example", "log.example"]
    open_note(both, [unknown.verifier()])
    open_note(both, [known.verifier(), unknown.verifier()])
    # Same name as the known key but a different key id: still an unknown key, ignored.
    namesake = Signer.from_seed("log.example", bytes([8]) * 32)
    open_note(_cosigned(text, [namesake, known]), [known.verifier()])
    with pytest.raises(SignatureError):
        open_note(_cosigned(text, [namesake, unknown]), [known.verifier()])


_names = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E, exclude_characters="+"),
                 min_size=1, max_size=40)
_lines = st.text(st.characters(exclude_categories=("Cc", "Cs")), min_size=1, max_size=60)
_seeds = st.binary(min_size=32, max_size=32)


@given(name=_names, seed=_seeds, body=st.lists(_lines, min_size=1, max_size=5))
def test_signer_note_round_trip(name: str, seed: bytes, body: list[str]) -> None:
    """Any text signed by a Signer opens with its verifier, whose vkey round-trips."""
    signer = Signer.from_seed(name, seed)
    verifier = Verifier.parse(signer.verifier().format())
    assert verifier == signer.verifier()
    assert Signer.parse(signer.format()) == signer
    text = "\n".join(body) + "\n"
    signed = signer.sign(text)
    opened = open_note(signed, [verifier])
    assert opened.text == text
    (line,) = opened.signatures
    assert (line.name, line.key_id, len(line.signature)) == (name, signer.key_id, 64)


_origins = st.text(st.characters(exclude_categories=("Cc", "Cs")), min_size=1, max_size=60)


@given(origin=_origins, size=st.integers(min_value=0, max_value=2**64 - 1),
       root=st.binary(min_size=32, max_size=32), extensions=st.lists(_origins, max_size=3))
def test_checkpoint_format_parse_round_trip(origin: str, size: int, root: bytes,
                                           extensions: list[str]) -> None:
    """Checkpoint.parse(cp.format()) is the same checkpoint, and so is signing then opening it."""
    cp = Checkpoint(origin, size, root, tuple(extensions))
    assert Checkpoint.parse(cp.format()) == cp
    signer = Signer.from_seed("log", bytes(32))
    signed = sign(cp, signer)
    assert open_checkpoint(signed.note, signer.verifier(), origin=origin) == cp


def test_checkpoint_size_must_fit_in_64_bits() -> None:
    """A size of 2**64 or more is malformed (Go's note and tlog readers use uint64)."""
    root = "mb8QLQIs0Z0yP5Cstq6guj87oXWeC9gEM8oVikmm9Wk="
    assert Checkpoint.parse(f"o\n{2**64 - 1}\n{root}\n").size == 2**64 - 1
    with pytest.raises(FormatError):
        Checkpoint.parse(f"o\n{2**64}\n{root}\n")


def test_uppercase_key_id_in_vkey_is_accepted() -> None:
    """Go parses the vkey's key id as hex in either case; so does sealtrail."""
    vkey = "PeterNeumann+C74F20A3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
    assert Verifier.parse(vkey).key_id.hex() == "c74f20a3"
