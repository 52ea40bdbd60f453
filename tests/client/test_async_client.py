"""The AsyncClient against a real service: the same guarantees, awaited."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

from sealtrail.client import AsyncClient, Client, DeliveryError
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


def test_async_close_and_its_aclose_alias(service: Service, tmp_path: Path) -> None:
    """``await close()`` delivers what was recorded and releases the client; closing again, or
    through ``aclose()`` (contextlib.aclosing), is harmless."""

    async def main() -> list[str]:
        client = AsyncClient(service.url, service.ingest, spool_path=tmp_path / "spool.db")
        ids = [await client.record(event(n)) for n in range(3)]
        await client.close()
        assert client.pending == 0
        await client.close()
        await client.aclose()
        async with contextlib.aclosing(AsyncClient(
                service.url, service.ingest, spool_path=tmp_path / "spool2.db")) as other:
            ids.append(await other.record(event(3)))
        assert other.pending == 0
        return ids

    ids = asyncio.run(main())
    service.stop()
    assert service.stored_ids() == ids


# Names AsyncClient may have that Client has not, each documented in docs/client.md.
ASYNC_ONLY = {"aclose"}


def _public(cls: type) -> dict[str, object]:
    return {name: member for name, member in vars(cls).items() if not name.startswith("_")}


def test_async_client_has_the_sync_clients_api() -> None:
    """docs/client.md: AsyncClient has Client's API, awaited; the only difference is
    documented. Same public names, same kinds (method or property), same parameters, and
    every AsyncClient method is a coroutine function."""
    sync, asynchronous = _public(Client), _public(AsyncClient)
    assert set(sync) - set(asynchronous) == set()
    assert set(asynchronous) - set(sync) == ASYNC_ONLY
    docs = (Path(__file__).parents[2] / "docs" / "client.md").read_text(encoding="utf-8")
    for name in ASYNC_ONLY | set(sync):
        assert f"{name}(" in docs or f"`{name}`" in docs, f"docs/client.md omits {name}"
    for name, member in sync.items():
        other = asynchronous[name]
        assert isinstance(other, property) == isinstance(member, property), name
        if isinstance(member, property):
            continue
        assert callable(member)
        assert callable(other)
        assert inspect.iscoroutinefunction(other), f"AsyncClient.{name} is not awaitable"
        assert _params(member) == _params(other), name
    for name in ASYNC_ONLY:
        assert inspect.iscoroutinefunction(asynchronous[name])
    assert _params(Client.__init__) == _params(AsyncClient.__init__)


def _params(fn: Callable[..., object]) -> list[tuple[str, object, object]]:
    """Each parameter's name, kind and default (annotations differ: sync or async types)."""
    return [(p.name, p.kind, p.default) for p in inspect.signature(fn).parameters.values()]
