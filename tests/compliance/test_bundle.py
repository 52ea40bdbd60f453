"""Evidence bundles: a round trip, and every tampering an auditor must catch.

Each tampering edits the archive the way someone between the operator and the auditor could
(an event, a proof, the checkpoint re-signed by another key, an event removed, an event from
another log) and checks ``verify_bundle`` names what is wrong.
"""

from __future__ import annotations

import base64
import json
import zipfile
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from sealtrail import AuditLog
from sealtrail.compliance.bundle import export_bundle, read_bundle, verify_bundle_file
from sealtrail.core.bundle import verify_bundle
from sealtrail.core.checkpoint import Checkpoint, open_checkpoint
from sealtrail.core.errors import VerificationError
from sealtrail.core.note import Signer
from sealtrail.core.tlogproof import TlogProof
from sealtrail.log.search import Filter

AUDITOR = {"id": "auditor-1", "type": "user"}


def _events(n: int, prefix: str = "") -> list[dict[str, object]]:
    return [{"action": "invoice.read" if i % 2 else "user.login",
             "actor": {"id": f"{prefix}u{i % 4}", "name": f"User {i}", "ip": "10.0.0.1"},
             "outcome": "success", "category": "data_access" if i % 2 else "authentication",
             "time": f"2026-01-{1 + i % 28:02d}T10:00:00Z",
             "subjects": [f"person-{i % 3}"]} for i in range(n)]


@pytest.fixture
def alog(tmp_path: Path) -> Iterator[AuditLog]:
    log = AuditLog.open(tmp_path / "data")
    for _ in range(6):  # several commits -> several stored checkpoints
        log.append_many(_events(100))
    yield log
    log.close()


@pytest.fixture
def bundle(alog: AuditLog, tmp_path: Path) -> Path:
    path = tmp_path / "evidence.zip"
    export_bundle(alog, path, flt=Filter(category="authentication"), actor=AUDITOR,
                  opened=True)
    return path


def test_round_trip_zip_and_tar(alog: AuditLog, bundle: Path, tmp_path: Path) -> None:
    report = verify_bundle_file(bundle, alog.vkey())
    assert report.events == 300
    assert report.opened == 300
    assert report.size == alog.size
    files = read_bundle(bundle)
    assert b"auditor" in files["README.md"] or b"auditor-1" in files["README.md"]
    manifest = json.loads(files["manifest.json"])
    assert manifest["events"] == 300
    assert manifest["selection"] == {"category": "authentication"}
    # The export itself is an audited read in the log.
    export = alog.read(alog.entry(manifest["export_event"]))
    assert export["action"] == "audit.export"
    assert export["metadata"]["results"] == 300
    tgz = tmp_path / "evidence.tar.gz"
    s = export_bundle(alog, tgz, flt=Filter(actor="u1"), actor=AUDITOR)
    assert s.events == 150
    assert verify_bundle_file(tgz, alog.vkey()).events == 150


def _rewrite(path: Path, change: Callable[[dict[str, bytes]], None]) -> dict[str, bytes]:
    files = read_bundle(path)
    change(files)
    with zipfile.ZipFile(path, "w") as z:
        for name, data in files.items():
            z.writestr(name, data)
    return files


def _jsonl(data: bytes) -> list[dict[str, object]]:
    return [json.loads(line) for line in data.splitlines() if line.strip()]


def _dump(lines: list[dict[str, object]]) -> bytes:
    return b"".join(json.dumps(x).encode() + b"\n" for x in lines)


def test_edited_event_is_caught(alog: AuditLog, bundle: Path) -> None:
    def change(files: dict[str, bytes]) -> None:
        lines = _jsonl(files["events.jsonl"])
        leaf = json.loads(base64.b64decode(str(lines[5]["leaf"])))
        leaf["outcome"] = "failure"
        lines[5]["leaf"] = base64.b64encode(json.dumps(leaf, separators=(",", ":"),
                                                       sort_keys=True).encode()).decode()
        files["events.jsonl"] = _dump(lines)

    _rewrite(bundle, change)
    with pytest.raises(VerificationError, match=r"events.jsonl line 6 \(index \d+\): not incl"):
        verify_bundle_file(bundle, alog.vkey())


def test_edited_proof_is_caught(alog: AuditLog, bundle: Path) -> None:
    def change(files: dict[str, bytes]) -> None:
        lines = _jsonl(files["proofs.jsonl"])
        path = list(lines[3]["audit_path"])  # type: ignore[call-overload]
        path[0] = base64.b64encode(b"\x11" * 32).decode()
        lines[3]["audit_path"] = path
        files["proofs.jsonl"] = _dump(lines)

    _rewrite(bundle, change)
    with pytest.raises(VerificationError, match="line 4"):
        verify_bundle_file(bundle, alog.vkey())


