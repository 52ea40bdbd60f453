"""The service seals what it serves: a running ``serve`` (its witnessing job) adds the current
epoch's seal line to ``/tlog/{log}/checkpoint``, verifiable with the seal key alone."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

import httpx

from sealtrail.core import seal as core
from sealtrail.core.checkpoint import open_checkpoint
from sealtrail.core.errors import SignatureError
from sealtrail.core.note import Verifier
from sealtrail.log import sealing
from sealtrail.log.auditlog import AuditLog
from tests.client.service import event, make_service


def test_the_served_checkpoint_carries_a_seal_the_seal_key_verifies(tmp_path: Path) -> None:
    svc = make_service(tmp_path / "data")
    with AuditLog.open(svc.data, "default") as alog:
        key = sealing.init_sealing(alog, now=datetime.now(UTC), seconds=3600, epochs=8)
    svc.start()
    try:
        headers = {"Authorization": f"Bearer {svc.ingest}"}
        with httpx.Client(base_url=svc.url, headers=headers, timeout=5) as client:
            answer = client.post("/v1/logs/default/events", json=[event(1), event(2)])
            assert answer.status_code == 201, answer.text
            deadline = time.monotonic() + 15
            while True:
                note = client.get("/tlog/default/checkpoint").text
                cp = open_checkpoint(note, Verifier.parse(svc.vkey))  # the log's line first
                try:
                    got = core.open_seal_line(note, key)
                except SignatureError:
                    got = None
                if got is not None and cp.size >= 2:
                    break
                assert time.monotonic() < deadline, f"never sealed: {note}"
                time.sleep(0.2)
    finally:
        svc.stop()
    assert got.seal.epoch == 0
    assert got.seal.size == cp.size
