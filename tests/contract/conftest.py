"""Fixtures of the storage contract suite: every test that takes ``store`` (or ``fresh``) runs
once per adapter of :data:`tests.contract.adapters.ADAPTERS`."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

import pytest

from sealtrail.store.protocol import Store
from tests.contract.adapters import ADAPTERS, Adapter


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "deviation(check): a protocol docstring some adapters are known to break "
                   "(tests/contract/adapters.py); a strict xfail for those adapters")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        mark = item.get_closest_marker("deviation")
        callspec = getattr(item, "callspec", None)
        if mark is None or callspec is None:
            continue
        adapter = callspec.params.get("adapter")
        if isinstance(adapter, Adapter) and mark.args[0] in adapter.deviations:
            item.add_marker(pytest.mark.xfail(strict=True,
                                              reason=adapter.deviations[mark.args[0]]))


@pytest.fixture(scope="session",
                params=[pytest.param(a, marks=a.marks, id=a.name) for a in ADAPTERS])
def adapter(request: pytest.FixtureRequest) -> Adapter:
    """One adapter of the registry (its tests skip, saying why, when it is unreachable)."""
    chosen: Adapter = request.param
    reason = chosen.unavailable()
    if reason is not None:
        pytest.skip(reason)
    return chosen


@pytest.fixture(autouse=True)
def _adapter_cleanup(request: pytest.FixtureRequest) -> Iterator[None]:
    """After a test run on an adapter (its stores closed), drop what the adapter made."""
    yield
    callspec = getattr(request.node, "callspec", None)
    chosen = callspec.params.get("adapter") if callspec is not None else None
    if isinstance(chosen, Adapter):
        chosen.cleanup()


@pytest.fixture
def store(adapter: Adapter, tmp_path: Path) -> Iterator[Store]:
    """A new, empty store of the adapter under test."""
    made = adapter.make(tmp_path)
    yield made
    made.close()


@pytest.fixture(scope="session")
def fresh(adapter: Adapter, tmp_path_factory: pytest.TempPathFactory
          ) -> Callable[[], AbstractContextManager[Store]]:
    """Makes a new, empty store per call, closed when its block ends (one per Hypothesis
    example)."""

    @contextmanager
    def new() -> Iterator[Store]:
        made = adapter.make(tmp_path_factory.mktemp(adapter.name))
        try:
            yield made
        finally:
            made.close()

    return new
