"""Fixtures of the client tests: a real service per test (see :mod:`tests.client.service`)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from .service import Service, make_service


@pytest.fixture
def service(tmp_path: Path) -> Iterator[Service]:
    """A running service (stopped at the end of the test)."""
    svc = make_service(tmp_path / "data")
    svc.start()
    try:
        yield svc
    finally:
        svc.stop()
