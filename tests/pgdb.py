"""A PostgreSQL database of its own for one test: made before, dropped (with its sessions)
after. The server is the one on loopback (``SEALTRAIL_TEST_POSTGRES_ADMIN`` names another: a
URL of a database the test may connect to for CREATE/DROP DATABASE)."""

from __future__ import annotations

import functools
import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Final

import psycopg
from psycopg import sql

ADMIN_URL: Final = os.environ.get("SEALTRAIL_TEST_POSTGRES_ADMIN",
                                  "postgresql://postgres@127.0.0.1:5432/postgres")


@functools.cache
def unavailable() -> str | None:
    """Why PostgreSQL tests cannot run here (None: they can)."""
    try:
        with psycopg.connect(ADMIN_URL, connect_timeout=3) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        return f"PostgreSQL is not reachable at {ADMIN_URL}: {str(exc).strip()}"
    return None


def url_of(name: str) -> str:
    """The URL of database ``name`` on the admin URL's server."""
    base, _, _ = ADMIN_URL.rpartition("/")
    return f"{base}/{name}"


@contextmanager
def scratch_database() -> Iterator[str]:
    """A new, empty database (``st_test_<hex>``); its URL; dropped afterwards, whatever is
    still connected to it."""
    name = f"st_test_{secrets.token_hex(6)}"
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield url_of(name)
    finally:
        with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                sql.Identifier(name)))