def test_checkpoint_resigned_by_another_key_is_caught(alog: AuditLog, bundle: Path) -> None:
    other = Signer.from_seed(alog.origin, b"\x07" * 32)

    def change(files: dict[str, bytes]) -> None:
        cp = Checkpoint.parse(files["checkpoint.txt"].decode().split("\n\n")[0] + "\n")
        files["checkpoint.txt"] = other.sign(cp.format()).encode()
        files["vkey.txt"] = other.verifier().format().encode()

    _rewrite(bundle, change)
    with pytest.raises(VerificationError, match=r"vkey.txt in the bundle is not the key you trust"):
        verify_bundle_file(bundle, alog.vkey())
    files = read_bundle(bundle)
    del files["vkey.txt"]
    with pytest.raises(VerificationError, match=r"checkpoint.txt: not a checkpoint signed"):
        verify_bundle(files, alog.vkey())
    # Verified with the forger's key, the bundle statement is still the real log's: caught.
    with pytest.raises(VerificationError, match=r"manifest.sig"):
        verify_bundle(files, other.verifier().format())


def test_removed_event_is_caught(alog: AuditLog, bundle: Path) -> None:
    def change(files: dict[str, bytes]) -> None:
        for name in ("events.jsonl", "proofs.jsonl"):
            lines = _jsonl(files[name])
            del lines[10]
            files[name] = _dump(lines)

    _rewrite(bundle, change)
    with pytest.raises(VerificationError, match="signed a bundle of 300 events; this one holds"):
        verify_bundle_file(bundle, alog.vkey())


def test_event_from_another_log_is_caught(alog: AuditLog, bundle: Path,
                                          tmp_path: Path) -> None:
    other = AuditLog.open(tmp_path / "other")
    other.append_many(_events(50, prefix="x"))
    other_path = tmp_path / "other.zip"
    export_bundle(other, other_path, flt=Filter(), actor=AUDITOR)
    foreign = _jsonl(read_bundle(other_path)["events.jsonl"])[0]
    other.close()

    def change(files: dict[str, bytes]) -> None:
        lines = _jsonl(files["events.jsonl"])
        foreign["index"] = lines[0]["index"]
        lines[0] = foreign
        files["events.jsonl"] = _dump(lines)

    _rewrite(bundle, change)
    with pytest.raises(VerificationError, match="another log"):
        verify_bundle_file(bundle, alog.vkey())


def test_edited_manifest_and_opened_values(alog: AuditLog, bundle: Path) -> None:
    def change(files: dict[str, bytes]) -> None:
        m = json.loads(files["manifest.json"])
        m["selection"] = {"category": "everything"}
        files["manifest.json"] = json.dumps(m).encode()

    _rewrite(bundle, change)
    with pytest.raises(VerificationError, match=r"manifest.json was changed"):
        verify_bundle_file(bundle, alog.vkey())


def test_opened_may_only_name_sealed_fields(alog: AuditLog, bundle: Path) -> None:
    def change(files: dict[str, bytes]) -> None:
        lines = _jsonl(files["events.jsonl"])
        lines[0]["opened"] = {"actor.id": "somebody-else"}
        files["events.jsonl"] = _dump(lines)

    _rewrite(bundle, change)
    with pytest.raises(VerificationError, match="'opened' names fields"):
        verify_bundle_file(bundle, alog.vkey())


def test_earlier_checkpoints_are_linked(alog: AuditLog, bundle: Path) -> None:
    files = read_bundle(bundle)
    earlier = [n for n in files if n.startswith("checkpoints/")]
    manifest = json.loads(files["manifest.json"])
    assert len(earlier) == len(manifest["earlier_checkpoints"])
    # A consistency proof removed: the earlier checkpoint no longer links.
    if earlier:
        files["consistency.jsonl"] = b""
        with pytest.raises(VerificationError, match="no consistency proof"):
            verify_bundle(files, alog.vkey())


