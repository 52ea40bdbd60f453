"""NDJSON request bodies split on LF only: an event holding U+2028 (legal unescaped in JSON)
is one event, not a malformed line."""

from __future__ import annotations

import json

import httpx
import pytest

from tests.server.conftest import Service


@pytest.mark.parametrize("sep", ["\u2028", "\u2029", "\u0085", "\x0b", "\x0c"])
def test_ndjson_body_with_unicode_separators(service: Service, client: httpx.Client,
                                             sep: str) -> None:
    lines = [json.dumps({"actor": {"id": f"u{k}"}, "action": "doc.read", "outcome": "success",
                         "reason": f"a{sep}b"}, ensure_ascii=False) for k in range(2)]
    resp = client.post("/v1/logs/default/events", content="\n".join(lines).encode(),
                       headers={**service.auth("ingest_all"),
                                "Content-Type": "application/x-ndjson"})
    assert resp.status_code == 201, resp.text
    assert len(resp.json()["receipts"]) == 2
