"""The service's JSON answers: bodies encoded by msgspec, and the one shape of an error.

Every refusal is ``{"error": text, ...}`` (with ``field`` naming the bad input, ``errors``
listing several); the OpenAPI document describes it once (:data:`~.openapi.ERRORS`).
"""

from __future__ import annotations

from typing import Any

import msgspec
from fastapi import Response
from fastapi.responses import JSONResponse


class MsgspecJson(Response):
    """A JSON answer encoded by msgspec (events and receipts hold types it encodes natively,
    and faster than the standard library)."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return msgspec.json.encode(content)


def error_response(status: int, message: str, **extra: Any) -> JSONResponse:
    """``{"error": message, **extra}`` with ``status``."""
    return JSONResponse({"error": message, **extra}, status_code=status)
