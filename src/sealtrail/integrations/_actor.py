"""Who is acting right now: a context variable the integrations fall back on.

``with acting_as({"id": "alice"}): ...`` makes ``alice`` the actor of events recorded by
:func:`~sealtrail.integrations.audited` (and by the middlewares when their ``actor`` callable
gives none) in that context, threads and tasks included (``contextvars`` semantics).
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator, Mapping
from typing import Any

current_actor: contextvars.ContextVar[Mapping[str, Any] | None] = contextvars.ContextVar(
    "sealtrail_current_actor", default=None)


@contextlib.contextmanager
def acting_as(actor: Mapping[str, Any]) -> Iterator[None]:
    """Make ``actor`` the current actor inside the ``with`` block."""
    token = current_actor.set(actor)
    try:
        yield
    finally:
        current_actor.reset(token)
