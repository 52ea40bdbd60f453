"""The running service does not forget (issue 11, finding 3), tried as the attacker would.

* A rollback to an older genuine head under a running service: the next full verification
  keeps failing (it does not pass on the shrunken log), /readyz stays 503, ingest is refused,
  and a restarted service still refuses to sign on top of it.
* ``log.db`` replaced by an older copy while the service runs: ingest is refused (the events
  would otherwise go to the unlinked file and vanish) and the verification fails.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import httpx

from tests.faults.test_rollback_to_older_signed_head import _roll_back
from tests.server.conftest import Service, running, seed_event, service_at

LOG = "default"


def _ready(svc: Service, want: int) -> int:
    deadline = time.monotonic() + 20
    with httpx.Client(base_url=svc.base_url, timeout=30) as c:
        while True:
            status = c.get("/readyz").status_code
            if status == want or time.monotonic() > deadline:
                return status
            time.sleep(0.1)


def _post(svc: Service, n: int) -> httpx.Response:
    with svc.client() as c:
        return c.post(f"/v1/logs/{LOG}/events", json=[seed_event(n)],
                      headers=svc.auth("ingest_all"))


def _head_note(svc: Service) -> str:
    with svc.client() as c:
        return c.get(f"/v1/logs/{LOG}/checkpoint", headers=svc.auth("auditor")).text


def test_rollback_under_running_service_stays_failed(tmp_path: Path) -> None:
    with service_at(tmp_path / "svc", verify_delay=0.1, verify_interval=0.3) as svc:
        assert _ready(svc, 200) == 200
        for n in range(3):
            assert _post(svc, n).status_code == 201
        old = _head_note(svc)
        old_size = int(old.splitlines()[1])
        for n in range(3, 9):
            assert _post(svc, n).status_code == 201
        _roll_back(svc.data_dir / LOG / "log.db", old_size, old)
        assert _ready(svc, 503) == 503
        time.sleep(1.5)  # several more full runs: none may pass on the shrunken log
        assert _ready(svc, 503) == 503
        refused = _post(svc, 99)
        assert refused.status_code >= 500
        assert "shrank" in refused.text
    # A restart over the same files does not forget either: the memory is outside the db.
    with running(svc.config) as base_url:
        again = Service(base_url, svc.tokens, svc.data_dir, svc.config)
        assert _ready(again, 503) == 503
        resp = _post(again, 100)
        assert resp.status_code >= 500
        assert "rolled back" in resp.text
        assert int(_head_note(again).splitlines()[1]) == old_size  # nothing signed on top


def test_database_replaced_by_an_older_copy_is_refused(tmp_path: Path) -> None:
    with service_at(tmp_path / "svc", verify_delay=0.1, verify_interval=0.3) as svc:
        _replace_under(svc, tmp_path)


def _replace_under(svc: Service, tmp_path: Path) -> None:
    assert _post(svc, 1).status_code == 201
    db = svc.data_dir / LOG / "log.db"
    backup = tmp_path / "old"
    backup.mkdir()
    for f in db.parent.glob("log.db*"):
        shutil.copy2(f, backup / f.name)
    for n in range(2, 6):
        assert _post(svc, n).status_code == 201
    # Move the older copy into place while the service holds the file open.
    for name in ("log.db-wal", "log.db-shm"):
        (db.parent / name).unlink(missing_ok=True)
    tmp = db.with_name("log.db.new")
    shutil.copy2(backup / "log.db", tmp)
    tmp.replace(db)
    resp = _post(svc, 6)
    assert resp.status_code >= 500
    assert "replaced" in resp.text
    assert _ready(svc, 503) == 503
