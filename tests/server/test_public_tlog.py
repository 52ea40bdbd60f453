"""``serve --public-tlog``: the checkpoint and hash tiles open to a request with no credential,
entry bundles and everything else still behind their roles, a bad key still 401, and the
anonymous callers rate-limited like keys (per client address)."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import uvicorn

from sealtrail.log.apikeys import ApiKeys
from sealtrail.log.auditlog import AuditLog
from sealtrail.server.app import ServiceConfig, create_app

EVENT = {"actor": {"id": "u"}, "action": "doc.read", "outcome": "success"}


@contextlib.contextmanager
def serving(config: ServiceConfig) -> Iterator[str]:
    server = uvicorn.Server(uvicorn.Config(create_app(config), host="127.0.0.1", port=0,
                                           log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(10)


def make_data(tmp_path: Path) -> tuple[Path, str]:
    data = tmp_path / "data"
    with AuditLog.open(data, encryption=False) as alog:
        alog.append_many([EVENT] * 300)
    keys = ApiKeys(data)
    try:
        reader = keys.create("reader", log=None, name="r", now=datetime.now(UTC))
    finally:
        keys.close()
    return data, reader


def test_open_reads_and_what_stays_closed(tmp_path: Path) -> None:
    data, reader = make_data(tmp_path)
    with serving(ServiceConfig(data, public_tlog=True, monitor=None)) as url, \
            httpx.Client(base_url=url, timeout=5) as client:
        assert client.get("/tlog/default/checkpoint").status_code == 200
        assert client.get("/tlog/default/tile/0/000").status_code == 200
        assert client.get("/tlog/default/tile/entries/000").status_code == 401
        assert client.get("/v1/logs/default/checkpoint").status_code == 401
        assert client.get("/v1/logs/default/witnessing").status_code == 401
        bad = {"Authorization": "Bearer st_nope_" + "A" * 43}
        assert client.get("/tlog/default/checkpoint", headers=bad).status_code == 401
        ok = {"Authorization": f"Bearer {reader}"}
        assert client.get("/tlog/default/tile/entries/000", headers=ok).status_code == 200
    with serving(ServiceConfig(data, monitor=None)) as url, \
            httpx.Client(base_url=url, timeout=5) as client:
        assert client.get("/tlog/default/checkpoint").status_code == 401


def test_anonymous_reads_are_rate_limited(tmp_path: Path) -> None:
    data, _ = make_data(tmp_path)
    config = ServiceConfig(data, public_tlog=True, monitor=None, rate=1.0, burst=3.0)
    with serving(config) as url, httpx.Client(base_url=url, timeout=5) as client:
        codes = [client.get("/tlog/default/checkpoint").status_code for _ in range(10)]
    assert codes[:3] == [200, 200, 200]
    assert 429 in codes
