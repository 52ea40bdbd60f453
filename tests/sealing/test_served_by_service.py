"""The service seals what it serves: a running ``serve`` (its witnessing job) adds the current
epoch's seal line to ``/tlog/{log}/checkpoint``, verifiable with the seal key alone."""

from __future__ import annotations

import base64
import json
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
from sealtrail.log.headmemory import STATE_DIR_ENV
from tests.client.service import event, make_service
from tests.clirun import sealtrail


def _served_sealed(tmp_path: Path) -> tuple[Path, core.SealKey, str, core.LineSeal]:
    """A service whose log seals; the checkpoint it served once sealed, and that seal."""
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
    return svc.data, key, note, got


def test_the_served_checkpoint_carries_a_seal_the_seal_key_verifies(tmp_path: Path) -> None:
    _, _, note, got = _served_sealed(tmp_path)
    assert got.seal.epoch == 0
    assert got.seal.size == int(note.split("\n")[1])  # the served checkpoint's size


def test_verify_checks_the_seal_line_of_a_checkpoint_kept(tmp_path: Path) -> None:
    """An auditor who kept the served checkpoint: ``verify --checkpoint C --seal-key K``
    checks its seal line too (the epoch it was sealed in); a forged line is tampering."""
    data, key, note, got = _served_sealed(tmp_path)
    kept = tmp_path / "kept.note"
    kept.write_text(note)
    env = {STATE_DIR_ENV: str(tmp_path / "auditor")}
    ran = sealtrail("--data", data, "verify", "--no-derived", "--checkpoint", kept,
                    "--seal-key", key.format(), env=env, text=True)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert (f"SEALED CHECKPOINT: the checkpoint given (size {got.checkpoint.size}) carries a "
            "seal of epoch 0") in ran.stdout
    as_json = sealtrail("--data", data, "verify", "--no-derived", "--json", "--checkpoint",
                        kept, "--seal-key", key.format(), env=env, text=True)
    assert json.loads(as_json.stdout)["checkpoint_seal"]["epoch"] == 0
    # The same checkpoint without its seal line: verified, no seal claimed.
    lines = note.split("\n")
    seal_at = next(i for i, line in enumerate(lines) if line.startswith(f"\u2014 {key.origin} ")
                   and i > lines.index("") + 1)
    kept.write_text("\n".join(lines[:seal_at] + lines[seal_at + 1:]))
    ran = sealtrail("--data", data, "verify", "--no-derived", "--checkpoint", kept,
                    "--seal-key", key.format(), env=env, text=True)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert "SEALED CHECKPOINT" not in ran.stdout
    assert "carries no seal line" in ran.stdout
    # A seal line altered (one byte of its signature): tampering, exit 1.
    name, blob = lines[seal_at].removeprefix("\u2014 ").split(" ")
    raw = bytearray(base64.b64decode(blob))
    raw[-40] ^= 1
    lines[seal_at] = f"\u2014 {name} {base64.b64encode(bytes(raw)).decode()}"
    kept.write_text("\n".join(lines))
    ran = sealtrail("--data", data, "verify", "--no-derived", "--checkpoint", kept,
                    "--seal-key", key.format(), env=env, text=True)
    assert ran.returncode == 1, ran.stdout + ran.stderr
    assert "FAILED: the checkpoint given carries a seal line that does not verify" in ran.stdout
