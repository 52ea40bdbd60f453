"""Issue 12, the first hour with the CLI: wrong answers and unclear messages, each reproduced
through the CLI's entry point (in-process, ``tests/clirun.py``) and shown fixed; the progress bars
on a terminal through the real command in a subprocess with a pseudo-terminal."""

from __future__ import annotations

import json
import os
import pty
import socket
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from tests.clirun import Ran, sealtrail

from sealtrail.core.note import Signer

SEALTRAIL = [sys.executable, "-m", "sealtrail.cli"]
PASS = "first hour passphrase"


def run(data: Path, *args: str, stdin: bytes | None = None, passphrase: bool = True,
        env: dict[str, str] | None = None) -> Ran[bytes]:
    """``sealtrail --data DATA ARGS`` in-process; the passphrase (and no other key) in the
    environment unless told not."""
    keys: dict[str, str | None] = {"SEALTRAIL_PASSPHRASE": PASS if passphrase else None,
                                   "SEALTRAIL_KEK": None}
    return sealtrail("--data", data, *args, stdin=stdin, env={**keys, **(env or {})})


def text(res: Ran[bytes]) -> tuple[str, str]:
    """Standard output and standard error as text."""
    return res.stdout.decode(), res.stderr.decode()


EVENTS = b"".join(json.dumps({
    "actor": {"id": f"user-{i}", "ip": f"192.0.2.{i + 1}"}, "action": "invoice.read",
    "outcome": "success", "category": "data_access", "time": f"2026-10-0{i + 1}T12:00:00Z",
    "target": {"id": f"INV-{i}"}, "subjects": [f"patient-{i}"]}).encode() + b"\n"
    for i in range(3))


@pytest.fixture
def data(tmp_path: Path) -> Path:
    """An encrypted log with three events."""
    d = tmp_path / "data"
    assert run(d, "init").returncode == 0
    res = run(d, "append", stdin=EVENTS)
    assert res.returncode == 0, res.stderr
    return d


def vkey_of(data: Path) -> str:
    """The log's stored verifier key."""
    return (data / "default" / "verifier.vkey").read_text().strip()


# -- 1. key arguments ---------------------------------------------------------------------

def test_verify_key_arguments_one_rule(data: Path, tmp_path: Path) -> None:
    """--vkey takes key text or a file; garbage and missing files are usage errors naming
    the option; a key that verifies nothing in the log is NOT VERIFIED (exit 3, naming both
    readings: another log's key, or a replaced log), never TAMPERED and never "intact"."""
    key = vkey_of(data)
    key_file = tmp_path / "trusted.vkey"
    key_file.write_text(key + "\n")
    for value in (key, str(key_file), f"@{key_file}"):
        res = run(data, "verify", "--vkey", value)
        assert res.returncode == 0, (value, text(res))
    res = run(data, "verify", "--vkey", "hello")
    out, errs = text(res)
    assert res.returncode == 2
    assert "--vkey" in errs
    assert "TAMPERED" not in out
    res = run(data, "verify", "--vkey", str(tmp_path / "missing.vkey"))
    assert res.returncode == 2
    assert "no such file" in text(res)[1]
    res = run(data, "verify", "--vkey", f"@{tmp_path / 'missing.vkey'}")
    assert res.returncode == 2
    assert "no such file" in text(res)[1]
    other = Signer.from_seed("example.com/other-log", b"\x01" * 32).verifier().format()
    res = run(data, "verify", "--vkey", other)
    out, errs = text(res)
    assert res.returncode == 3, (out, errs)
    assert "TAMPERED" not in out
    assert out.startswith("NOT VERIFIED")
    assert "example.com/other-log" in out
    assert "sealtrail/default" in out
    assert "another log's key" in out
    assert "tampering" in out


def test_an_edited_head_origin_never_turns_tampering_into_a_usage_error(data: Path) -> None:
    """Review finding: the head's origin line is the attacker's to edit; checked with the
    right key the result must still be a failure (non-zero, never 0 or 2)."""
    right = vkey_of(data)
    con = sqlite3.connect(data / "default" / "log.db")
    con.execute("UPDATE state SET checkpoint = replace(checkpoint, 'sealtrail/default\n', "
                "'sealtrail/other\n')")
    con.commit()
    con.close()
    res = run(data, "verify", "--vkey", right)
    assert res.returncode in (1, 3), text(res)
    assert "OK" not in text(res)[0]


def test_resigned_log_checked_with_the_right_key_is_still_tampering(data: Path) -> None:
    """Checkpoints re-signed by an impostor (stored key replaced too): the right key finds
    its signature in the log's history, so this is tampering (exit 1), not a mismatch."""
    right = vkey_of(data)
    db = data / "default" / "log.db"
    impostor = Signer.from_seed("sealtrail/default", b"\x02" * 32)
    con = sqlite3.connect(db)
    (note,) = con.execute("SELECT checkpoint FROM state").fetchone()
    body = note[: note.rfind("\n\n") + 1]
    con.execute("UPDATE state SET checkpoint = ?", (impostor.sign(body),))
    con.commit()
    con.close()
    (data / "default" / "verifier.vkey").write_text(impostor.verifier().format() + "\n")
    res = run(data, "verify", "--vkey", right)
    assert res.returncode == 1, text(res)


