"""What an auditor does with witnessing: take the policy the log prints (``witnesses list
--policy``), a proof against the latest witnessed checkpoint (``prove inclusion
--witnessed``), and check it offline (``verify-proof --witness-policy``): met, not met
under a stricter policy, and tampered cosignatures refused."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from sealtrail.log import witnesses
from sealtrail.log.auditlog import AuditLog
from sealtrail.log.witness import WitnessState
from tests.clirun import Ran, sealtrail
from tests.witnessing.support import (
    ThreadWitness,
    check_cosigned,
    note_size,
    run,
    split_note,
    thread_witnesses,
)

ACTOR = {"id": "test-operator", "type": "os_user"}
ORIGIN = "example.org/audited-log"


def cli(*args: str | Path) -> Ran[str]:
    return sealtrail(*args, text=True)


@pytest.fixture
def witnessed(tmp_path: Path) -> Iterator[tuple[Path, list[ThreadWitness], str]]:
    """A log with two witnesses (quorum 2), 12 events, a round that met the quorum, then 5
    more events not yet witnessed."""
    data = tmp_path / "data"
    with thread_witnesses(tmp_path, "example.org/aw0", "example.org/aw1") as ws:
        with AuditLog.open(data, origin=ORIGIN) as alog, httpx.Client(timeout=5) as client:
            alog.append_many([{"actor": {"id": f"u{i}"}, "action": "doc.read",
                               "outcome": "success"} for i in range(12)])
            for w in ws:
                w.state.add_log(alog.vkey())
                witnesses.add(alog, w.url, w.vkey, actor=ACTOR)
            witnesses.set_quorum(alog, 2, actor=ACTOR)
            r = witnesses.run_round(alog, witnesses.load(alog), datetime.now(UTC),
                                    witnesses.httpx_post(client))
            assert r.met, r
            alog.append_many([{"actor": {"id": "late"}, "action": "doc.read",
                               "outcome": "success"}] * 5)
            vkey = alog.vkey()
        yield data, ws, vkey


def test_a_witnessed_proof_checks_offline(tmp_path: Path,
                                          witnessed: tuple[Path, list[ThreadWitness], str]
                                          ) -> None:
    data, ws, vkey = witnessed
    policy = tmp_path / "policy.txt"
    listed = cli("--data", data, "witnesses", "list", "--policy")
    assert listed.returncode == 0, listed.stderr
    policy.write_text(listed.stdout)
    proved = cli("--data", data, "prove", "inclusion", "3", "--witnessed")
    assert proved.returncode == 0, proved.stderr
    doc = json.loads(proved.stdout)
    note = doc["checkpoint"]
    # The proof is against the witnessed checkpoint (before the 5 later events), cosigned.
    with AuditLog.open(data, create=False) as alog:
        assert note_size(note) == alog.size - 5
    assert check_cosigned(note, [w.vkey for w in ws]).keys() == {w.name for w in ws}
    proof = tmp_path / "proof.json"
    proof.write_text(proved.stdout)
    # The auditor's own machine: the real command, no data directory.
    checked = run(tmp_path / "nowhere", "verify-proof", str(proof), "--vkey", vkey,
                  "--witness-policy", str(policy))
    assert checked.returncode == 0, (checked.stdout, checked.stderr)
    assert "OK: entry 3" in checked.stdout
    assert "witnessed" in checked.stdout
    assert "NOT" not in checked.stdout

    # A stricter policy naming a witness that did not cosign: not met, exit 1.
    third = WitnessState(tmp_path / "w3").init("example.org/aw-absent").format()
    strict = tmp_path / "strict.txt"
    strict.write_text(policy.read_text().replace("quorum 2", f"witness {third}\nquorum 3"))
    res = cli("verify-proof", proof, "--vkey", vkey, "--witness-policy", strict)
    assert res.returncode == 1, (res.stdout, res.stderr)
    assert "NOT witnessed" in res.stdout
    assert "example.org/aw-absent" in res.stdout

    # Cosignature lines removed: not met. One altered: tampering, exit 1.
    body, lines = split_note(note)
    bare = dict(doc, checkpoint=body + "\n" + lines[0] + "\n")
    (tmp_path / "bare.json").write_text(json.dumps(bare))
    res = cli("verify-proof", tmp_path / "bare.json", "--vkey", vkey, "--witness-policy",
              policy)
    assert res.returncode == 1, (res.stdout, res.stderr)
    assert "NOT witnessed" in res.stdout
    name, data_b64 = lines[1].removeprefix("\u2014 ").split(" ")
    raw = bytearray(base64.b64decode(data_b64))
    raw[20] ^= 1
    forged_line = f"\u2014 {name} {base64.b64encode(bytes(raw)).decode()}"
    forged = dict(doc, checkpoint=note.replace(lines[1], forged_line))
    (tmp_path / "forged.json").write_text(json.dumps(forged))
    res = cli("verify-proof", tmp_path / "forged.json", "--vkey", vkey, "--witness-policy",
              policy)
    assert res.returncode == 1, (res.stdout, res.stderr)
    assert "witnessed" not in res.stdout.replace("NOT witnessed", "")


def test_witnessed_proofs_name_what_is_not_yet_witnessed(
        tmp_path: Path, witnessed: tuple[Path, list[ThreadWitness], str]) -> None:
    data, _, vkey = witnessed
    with AuditLog.open(data, create=False) as alog:
        late = alog.size - 1
    res = cli("--data", data, "prove", "inclusion", str(late), "--witnessed")
    assert res.returncode != 0
    assert "not covered yet" in res.stderr
    bad = tmp_path / "bad-policy.txt"
    bad.write_text("witness not-a-key\nquorum 1\n")
    proof = tmp_path / "proof.json"
    proved = cli("--data", data, "prove", "inclusion", "0", "--witnessed")
    assert proved.returncode == 0, proved.stderr
    proof.write_text(proved.stdout)
    res = cli("verify-proof", proof, "--vkey", vkey, "--witness-policy", bad)
    assert res.returncode == 2, (res.stdout, res.stderr)
    assert "--witness-policy" in res.stderr
    assert "line 1" in res.stderr


def test_a_witnessed_tlog_proof_carries_the_cosignatures(
        tmp_path: Path, witnessed: tuple[Path, list[ThreadWitness], str]) -> None:
    """``prove inclusion --witnessed --format tlog-proof``: the C2SP receipt's checkpoint is
    the witnessed one with its cosignature lines; ``verify-proof`` checks it with the entry's
    bytes and the auditor's policy."""
    data, ws, vkey = witnessed
    policy = tmp_path / "policy.txt"
    policy.write_text(cli("--data", data, "witnesses", "list", "--policy").stdout)
    proved = cli("--data", data, "prove", "inclusion", "3", "--witnessed",
                 "--format", "tlog-proof")
    assert proved.returncode == 0, proved.stderr
    head, _, note = proved.stdout.partition("\n\n")
    assert head.split("\n")[:2] == ["c2sp.org/tlog-proof@v1", "index 3"]
    with AuditLog.open(data, create=False) as alog:
        assert note_size(note) == alog.size - 5  # the witnessed size, not the latest
    assert check_cosigned(note, [w.vkey for w in ws]).keys() == {w.name for w in ws}
    receipt = tmp_path / "receipt.tlog"
    receipt.write_text(proved.stdout)
    entry = tmp_path / "entry.json"
    listed = cli("--data", data, "entries", "--start", "3", "--end", "4")
    assert listed.returncode == 0, listed.stderr
    entry.write_text(listed.stdout)
    checked = run(tmp_path / "nowhere", "verify-proof", str(receipt), "--vkey", vkey,
                  "--entry", str(entry), "--witness-policy", str(policy))
    assert checked.returncode == 0, (checked.stdout, checked.stderr)
    assert "OK: entry 3" in checked.stdout
    assert "NOT" not in checked.stdout
    # A tlog-proof proves bytes: without --entry it is a usage error.
    res = cli("verify-proof", receipt, "--vkey", vkey)
    assert res.returncode == 2, (res.stdout, res.stderr)
    assert "--entry" in res.stderr
    # Another entry's bytes: not verified.
    other = json.loads(listed.stdout)
    other["leaf"] = base64.b64encode(b"{}").decode()
    entry.write_text(json.dumps(other) + "\n")
    res = cli("verify-proof", receipt, "--vkey", vkey, "--entry", entry)
    assert res.returncode != 0
    assert "OK" not in res.stdout
    # Cosignatures stripped: the proof holds, the policy is not met.
    entry.write_text(listed.stdout)
    body, lines = split_note(note)
    receipt.write_text(head + "\n\n" + body + "\n" + lines[0] + "\n")
    res = cli("verify-proof", receipt, "--vkey", vkey, "--entry", entry,
              "--witness-policy", policy)
    assert res.returncode == 1, (res.stdout, res.stderr)
    assert "NOT witnessed" in res.stdout


