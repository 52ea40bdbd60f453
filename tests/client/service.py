"""A real sealtrail service on loopback, in a thread, that can go down and come back on one port.

Clients under test talk to it over real HTTP; nothing is mocked. Stopping the service runs its
shutdown (logs closed), so tests may then open the data directory with ``AuditLog``.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import uvicorn

from sealtrail.log.apikeys import ApiKeys
from sealtrail.log.auditlog import AuditLog
from sealtrail.server.app import ServiceConfig, create_app
from tests.ports import free_port


@dataclass
class Service:
    """The service over ``data`` on ``port``: start, stop, restart; keys and the log's vkey."""

    data: Path
    port: int
    ingest: str
    reader: str
    vkey: str
    rate: float = 200.0
    burst: float = 400.0
    max_events: int = 10_000
    _server: uvicorn.Server | None = None
    _thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """The base URL clients use."""
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        """Serve (a fresh app over the same data directory) and wait until it listens."""
        app = create_app(ServiceConfig(self.data, rate=self.rate, burst=self.burst,
                                       max_events=self.max_events))
        server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port,
                                               log_level="warning", lifespan="on"))
        thread = threading.Thread(target=server.run, daemon=True, name="sealtrail-service")
        thread.start()
        deadline = time.monotonic() + 10
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the service did not start")
            time.sleep(0.01)
        self._server, self._thread = server, thread

    def stop(self) -> None:
        """Shut down (connections closed, logs closed); the port is free again."""
        if self._server is None or self._thread is None:
            return
        self._server.should_exit = True
        self._thread.join(10)
        self._server = self._thread = None

    @property
    def running(self) -> bool:
        """Whether the service is up."""
        return self._server is not None

    def stored(self) -> list[dict[str, Any]]:
        """Every stored event (the service must be stopped): what the log really holds."""
        if self.running:
            raise RuntimeError("stop the service before opening its log")
        with AuditLog.open(self.data, "default") as alog:
            return [entry.event() for entry in alog.entries(0)]

    def read(self) -> list[dict[str, Any]]:
        """Every stored event with its personal fields opened (the service must be stopped)."""
        if self.running:
            raise RuntimeError("stop the service before opening its log")
        with AuditLog.open(self.data, "default") as alog:
            return [alog.read(entry) for entry in alog.entries(0)]

    def stored_ids(self) -> list[str]:
        """The ids of every stored event, in log order."""
        return [str(ev["id"]) for ev in self.stored()]


def make_service(data: Path, **limits: Any) -> Service:
    """A data directory with the log ``default``, an ingest key and a reader key."""
    with AuditLog.open(data, "default") as alog:
        vkey = alog.vkey()
    keys = ApiKeys(data)
    try:
        now = datetime.now(UTC)
        ingest = keys.create("ingest", log=None, name="t", now=now)
        reader = keys.create("reader", log=None, name="r", now=now)
    finally:
        keys.close()
    return Service(data, free_port(), ingest, reader, vkey, **limits)


def event(n: int, **extra: Any) -> dict[str, Any]:
    """A small valid event numbered ``n``."""
    return {"actor": {"id": f"user-{n}"}, "action": "test.step", "outcome": "success",
            "metadata": {"n": n}, **extra}