def test_tlog_proof_receipt_round_trip(alog: AuditLog) -> None:
    proof = alog.prove_inclusion(7)
    head = alog.checkpoint()
    tp = TlogProof(7, proof.audit_path, head.note)
    text = tp.format()
    assert text.startswith("c2sp.org/tlog-proof@v1\nindex 7\n")
    parsed = TlogProof.parse(text)
    leaf = alog.entry(7).leaf
    cp = parsed.verify(alog.verifier, leaf)
    assert cp.size == alog.size
    assert open_checkpoint(head.note, alog.verifier).size == cp.size
    with pytest.raises(VerificationError):
        parsed.verify(alog.verifier, leaf + b" ")
    with pytest.raises(VerificationError):
        TlogProof.parse(text.replace("index 7", "index 8")).verify(alog.verifier, leaf)


def test_bundle_time_range(alog: AuditLog, tmp_path: Path) -> None:
    path = tmp_path / "jan.zip"
    s = export_bundle(alog, path, flt=Filter(since=datetime(2026, 1, 10, tzinfo=UTC),
                                             until=datetime(2026, 1, 12, tzinfo=UTC)),
                      actor=AUDITOR)
    report = verify_bundle_file(path, alog.vkey())
    assert report.events == s.events > 0
    for line in _jsonl(read_bundle(path)["events.jsonl"]):
        ev = json.loads(base64.b64decode(str(line["leaf"])))
        assert "2026-01-10" <= ev["time"] < "2026-01-12"


def test_bulk_paths_equal_single_proofs(alog: AuditLog) -> None:
    """The bundle's cached audit paths are exactly the ones prove_inclusion gives."""
    for size in (1, 2, 7, 64, 333, alog.size):
        indexes = sorted({0, size - 1, size // 2, size // 3})
        bulk = dict(alog.inclusion_paths(indexes, size))
        for i in indexes:
            assert bulk[i] == alog.prove_inclusion(i, size).audit_path


def test_an_edited_opened_value_is_caught(alog: AuditLog, bundle: Path) -> None:
    """Opened values are not in the proofs, but the signed manifest covers the file."""
    def change(files: dict[str, bytes]) -> None:
        lines = _jsonl(files["events.jsonl"])
        opened = dict(lines[0]["opened"])  # type: ignore[call-overload]
        opened["subjects"] = ["mallory"]
        lines[0]["opened"] = opened
        files["events.jsonl"] = _dump(lines)

    _rewrite(bundle, change)
    with pytest.raises(VerificationError, match=r"events.jsonl is not the file the log signed"):
        verify_bundle_file(bundle, alog.vkey())


def test_a_member_twice_is_refused(alog: AuditLog, bundle: Path) -> None:
    """A viewer and the verifier must not see two different events.jsonl."""
    files = read_bundle(bundle)
    with zipfile.ZipFile(bundle, "a") as z, pytest.warns(UserWarning, match="Duplicate name"):
        z.writestr("events.jsonl", b"")
    with pytest.raises(VerificationError, match="appears twice"):
        read_bundle(bundle)
    assert files


@pytest.mark.parametrize("sep", ["\u2028", "\u2029", "\u0085", "\x0c"])
def test_events_with_unicode_line_separators_verify(tmp_path: Path, sep: str) -> None:
    """JSON holds U+2028 and friends unescaped; the bundle's JSON Lines split on LF only."""
    with AuditLog.open(tmp_path / "data") as log:
        log.append_many([{"actor": {"id": f"a{sep}b"}, "action": "user.login",
                          "outcome": "success", "category": "authentication",
                          "reason": f"line{sep}break"}] * 3)
        path = tmp_path / "sep.zip"
        export_bundle(log, path, flt=Filter(category="authentication"), actor=AUDITOR)
        assert verify_bundle_file(path, log.vkey()).events == 3


def test_bundles_stay_sealed_unless_opened_and_the_record_says_which(alog: AuditLog,
                                                                     tmp_path: Path) -> None:
    """The default keeps personal fields sealed (as SIEM exports do); opening is a choice the
    audit.export record names."""
    sealed = tmp_path / "sealed.zip"
    export_bundle(alog, sealed, flt=Filter(category="authentication"), actor=AUDITOR)
    assert verify_bundle_file(sealed, alog.vkey()).opened == 0
    assert all("opened" not in line for line in _jsonl(read_bundle(sealed)["events.jsonl"]))
    opened = tmp_path / "opened.zip"
    export_bundle(alog, opened, flt=Filter(category="authentication"), actor=AUDITOR,
                  opened=True)
    assert verify_bundle_file(opened, alog.vkey()).opened == 300
    records = [alog.read(e) for e in alog.entries(alog.size - 5)
               if e.event().get("action") == "audit.export"]
    assert [r["metadata"]["filter"]["open_sealed"] for r in records][-2:] == [False, True]
