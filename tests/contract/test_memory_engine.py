"""The engine on the in-memory store, end to end: ``AuditLog`` appends (retried ids answered
as duplicates), proves inclusion and consistency, and verifies, with every row in a
:class:`MemoryStore` (handed in through ``create_log``'s store wrapper)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sealtrail.core.policy import FieldPolicy
from sealtrail.core.uuid7 import make_uuid7
from sealtrail.log.auditlog import AuditLog
from sealtrail.log.datadir import OpenSettings, create_log
from sealtrail.store.memory import MemoryStore
from sealtrail.store.protocol import Store

FIXED = datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC)


def clock() -> datetime:
    """A fixed clock."""
    return FIXED


def event(n: int) -> dict[str, Any]:
    """A valid event with a client-chosen UUIDv7 id (every tenth a UUIDv4: the exact index)."""
    ident = (uuid.uuid4() if n % 10 == 9 else
             make_uuid7(1_714_979_289_000 + n, uuid.uuid4().bytes[:10]))
    return {"id": str(ident), "actor": {"id": f"user-{n % 7}"}, "action": "doc.read",
            "outcome": "success", "metadata": {"n": n}}


def open_on_memory(tmp_path: Path) -> tuple[AuditLog, Store]:
    """A new encrypted log whose store is a MemoryStore (the SQLite store the data directory
    opens is closed and replaced)."""
    memory: Store = MemoryStore(location="memory:contract")  # mypy: a MemoryStore is a Store

    def wrap(opened: Store) -> Store:
        opened.close()
        return memory

    settings = OpenSettings(passphrase=None, kek=None, encryption=True,
                            policy=FieldPolicy.default(), redaction="mask")
    opened = create_log(tmp_path / "mem", "mem", "sealtrail/mem", clock=clock,
                        settings=settings, wrap=wrap)
    assert opened.store is memory
    log = AuditLog(opened.directory, opened.store, opened.signer, origin=opened.origin,
                   name=opened.name, clock=clock, keyring=opened.keyring)
    return log, memory


def test_an_audit_log_runs_on_the_memory_store(tmp_path: Path) -> None:
    """Appends, duplicates of retried ids, inclusion and consistency proofs, search and
    ``verify`` all work with every row in memory."""
    log, memory = open_on_memory(tmp_path)
    with log:
        events = [event(n) for n in range(1100)]  # past a bundle (256) and an anchor (1024)
        receipts = []
        sizes = []
        for k in range(0, len(events), 100):
            receipts += log.append_many(events[k:k + 100])
            sizes.append(log.checkpoint())
        assert log.size == memory.state().size == 1100
        assert [r.index for r in receipts] == list(range(1100))
        assert not any(r.duplicate for r in receipts)

        # Retried ids come back as duplicates with their first receipt, stored once.
        retried = log.append_many([events[3], events[250], events[1099], events[9]])
        assert all(r.duplicate for r in retried)
        assert [r.index for r in retried] == [3, 250, 1099, 9]
        assert [r.leaf_hash for r in retried] == [receipts[i].leaf_hash
                                                  for i in (3, 250, 1099, 9)]
        assert log.size == 1100

        head = log.checkpoint()
        for r in (receipts[0], receipts[255], receipts[256], receipts[1099]):
            proof = log.prove_inclusion(r.index)
            proof.verify()
            proof.verify_signed(log.verifier, log.entry(r.index).leaf)
        for older in sizes[:-1]:
            consistency = log.prove_consistency(older.checkpoint.size)
            consistency.verify_signed(log.verifier, older.note, head.note)

        newest = [n for n in range(1099, -1, -1) if n % 7 == 3][:3]
        assert log.find("actor.id", "user-3", limit=3) == newest
        report = log.verify()
        assert report.size == 1100
        assert log.verify_derived().size == 1100
        kept = [cp.size for cp in memory.iter_checkpoints()]
        assert kept[0] == 0  # the empty log's, kept at creation
        assert kept[-1] == 1100  # the commit crossing 1024
