"""Fixtures of the timestamp tests: a test CA, a TSA certificate it issued, and a running
RFC 3161 responder on loopback (``tests/timestamps/tsa.py``)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.timestamps.tsa import Authority, Responder


@pytest.fixture(scope="session")
def authority() -> Authority:
    """The CA the tests trust."""
    return Authority.make()


@pytest.fixture
def responder(authority: Authority) -> Iterator[Responder]:
    """A TSA (certificate as RFC 3161 2.3 wants) serving on loopback; ``.url`` once started."""
    key, cert = authority.issue_tsa()
    tsa = Responder(key, cert)
    tsa.start()
    yield tsa
    tsa.stop()
