"""The service's API key rows in PostgreSQL (psycopg 3): the table ``api_keys`` in a schema of
its own, so every service node using the database authenticates with the same keys.

How it keeps :class:`sealtrail.store.service.KeyRows` (the shared plumbing, texts kept as
UTF-8 bytes and the reconnection after a server restart: ``store/postgres_rows.py``):

- **Insert once.** ``INSERT ... ON CONFLICT (id) DO NOTHING``, checked by its row count: an id
  already stored, by this node or another at the same moment, is StorageError and the stored
  row stays (the primary key decides, as SQLite's).
- **Revoke once.** One conditional ``UPDATE ... WHERE revoked IS NULL`` checked by its row
  count: of two nodes revoking at once, the second waits for the first's row lock, sees the
  key revoked and answers False, so the first revocation time stays.
- **Run again after a restart.** An insert or revocation whose connection broke while it ran
  may have been kept: run again, an insert that finds this very row stored (the hash of a new
  secret is not met twice) and a revocation that finds the key revoked at this very time
  answer as if the first run had answered.
- **Order.** ``rows`` orders by ``created`` then ``id`` as bytes: SQLite's order.
"""

from __future__ import annotations

from typing import Any, Final

from sealtrail.core.errors import StorageError
from sealtrail.store.postgres_rows import (
    Conn,
    PostgresRows,
    text,
    text_or_none,
    untext,
    untext_or_none,
)
from sealtrail.store.service import KeyRow

LAYOUT_VERSION: Final = 1

_TABLES: Final = """
CREATE TABLE IF NOT EXISTS api_keys(
    id BYTEA PRIMARY KEY,
    hash BYTEA NOT NULL,
    role BYTEA NOT NULL,
    log BYTEA,
    name BYTEA NOT NULL,
    created BYTEA NOT NULL,
    expires BYTEA,
    revoked BYTEA,
    cert_sha256 BYTEA);
CREATE INDEX IF NOT EXISTS api_keys_created ON api_keys(created, id);
"""

_COLUMNS: Final = "id, hash, role, log, name, created, expires, revoked, cert_sha256"


class PostgresKeyRows(PostgresRows):
    """API key rows in ``schema`` (created, with its table, when missing) of the database at
    ``url``.

    Implements :class:`sealtrail.store.service.KeyRows`.
    """

    def __init__(self, url: str, schema: str) -> None:
        super().__init__(url, schema, store="api_keys", version=LAYOUT_VERSION, tables=_TABLES,
                         what="the API key store")

    def insert(self, row: KeyRow) -> None:
        values = (text(row.id), row.hash, text(row.role), text_or_none(row.log),
                  text(row.name), text(row.created), text_or_none(row.expires),
                  text_or_none(row.revoked), text_or_none(row.cert_sha256))
        tries = 0

        def work(db: Conn) -> bool:
            nonlocal tries
            tries += 1
            cur = db.execute(f"INSERT INTO api_keys({_COLUMNS}) VALUES "  # noqa: S608
                             "(%s, %s, %s, %s, %s, %s, %s, %s, %s) "
                             "ON CONFLICT (id) DO NOTHING", values)
            if cur.rowcount == 1:
                return True
            if tries == 1:
                return False
            # Run again after the connection broke: the first run may have stored this row.
            found = db.execute(f"SELECT {_COLUMNS} FROM api_keys WHERE id = %s",  # noqa: S608
                               (values[0],)).fetchone()
            return found is not None and _row(found) == row

        if not self._run(work):
            raise StorageError(f"an API key with id {row.id!r} exists")

    def get(self, key_id: str) -> KeyRow | None:
        found = self._rows(f"SELECT {_COLUMNS} FROM api_keys WHERE id = %s",  # noqa: S608
                           (text(key_id),))
        return _row(found[0]) if found else None

    def revoke(self, key_id: str, at: str) -> bool:
        args = (text(at), text(key_id))
        tries = 0

        def work(db: Conn) -> bool:
            nonlocal tries
            tries += 1
            if db.execute("UPDATE api_keys SET revoked = %s WHERE id = %s "
                          "AND revoked IS NULL", args).rowcount > 0:
                return True
            if tries == 1:
                return False
            # Run again after the connection broke: the first run may have revoked it.
            found = db.execute("SELECT revoked FROM api_keys WHERE id = %s",
                               (args[1],)).fetchone()
            return found is not None and found[0] is not None and bytes(found[0]) == args[0]

        return self._run(work)

    def rows(self) -> list[KeyRow]:
        found = self._rows(f"SELECT {_COLUMNS} FROM api_keys "  # noqa: S608 - constant columns
                           "ORDER BY created, id")
        return [_row(row) for row in found]


def _row(found: tuple[Any, ...]) -> KeyRow:
    key_id, digest, role, log, name, created, expires, revoked, bound = found
    return KeyRow(untext(key_id), bytes(digest), untext(role), untext_or_none(log),
                  untext(name), untext(created), untext_or_none(expires),
                  untext_or_none(revoked), untext_or_none(bound))
