"""``@audited(client, "invoice.pay")``: record each call of a function as an audit event.

The event is recorded when the call ends: outcome ``success`` when it returns, ``error``
(with the exception's type as ``reason``) when it raises — the exception is re-raised. The
actor is ``actor=`` (a mapping, or a callable returning one), else the current
:func:`~sealtrail.integrations.acting_as` actor; with neither, the call is refused with a
ValidationError *before* the function runs. ``target`` is a mapping or a callable given the
call's arguments. Works on plain and ``async def`` functions; an ``async def`` function may
use either client, a plain one needs the sync :class:`~sealtrail.client.Client`.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, ParamSpec, TypeVar, cast

from sealtrail.client import AsyncClient, Client
from sealtrail.core.errors import ValidationError
from sealtrail.integrations._actor import current_actor

P = ParamSpec("P")
R = TypeVar("R")
ActorSpec = Mapping[str, Any] | Callable[[], Mapping[str, Any] | None] | None
TargetSpec = Mapping[str, Any] | Callable[..., Mapping[str, Any] | None] | None


@dataclass(frozen=True, slots=True)
class _Audit:
    """What a decorated function records: action, target, actor and fixed fields."""

    action: str
    target: TargetSpec
    actor: ActorSpec
    fields: Mapping[str, Any]

    def who(self) -> dict[str, Any]:
        found = self.actor() if callable(self.actor) else self.actor
        if found is None:
            found = current_actor.get()
        if found is None:
            raise ValidationError("actor", "no actor: pass actor= to audited(), or call "
                                  "inside sealtrail.integrations.acting_as(...)")
        return dict(found)

    def event(self, who: dict[str, Any], args: tuple[Any, ...], kwargs: dict[str, Any],
              error: BaseException | None) -> dict[str, Any]:
        doc: dict[str, Any] = {**self.fields, "actor": who, "action": self.action,
                               "outcome": "success" if error is None else "error"}
        found = self.target(*args, **kwargs) if callable(self.target) else self.target
        if found is not None:
            doc["target"] = dict(found)
        if error is not None and "reason" not in doc:
            doc["reason"] = type(error).__name__
        return doc


def audited(client: Client | AsyncClient, action: str, target: TargetSpec = None, *,
            actor: ActorSpec = None, **fields: Any
            ) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Decorate a function so each call records ``action`` with its outcome.

    ``fields`` (``category``, ``purpose``...) go into every event.
    """
    spec = _Audit(action, target, actor, fields)

    def decorate(fn: Callable[P, R]) -> Callable[P, R]:
        if inspect.iscoroutinefunction(fn):
            return cast("Callable[P, R]", _wrap_async(fn, client, spec))
        if isinstance(client, AsyncClient):
            raise TypeError(f"{fn.__qualname__} is not async: audit it with a sync Client")
        sync_client = client

        @functools.wraps(fn)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            who = spec.who()
            try:
                result = fn(*args, **kwargs)
            except Exception as exc:
                sync_client.record(spec.event(who, args, kwargs, exc))
                raise
            sync_client.record(spec.event(who, args, kwargs, None))
            return result

        return wrapper

    return decorate


def _wrap_async(fn: Callable[..., Awaitable[Any]], client: Client | AsyncClient,
                spec: _Audit) -> Callable[..., Awaitable[Any]]:
    async def record(doc: dict[str, Any]) -> None:
        if isinstance(client, AsyncClient):
            await client.record(doc)
        else:
            await asyncio.to_thread(client.record, doc)

    @functools.wraps(fn)
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        who = spec.who()
        try:
            result = await fn(*args, **kwargs)
        except Exception as exc:
            await record(spec.event(who, args, kwargs, exc))
            raise
        await record(spec.event(who, args, kwargs, None))
        return result

    return wrapper
