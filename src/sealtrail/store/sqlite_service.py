"""The service's API key rows in SQLite: one file (``DATA/_service/service.db``), WAL mode,
``synchronous=FULL``, made 0600 in a 0700 directory.

One connection in autocommit mode, shared by the service's threads; SQLite's own locking
makes the file safe for several processes (the service and ``sealtrail keys``). A file made
before keys could be bound to a client certificate gains the ``cert_sha256`` column on open.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path
from typing import Any

from sealtrail.core.errors import StorageError
from sealtrail.store.service import KeyRow

_SCHEMA = """
CREATE TABLE IF NOT EXISTS api_keys(
    id TEXT PRIMARY KEY,
    hash BLOB NOT NULL,
    role TEXT NOT NULL,
    log TEXT,
    name TEXT NOT NULL,
    created TEXT NOT NULL,
    expires TEXT,
    revoked TEXT,
    cert_sha256 TEXT);
"""


class SQLiteKeyRows:
    """API key rows in the SQLite file ``path`` (created, with its directory, when missing)."""

    def __init__(self, path: Path) -> None:
        try:
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            if not path.exists():
                os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
            self._db = sqlite3.connect(str(path), isolation_level=None,
                                       check_same_thread=False, timeout=30)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(_SCHEMA)
            columns = {row[1] for row in self._db.execute("PRAGMA table_info(api_keys)")}
            if "cert_sha256" not in columns:  # a store made before keys could be bound
                self._db.execute("ALTER TABLE api_keys ADD COLUMN cert_sha256 TEXT")
        except (OSError, sqlite3.Error) as exc:
            raise StorageError(f"cannot open the API key store: {exc}") from exc

    def close(self) -> None:
        self._db.close()

    def _run(self, sql: str, params: tuple[Any, ...] = ()) -> sqlite3.Cursor:
        try:
            return self._db.execute(sql, params)
        except sqlite3.IntegrityError as exc:  # only insert has a constraint: the id
            raise StorageError(f"an API key with id {params[0]!r} exists") from exc
        except sqlite3.Error as exc:  # locked, full, closed: the service answers a failure
            raise StorageError(f"API key store: {exc}") from exc

    def insert(self, row: KeyRow) -> None:
        self._run("INSERT INTO api_keys(id, hash, role, log, name, created, expires, revoked, "
                  "cert_sha256) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                  (row.id, row.hash, row.role, row.log, row.name, row.created, row.expires,
                   row.revoked, row.cert_sha256))

    def get(self, key_id: str) -> KeyRow | None:
        found = self._run("SELECT id, hash, role, log, name, created, expires, revoked, "
                          "cert_sha256 FROM api_keys WHERE id = ?", (key_id,)).fetchone()
        return None if found is None else _row(found)

    def revoke(self, key_id: str, at: str) -> bool:
        cur = self._run("UPDATE api_keys SET revoked = ? WHERE id = ? AND revoked IS NULL",
                        (at, key_id))
        return cur.rowcount > 0

    def rows(self) -> list[KeyRow]:
        found = self._run("SELECT id, hash, role, log, name, created, expires, revoked, "
                          "cert_sha256 FROM api_keys ORDER BY created, id").fetchall()
        return [_row(row) for row in found]


def _row(found: tuple[Any, ...]) -> KeyRow:
    key_id, digest, role, log, name, created, expires, revoked, bound = found
    return KeyRow(key_id, bytes(digest), role, log, name, created, expires, revoked, bound)
