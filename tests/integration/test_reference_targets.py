"""A log whose field policy seals every field it can still runs every setting and record of
sealtrail's own, and ``verify`` still says OK.

sealtrail reads its own records back without keys (settings checks, holds before an erasure,
retention receipts, witness configuration, seals). When those records' targets followed the
log's policy, a log sealing ``target.id`` reported itself TAMPERED after its first legal hold or
key rotation, and refused erasure. Their targets are sealtrail's references (digests,
pseudonyms, key ids), so they stay clear (``OWN_CLEAR_FIELDS``, core/reserved.py); a client's
event, and the service's own records about people, keep the policy.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from tests.clirun import sealtrail
from tests.sealing.attack import leaves

from sealtrail.core.policy import SEALABLE
from sealtrail.log.auditlog import AuditLog
from sealtrail.log.protect import Protector
from sealtrail.log.retention import RetentionPolicy, set_policy
from sealtrail.log.witness import WitnessState

SECRET = "doc-of-alice-smith"


def run(data: Path, *args: str) -> str:
    done = sealtrail("--data", str(data), *args, text=True)
    assert done.returncode == 0, (args, done.stdout, done.stderr)
    return done.stdout


def verified(data: Path) -> str:
    out = run(data, "verify")
    assert out.startswith("OK"), out
    return out


@pytest.fixture
def data(tmp_path: Path, passphrase_env: str) -> Path:
    """An encrypted log sealing every sealable field, with one client event about alice."""
    path = tmp_path / "data"
    run(path, "init", "--personal", ",".join(SEALABLE))
    event = {"actor": {"id": "alice", "type": "user", "name": "Alice Smith"},
             "action": "doc.read", "outcome": "success", "subjects": ["alice"],
             "reason": "private", "target": {"type": "doc", "id": SECRET},
             "source": {"service": "billing"}}
    done = sealtrail("--data", str(path), "append", stdin=json.dumps(event) + "\n", text=True)
    assert done.returncode == 0, done.stderr
    return path


def test_every_setting_works_and_verify_stays_ok(data: Path, tmp_path: Path) -> None:
    run(data, "keys", "rotate")
    verified(data)
    run(data, "hold", "add", "--subject", "alice", "--reason", "case 7")
    verified(data)
    held = sealtrail("--data", str(data), "erase", "--subject", "alice", "--reason", "gdpr",
                     text=True)
    assert held.returncode != 0
    assert "legal hold" in held.stderr  # refused for the hold, not for a "tampered" setting
    run(data, "hold", "release", "--subject", "alice", "--reason", "case closed")
    assert json.loads(run(data, "erase", "--subject", "alice", "--reason", "gdpr"))["erased"]
    run(data, "retention", "set", "--preset", "gdpr")
    assert json.loads(run(data, "retention", "show"))["name"] == "gdpr"
    run(data, "retention", "apply")
    vkey = WitnessState(tmp_path / "w").init("example.org/w").format()
    run(data, "witnesses", "add", "http://127.0.0.1:9", "--vkey", vkey)
    assert run(data, "witnesses", "list", "--policy").startswith(f"witness {vkey} ")
    seal_key = run(data, "seal", "init").strip().split("\n")[-1]
    run(data, "seal", "run")
    verified(data)
    sealed = run(data, "verify", "--seal-key", seal_key)
    assert "SEALED" in sealed, sealed


def test_own_reference_records_are_clear_and_the_rest_sealed(data: Path) -> None:
    run(data, "hold", "add", "--subject", "alice", "--reason", "case 7 about Alice Smith")
    with AuditLog.open(data, create=False) as alog:
        alog.append_own([{"actor": {"id": "admin"}, "action": "sealtrail.users.create",
                          "outcome": "success", "category": "admin",
                          "target": {"type": "user", "id": "alice.smith@example.org"}}])
        events = [alog.entry(i).event() for i in range(alog.size)]
    client, hold, user = events
    # The client's event: everything the policy names is sealed.
    assert set(client["sealed"]["fields"]) >= {"target.id", "target.type", "source.service",
                                                "reason", "actor.name"}
    # The hold: its target is the subject's pseudonym, clear; its reason stays sealed.
    assert hold["target"]["type"] == "data_subject"
    assert hold["source"]["service"] == "sealtrail"
    assert "reason" in hold["sealed"]["fields"]
    # The service's record about a person: its target keeps the policy.
    assert "target.id" in user["sealed"]["fields"]
    assert user["source"]["service"] == "sealtrail"
    raw = b"".join(leaves(data))
    for secret in (SECRET.encode(), b"alice.smith@example.org", b"Alice Smith"):
        assert secret not in raw


def test_a_client_cannot_borrow_a_reference_action_to_stay_clear(data: Path) -> None:
    event = {"actor": {"id": "mallory"}, "action": "subject.hold.add", "outcome": "success",
             "target": {"type": "doc", "id": "leak-me"}}
    done = sealtrail("--data", str(data), "append", stdin=json.dumps(event) + "\n", text=True)
    assert done.returncode != 0
    assert "reserved" in done.stderr
    assert not any(b"leak-me" in leaf for leaf in leaves(data))


def test_a_hold_an_older_version_sealed_still_checks_with_the_keyring(
        data: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A log that sealed its own records' targets (what versions before OWN_CLEAR_FIELDS
    wrote) verifies with its keyring open, and erasure works once the hold is released;
    without the keyring, verify says it needs it instead of calling the log tampered."""
    with monkeypatch.context() as old:
        # An older version: own records sealed under the log's whole policy.
        old.setattr(Protector, "policy_for", lambda self, ev, own: self.policy)
        with AuditLog.open(data, create=False) as alog:
            alog.hold_subject("alice", reason="case 7", actor={"id": "ops"})
            hold = alog.entry(alog.size - 1).event()
    assert "target.id" in hold["sealed"]["fields"]
    verified(data)
    locked = sealtrail("--data", str(data), "verify", env={"SEALTRAIL_PASSPHRASE": None},
                       text=True)
    assert locked.returncode != 0
    assert "TAMPERED" not in locked.stdout + locked.stderr
    assert "keyring" in locked.stderr
    # An auditor's copy (no signing key), verified read-only with the keyring: OK as well.
    copy = data.parent / "copy"
    shutil.copytree(data, copy)
    (copy / "default" / "signing.key").unlink()
    vkey = run(data, "vkey").strip()
    assert run(copy, "verify", "--vkey", vkey, "--no-derived").startswith("OK")
    refused = sealtrail("--data", str(data), "erase", "--subject", "alice", "--reason", "gdpr",
                        text=True)
    assert refused.returncode != 0
    assert "legal hold" in refused.stderr
    run(data, "hold", "release", "--subject", "alice", "--reason", "case closed")
    assert json.loads(run(data, "erase", "--subject", "alice", "--reason", "gdpr"))["erased"]
    verified(data)


def test_a_retention_policy_an_older_version_sealed_still_loads_with_the_keyring(
        data: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The policy's entry, its target (the digest) sealed by an older version: the policy
    loads with the keyring and verify passes; without it, both say they need the keyring
    (neither calls the settings table edited)."""
    with monkeypatch.context() as old:
        old.setattr(Protector, "policy_for", lambda self, ev, own: self.policy)
        with AuditLog.open(data, create=False) as alog:
            set_policy(alog, RetentionPolicy.preset("gdpr"), actor={"id": "ops"})
            entry = alog.entry(alog.size - 1).event()
    assert "target.id" in entry["sealed"]["fields"]
    assert json.loads(run(data, "retention", "show"))["name"] == "gdpr"
    verified(data)
    for args in (("retention", "show"), ("verify",)):
        locked = sealtrail("--data", str(data), *args, env={"SEALTRAIL_PASSPHRASE": None},
                           text=True)
        assert locked.returncode != 0, args
        assert "keyring" in locked.stderr, (args, locked.stderr)
        assert "edited" not in locked.stdout + locked.stderr, args
