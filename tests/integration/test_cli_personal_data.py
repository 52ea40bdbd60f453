"""The CLI's personal-data commands: the app in-process, and the real console script.

Keys come from the environment (the suite's raw key, or, where a test is about the passphrase,
``SEALTRAIL_PASSPHRASE`` from the ``passphrase_env`` fixture of ``tests/conftest.py``) or a
``--passphrase-file``; a prompt cannot be answered here, and none is attempted without a
terminal. Commands run in-process (Typer's runner) to keep the suite fast: each process would
pay the interpreter start and the scrypt stretching again. The test of a process started with
no key at all uses ``run_process``.
"""

from __future__ import annotations

import base64
import json
import os
import re
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from tests.clirun import Ran, sealtrail

SEALTRAIL = [sys.executable, "-m", "sealtrail.cli"]
ALICE = "alice@example.com"
BOB = "bob@example.com"
KEY_BLOB = re.compile(rb"[A-Za-z0-9+/_-]{40,}={0,2}")
ENV_KEYS = ("SEALTRAIL_PASSPHRASE", "SEALTRAIL_KEK")


def _argv(data: Path, args: tuple[str, ...], passphrase_file: Path | None) -> list[str]:
    pre = ["--passphrase-file", str(passphrase_file)] if passphrase_file is not None else []
    return ["--data", str(data), *pre, *args]


def run(data: Path, *args: str, stdin: bytes | None = None, keyless: bool = False,
        passphrase_file: Path | None = None) -> Ran[bytes]:
    """Run ``sealtrail --data DATA [--passphrase-file F] ARGS`` in-process.

    ``keyless`` removes the key variables from the environment for the run.
    """
    env = dict.fromkeys(ENV_KEYS) if keyless else {}
    return sealtrail(*_argv(data, args, passphrase_file), stdin=stdin, env=env)


def run_process(data: Path, *args: str, stdin: bytes | None = None, keyless: bool = False,
                passphrase_file: Path | None = None) -> Ran[bytes]:
    """The same through the real console script in a subprocess."""
    env = {**os.environ, "COLUMNS": "200"}
    if keyless:
        for key in ENV_KEYS:
            env.pop(key, None)
    argv = [*SEALTRAIL, *_argv(data, args, passphrase_file)]
    res = subprocess.run(argv, input=stdin, capture_output=True, timeout=120, check=False,
                         env=env)
    return Ran(argv, res.returncode, res.stdout, res.stderr)


def jsonl(out: bytes) -> list[dict[str, Any]]:
    """The JSON objects of a JSON Lines output."""
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def lines(*events: dict[str, Any]) -> bytes:
    """Events as JSON Lines input."""
    return b"".join(json.dumps(ev).encode() + b"\n" for ev in events)


def person(actor: str, name: str, ip: str, subjects: list[str] | None = None
           ) -> dict[str, Any]:
    """An event with personal fields (sealed by the default policy)."""
    ev: dict[str, Any] = {"actor": {"id": actor, "name": name, "ip": ip},
                          "action": "customer.read", "outcome": "success",
                          "category": "data_access",
                          "target": {"type": "customer", "id": f"c-{actor}"},
                          "metadata": {"note": f"note about {name}"}}
    if subjects is not None:
        ev["subjects"] = subjects
    return ev


SAMPLE = lines(person("alice", "Alice Example", "198.51.100.7", [ALICE]),
               person("bob", "Bob Example", "198.51.100.8", [BOB]),
               person("alice", "Alice Again", "198.51.100.9"))


@pytest.fixture
def data(tmp_path: Path) -> Path:
    """A data directory with an initialised, encrypted default log holding SAMPLE."""
    d = tmp_path / "data"
    res = run(d, "init")
    assert res.returncode == 0, res.stderr
    res = run(d, "append", stdin=SAMPLE)
    assert res.returncode == 0, res.stderr
    return d


def test_init_reports_encryption_and_writes_a_private_keyring(tmp_path: Path) -> None:
    """init says the log is encrypted and writes keyring.json 0600; --no-encryption does not."""
    res = run(tmp_path / "d", "init")
    assert res.returncode == 0, res.stderr
    first = res.stdout.decode().splitlines()[0]
    assert ", encrypted," in first
    assert "redaction mask" in first
    keyring = tmp_path / "d" / "default" / "keyring.json"
    assert stat.S_IMODE(keyring.stat().st_mode) == 0o600
    plain = run(tmp_path / "d", "--log", "plain", "init", "--no-encryption", keyless=True)
    assert plain.returncode == 0, plain.stderr
    assert "not encrypted" in plain.stdout.decode()
    assert not (tmp_path / "d" / "plain" / "keyring.json").exists()


def test_init_without_any_key_exits_2_and_creates_nothing(tmp_path: Path) -> None:
    """With no passphrase anywhere and no terminal, init exits 2 naming SEALTRAIL_PASSPHRASE."""
    res = run_process(tmp_path / "d", "init", keyless=True)
    assert res.returncode == 2
    assert b"SEALTRAIL_PASSPHRASE" in res.stderr
    assert not (tmp_path / "d" / "default" / "log.db").exists()