def test_verify_bundle_and_verify_proof_take_key_files(data: Path, tmp_path: Path) -> None:
    """verify-bundle and verify-proof take the same key forms as verify."""
    key_file = tmp_path / "trusted.vkey"
    key_file.write_text(vkey_of(data) + "\n")
    bundle = tmp_path / "evidence.zip"
    assert run(data, "export", "--bundle", str(bundle)).returncode == 0
    assert run(data, "verify-bundle", str(bundle), "--vkey", str(key_file)).returncode == 0
    res = run(data, "verify-bundle", str(bundle), "--vkey", "hello")
    assert res.returncode == 2
    assert "--vkey" in text(res)[1]
    proof = tmp_path / "proof.json"
    proof.write_text(run(data, "prove", "inclusion", "1").stdout.decode())
    assert run(data, "verify-proof", str(proof), "--vkey", str(key_file)).returncode == 0
    other = Signer.from_seed("example.com/other-log", b"\x01" * 32).verifier().format()
    for cmd in (["verify-proof", str(proof)], ["verify-bundle", str(bundle)]):
        res = run(data, *cmd, "--vkey", other)
        assert res.returncode == 3, (cmd, text(res))
        assert "another log's key" in text(res)[0]
    # The proof's origin line edited, checked with the right key: a failure, never exit 2.
    doc = json.loads(proof.read_text())
    doc["checkpoint"] = doc["checkpoint"].replace("sealtrail/default\n", "sealtrail/x\n", 1)
    proof.write_text(json.dumps(doc))
    res = run(data, "verify-proof", str(proof), "--vkey", str(key_file))
    assert res.returncode in (1, 3), text(res)
    assert "tampering" in text(res)[0] or "FAILED" in text(res)[0] + text(res)[1]


# -- 2. searches that cannot be answered ----------------------------------------------------

def test_locked_search_by_sealed_field_is_an_error(data: Path) -> None:
    """query --ip / --subject without the passphrase exits 2 saying how to give it."""
    for args in (("--ip", "192.0.2.1"), ("--subject", "patient-1")):
        res = run(data, "query", *args, passphrase=False)
        errs = text(res)[1]
        assert res.returncode == 2, (args, text(res))
        assert "SEALTRAIL_PASSPHRASE" in errs
        assert "--passphrase-file" in errs
    # A filter on clear fields still answers while locked.
    assert run(data, "query", "--actor", "user-1", passphrase=False).returncode == 0
    # With the passphrase the same search answers.
    res = run(data, "query", "--ip", "192.0.2.2", "--format", "jsonl")
    assert res.returncode == 0
    assert [json.loads(x)["index"] for x in res.stdout.splitlines()] == [1]


# -- 3. enum typos --------------------------------------------------------------------------

@pytest.mark.parametrize("cmd", [["query"], ["export", "--format", "jsonl"]])
def test_enum_typos_in_filters_name_the_allowed_values(data: Path, cmd: list[str]) -> None:
    res = run(data, *cmd, "--outcome", "sucess")
    assert res.returncode == 2
    assert "--outcome" in text(res)[1]
    assert "success, failure, denied, error" in text(res)[1]
    res = run(data, *cmd, "--category", "nonsense")
    assert res.returncode == 2
    assert "data_access" in text(res)[1]


def test_event_validation_names_allowed_values_and_says_what_an_action_is(data: Path) -> None:
    bad = b'{"actor": {"id": "a"}, "action": "x", "outcome": "sucess"}\n'
    errs = text(run(data, "append", stdin=bad))[1]
    assert "success, failure, denied, error" in errs
    bad = b'{"actor": {"id": "a"}, "action": "invoice read", "outcome": "success"}\n'
    errs = text(run(data, "append", stdin=bad))[1]
    assert "^[" not in errs
    assert "e.g. invoice.read" in errs


# -- 4. serve -------------------------------------------------------------------------------

def test_serve_refuses_a_directory_with_no_log(tmp_path: Path) -> None:
    res = run(tmp_path / "mistyped", "serve", "--port", "0")
    assert res.returncode == 2
    assert "--create" in text(res)[1]
    assert "mistyped" in text(res)[1]
    assert not (tmp_path / "mistyped").exists()


def test_serve_warns_about_locked_logs(data: Path) -> None:
    """Without a passphrase, serve says which log is locked (before it fails on a port that
    is already taken, so the test need not stop a server)."""
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        res = run(data, "serve", "--port", str(port), "--no-monitor", passphrase=False)
    errs = text(res)[1]
    assert res.returncode != 0
    assert "'default'" in errs
    assert "locked" in errs
    assert "SEALTRAIL_PASSPHRASE" in errs


