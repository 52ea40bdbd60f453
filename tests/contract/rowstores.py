"""The fixtures of a contract suite over a narrow row store (API keys, the outbox, alerts):
each such module lists its adapters (a name and how to make an empty store in a directory)
and takes its ``make_rows``, ``rows`` and ``fresh_rows`` fixtures from :func:`row_fixtures`.
The suite's ``Store`` adapters (``tests/contract/adapters.py``) hold a log's data instead."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any, Protocol, TypeVar

import pytest


class _Closable(Protocol):
    def close(self) -> None: ...


R = TypeVar("R", bound=_Closable)


def row_fixtures(adapters: Mapping[str, Callable[[Path], R]], label: str
                 ) -> tuple[Any, Any, Any]:
    """``make_rows`` (session, one run per adapter: how it makes a new, empty store),
    ``rows`` (a new, empty store, closed after the test) and ``fresh_rows`` (makes a new,
    empty store per call in a directory named after ``label``, closed when its block ends:
    one per Hypothesis example). Assign them to those names in the test module."""

    @pytest.fixture(scope="session", params=list(adapters), name="make_rows")
    def make_rows(request: pytest.FixtureRequest) -> Callable[[Path], R]:
        return adapters[request.param]

    @pytest.fixture(name="rows")
    def rows(make_rows: Callable[[Path], R], tmp_path: Path) -> Iterator[R]:
        made = make_rows(tmp_path)
        yield made
        made.close()

    @pytest.fixture(scope="session", name="fresh_rows")
    def fresh_rows(make_rows: Callable[[Path], R], tmp_path_factory: pytest.TempPathFactory
                   ) -> Callable[[], AbstractContextManager[R]]:
        @contextmanager
        def new() -> Iterator[R]:
            made = make_rows(tmp_path_factory.mktemp(label))
            try:
                yield made
            finally:
                made.close()

        return new

    return make_rows, rows, fresh_rows
