"""Every command against a PostgreSQL store (``--store URL`` / ``SEALTRAIL_STORE``), as a user
of several nodes runs them: the log's tables, keyring, API keys and alerts in the database,
the key files in each node's own ``--data``.

Each test gets a database of its own (``pg_store``), dropped after.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import psycopg
import pytest
from tests.clirun import Ran, sealtrail

from sealtrail import AuditLog
from sealtrail.core.checkpoint import open_checkpoint
from sealtrail.core.note import Verifier
from sealtrail.core.proofs import InclusionProof
from sealtrail.log.datadir import log_names, open_alert_rows
from sealtrail.monitor.alerts import alerting_evidence

pytestmark = pytest.mark.postgres


def run(data: Path, store: str, *args: str, stdin: bytes | None = None) -> Ran[str]:
    """``sealtrail --data DATA --store URL ARGS`` in-process."""
    return sealtrail("--data", data, "--store", store, *args, stdin=stdin, text=True)


def json_lines(text: str) -> list[str]:
    """JSON Lines split on newlines only (str.splitlines also splits inside JSON strings at
    U+2028, U+2029 and U+0085)."""
    return [line for line in text.split("\n") if line]


def events(n: int, start: int = 0) -> bytes:
    """``n`` JSON Lines events, every third about a data subject."""
    return b"".join(json.dumps({
        "actor": {"id": f"user-{i % 3}", "ip": "192.0.2.1", "name": f"User {i % 3}"},
        "action": "doc.read", "outcome": "success", "category": "data_access",
        "target": {"type": "doc", "id": f"d{i}"},
        **({"subjects": [f"patient-{i % 2}"]} if i % 3 == 0 else {})}).encode() + b"\n"
        for i in range(start, start + n))


def node(first: Path, other: Path) -> Path:
    """Provision another node's data directory: the log's key files, nothing else."""
    (other / "default").mkdir(parents=True, mode=0o700)
    for name in ("signing.key", "verifier.vkey"):
        shutil.copy2(first / "default" / name, other / "default" / name)
    return other


def test_every_command_works_against_the_store(tmp_path: Path, pg_store: str) -> None:
    """init, append, checkpoint, entries, prove, verify, query, keys, hold, erase,
    retention, export, report: each against the database; nothing of the log is written
    under --data but its key files and head memory."""
    data = tmp_path / "n1"
    init = run(data, pg_store, "init")
    assert init.returncode == 0, init.stderr
    assert "sealtrail_default" in init.stdout  # where the log went
    vkey = Verifier.parse(init.stdout.strip().splitlines()[-1])
    assert run(data, pg_store, "append", stdin=events(30)).returncode == 0
    assert not (data / "default" / "log.db").exists()
    assert not (data / "default" / "keyring.json").exists()  # the keyring is in the store

    note = run(data, pg_store, "checkpoint").stdout
    cp = open_checkpoint(note, vkey)
    assert cp.size == 30
    lines = json_lines(run(data, pg_store, "entries", "--start", "5", "--end", "7").stdout)
    assert [json.loads(line)["index"] for line in lines] == [5, 6]
    proof = InclusionProof.parse(run(data, pg_store, "prove", "inclusion", "6").stdout)
    proof.verify()
    assert proof.checkpoint is not None
    assert proof.root_hash == open_checkpoint(proof.checkpoint, vkey).root

    ok = run(data, pg_store, "verify")
    assert ok.returncode == 0, ok.stderr
    assert "OK: 31 entries" in ok.stdout  # the 30 and the record of the entries read
    found = run(data, pg_store, "query", "--actor", "user-1", "--format", "jsonl")
    assert found.returncode == 0, found.stderr
    assert len(json_lines(found.stdout)) == 10

    token = run(data, pg_store, "keys", "create", "--role", "reader", "--name", "r1")
    assert token.returncode == 0, token.stderr
    listed = [json.loads(line) for line in json_lines(run(data, pg_store, "keys", "list").stdout)]
    assert [k["name"] for k in listed] == ["r1"]

    assert run(data, pg_store, "hold", "add", "--subject", "patient-0",
               "--reason", "litigation 42").returncode == 0
    refused = run(data, pg_store, "erase", "--subject", "patient-0", "--reason", "GDPR 17")
    assert refused.returncode != 0
    assert "hold" in refused.stderr
    assert run(data, pg_store, "hold", "release", "--subject", "patient-0",
               "--reason", "case closed").returncode == 0
    erased = run(data, pg_store, "erase", "--subject", "patient-0", "--reason", "GDPR 17")
    assert erased.returncode == 0, erased.stderr

    assert run(data, pg_store, "retention", "set", "--preset", "pci-dss").returncode == 0
    assert "pci" in run(data, pg_store, "retention", "show").stdout.lower()
    siem = run(data, pg_store, "export", "--format", "jsonl")
    assert siem.returncode == 0, siem.stderr
    assert len(json_lines(siem.stdout)) >= 30
    report = run(data, pg_store, "report", "--standard", "pci-dss", "--format", "json")
    assert report.returncode == 0, report.stderr
    assert json.loads(report.stdout)["standard"] == "pci-dss"
    final = run(data, pg_store, "verify")
    assert final.returncode == 0, final.stderr + final.stdout


def test_a_second_node_sees_the_same_log_keys_and_keyring(tmp_path: Path,
                                                          pg_store: str) -> None:
    """Two nodes (two data directories holding the same key files) share one log: appends
    from both land in one tree, an API key made on one is listed on the other, and a data key
    rotated on one seals the other's next events."""
    first = tmp_path / "n1"
    assert run(first, pg_store, "init").returncode == 0
    second = node(first, tmp_path / "n2")
    assert run(first, pg_store, "append", stdin=events(5)).returncode == 0
    appended = run(second, pg_store, "append", stdin=events(5, 5))
    assert appended.returncode == 0, appended.stderr
    assert json.loads(appended.stdout)["tree_size"] == 10
    assert run(first, pg_store, "keys", "create", "--role", "ingest",
               "--name", "w1").returncode == 0
    assert "w1" in run(second, pg_store, "keys", "list").stdout

    rotated = run(first, pg_store, "keys", "rotate")
    assert rotated.returncode == 0, rotated.stderr
    with AuditLog.open(second, "default", store=pg_store, create=False) as log:
        assert log.keyring is not None
        assert log.keyring.active == "d2"
        receipt = log.append({"actor": {"id": "x", "name": "Sealed Name"},
                              "action": "doc.read", "outcome": "success"})
        sealed = json.loads(log.entry(receipt.index).leaf)["sealed"]
        assert sealed["ct"].startswith("d2:")  # sealed under the key rotated on the other
        assert log.read(log.entry(receipt.index))["actor"]["name"] == "Sealed Name"
    assert run(second, pg_store, "verify").returncode == 0


