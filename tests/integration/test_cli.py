"""The CLI contract of DESIGN.md, exercised through the CLI's entry point in-process
(``tests/clirun.py``); the tour, the README's first command, through the real console script."""

from __future__ import annotations

import base64
import json
import sqlite3
import stat
import struct
import subprocess
import sys
from pathlib import Path

import pytest
from tests.clirun import Ran, sealtrail

from sealtrail.core.checkpoint import open_checkpoint
from sealtrail.core.merkle.hashing import leaf_hash
from sealtrail.core.note import Verifier
from sealtrail.core.proofs import ConsistencyProof, InclusionProof

# The console script this environment installed (pyproject's [project.scripts]).
SEALTRAIL_SCRIPT = str(Path(sys.executable).parent / "sealtrail")


def run(data: Path, *args: str, stdin: bytes | None = None,
        env: dict[str, str] | None = None) -> Ran[bytes]:
    """Run ``sealtrail --data DATA ARGS`` in-process and return what it printed and exited."""
    return sealtrail("--data", data, *args, stdin=stdin, env=env)


def events(n: int, start: int = 0) -> bytes:
    """``n`` JSON Lines events."""
    return b"".join(json.dumps({
        "actor": {"id": f"user-{i % 3}", "ip": "192.0.2.1"}, "action": "doc.read",
        "outcome": "success", "category": "data_access",
        "target": {"type": "doc", "id": f"d{i}"}}).encode() + b"\n"
        for i in range(start, start + n))


@pytest.fixture
def data(tmp_path: Path) -> Path:
    """A data directory with an initialised default log."""
    d = tmp_path / "data"
    res = run(d, "init")
    assert res.returncode == 0, res.stderr
    return d


def test_init_prints_verifier_key_last_and_key_is_private(data: Path) -> None:
    """init ends with the vkey line, writes the signing key 0600, and is idempotent."""
    res = run(data, "init")
    assert res.returncode == 0
    last = res.stdout.decode().strip().splitlines()[-1]
    v = Verifier.parse(last)
    assert v.name == "sealtrail/default"
    assert run(data, "vkey").stdout.decode().strip() == last
    mode = stat.S_IMODE((data / "default" / "signing.key").stat().st_mode)
    assert mode == 0o600


def test_append_then_entries_round_trip(data: Path) -> None:
    """append stores every line and entries gives them back with leaves that hash as proven."""
    res = run(data, "append", stdin=events(10))
    assert res.returncode == 0, res.stderr
    summary = json.loads(res.stdout)
    assert summary["appended"] == 10
    assert summary["tree_size"] == 10
    out = run(data, "entries", "--start", "2", "--end", "5")
    assert out.returncode == 0
    lines = [json.loads(x) for x in out.stdout.splitlines()]
    assert [x["index"] for x in lines] == [2, 3, 4]
    assert lines[0]["event"]["target"]["id"] == "d2"
    proof = InclusionProof.parse(run(data, "prove", "inclusion", "3", "--size", "10").stdout)
    assert proof.leaf_hash == leaf_hash(base64.b64decode(lines[1]["leaf"]))
    proof.verify()


def test_append_file_argument_and_env_data_dir(tmp_path: Path) -> None:
    """SEALTRAIL_DATA chooses the data directory and append reads a file argument."""
    d = tmp_path / "envdata"
    env = {"SEALTRAIL_DATA": str(d)}
    assert sealtrail("init", env=env).returncode == 0
    f = tmp_path / "ev.jsonl"
    f.write_bytes(events(3))
    res = sealtrail("append", f, env=env)
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["appended"] == 3


@pytest.mark.parametrize(("line", "field"), [
    (b'{"actor": {"id": 5}, "action": "a.b", "outcome": "success"}', "actor.id"),
    (b'{"actor": {"id": "x"}, "action": "a.b"}', "outcome"),
    (b'{"actor": {"id": "x"}, "action": "a.b", "outcome": "success", "extra": 1}', "extra"),
    (b'{"actor": {"id": "x"}, "action": "a.b", "outcome": "success"', "event"),
    (b'{"actor": {"id": "\xff"}, "action": "a.b", "outcome": "success"}', "event"),
    (b'{"actor": {"id": "x", "ip": "300.1.1.1"}, "action": "a.b", "outcome": "success"}',
     "actor.ip"),
])
def test_append_is_atomic_and_names_line_and_field(data: Path, line: bytes, field: str) -> None:
    """One bad line exits 2 naming its line number and field, and nothing is stored."""
    before = run(data, "checkpoint").stdout
    res = run(data, "append", stdin=events(2) + line + b"\n" + events(2))
    assert res.returncode == 2
    err = res.stderr.decode()
    assert "line 3" in err
    assert field in err
    assert run(data, "checkpoint").stdout == before


