"""Deleting blind-index rows (which silently empties searches and GDPR subject exports) fails
the service's verification: with the keyring it rebuilds the derived tables after its first
full run, so /readyz answers 503."""

from __future__ import annotations

import dataclasses
import sqlite3
import time
from contextlib import closing
from pathlib import Path

import httpx

from tests.server.conftest import Service, running, service_at


def _readiness_after_start(svc: Service) -> int:
    config = dataclasses.replace(svc.config, verify_delay=0.1, verify_interval=0.5)
    with running(config) as base_url, httpx.Client(base_url=base_url, timeout=30) as c:
        deadline = time.monotonic() + 10
        status = c.get("/readyz").status_code
        while status == 200 and time.monotonic() < deadline:
            time.sleep(0.1)
            status = c.get("/readyz").status_code
        return status


def test_deleted_blind_rows_make_the_service_unready(tmp_path: Path) -> None:
    with service_at(tmp_path / "svc", verify_delay=3600) as svc:
        pass
    with closing(sqlite3.connect(svc.data_dir / "default" / "log.db")) as con, con:
        assert con.execute("DELETE FROM blind_pending").rowcount > 0
    assert _readiness_after_start(svc) == 503


def test_an_untouched_log_stays_ready(tmp_path: Path) -> None:
    with service_at(tmp_path / "svc", verify_delay=3600) as svc:
        pass
    assert _readiness_after_start(svc) == 200
