"""``retention``, ``export --bundle``, ``verify-bundle`` and tlog-proof receipts through the CLI.

Run in-process through the CLI's entry point (``tests/clirun.py``). The bundle is verified from
another working directory with no data directory, as an auditor on another machine would.
"""

from __future__ import annotations

import base64
import json
import re
import zipfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from sealtrail import AuditLog
from sealtrail.core.note import Verifier
from sealtrail.core.tlogproof import TlogProof
from tests.clirun import Ran, sealtrail


def run(*args: str, cwd: Path | None = None) -> Ran[str]:
    return sealtrail(*args, cwd=cwd, text=True)


@pytest.fixture
def data(tmp_path: Path) -> Path:
    """A log with events received 400 days ago and today."""
    d = tmp_path / "data"
    old = datetime.now(UTC) - timedelta(days=400)
    log = AuditLog.open(d, clock=lambda: old)
    log.append_many([{"action": "user.login", "actor": {"id": f"u{i}"}, "outcome": "failure",
                      "category": "authentication"} for i in range(10)])
    log.close()
    log = AuditLog.open(d)
    log.append_many([{"action": "doc.read", "actor": {"id": f"u{i}"}, "outcome": "success",
                      "category": "data_access"} for i in range(10)])
    log.close()
    return d


def test_retention_set_dry_run_apply_and_verify(data: Path, tmp_path: Path) -> None:
    policy = tmp_path / "policy.json"
    policy.write_text(json.dumps({"name": "pci", "default": {"min": "366d"},
                                  "authentication": {"min": "30d", "max": "365d"}}))
    res = run("--data", str(data), "retention", "set", "--file", str(policy))
    assert res.returncode == 0, res.stderr
    res = run("--data", str(data), "retention", "apply", "--dry-run")
    assert res.returncode == 0, res.stderr
    plan = json.loads(res.stdout)
    assert plan["purge"] == 10
    assert plan["by_category"] == {"authentication": 10}
    res = run("--data", str(data), "retention", "apply")
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["receipt"] is not None
    res = run("--data", str(data), "verify")
    assert res.returncode == 0, res.stderr
    assert "10 entries retired" in res.stdout
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"default": {"min": "400d", "max": "30d"}}))
    res = run("--data", str(data), "retention", "set", "--file", str(bad))
    assert res.returncode == 2
    assert "default.min" in res.stderr


def test_bundle_export_and_offline_verification(data: Path, tmp_path: Path) -> None:
    bundle = tmp_path / "evidence.zip"
    res = run("--data", str(data), "export", "--bundle", str(bundle), "--category",
              "authentication")
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["events"] == 10
    vkey = run("--data", str(data), "vkey").stdout.strip()
    elsewhere = tmp_path / "auditor"
    elsewhere.mkdir()
    res = run("verify-bundle", str(bundle), "--vkey", vkey, cwd=elsewhere)
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith("OK: 10 events")
    assert not (elsewhere / "sealtrail-data").exists()
    # Tampered: one event removed from both files.
    with zipfile.ZipFile(bundle) as z:
        files = {n: z.read(n) for n in z.namelist()}
    for name in ("events.jsonl", "proofs.jsonl"):
        files[name] = b"\n".join(files[name].splitlines()[1:]) + b"\n"
    with zipfile.ZipFile(bundle, "w") as z:
        for n, b in files.items():
            z.writestr(n, b)
    res = run("verify-bundle", str(bundle), "--vkey", vkey, cwd=elsewhere)
    assert res.returncode == 1
    assert "FAILED" in res.stderr
    assert "events were removed or added" in res.stderr
    res = run("verify-bundle", str(bundle), "--vkey", "not-a-key", cwd=elsewhere)
    assert res.returncode == 2
    res = run("--data", str(data), "export")
    assert res.returncode == 2