def test_query_and_entries_show_opened_fields(data: Path) -> None:
    """query by actor and by ip (blind index) and entries show the decrypted fields."""
    res = run(data, "query", "--actor", "alice", "--format", "jsonl")
    assert res.returncode == 0, res.stderr
    rows = jsonl(res.stdout)
    assert [r["index"] for r in rows] == [2, 0]
    assert [r["event"]["actor"]["name"] for r in rows] == ["Alice Again", "Alice Example"]
    assert rows[1]["event"]["subjects"] == [ALICE]
    assert rows[1]["event"]["metadata"] == {"note": "note about Alice Example"}
    assert all("sealed" not in r["event"] for r in rows)
    by_ip = jsonl(run(data, "query", "--ip", "198.51.100.8", "--format", "jsonl").stdout)
    assert [(r["index"], r["event"]["actor"]["id"]) for r in by_ip] == [(1, "bob")]
    assert jsonl(run(data, "query", "--ip", "198.51.100.99", "--format", "jsonl").stdout) == []
    out = run(data, "entries", "--start", "0", "--end", "3")
    assert out.returncode == 0, out.stderr
    ents = jsonl(out.stdout)
    assert [e["event"]["actor"].get("ip") for e in ents] == [
        "198.51.100.7", "198.51.100.8", "198.51.100.9"]
    assert b"Alice Example" not in b"".join(
        base64.b64decode(e["leaf"]) for e in ents)


def test_locked_keyring_entries_shows_sealed_fields(data: Path) -> None:
    """Without any key, entries still lists events (fields sealed) and exits 0."""
    res = run(data, "entries", keyless=True)
    assert res.returncode == 0, res.stderr
    ents = jsonl(res.stdout)
    assert len(ents) >= 3
    assert "actor.name" in ents[0]["event"]["sealed"]["fields"]
    assert b"Alice Example" not in res.stdout


def test_locked_keyring_query_notes_the_lock(data: Path) -> None:
    """Without any key, query scans, says the keyring is locked and exits 0."""
    res = run(data, "query", "--actor", "alice", "--format", "jsonl", keyless=True)
    assert res.returncode == 0, res.stderr
    assert b"locked" in res.stderr
    assert [r["index"] for r in jsonl(res.stdout)] == [2, 0]


def test_locked_keyring_refuses_appends_with_exit_2(data: Path) -> None:
    """Without any key, append exits 2 with a message about the keyring; nothing is stored."""
    before = run(data, "checkpoint").stdout
    res = run(data, "append", stdin=SAMPLE, keyless=True)
    assert res.returncode == 2
    assert b"keyring" in res.stderr
    assert b"SEALTRAIL_PASSPHRASE" in res.stderr
    assert run(data, "checkpoint").stdout == before


@pytest.mark.usefixtures("passphrase_env")  # the passphrase in the environment is a wrong one
def test_passphrase_file_opens_the_log_and_a_wrong_one_exits_2(tmp_path: Path) -> None:
    """--passphrase-file creates and opens the keyring; a wrong passphrase is exit 2, not a lock."""
    good, bad = tmp_path / "good", tmp_path / "bad"
    good.write_text("correct horse battery staple\n")
    bad.write_text("incorrect horse battery staple\n")
    d = tmp_path / "d"
    assert run(d, "init", keyless=True, passphrase_file=good).returncode == 0
    res = run(d, "append", stdin=SAMPLE, keyless=True, passphrase_file=good)
    assert res.returncode == 0, res.stderr
    out = run(d, "entries", "--end", "1", keyless=True, passphrase_file=good)
    assert out.returncode == 0, out.stderr
    assert jsonl(out.stdout)[0]["event"]["actor"]["name"] == "Alice Example"
    for args in (("append",), ("entries",), ("query", "--actor", "alice")):
        wrong = run(d, *args, stdin=SAMPLE, keyless=True, passphrase_file=bad)
        assert wrong.returncode == 2, args
        assert b"passphrase" in wrong.stderr
        assert b"Alice" not in wrong.stdout
    # The conftest passphrase in the environment is not this log's either.
    assert run(d, "entries").returncode == 2
    assert run(d, "append", stdin=SAMPLE, passphrase_file=tmp_path / "nope").returncode == 2


