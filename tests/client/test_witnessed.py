"""The SDK's witness policy: ``Client.witnessed`` / ``AsyncClient.witnessed`` against a real
service whose leader submits checkpoints to a real witness over HTTP."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from sealtrail.client import AsyncClient, Client
from sealtrail.core.cosignature import CosignerKey
from sealtrail.core.errors import SignatureError
from sealtrail.core.witness_policy import WitnessPolicy
from sealtrail.log import witnesses
from sealtrail.log.auditlog import AuditLog
from sealtrail.log.witness import WitnessState
from sealtrail.server.witness_app import create_witness_app
from tests.witness.test_witness import _serving, reference_verify

from .service import Service, event, make_service

ACTOR = {"id": "test", "type": "user"}


@pytest.fixture
def witnessed_service(tmp_path: Path) -> Iterator[tuple[Service, CosignerKey]]:
    """A service whose log has one witness (a real witness app on loopback)."""
    state = WitnessState(tmp_path / "w")
    key = state.init("witness.test/w1")
    svc = make_service(tmp_path / "data")
    with _serving(create_witness_app(state, clock=lambda: datetime.now(UTC))) as url:
        with AuditLog.open(svc.data, "default") as alog:
            state.add_log(alog.vkey())
            witnesses.add(alog, url, key.format(), actor=ACTOR)
        svc.start()
        try:
            yield svc, key
        finally:
            svc.stop()


def _wait_witnessed(client: Client, policy: WitnessPolicy, size: int) -> str:
    """Poll until the served checkpoint is cosigned at ``size`` or more; its note."""
    deadline = time.monotonic() + 20
    while True:
        found = client.witnessed(policy)
        note = client.checkpoint or ""
        if found.met and int(note.split("\n")[1]) >= size:
            return note
        assert time.monotonic() < deadline, "the checkpoint was never witnessed"
        time.sleep(0.2)


def test_the_served_checkpoint_is_witnessed(witnessed_service: tuple[Service, CosignerKey],
                                            tmp_path: Path) -> None:
    """After events are recorded, the service's rounds get the checkpoint cosigned; the SDK
    reports it witnessed, and the line verifies with an independent implementation."""
    svc, key = witnessed_service
    policy = WitnessPolicy.parse(f"witness {key.format()}\n")
    with Client(svc.url, svc.ingest, spool_path=tmp_path / "spool", verifier=svc.vkey) as c:
        ids = [c.record(event(n)) for n in range(5)]
        assert c.flush(10)
        size = max(c.receipts[i].checkpoint_size for i in ids)
        note = _wait_witnessed(c, policy, size)
    body, _, sigs = note.partition("\n\n")
    line = next(s for s in sigs.split("\n") if s.startswith(f"\u2014 {key.name} "))
    reference_verify(key, body + "\n", line)


def test_a_policy_of_other_witnesses_is_not_met(
        witnessed_service: tuple[Service, CosignerKey], tmp_path: Path) -> None:
    """A policy naming a witness that never cosigned reports not witnessed (who is missing)."""
    svc, _ = witnessed_service
    other = WitnessState(tmp_path / "other").init("witness.test/other")
    policy = WitnessPolicy.parse(f"witness {other.format()}\n")
    with Client(svc.url, svc.ingest, spool_path=tmp_path / "spool", verifier=svc.vkey) as c:
        c.record(event(1))
        assert c.flush(10)
        found = c.witnessed(policy)
    assert not found.met
    assert found.missing == ("witness.test/other",)


class FlipCosignature(httpx.BaseTransport):
    """A real transport that flips a bit in the last signature line of served checkpoints."""

    def __init__(self) -> None:
        self.inner = httpx.HTTPTransport()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self.inner.handle_request(request)
        if not request.url.path.startswith("/tlog/"):
            return response
        text = response.read().decode()
        response.close()
        lines = text.rstrip("\n").split("\n")
        name, _, sig = lines[-1].rpartition(" ")
        flipped = sig[:10] + ("A" if sig[10] != "A" else "B") + sig[11:]
        lines[-1] = f"{name} {flipped}"
        return httpx.Response(200, content=("\n".join(lines) + "\n").encode())

    def close(self) -> None:
        self.inner.close()


def test_a_tampered_cosignature_is_an_error(witnessed_service: tuple[Service, CosignerKey],
                                            tmp_path: Path) -> None:
    """A cosignature line of a policy witness that does not verify raises (not 'absent')."""
    svc, key = witnessed_service
    policy = WitnessPolicy.parse(f"witness {key.format()}\n")
    with Client(svc.url, svc.ingest, spool_path=tmp_path / "spool", verifier=svc.vkey) as c:
        c.record(event(1))
        assert c.flush(10)
        _wait_witnessed(c, policy, 1)
    with Client(svc.url, svc.ingest, spool_path=tmp_path / "spool2", verifier=svc.vkey,
                transport=FlipCosignature()) as bad, pytest.raises(SignatureError):
        bad.witnessed(policy)


def test_the_async_client_too(witnessed_service: tuple[Service, CosignerKey],
                              tmp_path: Path) -> None:
    """AsyncClient.witnessed gives the same answer."""
    svc, key = witnessed_service
    policy = f"witness {key.format()}\nquorum 1\n"

    async def run() -> bool:
        async with AsyncClient(svc.url, svc.ingest, spool_path=tmp_path / "aspool",
                               verifier=svc.vkey) as c:
            await c.record(event(1))
            assert await c.flush(10)
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                if (await c.witnessed(policy)).met:
                    return True
                await asyncio.sleep(0.2)
            return False

    assert asyncio.run(run())


def test_a_served_checkpoint_behind_the_kept_one_is_no_rollback(
        witnessed_service: tuple[Service, CosignerKey], tmp_path: Path) -> None:
    """verify_receipt keeps the newest checkpoint; the served (witnessed) one lags a round
    behind it: witnessed() checks it is a prefix of the kept one, keeps the newer, and says
    which size it found witnessed."""
    svc, key = witnessed_service
    policy = WitnessPolicy.parse(f"witness {key.format()}\n")
    with Client(svc.url, svc.ingest, spool_path=tmp_path / "spool", verifier=svc.vkey) as c:
        c.record(event(1))
        assert c.flush(10)
        _wait_witnessed(c, policy, 1)
        ident = c.record(event(2))
        assert c.flush(10)
        c.verify_receipt(c.receipts[ident])
        kept = c.checkpoint
        found = c.witnessed(policy)   # served: the older round's note
        assert c.checkpoint == kept
        assert found.size > 0