# -- 5. help, version, completion ---------------------------------------------------------

def test_help_keeps_bracketed_notes_version_and_completion(tmp_path: Path) -> None:
    root = " ".join(text(run(tmp_path, "--help"))[0].split())  # as one line, unwrapped
    assert "[env SEALTRAIL_DATA; default ./sealtrail-data]" in root
    assert "--install-completion" in root
    assert "--show-completion" in root
    sub = " ".join(text(run(tmp_path, "verify", "--help"))[0].split())
    assert "[default: the key stored with the log" in sub
    assert "[env SEALTRAIL_DATA" in sub
    res = run(tmp_path, "--version")
    assert res.returncode == 0
    assert res.stdout.decode().startswith("sealtrail ")


# -- 7. messages ----------------------------------------------------------------------------

def test_rules_messages(tmp_path: Path) -> None:
    ev = tmp_path / "events.jsonl"
    ev.write_text('{"actor": {"id": "a"}, "action": "user.login", "outcome": "failure"}\n')
    res = run(tmp_path, "rules", "test", "--builtin", "--events", str(ev))
    assert res.returncode == 0, text(res)
    res = run(tmp_path, "rules", "test", "nope", "--events", str(ev))
    assert res.returncode == 2
    assert "rules path nope: no such file or directory" in text(res)[1]
    empty = tmp_path / "empty.yml"
    empty.write_text("")
    res = run(tmp_path, "rules", "test", str(empty), "--events", str(ev))
    assert res.returncode == 2
    assert "holds no rule" in text(res)[1]


def test_keys_create_says_an_ingest_key(tmp_path: Path) -> None:
    res = run(tmp_path, "keys", "create", "--role", "ingest")
    assert res.returncode == 0, text(res)
    assert "created an ingest key" in text(res)[1]


# -- 8. dates -------------------------------------------------------------------------------

def test_plain_dates_and_one_pair_of_names(data: Path, tmp_path: Path) -> None:
    """A date is UTC midnight; --since/--until everywhere, --from/--to kept as aliases."""
    res = run(data, "query", "--since", "2026-10-02", "--until", "2026-10-03",
              "--format", "jsonl")
    assert res.returncode == 0, text(res)
    assert [json.loads(x)["index"] for x in res.stdout.splitlines()] == [1]
    for names in (("--since", "--until"), ("--from", "--to")):
        out = tmp_path / f"export{names[0]}.jsonl"
        res = run(data, "export", "--format", "jsonl", "--out", str(out),
                  names[0], "2026-10-02", names[1], "2026-10-03")
        assert res.returncode == 0, text(res)
        assert len(out.read_text().splitlines()) == 1
    res = run(data, "report", "--standard", "pci-dss", "--format", "json", "--since",
              "2026-10-01", "--to", "2026-10-04", "--no-verify")
    assert res.returncode in (0, 1), text(res)
    assert "date" in text(run(data, "query", "--help"))[0]
    assert run(data, "keys", "create", "--role", "reader", "--expires",
               "2099-01-01").returncode == 0


# -- 6. progress ----------------------------------------------------------------------------

def _on_a_terminal(data: Path, *args: str) -> tuple[int, str]:
    """Run with stderr on a pseudo-terminal; the exit code and what the terminal showed."""
    master, slave = pty.openpty()
    env = {**os.environ, "SEALTRAIL_PASSPHRASE": PASS, "COLUMNS": "120", "TERM": "xterm"}
    with subprocess.Popen([*SEALTRAIL, "--data", str(data), *args], stdin=subprocess.DEVNULL,
                          stdout=subprocess.DEVNULL, stderr=slave, env=env) as proc:
        os.close(slave)
        shown = b""
        while True:
            try:
                chunk = os.read(master, 4096)
            except OSError:  # the child closed the terminal
                break
            if not chunk:
                break
            shown += chunk
        code = proc.wait(120)
    os.close(master)
    return code, shown.decode(errors="replace")


@pytest.mark.skipif(sys.platform == "win32", reason="pseudo-terminals")
def test_progress_on_a_terminal_knows_its_total(data: Path, tmp_path: Path) -> None:
    """verify's bar never shows a total of None; export and verify-bundle run with a bar."""
    code, shown = _on_a_terminal(data, "verify")
    assert code == 0, shown
    assert "None" not in shown
    assert "verifying" in shown
    bundle = tmp_path / "b.zip"
    code, shown = _on_a_terminal(data, "export", "--bundle", str(bundle))
    assert code == 0, shown
    code, shown = _on_a_terminal(data, "export", "--format", "jsonl", "--out",
                                 str(tmp_path / "x.jsonl"))
    assert code == 0, shown
    assert "None" not in shown
    assert "exporting" in shown
    code, shown = _on_a_terminal(data, "verify-bundle", str(bundle), "--vkey", vkey_of(data))
    assert code == 0, shown