def test_hold_erase_export_flow_and_exit_codes(data: Path) -> None:
    """hold blocks erase, release allows it; export before and after; verify passes after."""
    export = run(data, "subject-export", ALICE)
    assert export.returncode == 0, export.stderr
    (row,) = jsonl(export.stdout)
    assert (row["index"], row["action"]) == (0, "customer.read")
    assert row["event"]["actor"]["name"] == "Alice Example"

    held = run(data, "hold", "add", "--subject", ALICE, "--reason", "litigation 17")
    assert held.returncode == 0, held.stderr
    assert jsonl(held.stdout)[0]["held"] is True
    listed = run(data, "hold", "list")
    assert listed.returncode == 0, listed.stderr
    (hold,) = jsonl(listed.stdout)
    assert hold["hold"] == 1
    assert hold["subject_ref"].startswith("ref:")
    assert ALICE.encode() not in listed.stdout

    refused = run(data, "erase", "--subject", ALICE, "--reason", "request 4")
    assert refused.returncode == 2  # refused by policy: nothing stored, like bad input
    assert b"hold #1" in refused.stderr

    released = run(data, "hold", "release", "--subject", ALICE, "--reason", "case closed")
    assert released.returncode == 0, released.stderr
    assert jsonl(run(data, "hold", "list").stdout) == []
    assert len(jsonl(run(data, "hold", "list", "--all").stdout)) == 1
    assert run(data, "hold", "release", "--subject", ALICE, "--reason", "again").returncode == 2

    erased = run(data, "erase", "--subject", ALICE, "--reason", "request 4")
    assert erased.returncode == 0, erased.stderr
    assert jsonl(erased.stdout)[0]["erased"] is True
    assert run(data, "erase", "--subject", ALICE, "--reason", "request 4").returncode == 2
    assert run(data, "erase", "--subject", "never@example.com", "--reason", "x").returncode == 2

    after = run(data, "subject-export", ALICE)
    assert after.returncode == 0, after.stderr
    assert jsonl(after.stdout) == []
    ents = jsonl(run(data, "entries", "--end", "3").stdout)
    assert "actor.name" in ents[0]["event"]["erased"]
    assert ents[1]["event"]["actor"]["name"] == "Bob Example"
    ok = run(data, "verify")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    actions = [e["event"]["action"] for e in jsonl(run(data, "entries").stdout)]
    for action in ("subject.hold.add", "subject.hold.release", "subject.erase"):
        assert actions.count(action) == 1


def test_erasure_leaves_the_subject_id_in_no_opened_event(data: Path) -> None:
    """After erase, no event (the CLI's own query records included) still names the subject."""
    assert run(data, "query", "--subject", ALICE, "--format", "jsonl").returncode == 0
    assert run(data, "subject-export", ALICE).returncode == 0
    res = run(data, "erase", "--subject", ALICE, "--reason", "request 5")
    assert res.returncode == 0, res.stderr
    ents = jsonl(run(data, "entries").stdout)
    naming = [(e["index"], e["event"]["action"]) for e in ents if ALICE in json.dumps(e["event"])]
    assert naming == []


@pytest.mark.usefixtures("passphrase_env")  # the old passphrase stays in the environment
def test_keys_rotate_and_info_show_no_key_material(data: Path, tmp_path: Path) -> None:
    """keys rotate starts d2 and can rewrap; keys info lists ids only; no key text is printed."""
    rot = run(data, "keys", "rotate")
    assert rot.returncode == 0, rot.stderr
    assert jsonl(rot.stdout) == [{"active": "d2", "rewrapped": False}]
    info = run(data, "keys", "info")
    assert info.returncode == 0, info.stderr
    items = jsonl(info.stdout)
    assert sorted(k["id"] for k in items) == ["b1", "d1", "d2", "r1", "w1"]
    assert [k["id"] for k in items if k["active"]] == ["d2"]
    for out in (rot, info):
        assert not KEY_BLOB.search(out.stdout + out.stderr)
    new = tmp_path / "new-pass"
    new.write_text("the new keyring passphrase\n")
    rewrap = run(data, "keys", "rotate", "--new-passphrase-file", str(new))
    assert rewrap.returncode == 0, rewrap.stderr
    assert jsonl(rewrap.stdout) == [{"active": "d3", "rewrapped": True}]
    assert not KEY_BLOB.search(rewrap.stdout + rewrap.stderr)
    assert run(data, "entries").returncode == 2  # the old passphrase (env) no longer opens it
    out = run(data, "entries", "--end", "3", passphrase_file=new)
    assert out.returncode == 0, out.stderr
    assert jsonl(out.stdout)[0]["event"]["actor"]["name"] == "Alice Example"


def test_redact_test_masks_a_card_number_and_stores_nothing(data: Path) -> None:
    """redact-test shows [redacted:card] for a card number and leaves the log unchanged."""
    before = run(data, "checkpoint").stdout
    ev = {"actor": {"id": "u1"}, "action": "payment.create", "outcome": "failure",
          "metadata": {"text": "card 4111 1111 1111 1111 was declined"}}
    res = run(data, "redact-test", stdin=lines(ev))
    assert res.returncode == 0, res.stderr
    (out,) = jsonl(res.stdout)
    assert "[redacted:card]" in json.dumps(out["event"])
    assert b"4111" not in res.stdout
    assert {"field": "metadata.text", "kind": "card"} in out["redacted"]
    assert run(data, "checkpoint").stdout == before
