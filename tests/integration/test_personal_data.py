"""Personal-data protection through the library, tested like an adversary holding the files.

Sealed fields, per-subject keys and erasure, key rotation and rewrapping, locked and missing
keyrings, blind indexes. The attacker's view is the data directory itself: every file is
searched byte for byte, and ciphertexts are altered or moved inside the stored chunks.
"""

from __future__ import annotations

import base64
import hashlib
import json
import sqlite3
import stat
import struct
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from tests.conftest import TEST_PASSPHRASE

from sealtrail import AuditLog
from sealtrail.core.errors import (
    ConfigError,
    DecryptionError,
    KeyringError,
    PolicyError,
    TamperError,
)
from sealtrail.log.keyring import passphrase_kek

ALICE = "alice@example.com"
BOB = "bob@example.com"
CAROL = "carol@example.com"
DPO = {"id": "dpo-1"}
PERSONAL_FIELDS = {"actor.ip", "actor.name", "actor.user_agent", "changes", "metadata",
                   "subjects", "target.name"}

# Unique markers for the plaintext search: one per sealed field, plus secrets.
NAME = "Zyxwvut Personname"
IP = "198.51.100.77"
SOURCE_IP = "203.0.113.201"
UA = "Mozilla/5.0 (Qwertymarker UA 7.3)"
TARGET_NAME = "Targetmarker Vbnmqwe Account"
META = "metamarker-Kqzpvlwt"
BEFORE = "beforemarker-Hjdksla"
AFTER = "aftermarker-Pwoeiru"
SUBJECT = "subject-marker@example.org"
CARD = "4111 1111 1111 1111"
CARD_DIGITS = "4111111111111111"
PASSWORD = "hunter2-Passmarker-93!"
BEARER = "mF_9.B5f-4.1JqMbearermarker"
JWT = ("eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJqd3RtYXJrZXIiLCJpYXQiOjE1MTYyMzkwMjJ9"
       ".SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c")
PEM_BODY = "MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7pemmarker"
PEM = f"-----BEGIN PRIVATE KEY-----\n{PEM_BODY}\n-----END PRIVATE KEY-----"
AWS = "AKIAQWERTYUIOPASDFGH"
MARKERS = (NAME, IP, SOURCE_IP, UA, TARGET_NAME, META, BEFORE, AFTER, SUBJECT)
SECRETS = (CARD, CARD_DIGITS, PASSWORD, BEARER, JWT, PEM_BODY, AWS)


def person(actor: str, *, name: str = "Some Body", ip: str = "192.0.2.10",
           subjects: list[str] | None = None, target: str = "c-1",
           note: str = "n") -> dict[str, Any]:
    """An event carrying a value in each default personal field."""
    ev: dict[str, Any] = {
        "actor": {"id": actor, "name": name, "ip": ip, "user_agent": "agent/1"},
        "action": "customer.update", "outcome": "success", "category": "data_change",
        "target": {"type": "customer", "id": target, "name": f"{name} (account)"},
        "changes": {"before": {"email": "old@example.net"}, "after": {"email": "new@x.net"}},
        "metadata": {"note": note},
    }
    if subjects is not None:
        ev["subjects"] = subjects
    return ev


def opened(log: AuditLog) -> list[dict[str, Any]]:
    """Every event of the log, opened."""
    log.refresh_keys()
    return [log.read(e) for e in log.entries(0)]


# -- the adversary's tools: the files and the chunks ----------------------------------------


