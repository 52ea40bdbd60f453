"""``sealtrail timestamps``: set, show, now, list, verify, remove, against the real responder on
loopback; ``verify`` catches a log rewritten and re-signed by someone holding its keys."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from sealtrail.log.auditlog import AuditLog
from sealtrail.log.timestamping import ACTION_SET, ACTION_STAMP, load_config, set_config
from tests.clirun import sealtrail
from tests.timestamps.tsa import Authority, Responder


def lines(text: str) -> list[dict[str, Any]]:
    """JSON Lines (split on newlines only)."""
    return [json.loads(line) for line in text.split("\n") if line.strip()]


@pytest.fixture
def data(tmp_path: Path) -> Path:
    """A data directory with an encrypted log of five events."""
    d = tmp_path / "data"
    assert sealtrail("--data", d, "init").returncode == 0
    events = "\n".join(json.dumps({"actor": {"id": f"u{i}"}, "action": "doc.read",
                                   "outcome": "success"}) for i in range(5))
    assert sealtrail("--data", d, "append", stdin=events).returncode == 0
    return d


@pytest.fixture
def ca_file(tmp_path: Path, authority: Authority) -> Path:
    path = tmp_path / "tsa-ca.pem"
    path.write_bytes(authority.pem())
    return path


def stamped(data: Path, responder: Responder, ca_file: Path) -> dict[str, Any]:
    """Configure the TSA and stamp once; the ``now`` output."""
    ran = sealtrail("--data", data, "timestamps", "set", responder.url, "--ca-cert", ca_file,
                    "--every", "60", text=True)
    assert ran.returncode == 0, ran.stderr
    now = sealtrail("--data", data, "timestamps", "now", text=True)
    assert now.returncode == 0, now.stderr
    out: dict[str, Any] = json.loads(now.stdout)
    return out


def test_set_show_now_list_verify_remove(data: Path, responder: Responder, ca_file: Path,
                                         authority: Authority) -> None:
    done = stamped(data, responder, ca_file)
    assert done["size"] == 6  # five events and the setting's entry
    assert done["index"] == 6
    shown = json.loads(sealtrail("--data", data, "timestamps", "show", text=True).stdout)
    assert shown["url"] == responder.url
    assert shown["every"] == 60
    assert "sealtrail test TSA root" in shown["anchors"][0]
    listed = lines(sealtrail("--data", data, "timestamps", "list", text=True).stdout)
    assert [(row["index"], row["size"]) for row in listed] == [(6, 6)]
    assert base64.b64decode(listed[0]["token"])[:1] == b"\x30"
    ran = sealtrail("--data", data, "timestamps", "verify", "--ca-cert", ca_file, text=True)
    assert ran.returncode == 0, ran.stderr
    (row,) = lines(ran.stdout)
    assert row["ok"] is True
    assert row["size"] == 6
    assert row["gen_time"] == done["gen_time"]
    assert "1 timestamp(s) verified" in ran.stderr
    removed = sealtrail("--data", data, "timestamps", "remove", text=True)
    assert removed.returncode == 0, removed.stderr
    assert json.loads(sealtrail("--data", data, "timestamps", "show",
                                text=True).stdout) == {"tsa": None}
    again = sealtrail("--data", data, "timestamps", "now", text=True)
    assert again.returncode == 2
    assert "no timestamp authority" in again.stderr
    # The log as a whole still verifies with the new entries in it.
    assert sealtrail("--data", data, "verify").returncode == 0


def test_now_with_the_tsa_down_records_nothing_and_names_it(
        data: Path, responder: Responder, ca_file: Path) -> None:
    ran = sealtrail("--data", data, "timestamps", "set", responder.url, "--ca-cert", ca_file)
    assert ran.returncode == 0
    responder.stop()
    now = sealtrail("--data", data, "timestamps", "now", text=True)
    assert now.returncode == 1
    assert f"TSA {responder.url}: unreachable" in now.stderr
    assert sealtrail("--data", data, "timestamps", "list", text=True).stdout == ""


def test_now_with_a_refusing_tsa_names_the_status(data: Path, responder: Responder,
                                                  ca_file: Path) -> None:
    sealtrail("--data", data, "timestamps", "set", responder.url, "--ca-cert", ca_file)
    responder.mode = "reject"
    now = sealtrail("--data", data, "timestamps", "now", text=True)
    assert now.returncode == 1
    assert "status rejection" in now.stderr


def test_verify_against_another_ca_fails(data: Path, responder: Responder, ca_file: Path,
                                         tmp_path: Path) -> None:
    stamped(data, responder, ca_file)
    other = tmp_path / "other.pem"
    other.write_bytes(Authority.make("an auditor's other CA").pem())
    ran = sealtrail("--data", data, "timestamps", "verify", "--ca-cert", other, text=True)
    assert ran.returncode == 1
    assert "not issued by a trusted CA" in ran.stderr
    assert lines(ran.stdout)[0]["ok"] is False


def test_verify_with_the_auditors_crls(data: Path, responder: Responder, ca_file: Path,
                                       authority: Authority, tmp_path: Path) -> None:
    """``timestamps verify --crl``: a fresh CRL of the CA that does not list the TSA passes;
    one that revoked the TSA for a key compromise fails (exit 1, named); junk is exit 2."""
    stamped(data, responder, ca_file)
    good = tmp_path / "good.crl"
    good.write_bytes(authority.crl().public_bytes(Encoding.DER))
    ran = sealtrail("--data", data, "timestamps", "verify", "--ca-cert", ca_file,
                    "--crl", good, text=True)
    assert ran.returncode == 0, ran.stderr
    revoked = tmp_path / "revoked.crl"
    revoked.write_bytes(authority.crl([(responder.cert.serial_number, datetime.now(UTC),
                                        x509.ReasonFlags.key_compromise)]
                                      ).public_bytes(Encoding.PEM))
    ran = sealtrail("--data", data, "timestamps", "verify", "--ca-cert", ca_file,
                    "--crl", good, "--crl", revoked, text=True)
    assert ran.returncode == 1, ran.stderr
    assert "keyCompromise" in ran.stderr
    assert lines(ran.stdout)[0]["ok"] is False
    junk = tmp_path / "junk.crl"
    junk.write_text("not a crl\n")
    ran = sealtrail("--data", data, "timestamps", "verify", "--ca-cert", ca_file,
                    "--crl", junk, text=True)
    assert ran.returncode == 2
    assert "--crl" in ran.stderr


def test_usage_errors_exit_2(data: Path, tmp_path: Path, responder: Responder) -> None:
    missing = sealtrail("--data", data, "timestamps", "verify", "--ca-cert",
                        tmp_path / "none.pem", text=True)
    assert missing.returncode == 2
    assert "--ca-cert" in missing.stderr
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate\n")
    bad = sealtrail("--data", data, "timestamps", "set", responder.url, "--ca-cert", junk,
                    text=True)
    assert bad.returncode == 2
    assert "--ca-cert" in bad.stderr
    url = sealtrail("--data", data, "timestamps", "set", "gopher://x", "--ca-cert", junk,
                    text=True)
    assert url.returncode == 2


def forge(original: Path, forged: Path, *, fix_root: bool) -> None:
    """What an attacker holding the host and its keys does: build the log again with the same
    signing key and keyring, with entry 2 changed, and copy the timestamp entries over (the
    TSA's token cannot be made anew). ``fix_root``: also rewrite the recorded root to the
    forged tree's, so the entry agrees with the tree and only the token can tell."""
    shutil.copytree(original / "default", forged / "default",
                    ignore=shutil.ignore_patterns("log.db*", "head*"))
    with AuditLog.open(original, "default", create=False) as old:
        kept = [old.entry(i).event() for i in range(old.size)]
        config = load_config(old)
    assert config is not None
    with AuditLog.open(forged, "default") as new:
        for i, ev in enumerate(kept[:5]):
            actor = "mallory" if i == 2 else ev["actor"]["id"]
            new.append({"actor": {"id": actor}, "action": ev["action"],
                        "outcome": ev["outcome"]})
        for ev in kept[5:]:
            if ev["action"] == ACTION_SET:
                set_config(new, config, actor=ev["actor"])
                continue
            kept_fields = ("action", "outcome", "category", "target", "reason", "time")
            copy: dict[str, Any] = {k: ev[k] for k in kept_fields if k in ev}
            copy["actor"] = {"id": ev["actor"]["id"]}
            if fix_root and ev["action"] == ACTION_STAMP:
                size, _, rest = copy["target"]["id"].partition(" ")
                root = base64.b64encode(new.root_at(int(size))).decode()
                copy["target"] = {**copy["target"],
                                  "id": f"{size} {root} {rest.partition(' ')[2]}"}
            new.commit_with(copy, lambda _at: None)


@pytest.mark.parametrize(("fix_root", "message"), [
    (False, "the log was rewritten"),
    (True, "TSTInfo.messageImprint"),
])
def test_verify_catches_a_rewritten_log(data: Path, responder: Responder, ca_file: Path,
                                        tmp_path: Path, fix_root: bool, message: str) -> None:
    stamped(data, responder, ca_file)
    forged = tmp_path / "forged"
    forge(data, forged, fix_root=fix_root)
    # The forgery is internally consistent: the log's own verify passes on it.
    assert sealtrail("--data", forged, "verify").returncode == 0
    ran = sealtrail("--data", forged, "timestamps", "verify", "--ca-cert", ca_file, text=True)
    assert ran.returncode == 1
    assert message in ran.stderr
    assert lines(ran.stdout)[0]["ok"] is False
    # The untouched log still verifies.
    assert sealtrail("--data", data, "timestamps", "verify", "--ca-cert",
                     ca_file).returncode == 0


def test_a_listed_token_verifies_with_openssl(data: Path, responder: Responder, ca_file: Path,
                                              tmp_path: Path) -> None:
    """An independent implementation (OpenSSL's ``ts -verify``) accepts the recorded token
    over the checkpoint body it stamps, and refuses it over another body."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("no openssl binary")
    stamped(data, responder, ca_file)
    (row,) = lines(sealtrail("--data", data, "timestamps", "list", text=True).stdout)
    token = tmp_path / "token.der"
    token.write_bytes(base64.b64decode(row["token"]))
    body = tmp_path / "body.txt"
    body.write_text(f"sealtrail/default\n{row['size']}\n{row['root']}\n")
    other = tmp_path / "other.txt"
    other.write_text(f"sealtrail/default\n{row['size'] + 1}\n{row['root']}\n")

    def check(path: Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run([openssl, "ts", "-verify", "-in", str(token), "-token_in",
                               "-data", str(path), "-CAfile", str(ca_file)],
                              capture_output=True, text=True, check=False)

    good = check(body)
    assert good.returncode == 0, good.stdout + good.stderr
    assert "Verification: OK" in good.stdout
    assert check(other).returncode != 0


def test_verify_needs_no_keyring(data: Path, responder: Responder, ca_file: Path) -> None:
    """An auditor without the log's keys checks the stamps of an encrypted log."""
    stamped(data, responder, ca_file)
    locked = {"SEALTRAIL_KEK": None, "SEALTRAIL_PASSPHRASE": None}
    ran = sealtrail("--data", data, "timestamps", "verify", "--ca-cert", ca_file, env=locked,
                    text=True)
    assert ran.returncode == 0, ran.stderr
    assert lines(ran.stdout)[0]["ok"] is True


def test_verify_with_no_stamps_is_not_a_pass(data: Path, ca_file: Path,
                                             responder: Responder) -> None:
    """Nothing verified is exit 1, not 0 (an auditor's script must not read none as good);
    with a TSA set but never reached, the message says so."""
    ran = sealtrail("--data", data, "timestamps", "verify", "--ca-cert", ca_file, text=True)
    assert ran.returncode == 1
    assert "records no timestamp" in ran.stderr
    responder.stop()
    assert sealtrail("--data", data, "timestamps", "set", responder.url, "--ca-cert",
                     ca_file).returncode == 0
    ran = sealtrail("--data", data, "timestamps", "verify", "--ca-cert", ca_file, text=True)
    assert ran.returncode == 1
    assert "although a TSA is set" in ran.stderr


def test_a_tsa_url_with_credentials_is_refused(data: Path, ca_file: Path) -> None:
    """The URL is recorded in the log: user:password@ is refused, nothing stored."""
    ran = sealtrail("--data", data, "timestamps", "set", "https://user:s3cret@tsa.example/tsr",
                    "--ca-cert", ca_file, text=True)
    assert ran.returncode == 2
    assert "credentials" in ran.stderr
    with AuditLog.open(data, create=False) as alog:
        assert load_config(alog) is None