def test_tlog_proof_receipt(data: Path) -> None:
    res = run("--data", str(data), "prove", "inclusion", "3", "--format", "tlog-proof")
    assert res.returncode == 0, res.stderr
    proof = TlogProof.parse(res.stdout)
    assert proof.index == 3
    vkey = Verifier.parse(run("--data", str(data), "vkey").stdout.strip())
    entry = json.loads(run("--data", str(data), "entries", "--start", "3", "--end", "4").stdout)
    proof.verify(vkey, base64.b64decode(entry["leaf"]))


@pytest.mark.parametrize("fmt", ["ocsf", "cef", "ecs", "csv", "jsonl", "syslog"])
def test_siem_export_is_audited(data: Path, tmp_path: Path, fmt: str) -> None:
    out = tmp_path / f"export.{fmt}"
    res = run("--data", str(data), "export", "--format", fmt, "--category", "data_access",
              "--out", str(out))
    assert res.returncode == 0, res.stderr
    text = out.read_text()
    assert sum(1 for line in text.splitlines() if "doc.read" in line) == 10
    if fmt == "ocsf":
        assert all(json.loads(line)["class_uid"] == 6003 for line in text.splitlines())
    last = json.loads(run("--data", str(data), "entries", "--start", "20").stdout
                      .splitlines()[-1])
    assert last["event"]["action"] == "audit.export"
    assert run("--data", str(data), "export", "--format", "xml").returncode == 2


def test_archive_and_restore_through_the_cli(data: Path, tmp_path: Path) -> None:
    policy = tmp_path / "policy.json"
    policy.write_text(json.dumps({"name": "p", "default": {"min": "366d", "online": "92d"}}))
    assert run("--data", str(data), "retention", "set", "--file", str(policy)).returncode == 0
    res = run("--data", str(data), "retention", "apply")
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    assert out["purge"] == 0
    assert [a["end"] - a["start"] for a in out["archived"]] == [10]
    listed = run("--data", str(data), "archive", "list").stdout.splitlines()
    assert len(listed) == 1
    seg = json.loads(listed[0])["file"]
    assert "10 entries retired" in run("--data", str(data), "verify").stdout
    res = run("--data", str(data), "archive", "restore", seg)
    assert res.returncode == 0, res.stderr
    res = run("--data", str(data), "verify")
    assert res.returncode == 0
    assert "retired" not in res.stdout


def test_forwarding_to_a_syslog_collector(data: Path) -> None:
    from tests.monitor.receivers import StreamListener, wait_until

    with StreamListener() as listener:
        res = run("--data", str(data), "export", "--format", "syslog", "--category",
                  "data_access", "--syslog", f"127.0.0.1:{listener.port}")
        assert res.returncode == 0, res.stderr
        assert wait_until(lambda: len(listener.messages) == 10, 10)
        assert all(re.match(rb"<\d{1,3}>1 ", m) for m in listener.messages)
        assert not listener.errors
    res = run("--data", str(data), "export", "--format", "syslog", "--syslog", "127.0.0.1:1")
    assert res.returncode == 1
    assert "--syslog 127.0.0.1:1" in res.stderr
    res = run("--data", str(data), "export", "--format", "csv", "--syslog", "127.0.0.1:514")
    assert res.returncode == 2


def test_siem_export_leaves_sealed_fields_sealed_unless_asked(tmp_path: Path) -> None:
    """By default a SIEM export carries sealed personal fields sealed; --open-sealed opens them
    and the audit.export record says it did."""
    d = tmp_path / "sealed"
    with AuditLog.open(d) as log:
        log.append({"action": "user.login", "actor": {"id": "u1", "ip": "198.51.100.61"},
                    "outcome": "success", "category": "authentication"})
    for flags, opened in (([], False), (["--open-sealed"], True)):
        res = run("--data", str(d), "export", "--format", "ocsf", *flags)
        assert res.returncode == 0, res.stderr
        assert ("198.51.100.61" in res.stdout) is opened
        with AuditLog.open(d, create=False) as log:
            record = log.read(log.entry(log.size - 1))
        assert record["action"] == "audit.export"
        assert record["metadata"]["filter"]["open_sealed"] is opened
