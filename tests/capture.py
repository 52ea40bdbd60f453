"""Capturing the request an append prepares, instead of committing it (to batch by hand).

Tests that need several requests in one group commit (a rejected request beside a good one,
an erasure and an append, two writers meeting the same new subject) capture each request
here and pass them to ``AuditLog._commit`` together.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sealtrail import AuditLog
from sealtrail.log.ingest import Request


def capture(log: AuditLog, submit: Callable[[], Any]) -> Request:
    """The request ``submit`` would queue, captured instead of committed."""
    got: list[Request] = []
    original = log._submit

    def keep(req: Request) -> list[Any]:
        got.append(req)
        return [None]

    log._submit = keep  # type: ignore[method-assign]
    try:
        submit()
    finally:
        log._submit = original  # type: ignore[method-assign]
    return got[0]
