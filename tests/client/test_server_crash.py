"""The real service killed with SIGKILL while four spooling clients send, then restarted.

The service is ``python -m sealtrail serve`` in a subprocess on a fixed loopback port; each
client (a thread) has its own spool file and records events at a steady pace. Twice, at a random
moment of the run, the service is killed with SIGKILL (no shutdown: requests in flight, maybe a
commit half done) and started again on the same port. Every event whose ``record`` returned is
in a spool, so it must end up in the log: exactly once, in its client's record order, in a log
that still verifies.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from sealtrail.client import Client
from sealtrail.log.apikeys import ApiKeys
from sealtrail.log.auditlog import AuditLog
from tests.ports import free_port

pytestmark = pytest.mark.slow

CLIENTS = 4
EVENTS = 300          # per client
PACE = 0.015          # seconds between two records of one client: about 5 s of recording
KILLS = 2
START_TIMEOUT = 30.0  # seconds for a (re)started service to answer /healthz
FLUSH_TIMEOUT = 45.0


class Server:
    """``python -m sealtrail --data D serve --port P`` as a subprocess that can be SIGKILLed."""

    def __init__(self, data: Path, port: int, out: Path) -> None:
        self.data, self.port, self.out = data, port, out
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def url(self) -> str:
        """Where the service answers."""
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        """Start the service and wait until /healthz answers."""
        self.starts += 1
        with self.out.open("ab") as out:
            out.write(f"--- start {self.starts}\n".encode())
            out.flush()
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "sealtrail", "--data", str(self.data), "serve",
                 "--port", str(self.port), "--workers", "1"],
                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + START_TIMEOUT
        with httpx.Client(base_url=self.url, timeout=2) as http:
            while True:
                if self.proc.poll() is not None:
                    pytest.fail(f"serve exited {self.proc.returncode}:\n{self.out.read_text()}")
                try:
                    if http.get("/healthz").status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    pytest.fail(f"serve did not answer in {START_TIMEOUT} s:\n"
                                f"{self.out.read_text()}")
                time.sleep(0.05)

    def kill(self) -> None:
        """SIGKILL the service (nothing of it runs after this returns)."""
        if self.proc is not None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
            self.proc = None

    def stop(self) -> None:
        """Stop the service gracefully (SIGTERM: uvicorn shuts down, the logs are closed)."""
        if self.proc is None:
            return
        proc, self.proc = self.proc, None
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:  # pragma: no cover - a hung shutdown
            proc.kill()
            proc.wait()
            raise


@contextmanager
def served(data: Path, out: Path) -> Iterator[Server]:
    """A started server; killed at the end if the test left it running."""
    server = Server(data, free_port(), out)
    server.start()
    try:
        yield server
    finally:
        server.kill()


def make_data(data: Path) -> str:
    """The log ``default`` and an ingest key (its token) in ``data``."""
    AuditLog.open(data, "default").close()
    keys = ApiKeys(data)
    try:
        return keys.create("ingest", log=None, name="t", now=datetime.now(UTC))
    finally:
        keys.close()


def test_events_survive_sigkill_of_the_server_exactly_once_in_order(tmp_path: Path) -> None:
    """Events recorded while the service is SIGKILLed and restarted are each stored exactly
    once, in each client's record order, and the log verifies."""
    seed = random.randrange(2**32)
    rng = random.Random(seed)
    about = f"(seed {seed})"
    data = tmp_path / "data"
    token = make_data(data)
    recorded: list[list[str]] = [[] for _ in range(CLIENTS)]
    errors: list[BaseException] = []
    retries = 0
    with ExitStack() as stack:
        server = stack.enter_context(served(data, tmp_path / "serve.log"))
        clients = [stack.enter_context(Client(server.url, token,
                                              spool_path=tmp_path / f"spool-{c}.db",
                                              batch_size=25, flush_interval=0.05,
                                              max_backoff=0.5))
                   for c in range(CLIENTS)]

        def run(c: int) -> None:
            try:
                for n in range(EVENTS):
                    recorded[c].append(clients[c].record(
                        actor={"id": f"client-{c}"}, action="crash.step", outcome="success",
                        metadata={"client": c, "n": n}))
                    time.sleep(PACE)
            except BaseException as exc:  # reported by the main thread
                errors.append(exc)

        threads = [threading.Thread(target=run, args=(c,), name=f"recorder-{c}")
                   for c in range(CLIENTS)]
        for t in threads:
            t.start()
        # Kill at random moments while the clients record and send (a restart takes a second
        # or two; the recording about EVENTS * PACE seconds).
        for k in range(KILLS):
            time.sleep(rng.uniform(0.2, 1.0))
            assert all(t.is_alive() for t in threads), \
                f"recording ended before kill {k + 1}: the kills come too late {about}"
            server.kill()
            time.sleep(rng.uniform(0.0, 0.3))
            server.start()
        for t in threads:
            t.join(60)
        assert not errors, f"record raised {about}: {errors!r}"
        assert all(len(ids) == EVENTS for ids in recorded)
        for client in clients:
            assert client.flush(FLUSH_TIMEOUT), \
                f"not delivered in {FLUSH_TIMEOUT} s {about}: {client.pending} pending, " \
                f"last error {client.last_error}"
            assert client.rejected == 0
            assert client.dropped == 0
        retries = sum(client.retries for client in clients)
        for client in clients:
            client.close()
        server.stop()

    assert retries > 0, f"no delivery ever failed: the kills missed the clients {about}"
    expected = [ident for ids in recorded for ident in ids]
    assert len(set(expected)) == CLIENTS * EVENTS
    with AuditLog.open(data, "default", create=False) as alog:
        stored = [str(entry.event()["id"]) for entry in alog.entries(0)]
        alog.verify()
    counts = Counter(stored)
    twice = sorted(ident for ident, n in counts.items() if n > 1)
    missing = sorted(set(expected) - set(counts))
    extra = sorted(set(counts) - set(expected))
    assert not twice, f"{len(twice)} event(s) stored more than once {about}: {twice[:5]}"
    assert not missing, f"{len(missing)} recorded event(s) missing {about}: {missing[:5]}"
    assert not extra, f"{len(extra)} event(s) nobody recorded {about}: {extra[:5]}"
    index = {ident: i for i, ident in enumerate(stored)}
    for c, ids in enumerate(recorded):
        positions = [index[ident] for ident in ids]
        assert positions == sorted(positions), f"client {c}'s events out of order {about}"