def test_checkpoint_and_proofs_verify_offline(data: Path) -> None:
    """The checkpoint note verifies with the vkey; proofs from the CLI verify against it."""
    run(data, "append", stdin=events(5))
    old_note = run(data, "checkpoint").stdout.decode()
    run(data, "append", stdin=events(20, 5))
    vkey = Verifier.parse(run(data, "vkey").stdout.decode().strip())
    note = run(data, "checkpoint").stdout.decode()
    cp = open_checkpoint(note, vkey)
    assert cp.size == 25
    inc = InclusionProof.parse(run(data, "prove", "inclusion", "7").stdout)
    inc.verify()
    assert inc.root_hash == cp.root
    assert inc.checkpoint == note
    old = open_checkpoint(old_note, vkey)
    cons = ConsistencyProof.parse(run(data, "prove", "consistency", "5", "25").stdout)
    cons.verify()
    assert (cons.first_root, cons.second_root) == (old.root, cp.root)
    bad = run(data, "prove", "inclusion", "99")
    assert bad.returncode == 2
    assert b"index" in bad.stderr


def _flip(db: Path, index: int) -> None:
    con = sqlite3.connect(db)
    start, count, blob = con.execute(
        "SELECT start, count, data FROM chunks WHERE start <= ? ORDER BY start DESC LIMIT 1",
        (index,)).fetchone()
    lens = struct.unpack_from(f"<{count}I", blob)
    pos = 4 * count + sum(lens[: index - start]) + 5
    b = bytearray(blob)
    b[pos] ^= 0x01
    con.execute("UPDATE chunks SET data = ? WHERE start = ?", (bytes(b), start))
    con.commit()
    con.close()


def test_verify_exit_codes(data: Path, tmp_path: Path) -> None:
    """verify exits 0 when intact, 1 naming the index when tampered, 2 on usage errors."""
    run(data, "append", stdin=events(50))
    ok = run(data, "verify")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert b"OK: 50 entries" in ok.stdout
    kept = tmp_path / "kept.note"
    kept.write_bytes(run(data, "checkpoint").stdout)
    js = json.loads(run(data, "verify", "--json", "--checkpoint", str(kept)).stdout)
    assert js["ok"] is True
    assert js["trusted_size"] == 50
    _flip(data / "default" / "log.db", 17)
    bad = run(data, "verify")
    assert bad.returncode == 1
    assert b"changed at index 17" in bad.stdout
    bad_js = json.loads(run(data, "verify", "--json").stdout)
    assert (bad_js["ok"], bad_js["kind"], bad_js["index"]) == (False, "changed", 17)
    assert run(data, "verify", "--checkpoint", str(tmp_path / "nope")).returncode == 2
    assert run(data, "verify", "--log", "Bad Name").returncode == 2


def test_verify_with_another_logs_key_is_not_verified(data: Path, tmp_path: Path) -> None:
    """Another log's key (same default name, another key): NOT VERIFIED (exit 3) naming both
    readings — a key mix-up, or a replaced log — never TAMPERED, never intact."""
    run(data, "append", stdin=events(3))
    other = tmp_path / "other"
    other_key = run(other, "init").stdout.decode().strip().splitlines()[-1]
    res = run(data, "verify", "--vkey", other_key)
    assert res.returncode == 3, res.stdout + res.stderr
    assert b"TAMPERED" not in res.stdout
    assert b"no checkpoint of this log" in res.stdout
    assert b"another log's key" in res.stdout


def test_query_filters_formats_and_audits_itself(data: Path) -> None:
    """query filters and formats results, and records itself as an audit_access event."""
    run(data, "append", stdin=events(9))
    res = run(data, "query", "--actor", "user-1", "--format", "jsonl")
    assert res.returncode == 0, res.stderr
    rows = [json.loads(x) for x in res.stdout.splitlines()]
    assert [r["index"] for r in rows] == [7, 4, 1]  # newest first
    assert all(r["event"]["actor"]["id"] == "user-1" for r in rows)
    last = json.loads(run(data, "entries", "--start", "9", "--end", "10").stdout)
    assert last["event"]["action"] == "audit.search"
    assert last["event"]["category"] == "audit_access"
    assert last["event"]["actor"]["type"] == "os_user"
    assert last["event"]["metadata"] == {"role": "operator", "filter": {"actor": "user-1"},
                                          "results": 3}
    csv_out = run(data, "query", "--action", "doc.*", "--limit", "2", "--oldest-first",
                  "--format", "csv").stdout.decode().splitlines()
    assert csv_out[0].startswith("index,time,actor")
    assert len(csv_out) == 3
    assert run(data, "query", "--format", "xml").returncode == 2
    assert run(data, "query", "--since", "yesterday").returncode == 2


