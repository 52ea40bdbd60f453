"""``sealtrail verify --witness-policy``: the log's kept witnessed checkpoint (or one given)
must carry the quorum's cosignatures and match the tree; what is past it is reported."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from tests.clirun import sealtrail
from tests.witness.test_witness import _serving

from sealtrail.core.cosignature import CosignerKey
from sealtrail.log import witnesses
from sealtrail.log.auditlog import AuditLog
from sealtrail.log.witness import WitnessState
from sealtrail.server.witness_app import create_witness_app

ACTOR = {"id": "test", "type": "user"}
EVENT = {"actor": {"id": "u"}, "action": "doc.read", "outcome": "success"}


@pytest.fixture
def witnessed(tmp_path: Path) -> tuple[Path, CosignerKey]:
    """A log of 5 events witnessed by one witness, then 2 more not yet witnessed."""
    state = WitnessState(tmp_path / "w")
    key = state.init("example.org/w")
    data = tmp_path / "data"
    with _serving(create_witness_app(state, clock=lambda: datetime.now(UTC))) as url, \
            AuditLog.open(data, encryption=False) as alog, httpx.Client(timeout=5) as client:
        alog.append_many([EVENT] * 5)
        state.add_log(alog.vkey())
        witnesses.add(alog, url, key.format(), actor=ACTOR)
        result = witnesses.run_round(alog, witnesses.load(alog), datetime.now(UTC),
                                     witnesses.httpx_post(client))
        assert result.met, result.problems
        alog.append_many([EVENT] * 2)
    return data, key


def policy_file(tmp_path: Path, *keys: CosignerKey, quorum: int | None = None) -> Path:
    path = tmp_path / "policy.txt"
    lines = [f"witness {k.format()}" for k in keys]
    if quorum is not None:
        lines.append(f"quorum {quorum}")
    path.write_text("\n".join(lines) + "\n")
    return path


def test_witnessed_up_to_the_kept_checkpoint(witnessed: tuple[Path, CosignerKey],
                                            tmp_path: Path) -> None:
    data, key = witnessed
    ran = sealtrail("--data", str(data), "verify", "--witness-policy",
                    str(policy_file(tmp_path, key)), "--json", text=True)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    doc = json.loads(ran.stdout)
    # 5 events + the witnesses.set entry were witnessed; 2 events came after.
    assert doc["witnessed"]["met"] is True
    assert doc["witnessed"]["size"] == 6
    assert doc["witnessed"]["unwitnessed"] == 2
    assert list(doc["witnessed"]["cosigned"]) == ["example.org/w"]
    text = sealtrail("--data", str(data), "verify", "--witness-policy",
                     str(policy_file(tmp_path, key)), text=True)
    assert "witnessed: cosigned by example.org/w (1 of quorum 1)" in text.stdout
    assert "entries 6..7 are not under a witnessed checkpoint yet" in text.stdout


def test_a_policy_of_other_witnesses_is_not_met(witnessed: tuple[Path, CosignerKey],
                                               tmp_path: Path) -> None:
    data, _ = witnessed
    other = WitnessState(tmp_path / "other").init("example.org/other")
    ran = sealtrail("--data", str(data), "verify", "--witness-policy",
                    str(policy_file(tmp_path, other)), text=True)
    assert ran.returncode == 1
    assert "NOT witnessed" in ran.stdout
    assert "missing example.org/other" in ran.stdout


def test_a_forged_cosignature_in_the_kept_state_is_tampering(
        witnessed: tuple[Path, CosignerKey], tmp_path: Path) -> None:
    """Flipping a byte of the kept cosignature line: a trusted witness's line that does not
    verify fails verification (exit 1), it is not read as 'not cosigned'."""
    data, key = witnessed
    db = sqlite3.connect(data / "default" / "log.db")
    try:
        doc = json.loads(db.execute("SELECT value FROM meta WHERE key = 'witnessing'")
                         .fetchone()[0])
        note = doc["witnessed_note"]
        head, _, sig = note.rstrip("\n").rpartition(" ")
        doc["witnessed_note"] = f"{head} {sig[:12]}{'A' if sig[12] != 'A' else 'B'}{sig[13:]}\n"
        db.execute("UPDATE meta SET value = ? WHERE key = 'witnessing'", (json.dumps(doc),))
        db.commit()
    finally:
        db.close()
    ran = sealtrail("--data", str(data), "verify", "--witness-policy",
                    str(policy_file(tmp_path, key)), text=True)
    assert ran.returncode == 1
    assert "does not verify" in ran.stdout


def test_a_checkpoint_given_is_the_one_checked(witnessed: tuple[Path, CosignerKey],
                                              tmp_path: Path) -> None:
    """--checkpoint (a note an auditor fetched) is checked instead of the kept one: cosigned,
    it is witnessed; the log's plain checkpoint, with no cosignature, is not (exit 1)."""
    data, key = witnessed
    with AuditLog.open(data, create=False) as alog:
        cosigned = witnesses.State.load(alog).witnessed_note
        plain = alog.checkpoint().note
    given = tmp_path / "given.note"
    given.write_text(cosigned)
    policy = str(policy_file(tmp_path, key))
    ran = sealtrail("--data", str(data), "verify", "--checkpoint", str(given),
                    "--witness-policy", policy, text=True)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert "is witnessed" in ran.stdout
    given.write_text(plain)
    ran = sealtrail("--data", str(data), "verify", "--checkpoint", str(given),
                    "--witness-policy", policy, text=True)
    assert ran.returncode == 1
    assert "NOT witnessed" in ran.stdout


def test_a_bad_policy_file_is_a_usage_error(witnessed: tuple[Path, CosignerKey],
                                           tmp_path: Path) -> None:
    data, key = witnessed
    bad = tmp_path / "bad.txt"
    bad.write_text(f"witness {key.format()}\nquorum 2\n")
    ran = sealtrail("--data", str(data), "verify", "--witness-policy", str(bad), text=True)
    assert ran.returncode == 2
    assert "--witness-policy" in ran.stderr
    assert "quorum" in ran.stderr
    missing = sealtrail("--data", str(data), "verify", "--witness-policy",
                        str(tmp_path / "nope.txt"), text=True)
    assert missing.returncode == 2
    assert "no such file" in missing.stderr