def test_verify_proof_reads_tlog_proofs_strictly(
        tmp_path: Path, witnessed: tuple[Path, list[ThreadWitness], str]) -> None:
    """Another log's key: NOT VERIFIED (exit 3), as for JSON proofs. A byte-order mark is
    read past; an oversized receipt or a non-integer entry index is refused, not guessed."""
    data, _, vkey = witnessed
    proved = cli("--data", data, "prove", "inclusion", "2", "--format", "tlog-proof")
    assert proved.returncode == 0, proved.stderr
    receipt, entry = tmp_path / "r.tlog", tmp_path / "e.json"
    receipt.write_text("\ufeff" + proved.stdout)
    listed = cli("--data", data, "entries", "--start", "2", "--end", "3").stdout
    entry.write_text(listed)
    ok = cli("verify-proof", receipt, "--vkey", vkey, "--entry", entry)
    assert ok.returncode == 0, (ok.stdout, ok.stderr)
    other = AuditLog.open(tmp_path / "other", origin="example.org/other", encryption=False)
    other_vkey = other.vkey()
    other.close()
    res = cli("verify-proof", receipt, "--vkey", other_vkey, "--entry", entry)
    assert res.returncode == 3, (res.stdout, res.stderr)
    assert "NOT VERIFIED" in res.stdout + res.stderr
    doc = json.loads(listed)
    entry.write_text(json.dumps({**doc, "index": float(doc["index"])}) + "\n")
    res = cli("verify-proof", receipt, "--vkey", vkey, "--entry", entry)
    assert res.returncode == 2, (res.stdout, res.stderr)
    assert "index is not an integer" in res.stderr
    entry.write_text(listed)
    head, _, note = proved.stdout.partition("\n\n")
    receipt.write_text(head + "\n" + "\n".join(["A" * 43 + "="] * 65) + "\n\n" + note)
    res = cli("verify-proof", receipt, "--vkey", vkey, "--entry", entry)
    assert res.returncode == 1, (res.stdout, res.stderr)
    assert "at most 64" in res.stdout + res.stderr
    receipt.write_text(proved.stdout + "x" * (64 * 1024))
    res = cli("verify-proof", receipt, "--vkey", vkey, "--entry", entry)
    assert res.returncode == 1, (res.stdout, res.stderr)
    assert "64 KiB" in res.stdout + res.stderr
