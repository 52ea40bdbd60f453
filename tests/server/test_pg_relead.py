"""A node that loses the lead and takes it back runs the leader's jobs again.

The lead is a PostgreSQL session lock: a restart of PostgreSQL, a network cut or an operator's
``pg_terminate_backend`` ends it, the node stops its jobs (``on_lose``) and, with no other
node, takes the lead back at once. Its verification and retention must then run again."""

from __future__ import annotations

import threading
from pathlib import Path

import psycopg
import pytest

from sealtrail import AuditLog
from sealtrail.server.config import ServiceConfig
from sealtrail.server.pg_leader import APPLICATION_NAME
from sealtrail.server.state import ServiceState
from tests.monitor.receivers import wait_until

pytestmark = pytest.mark.postgres


def _jobs() -> set[str]:
    return {t.name for t in threading.enumerate()
            if t.name in ("sealtrail-retention", "sealtrail-verify")}


def test_jobs_run_again_after_the_lead_is_lost_and_taken_back(tmp_path: Path,
                                                              pg_store: str) -> None:
    with AuditLog.open(tmp_path, store=pg_store) as log:
        log.append({"actor": {"id": "a"}, "action": "doc.read", "outcome": "success"})
    state = ServiceState.build(ServiceConfig(tmp_path, store=pg_store, monitor=None,
                                             verify_delay=0.0, verify_interval=0.5,
                                             verify_min_interval=0.1,
                                             retention_delay=3600.0))
    state.start()
    try:
        assert wait_until(lambda: state.leadership.leader, 10)
        assert wait_until(lambda: _jobs() == {"sealtrail-retention", "sealtrail-verify"}, 10)
        assert wait_until(lambda: "default" in state.verifier.results, 20)
        with psycopg.connect(pg_store, autocommit=True) as conn:
            ended = conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                 "WHERE application_name = %s AND datname = current_database()",
                                 (APPLICATION_NAME,)).fetchall()
        assert ended
        assert wait_until(lambda: not state.leadership.leader, 10)
        assert wait_until(lambda: state.leadership.leader, 10)  # no other node: back at once
        state.verifier.results.clear()
        assert wait_until(lambda: _jobs() == {"sealtrail-retention", "sealtrail-verify"}, 10)
        assert wait_until(lambda: "default" in state.verifier.results, 20), \
            "verification did not run again after the lead came back"
    finally:
        state.stop()
