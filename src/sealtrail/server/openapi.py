"""What the OpenAPI document says about answers and bodies that FastAPI cannot infer.

Routes read their bodies themselves (bounded, JSON or JSON Lines, decoded by msgspec), so each
declares its body and its answers with these helpers; :func:`install` adds the event model's
schemas (from msgspec) that those bodies refer to.
"""

from __future__ import annotations

from typing import Any, Final

import msgspec
from fastapi import FastAPI

from sealtrail.core.event import Event

_ERROR_SCHEMA: Final = {"type": "object", "required": ["error"],
                        "properties": {"error": {"type": "string"}, "field": {"type": "string"},
                                       "errors": {"type": "array"}}}
ERRORS: Final[dict[int | str, dict[str, Any]]] = {
    code: {"description": why, "content": {"application/json": {"schema": _ERROR_SCHEMA}}}
    for code, why in ((400, "Refused (bad argument, policy)"), (401, "No valid API key"),
                      (403, "The key's role or scope does not allow this"),
                      (404, "No such log, tile or entry"), (413, "Body or batch too large"),
                      (422, "Invalid input; the error names the field"),
                      (429, "Rate limited; see Retry-After"),
                      (503, "Storage or keyring unavailable; nothing was stored"))}
"""Every error answer a route may give (the ``responses`` of each authenticated route)."""

EVENTS_SCHEMA: Final = msgspec.json.schema(list[Event],
                                           ref_template="#/components/schemas/{name}")
"""A JSON array of events, its definitions under ``components/schemas``."""


def answers(media: str, description: str, code: int = 200) -> dict[int | str, dict[str, Any]]:
    """The OpenAPI responses of a route answering ``media`` (plus every error)."""
    body = {"schema": {"type": "string", **({"format": "binary"} if "octet" in media else {})}}
    return {code: {"description": description, "content": {media: body}}, **ERRORS}


def json_body(schema: dict[str, Any], description: str) -> dict[str, Any]:
    """The ``openapi_extra`` of a route that reads a JSON body of ``schema`` itself."""
    return {"requestBody": {"required": True, "description": description,
                            "content": {"application/json": {"schema": schema}}}}


def install(app: FastAPI) -> None:
    """Make ``app.openapi()`` FastAPI's document plus the event model's schemas."""
    default_openapi = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            doc = default_openapi()
            schemas = doc.setdefault("components", {}).setdefault("schemas", {})
            schemas.update(EVENTS_SCHEMA.get("$defs", {}))
            app.openapi_schema = doc
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
