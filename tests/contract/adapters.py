"""The store adapters the contract suite runs against (habit 7: one suite, every adapter).

Adding an adapter is one more line in :data:`ADAPTERS`. What an adapter may answer its own way
is declared next to it, never inside a test: whether another process can reach its data
(``Store.opener``), how something else can be put where it lives (``Store.replaced``), and the
protocol docstrings it is known to break (``deviations``: each test marked
``@pytest.mark.deviation(check)`` becomes a strict xfail for those adapters, so a fix shows up
as an unexpected pass). An adapter that needs a server says how to tell it is unreachable
(``unavailable``: the reason its tests skip), carries its pytest ``marks``, and drops what its
``make`` created after each test (``cleanup``).
"""

from __future__ import annotations

import functools
import os
import secrets
import shutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import psycopg
import pytest
from psycopg import sql

from sealtrail.store.memory import MemoryStore
from sealtrail.store.postgres import PostgresStore
from sealtrail.store.protocol import Store
from sealtrail.store.sqlite import SQLiteStore


@dataclass(frozen=True, slots=True)
class Adapter:
    """One kind of store, as the suite opens and judges it."""

    name: str
    make: Callable[[Path], Store]  # a new, empty store in this empty directory
    processes: bool  # another process reaches the data: opener() gives a picklable handle maker
    # Put other data where the store's location is (the store was made in this directory);
    # None when nothing can, and replaced() must then stay False.
    replace: Callable[[Path], None] | None = None
    deviations: Mapping[str, str] = field(default_factory=dict)  # check -> what it does instead
    unavailable: Callable[[], str | None] = lambda: None  # why its tests skip, None: they run
    marks: tuple[pytest.MarkDecorator, ...] = ()
    cleanup: Callable[[], None] = lambda: None  # after each test: drop what make created


def _sqlite_replace(directory: Path) -> None:
    """An older copy of the database moved into place: another file under the same name."""
    shutil.copyfile(directory / "log.db", directory / "copy.db")
    os.replace(directory / "copy.db", directory / "log.db")


SQLITE_DEVIATIONS: Final[dict[str, str]] = {}

# PostgreSQL: each store is a schema of its own (st_<random hex>) in the test database,
# dropped with everything in it after the test.
POSTGRES_URL: Final = os.environ.get("SEALTRAIL_TEST_POSTGRES",
                                     "postgresql://postgres@127.0.0.1:5432/test")
_pg_schemas: dict[Path, str] = {}


@functools.cache
def _postgres_unavailable() -> str | None:
    try:
        with psycopg.connect(POSTGRES_URL, connect_timeout=3) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        return f"PostgreSQL is not reachable at {POSTGRES_URL}: {str(exc).strip()}"
    return None


def _postgres_make(directory: Path) -> Store:
    schema = f"st_{secrets.token_hex(6)}"
    _pg_schemas[directory] = schema
    return PostgresStore(POSTGRES_URL, schema)


def _drop(conn: psycopg.Connection[tuple[object, ...]], schema: str) -> None:
    conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


def _postgres_replace(directory: Path) -> None:
    """The schema dropped and made again: another store under the same name."""
    schema = _pg_schemas[directory]
    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        _drop(conn, schema)
    PostgresStore(POSTGRES_URL, schema).close()


def _postgres_cleanup() -> None:
    """Drop every schema the tests made (their handles are closed or idle: no lock held)."""
    if not _pg_schemas:
        return
    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        conn.execute("SET lock_timeout = '20s'")
        for schema in _pg_schemas.values():
            _drop(conn, schema)
    _pg_schemas.clear()


POSTGRES_DEVIATIONS: Final[dict[str, str]] = {}

ADAPTERS: Final = (
    Adapter("sqlite", lambda d: SQLiteStore(d / "log.db"), True, _sqlite_replace,
            SQLITE_DEVIATIONS),
    Adapter("memory", lambda _: MemoryStore(), False),
    Adapter("postgres", _postgres_make, True, _postgres_replace, POSTGRES_DEVIATIONS,
            unavailable=_postgres_unavailable, marks=(pytest.mark.postgres,),
            cleanup=_postgres_cleanup),
)