def test_a_log_name_maps_to_its_own_schema_and_back(tmp_path: Path, pg_store: str) -> None:
    """Names that differ only in ``.``, ``-`` and ``_`` get schemas of their own; the service
    lists them by their names."""
    data = tmp_path / "n1"
    for name in ("a.b", "a_b", "a-b"):
        assert run(data, pg_store, "--log", name, "init").returncode == 0, name
        assert run(data, pg_store, "--log", name, "append",
                   stdin=events(1)).returncode == 0
    with psycopg.connect(pg_store) as conn:
        schemas = {r[0] for r in conn.execute(
            "SELECT nspname FROM pg_namespace WHERE nspname LIKE 'sealtrail%'")}
    assert {"sealtrail_a_db", "sealtrail_a__b", "sealtrail_a_hb"} <= schemas
    assert log_names(data, pg_store) == ["a-b", "a.b", "a_b"]


def test_a_bad_store_url_is_a_usage_error_naming_the_option(tmp_path: Path) -> None:
    """``--store`` that is not a PostgreSQL URL: exit 2 naming the option, nothing made."""
    res = sealtrail("--data", tmp_path / "d", "--store", "mysql://root@x/db", "init",
                    text=True)
    assert res.returncode == 2
    assert "--store" in res.stderr
    assert not (tmp_path / "d").exists()


def test_an_unreachable_store_fails_clearly(tmp_path: Path) -> None:
    """A database that does not answer: exit 1 with the connection error, no traceback."""
    res = sealtrail("--data", tmp_path / "d", "--store",
                    "postgresql://postgres@127.0.0.1:1/nowhere?connect_timeout=2", "verify",
                    text=True)
    assert res.returncode in (1, 2)
    assert "Traceback" not in res.stderr
    assert "connect" in res.stderr.lower()


@pytest.mark.parametrize("url", ["postgresql:/admin:S3cr3tPW@db.internal/prod",
                                 "postgresql://admin:S3cr3t%zzPW@db.internal/prod",
                                 "admin:S3cr3tPW@db.internal"])
def test_a_store_url_with_a_password_is_never_echoed(tmp_path: Path, url: str) -> None:
    """A mistyped URL is refused without printing it: it may hold the database password."""
    res = sealtrail("--data", tmp_path / "d", "--store", url, "verify", text=True)
    assert res.returncode != 0
    assert "S3cr3t" not in res.stderr + res.stdout
    assert "--store" in res.stderr or "URL" in res.stderr


def test_alerting_evidence_comes_from_the_store(tmp_path: Path, pg_store: str) -> None:
    """A report on a PostgreSQL store: no monitor ever ran -> no alerting evidence, and
    ``alerts list`` says so (nothing is made by asking); once the monitor's rows exist
    (a service ran), the evidence is there, with no sink yet."""
    data = tmp_path / "n1"
    assert run(data, pg_store, "init").returncode == 0
    listed = run(data, pg_store, "alerts", "list")
    assert listed.returncode == 2
    assert "no alerts" in listed.stderr
    assert alerting_evidence(data, pg_store) is None
    open_alert_rows(data / "_monitor" / "monitor.db", pg_store).close()  # as serve's monitor
    evidence = alerting_evidence(data, pg_store)
    assert evidence is not None
    assert evidence["sinks"] == 0
    assert run(data, pg_store, "alerts", "list").returncode == 0