def needles(text: str) -> dict[str, bytes]:
    """``text`` as it could sit in a file: UTF-8, UTF-16 both ways, base64 at every alignment.

    For base64 only the characters that depend on ``text`` alone are searched: the group that
    mixes in 1 or 2 leading bytes of something else, and an incomplete last group, are cut.
    """
    raw = text.encode()
    out = {"utf-8": raw, "utf-16-le": text.encode("utf-16-le"),
           "utf-16-be": text.encode("utf-16-be")}
    for pad in range(3):
        b64 = base64.b64encode(b"\x00" * pad + raw)
        core = b64[4 if pad else 0: 4 * ((pad + len(raw)) // 3)]
        assert len(core) >= 12, "marker too short to search for in base64"
        out[f"base64@{pad}"] = core
        out[f"base64url@{pad}"] = core.translate(bytes.maketrans(b"+/", b"-_"))
    return out


def found_in(directory: Path, texts: tuple[str, ...]) -> dict[str, list[str]]:
    """For each text, the ``file (encoding)`` places where it occurs under ``directory``."""
    files = [p for p in sorted(directory.rglob("*")) if p.is_file()]
    assert files
    hits: dict[str, list[str]] = {t: [] for t in texts}
    for path in files:
        blob = path.read_bytes()
        for text in texts:
            for how, needle in needles(text).items():
                if needle in blob:
                    hits[text].append(f"{path.relative_to(directory)} ({how})")
    return hits


def chunk_at(db: Path, index: int) -> tuple[int, list[bytes]]:
    """(start, leaves) of the stored chunk holding ``index``, read without sealtrail."""
    con = sqlite3.connect(db)
    try:
        start, count, blob = con.execute(
            "SELECT start, count, data FROM chunks WHERE start <= ? ORDER BY start DESC LIMIT 1",
            (index,)).fetchone()
    finally:
        con.close()
    lens = struct.unpack_from(f"<{count}I", blob)
    leaves, pos = [], 4 * count
    for n in lens:
        leaves.append(bytes(blob[pos:pos + n]))
        pos += n
    return int(start), leaves


def put_leaf(db: Path, index: int, leaf: bytes) -> None:
    """Replace one stored leaf, re-framing its chunk (lengths) as sealtrail would."""
    start, leaves = chunk_at(db, index)
    leaves[index - start] = leaf
    data = struct.pack(f"<{len(leaves)}I", *map(len, leaves)) + b"".join(leaves)
    con = sqlite3.connect(db)
    try:
        con.execute("UPDATE chunks SET data = ? WHERE start = ?", (data, start))
        con.commit()
    finally:
        con.close()


def stored_leaf(db: Path, index: int) -> bytes:
    """One stored leaf, read without sealtrail."""
    start, leaves = chunk_at(db, index)
    return leaves[index - start]


def token_of(leaf: bytes) -> str:
    """The sealed token (all personal fields of the event) in a stored leaf."""
    token = json.loads(leaf)["sealed"]["ct"]
    assert isinstance(token, str)
    return token


# -- no plaintext at rest ---------------------------------------------------------------------


def write_marked_log(data: Path, **options: Any) -> None:
    """A log holding every marker and secret, with the operations that touch personal data."""
    with AuditLog.open(data, **options) as log:
        log.append_many([
            {"actor": {"id": "u-1", "name": NAME, "ip": IP, "user_agent": UA},
             "action": "customer.update", "outcome": "success", "category": "data_change",
             "target": {"type": "customer", "id": "c-1", "name": TARGET_NAME},
             "source": {"service": "crm", "ip": SOURCE_IP},
             "changes": {"before": {"street": BEFORE}, "after": {"street": AFTER}},
             "metadata": {"note": META, "password": PASSWORD}, "subjects": [SUBJECT]},
            {"actor": {"id": "u-2", "name": NAME, "ip": IP},
             "action": "payment.create", "outcome": "failure",
             "metadata": {"text": f"card {CARD} / {CARD_DIGITS} declined",
                          "headers": {"Authorization": f"Bearer {BEARER}"},
                          "jwt": JWT, "key": PEM, "aws": AWS}},
            # Secrets in fields that are never sealed: only redaction keeps them off disk.
            {"actor": {"id": "u-3"}, "action": "debug.dump", "outcome": "error",
             "reason": f"pay {CARD} auth Bearer {BEARER} jwt {JWT} aws {AWS} password={PASSWORD}",
             "purpose": f"key {PEM}"},
        ])
        if log.encrypted:
            log.find("actor.ip", IP)
            list(log.subject_events(SUBJECT))
            log.rotate_keys(actor={"id": "ops"})
            log.append({"actor": {"id": "u-1", "name": NAME}, "action": "customer.read",
                        "outcome": "success", "subjects": [SUBJECT]})
        log.checkpoint()
        log.verify()


def test_no_personal_value_or_secret_is_on_disk_in_any_encoding(tmp_path: Path) -> None:
    """Every file in an encrypted log's data directory is free of each marker and secret."""
    write_marked_log(tmp_path / "data")
    hits = found_in(tmp_path / "data", MARKERS + SECRETS)
    assert {t: where for t, where in hits.items() if where} == {}


def test_the_plaintext_search_finds_what_an_unprotected_log_stores(tmp_path: Path) -> None:
    """With encryption and redaction off, the same search finds every marker and secret."""
    write_marked_log(tmp_path / "data", encryption=False, redaction="off")
    hits = found_in(tmp_path / "data", MARKERS + SECRETS)
    assert [t for t, where in hits.items() if not where] == []


def test_encrypted_log_reads_back_the_markers_with_secrets_masked(tmp_path: Path) -> None:
    """What is kept off disk is readable with the key; secrets are masked, not sealed."""
    write_marked_log(tmp_path / "data")
    with AuditLog.open(tmp_path / "data") as log:
        evs = opened(log)
    first, second, third = evs[0], evs[1], evs[2]
    assert first["actor"] == {"id": "u-1", "name": NAME, "ip": IP, "user_agent": UA}
    assert first["subjects"] == [SUBJECT]
    assert first["changes"] == {"before": {"street": BEFORE}, "after": {"street": AFTER}}
    assert first["metadata"]["note"] == META
    text = json.dumps([second, third])
    assert "[redacted:card]" in text
    for secret in SECRETS:
        assert secret not in text


# -- altered and moved ciphertexts --------------------------------------------------------------


def test_altered_ciphertext_fails_verify_and_read(tmp_path: Path) -> None:
    """One changed base64 character of a sealed token: verify names the entry, read refuses."""
    data = tmp_path / "data"
    with AuditLog.open(data) as log:
        log.append_many([person(f"u{i}", name=f"Name {i}") for i in range(4)])
    db = data / "default" / "log.db"
    leaf = stored_leaf(db, 2)
    token = token_of(leaf)
    kid, b64 = token.split(":", 1)
    mid = len(b64) // 2  # far from the last group, whose padding bits decoders may ignore
    changed = b64[:mid] + ("A" if b64[mid] != "A" else "B") + b64[mid + 1:]
    base64.b64decode(changed, validate=True)  # still valid base64: only AES-GCM can tell
    put_leaf(db, 2, leaf.replace(token.encode(), f"{kid}:{changed}".encode()))
    with AuditLog.open(data) as log:
        with pytest.raises(TamperError) as info:
            log.verify()
        assert (info.value.kind, info.value.index) == ("changed", 2)
        with pytest.raises(DecryptionError, match="entry 2"):
            log.read(log.entry(2))
        assert log.read(log.entry(1))["actor"]["name"] == "Name 1"


def _swap_first_fields(leaf: bytes) -> bytes:
    """The leaf with the first two sealed field paths swapped (a relabelled ciphertext)."""
    fields = json.loads(leaf)["sealed"]["fields"]
    listed = json.dumps(fields, separators=(",", ":")).encode()
    swapped = json.dumps([fields[1], fields[0], *fields[2:]], separators=(",", ":")).encode()
    assert listed in leaf
    return leaf.replace(listed, swapped)


@pytest.mark.parametrize("how", ["from-another-event", "fields-relabelled"])
def test_moved_ciphertext_fails_to_open(tmp_path: Path, how: str) -> None:
    """A valid token copied into another event, or its values pointed at other fields, fails:
    the associated data names the event and every field path in order."""
    data = tmp_path / "data"
    with AuditLog.open(data) as log:
        log.append_many([person("u0", name="Ann"), person("u1", name="Bartholomew"),
                         person("u2", name="Cy")])
    db = data / "default" / "log.db"
    victim = stored_leaf(db, 2)
    if how == "from-another-event":
        changed = victim.replace(token_of(victim).encode(),
                                 token_of(stored_leaf(db, 1)).encode())
    else:
        changed = _swap_first_fields(victim)
    assert changed != victim
    put_leaf(db, 2, changed)
    with AuditLog.open(data) as log:
        with pytest.raises(TamperError) as info:
            log.verify()
        assert info.value.index == 2
        with pytest.raises(DecryptionError):
            log.read(log.entry(2))
        assert log.read(log.entry(1))["actor"]["name"] == "Bartholomew"


# -- erasure and legal holds ----------------------------------------------------------------------


def test_erasure_shreds_one_subject_and_keeps_every_proof(tmp_path: Path) -> None:
    """Erasing a subject empties its personal fields only; old proofs and the tree stay valid."""
    with AuditLog.open(tmp_path / "data") as log:
        log.append_many([
            person("u1", name="Alice A", ip="192.0.2.77", subjects=[ALICE], target="c-a"),
            person("u2", name="Bob B", subjects=[BOB], target="c-b"),
            person("u3", name="No Subject"),
            person("u1", name="Alice Again", ip="192.0.2.77", subjects=[ALICE], target="c-a2"),
            person("u4", name="Carol C", subjects=[CAROL]),
        ])
        before = opened(log)
        old = log.checkpoint()
        old_size = old.checkpoint.size
        proof = log.prove_inclusion(3)
        leaf3 = log.entry(3).leaf
        assert log.find("subject", ALICE) == [3, 0]
        assert log.find("actor.ip", "192.0.2.77") == [3, 0]
        assert log.find("actor.ip", "192.0.2.10") == [4, 2, 1]

        receipt = log.erase_subject(ALICE, reason="GDPR Art. 17 request #1", actor=DPO)

        assert receipt.index == old_size
        after = opened(log)
        for i in (1, 2, 4):
            assert after[i] == before[i]
        for i in (0, 3):
            ev = after[i]
            assert set(ev["erased"]) == PERSONAL_FIELDS
            assert "sealed" not in ev
            assert "subjects" not in ev
            assert "metadata" not in ev
            assert ev["actor"] == {"id": before[i]["actor"]["id"]}
            for key in ("id", "action", "outcome", "category", "time", "received_at"):
                assert ev[key] == before[i][key]
            assert ev["target"] == {"type": "customer", "id": before[i]["target"]["id"]}
        assert log.entry(3).leaf == leaf3
        log.verify()
        proof.verify_signed(log.verifier, leaf3)
        new = log.checkpoint()
        log.prove_consistency(old_size).verify_signed(log.verifier, old.note, new.note)
        assert log.find("subject", ALICE) == []
        assert log.find("actor.ip", "192.0.2.77") == []  # a sealed field's token goes too
        assert log.find("actor.ip", "192.0.2.10") == [4, 2, 1]
        assert log.find("actor.id", "u1") == [3, 0]  # clear fields stay searchable
        assert list(log.subject_events(ALICE)) == []
        assert [e.index for e, _ in log.subject_events(BOB)] == [1]

        erasure = after[receipt.index]
        assert erasure["action"] == "subject.erase"
        assert erasure["actor"]["id"] == DPO["id"]
        assert erasure["target"]["type"] == "data_subject"
        assert erasure["target"]["id"].startswith("ref:")
        assert erasure["metadata"]["entries"] == 2
        assert ALICE not in json.dumps(erasure)
        assert ALICE.encode() not in log.entry(receipt.index).leaf

        size = log.size
        with pytest.raises(ConfigError, match="no key"):
            log.erase_subject(ALICE, reason="again", actor=DPO)
        assert log.size == size


def test_legal_hold_blocks_erasure_until_released(tmp_path: Path) -> None:
    """A held subject cannot be erased (PolicyError naming the hold); after release it can."""
    with AuditLog.open(tmp_path / "data") as log:
        log.append(person("u2", name="Bob B", subjects=[BOB]))
        bob_before = opened(log)[0]
        held = log.hold_subject(BOB, reason="litigation 2024-17", actor={"id": "legal"})
        size = log.size
        with pytest.raises(PolicyError, match="hold") as info:
            log.erase_subject(BOB, reason="request #2", actor=DPO)
        assert "#1" in str(info.value)
        assert log.size == size  # the refused erasure stored nothing
        assert log.read(log.entry(0)) == bob_before
        (hold,) = log.holds()
        assert hold["hold"] == 1
        assert hold["released"] is None
        released = log.release_subject(BOB, reason="case closed", actor={"id": "legal"})
        assert log.holds() == []
        assert log.holds(open_only=False)[0]["released"] is not None
        with pytest.raises(ConfigError, match="no open legal hold"):
            log.release_subject(BOB, reason="twice", actor={"id": "legal"})
        erased = log.erase_subject(BOB, reason="request #2", actor=DPO)
        assert log.read(log.entry(0))["erased"]
        events = {r.index: log.read(log.entry(r.index)) for r in (held, released, erased)}
        assert [events[r.index]["action"] for r in (held, released, erased)] == [
            "subject.hold.add", "subject.hold.release", "subject.erase"]
        refs = {ev["target"]["id"] for ev in events.values()}
        assert refs == {hold["subject_ref"]}
        assert {ev["target"]["type"] for ev in events.values()} == {"data_subject"}
        log.verify()


def test_erased_key_leaves_no_copy_in_the_data_directory(tmp_path: Path) -> None:
    """After erasure the subject's wrapped key is in no file: not the database, not the WAL."""
    data = tmp_path / "data"
    db = data / "default" / "log.db"

    def wrapped_key(index: int) -> bytes:
        kid = token_of(stored_leaf(db, index)).split(":")[0]
        assert kid.startswith("s")
        raw = base64.urlsafe_b64decode(kid[1:] + "==")
        con = sqlite3.connect(db)
        try:
            (blob,) = con.execute("SELECT wrapped FROM subject_keys WHERE kid = ?", (raw,)
                                  ).fetchone()
        finally:
            con.close()
        return bytes(blob)

    def places(blob: bytes) -> list[str]:
        return [p.name for p in sorted(data.rglob("*")) if p.is_file() and blob in p.read_bytes()]

    with AuditLog.open(data) as log:
        log.append(person("u1", subjects=[ALICE]))
        log.append(person("u2", subjects=[BOB]))
        alice, bob = wrapped_key(0), wrapped_key(1)
        assert places(alice)  # the search can see a key where it is
        log.erase_subject(ALICE, reason="request", actor=DPO)
        assert places(alice) == []
        assert places(bob)
        log.append(person("u3", subjects=[CAROL]))
    assert places(alice) == []


@pytest.mark.parametrize("gone", [ALICE, CAROL])
def test_erasing_either_subject_of_a_shared_event_erases_it(tmp_path: Path, gone: str) -> None:
    """An event about two subjects loses its personal fields when either one is erased."""
    stays = CAROL if gone == ALICE else ALICE
    with AuditLog.open(tmp_path / "data") as log:
        log.append_many([person("u1", name="Both", subjects=[ALICE, CAROL]),
                         person("u2", name="Only Alice", subjects=[ALICE]),
                         person("u3", name="Only Carol", subjects=[CAROL])])
        before = opened(log)
        log.erase_subject(gone, reason="request", actor=DPO)
        after = opened(log)
        assert set(after[0]["erased"]) == PERSONAL_FIELDS
        solo = {ALICE: 1, CAROL: 2}
        assert set(after[solo[gone]]["erased"]) == PERSONAL_FIELDS
        assert after[solo[stays]] == before[solo[stays]]
        # The survivor still finds the shared event, but can no longer read it.
        assert [e.index for e, _ in log.subject_events(stays)] == [0, solo[stays]]
        log.verify()


@pytest.mark.parametrize("where", ["second-instance", "other-process"])
def test_erasure_elsewhere_reaches_an_open_log_after_refresh(tmp_path: Path, where: str) -> None:
    """A subject erased by another instance or process reads as erased here after refresh_keys."""
    data = tmp_path / "data"
    with AuditLog.open(data) as log:
        log.append(person("u1", name="Alice A", subjects=[ALICE]))
        assert log.read(log.entry(0))["actor"]["name"] == "Alice A"  # the key is now cached
        if where == "second-instance":
            with AuditLog.open(data) as other:
                other.erase_subject(ALICE, reason="request", actor=DPO)
        else:
            res = subprocess.run(
                [sys.executable, "-m", "sealtrail.cli", "--data", str(data), "erase",
                 "--subject", ALICE, "--reason", "request"],
                capture_output=True, timeout=60, check=False)
            assert res.returncode == 0, res.stderr
        log.refresh_keys()
        assert set(log.read(log.entry(0))["erased"]) == PERSONAL_FIELDS
        # Naming the subject again makes a new key: the old entry stays erased.
        receipt = log.append(person("u1", name="Alice Later", subjects=[ALICE]))
        assert log.read(log.entry(receipt.index))["actor"]["name"] == "Alice Later"
        assert "erased" in log.read(log.entry(0))
        log.verify()


# -- keys: rotation, rewrapping, locked and missing keyrings ------------------------------------


@pytest.mark.usefixtures("passphrase_env")
def test_many_rotations_and_a_rewrap_keep_everything_readable(tmp_path: Path) -> None:
    """Five rotations with events between stay readable, also after reopening and rewrapping."""
    data = tmp_path / "data"
    new_phrase = "a brand new passphrase"
    with AuditLog.open(data) as log:
        log.append(person("u0", name="Name 0"))
        log.append(person("s0", name="Subject 0", subjects=[ALICE]))
        for k in range(1, 6):
            assert log.rotate_keys(actor={"id": "ops"}) == f"d{k + 1}"
            log.append(person(f"u{k}", name=f"Name {k}"))
        kids = [e.event()["sealed"]["ct"].split(":")[0]
                for e in log.entries(0) if e.event()["action"] == "customer.update"]
        assert kids[0] == "d1"
        assert kids[1].startswith("s")  # the subject's own key
        assert kids[2:] == ["d2", "d3", "d4", "d5", "d6"]
        first = opened(log)
        info = log.keyring_info()
        assert [k["id"] for k in info if k["purpose"] == "data"] == [f"d{n}" for n in range(1, 7)]
        assert [k["id"] for k in info if k["active"]] == ["d6"]
        assert all(set(k) == {"id", "purpose", "created", "active"} for k in info)
        rotations = [ev for ev in first if ev["action"] == "keys.rotate"]
        assert [ev["target"]["id"] for ev in rotations] == ["d2", "d3", "d4", "d5", "d6"]
    with AuditLog.open(data, passphrase=TEST_PASSPHRASE) as log:
        assert opened(log) == first
        log.verify()
        log.rotate_keys(actor={"id": "ops"}, new_kek=passphrase_kek(new_phrase))
        log.append(person("u9", name="After Rewrap"))
    with pytest.raises(KeyringError, match="passphrase"):
        AuditLog.open(data, passphrase=TEST_PASSPHRASE)
    with pytest.raises(KeyringError):
        AuditLog.open(data)  # SEALTRAIL_PASSPHRASE still holds the old one
    with AuditLog.open(data, passphrase=new_phrase) as log:
        evs = opened(log)
        assert evs[: len(first)] == first
        assert evs[-1]["actor"]["name"] == "After Rewrap"
        assert log.keyring_info()[-1]["id"] == "d7"
        log.verify()


@pytest.mark.usefixtures("passphrase_env")
def test_wrong_passphrase_is_an_error_not_a_locked_log(tmp_path: Path) -> None:
    """A passphrase that does not open the keyring raises KeyringError at open."""
    with AuditLog.open(tmp_path / "data") as log:
        log.append(person("u1"))
    with pytest.raises(KeyringError, match="passphrase does not open"):
        AuditLog.open(tmp_path / "data", passphrase="not the right passphrase")


def test_missing_keyring_opens_locked_and_still_verifies(tmp_path: Path) -> None:
    """Without keyring.json the log verifies and proves; fields stay sealed; appends refuse."""
    data = tmp_path / "data"
    with AuditLog.open(data) as log:
        log.append_many([person("u1", name="Hidden Name", subjects=[ALICE]), person("u2")])
    (data / "default" / "keyring.json").unlink()
    with AuditLog.open(data) as log:
        assert "missing" in log.locked_reason
        ev = log.read(log.entry(0))
        assert set(ev["sealed"]["fields"]) == PERSONAL_FIELDS
        assert "name" not in ev["actor"]
        assert "Hidden Name" not in json.dumps(ev)
        with pytest.raises(KeyringError, match="missing"):
            log.append(person("u3"))
        with pytest.raises(KeyringError):
            log.erase_subject(ALICE, reason="request", actor=DPO)
        log.verify()
        log.prove_inclusion(1).verify_signed(log.verifier, log.entry(1).leaf)
        assert log.checkpoint().checkpoint.size == 2


@pytest.mark.usefixtures("passphrase_env")
def test_no_key_in_the_environment_locks_reads_and_refuses_writes(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An existing encrypted log opened with no key: sealed reads, KeyringError on writes."""
    data = tmp_path / "data"
    with AuditLog.open(data) as log:
        log.append(person("u1", name="Hidden Name"))
    monkeypatch.delenv("SEALTRAIL_PASSPHRASE")
    monkeypatch.delenv("SEALTRAIL_KEK", raising=False)
    with AuditLog.open(data) as log:
        assert "SEALTRAIL_PASSPHRASE" in log.locked_reason
        assert "sealed" in log.read(log.entry(0))
        with pytest.raises(KeyringError):
            log.append(person("u2"))
        with pytest.raises(KeyringError):
            log.find("actor.ip", "192.0.2.10")
        log.verify()


def test_creating_an_encrypted_log_needs_a_key(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """With no key given, creation fails naming SEALTRAIL_PASSPHRASE; encryption=False works."""
    monkeypatch.delenv("SEALTRAIL_PASSPHRASE", raising=False)
    monkeypatch.delenv("SEALTRAIL_KEK", raising=False)
    with pytest.raises(KeyringError, match="SEALTRAIL_PASSPHRASE"):
        AuditLog.open(tmp_path / "data")
    assert not (tmp_path / "data" / "default" / "log.db").exists()
    with AuditLog.open(tmp_path / "plain", encryption=False) as log:
        assert not log.encrypted
        log.append(person("u1", name="Clear Name"))
        assert log.read(log.entry(0))["actor"]["name"] == "Clear Name"
        log.verify()
    assert not (tmp_path / "plain" / "default" / "keyring.json").exists()


def test_keyring_is_private_and_a_readable_one_is_refused(tmp_path: Path) -> None:
    """keyring.json is written 0600; once group-readable, opening refuses and says chmod."""
    with AuditLog.open(tmp_path / "data"):
        pass
    path = tmp_path / "data" / "default" / "keyring.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    for mode in (0o640, 0o604):
        path.chmod(mode)
        with pytest.raises(KeyringError, match="chmod"):
            AuditLog.open(tmp_path / "data")
    path.chmod(0o600)
    AuditLog.open(tmp_path / "data").close()


# -- blind indexes -----------------------------------------------------------------------------


def by_scan(evs: list[dict[str, Any]], field: str, value: str) -> list[int]:
    """Indexes whose opened event has ``field == value``, newest first (the reference)."""
    out = []
    for i, ev in enumerate(evs):
        if field == "subject":
            hit = value in (ev.get("subjects") or ())
        else:
            part, _, name = field.partition(".")
            hit = (ev.get(part) or {}).get(name) == value
        if hit:
            out.append(i)
    return out[::-1]


def test_blind_index_finds_exactly_what_a_scan_finds(tmp_path: Path) -> None:
    """find() on actor.id, actor.ip, target.id and subject equals a scan over opened events."""
    actors = ["ann", "ben", "cy"]
    ips = ["192.0.2.1", "192.0.2.2", "2001:db8::7"]
    targets = ["t-1", "t-2", "t-3", "t-4"]
    events: list[Mapping[str, Any]] = []
    for i in range(40):
        ev = person(actors[i % 3], ip=ips[(i // 2) % 3], target=targets[i % 4],
                    subjects=[ALICE] if i % 7 == 0 else None)
        if i % 6 == 5:
            del ev["actor"]["ip"]
        events.append(ev)
    with AuditLog.open(tmp_path / "data") as log:
        log.append_many(events)
        # A second segment of the index (4096 entries each).
        log.append_many([{"actor": {"id": "filler"}, "action": "x.y", "outcome": "success"}
                         for _ in range(4096)])
        log.append(person("ann", ip="192.0.2.2", target="t-1", subjects=[ALICE]))
        evs = opened(log)
        for field, values in (("actor.id", actors), ("actor.ip", ips),
                              ("target.id", targets), ("subject", [ALICE])):
            for value in values:
                expected = by_scan(evs, field, value)
                assert expected
                assert log.find(field, value) == expected, (field, value)
                assert log.find(field, value, limit=2) == expected[:2]
        assert log.find("actor.id", "nobody") == []
        assert log.find("actor.ip", "192.0.2.99") == []
        with pytest.raises(ConfigError, match="blind index"):
            log.find("actor.name", "Some Body")


def test_blind_table_holds_keyed_tokens_only(tmp_path: Path) -> None:
    """The blind table holds integers that are neither plain hashes nor equal across logs."""
    for name in ("one", "two"):
        with AuditLog.open(tmp_path / name) as log:
            log.append(person("ann", ip=IP, target="t-1"))
    tokens = {}
    for name in ("one", "two"):
        con = sqlite3.connect(tmp_path / name / "default" / "log.db")
        try:
            rows = con.execute("SELECT typeof(seg), typeof(tok), typeof(idx), tok FROM blind"
                               ).fetchall()
            pending = [bytes(d) for (d,) in con.execute("SELECT data FROM blind_pending")]
        finally:
            con.close()
        assert {r[:3] for r in rows} <= {("integer", "integer", "integer")}
        # Rows of the segment being filled wait as packed (token, index) int64 pairs.
        flat = [x for d in pending for x in struct.unpack(f"<{len(d) // 8}q", d)]
        tokens[name] = {r[3] for r in rows} | set(flat[0::2])
        assert len(tokens[name]) == 3  # actor.id, actor.ip, target.id
    assert not tokens["one"] & tokens["two"]
    plain = set()
    for field, value in (("actor.id", "ann"), ("actor.ip", IP), ("target.id", "t-1")):
        for message in (value.encode(), b"sealtrail/blind/v1\x00" + field.encode() + b"\x00"
                        + value.encode()):
            digest = hashlib.sha256(message).digest()[:8]
            plain |= {int.from_bytes(digest, "big", signed=True),
                      int.from_bytes(digest, "little", signed=True)}
    assert not tokens["one"] & plain