def test_control_characters_cannot_forge_output_lines(data: Path) -> None:
    """CR, LF and ANSI escapes in an event stay data in table, CSV and JSON output."""
    evil = {"actor": {"id": "eve\n2026-01-01 admin user.login success\x1b[31m"},
            "action": "user.login", "outcome": "failure",
            "reason": "x\r\ny\u202e"}
    run(data, "append", stdin=json.dumps(evil).encode() + b"\n")
    table = run(data, "query", "--limit", "1", "--format", "table").stdout.decode()
    assert "\x1b" not in table
    assert "eve\\n2026" in table
    for fmt in ("jsonl", "csv"):
        out = run(data, "query", "--action", "user.login", "--format", fmt).stdout
        body = out.decode().splitlines()
        assert len(body) == (1 if fmt == "jsonl" else 2)
        assert b"\x1b" not in out
        assert "\u202e" not in out.decode()


def test_unknown_command_and_missing_log_are_usage_errors(tmp_path: Path) -> None:
    """Usage errors exit 2; commands other than init do not create a log."""
    assert run(tmp_path / "d", "frobnicate").returncode == 2
    res = run(tmp_path / "d", "checkpoint")
    assert res.returncode == 2
    assert b"sealtrail init" in res.stderr
    assert not (tmp_path / "d" / "default").exists()


def test_tour_runs_and_catches_tampering(tmp_path: Path) -> None:
    """The README's first command (the tour) completes and shows tampering being caught: run
    as the installed console script, the smoke test of the real entry point."""
    res = subprocess.run([SEALTRAIL_SCRIPT, "tour", "--keep", str(tmp_path / "tour")],
                         capture_output=True, timeout=120, check=False)
    assert res.returncode == 0, res.stderr
    out = res.stdout.decode()
    assert "the signed checkpoint agree" in out
    assert "caught: changed at index 2" in out


def test_oversized_line_is_refused_without_storing(data: Path) -> None:
    """A line far over the event size limit (10 MiB) exits 2 naming the line; nothing stored."""
    before = run(data, "checkpoint").stdout
    huge = b'{"actor": {"id": "' + b"x" * (10 << 20) + b'"}}\n'
    res = run(data, "append", stdin=events(1) + huge)
    assert res.returncode == 2
    assert b"line 2" in res.stderr
    assert b"larger than" in res.stderr
    assert run(data, "checkpoint").stdout == before


def test_verify_proof_offline_with_only_the_key(data: Path, tmp_path: Path) -> None:
    """verify-proof checks inclusion (with the entry) and consistency using only the vkey."""
    run(data, "append", stdin=events(4))
    first = tmp_path / "first.note"
    first.write_bytes(run(data, "checkpoint").stdout)
    run(data, "append", stdin=events(9, 4))
    second = tmp_path / "second.note"
    second.write_bytes(run(data, "checkpoint").stdout)
    vkey = run(data, "vkey").stdout.decode().strip()
    away = tmp_path / "nowhere"  # no data directory is needed
    inc = tmp_path / "inc.json"
    inc.write_bytes(run(data, "prove", "inclusion", "6").stdout)
    entry = tmp_path / "entry.jsonl"
    entry.write_bytes(run(data, "entries", "--start", "6", "--end", "7").stdout)
    ok = run(away, "verify-proof", str(inc), "--vkey", vkey, "--entry", str(entry))
    assert ok.returncode == 0, ok.stderr
    assert b"entry 6 is in sealtrail/default at size 13" in ok.stdout
    other = tmp_path / "other.jsonl"
    other.write_bytes(run(data, "entries", "--start", "5", "--end", "6").stdout)
    assert run(away, "verify-proof", str(inc), "--vkey", vkey,
               "--entry", str(other)).returncode == 1
    doc = json.loads(inc.read_text())
    path0 = bytearray(base64.b64decode(doc["audit_path"][0]))
    path0[0] ^= 1
    doc["audit_path"][0] = base64.b64encode(bytes(path0)).decode()
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(doc))
    res = run(away, "verify-proof", str(bad), "--vkey", vkey)
    assert res.returncode == 1
    other_key = run(tmp_path / "k", "init").stdout.decode().strip().splitlines()[-1]
    assert run(away, "verify-proof", str(inc), "--vkey", other_key).returncode == 1
    cons = tmp_path / "cons.json"
    cons.write_bytes(run(data, "prove", "consistency", "4", "13").stdout)
    good = run(away, "verify-proof", str(cons), "--vkey", vkey,
               "--first", str(first), "--second", str(second))
    assert good.returncode == 0, good.stderr
    swapped = run(away, "verify-proof", str(cons), "--vkey", vkey,
                  "--first", str(second), "--second", str(first))
    assert swapped.returncode == 1
    assert run(away, "verify-proof", str(cons), "--vkey", vkey).returncode == 2
