"""Regression: closing a drop-mode client counts what it had to drop."""

from __future__ import annotations

import socket

import pytest

from sealtrail import Client


def test_close_counts_undelivered_events_as_dropped(caplog: pytest.LogCaptureFixture) -> None:
    """With no service to deliver to, ``close`` drops the queue and says how many."""
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    client = Client(f"http://127.0.0.1:{port}", "st_0000000000000000_" + "A" * 43,
                    failure_mode="drop")
    for _ in range(50):
        client.record(actor={"id": "a"}, action="x.y", outcome="success")
    client.close(timeout=0.1)
    assert client.dropped == 50
    assert "dropped 50" in caplog.text
