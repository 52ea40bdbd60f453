"""The AsyncClient against a real service: the same guarantees, awaited."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from sealtrail.client import AsyncClient, DeliveryError
from sealtrail.core.errors import ValidationError

from .service import Service, event


def test_async_record_flush_and_verify(service: Service, tmp_path: Path) -> None:
    """Awaited records are stored in order and their receipts verify."""

    async def main() -> list[str]:
        async with AsyncClient(service.url, service.ingest, spool_path=tmp_path / "spool.db",
                               verifier=service.vkey) as client:
            ids = [await client.record(event(n)) for n in range(4)]
            assert await client.flush(10)
            assert client.pending == 0
            await client.verify_receipt(client.receipts[ids[2]])
            assert client.checkpoint is not None
            return ids

    ids = asyncio.run(main())
    service.stop()
    assert service.stored_ids() == ids


def test_async_invalid_event_is_refused(service: Service, tmp_path: Path) -> None:
    """An invalid event raises ValidationError at record(); nothing is spooled."""
    spool = tmp_path / "spool.db"

    async def main() -> None:
        async with AsyncClient(service.url, service.ingest, spool_path=spool) as client:
            with pytest.raises(ValidationError) as info:
                await client.record(actor={"id": ""}, action="a.b", outcome="success")
            assert info.value.field == "actor.id"

    asyncio.run(main())
    db = sqlite3.connect(spool)
    try:
        assert db.execute("SELECT COUNT(*) FROM events").fetchone() == (0,)
    finally:
        db.close()


def test_async_outage_spools_then_delivers(service: Service, tmp_path: Path) -> None:
    """During an outage awaited records return and wait in the spool; once the service is
    back on its port they are delivered, in order, once each."""

    async def main() -> list[str]:
        async with AsyncClient(service.url, service.ingest, spool_path=tmp_path / "spool.db",
                               max_backoff=0.3) as client:
            await asyncio.to_thread(service.stop)
            ids = [await client.record(event(n)) for n in range(3)]
            assert not await client.flush(0.3)
            assert client.pending == 3
            await asyncio.to_thread(service.start)
            assert await client.flush(10)
            return ids

    ids = asyncio.run(main())
    service.stop()
    assert service.stored_ids() == ids


def test_async_fail_closed_raises_when_down(service: Service) -> None:
    """fail_closed: an awaited record raises DeliveryError while the service is down."""
    service.stop()

    async def main() -> None:
        async with AsyncClient(service.url, service.ingest, failure_mode="fail_closed",
                               timeout=1.0) as client:
            with pytest.raises(DeliveryError):
                await client.record(event(1))

    asyncio.run(main())
    assert service.stored_ids() == []


def test_async_drop_mode_delivers_when_up(service: Service) -> None:
    """drop mode with the service up delivers like the others (nothing dropped)."""

    async def main() -> str:
        async with AsyncClient(service.url, service.ingest, failure_mode="drop") as client:
            ident = await client.record(event(1))
            assert await client.flush(10)
            assert client.dropped == 0
            return ident

    ident = asyncio.run(main())
    service.stop()
    assert service.stored_ids() == [ident]
