"""What a PostgreSQL database holds of sealtrail: which schemas are stores, without making any.

Opening a :class:`~sealtrail.store.postgres.PostgresStore` writable creates its schema; the
questions "is there a log of that name?" and "which logs are there?" must not, so they are
answered from the catalog here on a short connection of their own.
"""

from __future__ import annotations

from collections.abc import Callable

import psycopg

from sealtrail.core.errors import StorageError
from sealtrail.store.postgres import conninfo


def _connect(url: str) -> psycopg.Connection[tuple[object, ...]]:
    try:
        return psycopg.connect(conninfo(url), autocommit=True)
    except psycopg.Error as exc:
        raise StorageError(f"cannot connect to the PostgreSQL store: {exc}") from exc


def postgres_store_exists(url: str, schema: str) -> bool:
    """Whether ``schema`` holds a store's tables (``schema_info``: made, maybe unfinished)."""
    with _connect(url) as conn:
        try:
            row = conn.execute("SELECT to_regclass(format('%%I.schema_info', %s::text)) "
                               "IS NOT NULL", (schema,)).fetchone()
        except psycopg.Error as exc:
            raise StorageError(f"cannot read the PostgreSQL catalog: {exc}") from exc
    return bool(row and row[0])


def postgres_logs(url: str, prefix: str, name_of: Callable[[str], str | None]) -> list[str]:
    """The names (``name_of(schema)``, None: not a log's) of the stores whose schema starts
    with ``prefix``."""
    with _connect(url) as conn:
        try:
            rows = conn.execute(
                "SELECT table_schema FROM information_schema.tables "
                "WHERE table_name = 'schema_info' AND starts_with(table_schema, %s)",
                (prefix,)).fetchall()
        except psycopg.Error as exc:
            raise StorageError(f"cannot read the PostgreSQL catalog: {exc}") from exc
    return sorted(n for (schema,) in rows if (n := name_of(str(schema))) is not None)


def postgres_table_exists(url: str, schema: str, table: str) -> bool:
    """Whether ``schema.table`` exists (made by a row store on its first writable open)."""
    with _connect(url) as conn:
        try:
            row = conn.execute("SELECT to_regclass(format('%%I.%%I', %s::text, %s::text)) "
                               "IS NOT NULL", (schema, table)).fetchone()
        except psycopg.Error as exc:
            raise StorageError(f"cannot read the PostgreSQL catalog: {exc}") from exc
    return bool(row and row[0])


__all__ = ["postgres_logs", "postgres_store_exists", "postgres_table_exists"]
