"""The PostgreSQL entries of the narrow row stores' contract suites (API keys, alerts, the
outbox): each store a schema of its own (``st_<random hex>``) in the test database
(``SEALTRAIL_TEST_POSTGRES``, as ``tests/contract/adapters.py``), dropped after the test; the
adapter's tests carry ``pytest.mark.postgres`` and skip, saying why, when PostgreSQL is
unreachable.

A suite lists ``postgres_rows(PostgresXRows)`` among its adapters, takes ``rows`` and
``fresh_rows`` from :func:`tests.contract.rowstores.row_fixtures` and ``make_rows`` and the
schema cleanup from :func:`pg_row_fixtures`::

    _, rows, fresh_rows = row_fixtures(ADAPTERS, "label")
    make_rows, drop_pg_schemas = pg_row_fixtures(ADAPTERS)

The adapter's own tests (a lost connection, several handles on one schema) open stores in
:func:`new_schema` of ``POSTGRES_URL``.
"""

from __future__ import annotations

import functools
import secrets
from collections.abc import Callable, Collection, Iterator, Mapping
from pathlib import Path
from typing import Any, TypeVar

import psycopg
import pytest
from psycopg import sql

from tests.contract.adapters import POSTGRES_URL

__all__ = ["POSTGRES_URL", "lose_connection", "new_schema", "pg_row_fixtures", "postgres_rows"]

R = TypeVar("R")

_schemas: list[str] = []  # made since the last cleanup


@functools.cache
def postgres_unavailable() -> str | None:
    """Why the PostgreSQL adapters' tests skip; None when the server answers."""
    try:
        with psycopg.connect(POSTGRES_URL, connect_timeout=3) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        return f"PostgreSQL is not reachable at {POSTGRES_URL}: {str(exc).strip()}"
    return None


def postgres_rows(open_rows: Callable[[str, str], R]) -> Callable[[Path], R]:
    """How a suite makes an empty PostgreSQL store: ``open_rows(url, schema)`` in a new
    schema of the test database (the directory is not used)."""

    def make(_: Path) -> R:
        return open_rows(POSTGRES_URL, new_schema())

    return make


def new_schema() -> str:
    """A schema name for a test's own PostgreSQL stores (dropped after the test); the test
    skips, saying why, when the server is unreachable."""
    reason = postgres_unavailable()
    if reason is not None:
        pytest.skip(reason)
    schema = f"st_{secrets.token_hex(6)}"
    _schemas.append(schema)
    return schema


def lose_connection(store: object) -> None:
    """End the server process of a store's connection, as a PostgreSQL restart does (the
    adapter's connection is ``_db``, as SQLite's adapters name theirs)."""
    pid = store._db.info.backend_pid  # type: ignore[attr-defined]
    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        conn.execute("SELECT pg_terminate_backend(%s, 5000)", (pid,))


def drop_schemas() -> None:
    """Drop every schema made since the last call (their handles closed or idle: no lock
    held)."""
    if not _schemas:
        return
    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        conn.execute("SET lock_timeout = '20s'")
        for schema in _schemas:
            conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(
                sql.Identifier(schema)))
    _schemas.clear()


def pg_row_fixtures(adapters: Mapping[str, Callable[[Path], R]],
                    postgres: Collection[str] = ("postgres",)) -> tuple[Any, Any]:
    """``make_rows`` (session, one run per adapter; the ``postgres`` ones marked
    ``postgres`` and skipped when the server is unreachable) and an autouse fixture dropping
    the schemas a test made. Assign them to ``make_rows`` and any other name in the suite."""

    @pytest.fixture(scope="session", name="make_rows",
                    params=[pytest.param(name, id=name,
                                         marks=(pytest.mark.postgres,) if name in postgres
                                         else ())
                            for name in adapters])
    def make_rows(request: pytest.FixtureRequest) -> Callable[[Path], R]:
        name: str = request.param
        if name in postgres:
            reason = postgres_unavailable()
            if reason is not None:
                pytest.skip(reason)
        return adapters[name]

    @pytest.fixture(autouse=True, name="drop_pg_schemas")
    def drop_pg_schemas() -> Iterator[None]:
        yield
        drop_schemas()

    return make_rows, drop_pg_schemas
