"""Receipt verification: real proofs pass; another key, a bad proof, a rollback or a fork fail."""

from __future__ import annotations

import base64
import json
import shutil
from pathlib import Path

import httpx
import pytest

from sealtrail.client import Client, ClientError
from sealtrail.core.checkpoint import Checkpoint
from sealtrail.core.errors import ConsistencyError, InclusionError, SignatureError
from sealtrail.log.auditlog import AuditLog

from .service import Service, event


class FlipProofHash(httpx.BaseTransport):
    """A real transport that flips one bit of the first hash in inclusion proofs it relays."""

    def __init__(self) -> None:
        self.inner = httpx.HTTPTransport()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self.inner.handle_request(request)
        if not request.url.path.endswith("/proof/inclusion"):
            return response
        doc = json.loads(response.read())
        response.close()
        raw = bytearray(base64.b64decode(doc["audit_path"][0]))
        raw[0] ^= 1
        doc["audit_path"][0] = base64.b64encode(bytes(raw)).decode()
        return httpx.Response(200, content=json.dumps(doc).encode(),
                              headers={"content-type": "application/json"})

    def close(self) -> None:
        self.inner.close()


def size_of(note: str | None) -> int:
    """The tree size a checkpoint note signs."""
    assert note is not None
    return Checkpoint.parse(note[: note.index("\n\n") + 1]).size


def test_receipts_verify_and_the_kept_checkpoint_grows(service: Service, tmp_path: Path) -> None:
    """Each receipt verifies against a signed checkpoint; later checks prove consistency
    from the checkpoint kept before."""
    with Client(service.url, service.ingest, spool_path=tmp_path / "spool.db",
                verifier=service.vkey) as client:
        ids = [client.record(event(n)) for n in range(3)]
        assert client.flush(10)
        for ident in ids:
            client.verify_receipt(client.receipts[ident])
        assert size_of(client.checkpoint) == 3
        more = [client.record(event(n)) for n in range(3, 8)]
        assert client.flush(10)
        client.verify_receipt(client.receipts[ids[0]])
        assert size_of(client.checkpoint) == 8
        client.verify_receipt(client.receipts[more[-1]])


def test_another_logs_key_is_not_trusted(service: Service, tmp_path: Path) -> None:
    """A verifier key of another log rejects this log's checkpoints (SignatureError)."""
    with AuditLog.open(tmp_path / "elsewhere", "other") as other:
        foreign = other.vkey()
    with Client(service.url, service.ingest, spool_path=tmp_path / "spool.db",
                verifier=foreign) as client:
        ident = client.record(event(1))
        assert client.flush(10)
        with pytest.raises(SignatureError):
            client.verify_receipt(client.receipts[ident])
        assert client.checkpoint is None


def test_a_tampered_inclusion_proof_is_caught(service: Service, tmp_path: Path) -> None:
    """One flipped bit in the audit path fails the inclusion check (InclusionError)."""
    with Client(service.url, service.ingest, spool_path=tmp_path / "spool.db",
                verifier=service.vkey, transport=FlipProofHash()) as client:
        ids = [client.record(event(n)) for n in range(4)]
        assert client.flush(10)
        with pytest.raises(InclusionError):
            client.verify_receipt(client.receipts[ids[1]])


def test_a_receipt_for_another_entry_is_caught(service: Service, tmp_path: Path) -> None:
    """A receipt whose leaf hash is not the entry at its index fails (InclusionError)."""
    with Client(service.url, service.ingest, spool_path=tmp_path / "spool.db",
                verifier=service.vkey) as client:
        a, b = client.record(event(1)), client.record(event(2))
        assert client.flush(10)
        ra, rb = client.receipts[a], client.receipts[b]
        forged = type(ra)(ra.id, ra.index, rb.leaf_hash, ra.checkpoint_size)
        with pytest.raises(InclusionError):
            client.verify_receipt(forged)


def test_rollback_and_fork_are_caught_even_after_a_client_restart(
        service: Service, tmp_path: Path) -> None:
    """The service's data is restored from an older backup: a new client on the same spool
    (which kept the newest checkpoint) reports the rollback, and, once the restored log has
    grown past the kept size with other events, the fork."""
    spool, backup = tmp_path / "spool.db", tmp_path / "backup"
    with Client(service.url, service.ingest, spool_path=spool, verifier=service.vkey) as client:
        old = [client.record(event(n)) for n in range(3)]
        assert client.flush(10)
        client.verify_receipt(client.receipts[old[0]])
        service.stop()
        shutil.copytree(service.data, backup)
        service.start()
        new = [client.record(event(n)) for n in range(3, 5)]
        assert client.flush(10)
        client.verify_receipt(client.receipts[new[-1]])
        assert size_of(client.checkpoint) == 5
        receipt = client.receipts[old[0]]
    service.stop()
    shutil.rmtree(service.data)
    shutil.copytree(backup, service.data)     # the operator "restores" an older state
    service.start()
    with Client(service.url, service.ingest, spool_path=spool, verifier=service.vkey) as again:
        assert size_of(again.checkpoint) == 5
        with pytest.raises(ConsistencyError, match="rollback"):
            again.verify_receipt(receipt)
        forked = [again.record(event(n)) for n in range(10, 13)]   # size 6: past the kept 5
        assert again.flush(10)
        with pytest.raises(ConsistencyError, match=r"first tree head|does not lead"):
            again.verify_receipt(again.receipts[forked[0]])
        assert size_of(again.checkpoint) == 5


def test_verification_needs_a_verifier_key(service: Service, tmp_path: Path) -> None:
    """verify_receipt without verifier= is a ClientError, not a silent pass."""
    with Client(service.url, service.ingest, spool_path=tmp_path / "spool.db") as client:
        ident = client.record(event(1))
        assert client.flush(10)
        with pytest.raises(ClientError):
            client.verify_receipt(client.receipts[ident])
