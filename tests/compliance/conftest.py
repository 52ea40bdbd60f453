"""Shared fixtures of the compliance tests: a clock the test moves."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

T0 = datetime(2025, 1, 1, tzinfo=UTC)


class Clock:
    """A clock the test moves (``clock.now = ...``); logs opened with it read it."""

    def __init__(self, start: datetime = T0) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    """A fresh clock at :data:`T0`."""
    return Clock()
