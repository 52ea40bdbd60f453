"""Real services for the HTTP API tests: uvicorn on loopback in a thread, API keys of every kind.

No mocks and no TestClient: every request crosses a real socket to a real uvicorn server running
the app ``sealtrail serve`` runs, over a data directory made with the library.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from sealtrail.log.apikeys import ApiKeys
from sealtrail.log.auditlog import AuditLog
from sealtrail.server.app import ServiceConfig, create_app

LOGS = ("default", "other")

# caller -> (role, log scope); every key the fixture creates.
KEYS: dict[str, tuple[str, str | None]] = {
    "ingest_default": ("ingest", "default"),
    "ingest_other": ("ingest", "other"),
    "ingest_all": ("ingest", None),
    "reader_default": ("reader", "default"),
    "reader_all": ("reader", None),
    "auditor": ("auditor", None),
    "admin": ("admin", None),
}
# Keys that exist but must not work, with the role they would otherwise have.
DEAD_KEYS: dict[str, tuple[str, str | None]] = {
    "expired": ("auditor", None),
    "revoked": ("admin", None),
}


def seed_event(n: int = 0) -> dict[str, Any]:
    """A small valid event (with personal fields, so the log seals something)."""
    return {"actor": {"id": f"seed-{n}", "ip": "192.0.2.10", "name": "Seed Person"},
            "action": "seed.write", "outcome": "success", "category": "data_change",
            "target": {"type": "doc", "id": f"doc-{n}"}}


def key_id(token: str) -> str:
    """The key id inside a token ``st_<id>_<secret>`` (the id is hex: no underscore)."""
    return token.split("_")[1]


@dataclass(frozen=True)
class Service:
    """A running service: where it answers, the tokens by caller name, its data directory."""

    base_url: str
    tokens: dict[str, str]
    data_dir: Path
    config: ServiceConfig

    def auth(self, caller: str) -> dict[str, str]:
        """The Authorization header of one caller's key."""
        return {"Authorization": f"Bearer {self.tokens[caller]}"}

    def key_id(self, caller: str) -> str:
        """The key id of one caller's key."""
        return key_id(self.tokens[caller])

    def client(self) -> httpx.Client:
        """A client for this service (the caller closes it)."""
        return httpx.Client(base_url=self.base_url, timeout=30)


def make_data_dir(data_dir: Path) -> dict[str, str]:
    """Create the logs (one event each) and every key; return the tokens by caller name."""
    for name in LOGS:
        with AuditLog.open(data_dir, name) as alog:
            alog.append(seed_event())
    now = datetime.now(UTC)
    keys = ApiKeys(data_dir)
    try:
        tokens = {caller: keys.create(role, log=scope, name=caller, now=now)
                  for caller, (role, scope) in KEYS.items()}
        past = now - timedelta(days=1)
        role, scope = DEAD_KEYS["expired"]
        tokens["expired"] = keys.create(role, log=scope, name="expired", now=past,
                                        expires=past + timedelta(minutes=1))
        role, scope = DEAD_KEYS["revoked"]
        tokens["revoked"] = keys.create(role, log=scope, name="revoked", now=now)
        keys.revoke(key_id(tokens["revoked"]), now)
    finally:
        keys.close()
    return tokens


@contextmanager
def running(config: ServiceConfig) -> Iterator[str]:
    """Run the app on uvicorn, on 127.0.0.1 and a free port, in a thread; yield its base URL."""
    server = uvicorn.Server(uvicorn.Config(create_app(config), host="127.0.0.1", port=0,
                                           log_level="warning"))
    thread = threading.Thread(target=server.run, name="uvicorn-sealtrail", daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 20
        while not server.started:
            if not thread.is_alive():
                raise RuntimeError("uvicorn stopped before it started")
            if time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start within 20 s")
            time.sleep(0.01)
        port = server.servers[0].sockets[0].getsockname()[1]
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(20)
        if thread.is_alive():  # pragma: no cover - a hung shutdown is a failure of its own
            raise RuntimeError("uvicorn did not stop within 20 s")


@contextmanager
def service_at(data_dir: Path, **overrides: Any) -> Iterator[Service]:
    """A data directory with logs and keys, served with ``ServiceConfig(data_dir, **overrides)``."""
    tokens = make_data_dir(data_dir)
    # No monitor unless asked for: its alert events would change what these tests count
    # (tests/monitor runs the service with it).
    config = replace(ServiceConfig(data_dir, monitor=None), **overrides)
    with running(config) as base_url:
        yield Service(base_url, tokens, data_dir, config)


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """One service per test module, default limits."""
    with service_at(tmp_path_factory.mktemp("service")) as svc:
        yield svc


@pytest.fixture(scope="module")
def client(service: Service) -> Iterator[httpx.Client]:
    """A client of the module's service."""
    with service.client() as c:
        yield c


@pytest.fixture
def start_service(tmp_path: Path) -> Iterator[Callable[..., Service]]:
    """A factory for extra services with config overrides (``rate=1``, ``max_body=...``)."""
    with ExitStack() as stack:
        count = 0

        def start(**overrides: Any) -> Service:
            nonlocal count
            count += 1
            data_dir = tmp_path / f"service-{count}"
            return stack.enter_context(service_at(data_dir, **overrides))

        yield start
