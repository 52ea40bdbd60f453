"""The service verifies its logs on a schedule: /metrics shows the state, /readyz a failure."""

from __future__ import annotations

import sqlite3
import struct
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from sealtrail import AuditLog
from sealtrail.monitor.watch import Verifier
from sealtrail.server.logs import Logs
from tests.server.conftest import Service


def _metric(text: str, name: str, log: str) -> float | None:
    for line in text.splitlines():
        if line.startswith(f'{name}{{log="{log}"}}'):
            return float(line.rsplit(" ", 1)[1])
    return None


def _wait_for(service: Service, check: Callable[[str], bool]) -> str:
    deadline = time.monotonic() + 20
    with service.client() as c:
        while True:
            text = c.get("/metrics", headers=service.auth("admin")).text
            if check(text) or time.monotonic() > deadline:
                return text
            time.sleep(0.1)


def _flip_leaf_byte(service: Service, log: str) -> None:
    """Change one byte of the first entry in the database, as an attacker would."""
    con = sqlite3.connect(service.data_dir / log / "log.db")
    try:
        start, count, data = con.execute(
            "SELECT start, count, data FROM chunks ORDER BY start LIMIT 1").fetchone()
        first = struct.unpack_from("<I", data, 0)[0]
        pos = 4 * count + first // 2
        changed = bytearray(data)
        changed[pos] ^= 0x01
        with con:
            con.execute("UPDATE chunks SET data = ? WHERE start = ?", (bytes(changed), start))
    finally:
        con.close()


def test_scheduled_verification_reports_intact_then_tampered(
        start_service: Callable[..., Any]) -> None:
    """A passing verification shows as 1 with its size; a byte flipped in the database turns
    it to 0 at the next run, and /readyz answers 503."""
    svc: Service = start_service(verify_delay=0.1, verify_interval=0.3)
    text = _wait_for(svc, lambda t: _metric(t, "sealtrail_verification_ok", "default") == 1)
    assert _metric(text, "sealtrail_verification_ok", "default") == 1
    assert (_metric(text, "sealtrail_verified_size", "default") or 0) >= 1
    assert _metric(text, "sealtrail_verification_age_seconds", "default") is not None
    with httpx.Client(base_url=svc.base_url, timeout=30) as c:
        assert c.get("/readyz").status_code == 200
    _flip_leaf_byte(svc, "other")
    text = _wait_for(svc, lambda t: _metric(t, "sealtrail_verification_ok", "other") == 0)
    assert _metric(text, "sealtrail_verification_ok", "other") == 0
    assert _metric(text, "sealtrail_verification_ok", "default") == 1
    with httpx.Client(base_url=svc.base_url, timeout=30) as c:
        ready = c.get("/readyz")
    assert ready.status_code == 503
    assert ready.json()["problems"] == 1
    [problem] = ready.json()["not_ready"]
    assert (problem["log"], problem["reason"]) == ("other", "verification_failed")
    assert problem["message"]


def test_a_verification_that_cannot_read_the_store_is_a_failure(tmp_path: Path) -> None:
    """A storage error during verification replaces an earlier pass with a failure: the
    state never stays "ok" for a log that could not be checked."""
    with AuditLog.open(tmp_path, "default") as log:
        log.append({"actor": {"id": "a"}, "action": "a.b", "outcome": "success"})
    logs = Logs(tmp_path)
    verifier = Verifier(logs, lambda: datetime.now(UTC), delay=0, interval=0)
    verifier.verify_all()
    assert verifier.results["default"].ok
    con = sqlite3.connect(tmp_path / "default" / "log.db")
    with con:
        con.execute("DROP TABLE nodes")
    con.close()
    verifier.verify_all()
    assert not verifier.results["default"].ok
    logs.close()
