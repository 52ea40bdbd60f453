"""API keys of the service: random 256-bit tokens, stored only as hashes, with a role and scope.

A token reads ``st_<key id>_<secret>``: the key id (8 random bytes, hex) finds the row, the
secret (32 random bytes, base64url) is checked against its SHA-256 with a constant-time
comparison. The token is shown once, when created; sealtrail cannot show it again.

Roles (docs/service.md has the full route table):

- ``ingest``: append to its log(s); read checkpoints and proofs (to check its receipts);
- ``reader``: search and read its log(s), checkpoints and proofs;
- ``auditor``: read, proofs and exports on every log;
- ``admin``: create logs and keys, service metrics; reads no event content.

Keys live in ``DATA/_service/service.db`` (a name no log can take), mode 0600.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
import secrets
import sqlite3
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Final, Literal

from sealtrail.core.errors import ConfigError, StorageError
from sealtrail.core.timefmt import format_time, parse_time

Role = Literal["ingest", "reader", "auditor", "admin"]
ROLES: Final = ("ingest", "reader", "auditor", "admin")
SERVICE_DIR: Final = "_service"
DB_FILE: Final = "service.db"
_TOKEN = re.compile(r"^st_([0-9a-f]{16})_([A-Za-z0-9_-]{43})\Z")

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


@dataclass(frozen=True, slots=True)
class Principal:
    """Who a request is: the key's id, role and log scope (None: every log)."""

    key_id: str
    role: Role
    log: str | None
    name: str

    def may_use(self, log: str) -> bool:
        """Whether the key's scope covers ``log`` (auditors see every log)."""
        return self.role == "auditor" or self.log is None or self.log == log


@dataclass(frozen=True, slots=True)
class KeyInfo:
    """One key as listed (never the token or its hash)."""

    id: str
    role: str
    log: str | None
    name: str
    created: str
    expires: str | None
    revoked: str | None
    client_cert_sha256: str | None = None


class ApiKeys:
    """The service's API keys (one SQLite file; safe for several processes)."""

    def __init__(self, data_dir: str | os.PathLike[str]) -> None:
        directory = Path(data_dir) / SERVICE_DIR
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        path = directory / DB_FILE
        if not path.exists():
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
        try:
            self._db = sqlite3.connect(str(path), isolation_level=None,
                                       check_same_thread=False, timeout=30)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(_SCHEMA)
            columns = {row[1] for row in self._db.execute("PRAGMA table_info(api_keys)")}
            if "cert_sha256" not in columns:  # a store made before keys could be bound
                self._db.execute("ALTER TABLE api_keys ADD COLUMN cert_sha256 TEXT")
        except sqlite3.Error as exc:
            raise StorageError(f"cannot open the API key store: {exc}") from exc

    def close(self) -> None:
        """Close the store."""
        self._db.close()

    def create(self, role: str, *, log: str | None, name: str, now: datetime,
               expires: datetime | None = None, client_cert_sha256: str | None = None) -> str:
        """Create a key; return its token (shown once: only its hash is kept).

        ``client_cert_sha256`` binds the key to a client certificate (mTLS): the token then
        only works on a connection that presented that certificate.
        """
        if role not in ROLES:
            raise ConfigError(f"role {role!r}: use one of {', '.join(ROLES)}")
        if role in ("auditor", "admin") and log is not None:
            raise ConfigError(f"{role} keys act on every log: leave --log out")
        if expires is not None and expires <= now:
            raise ConfigError("--expires must be in the future")
        if client_cert_sha256 is not None and not re.fullmatch(r"[0-9a-f]{64}",
                                                                client_cert_sha256):
            raise ConfigError("a client certificate fingerprint is 64 lowercase hex digits")
        key_id = secrets.token_hex(8)
        secret = base64.urlsafe_b64encode(secrets.token_bytes(32)).rstrip(b"=").decode()
        self._db.execute("INSERT INTO api_keys(id, hash, role, log, name, created, expires, "
                         "cert_sha256) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                         (key_id, _hash(secret), role, log, name[:128], format_time(now),
                          None if expires is None else format_time(expires),
                          client_cert_sha256))
        return f"st_{key_id}_{secret}"

    def authenticate(self, token: str, now: datetime, client_cert_sha256: str | None = None
                     ) -> Principal | None:
        """The principal a bearer token stands for; None when unknown, expired, revoked, or
        bound to a client certificate this connection did not present."""
        match = _TOKEN.match(token)
        if match is None:
            return None
        key_id, secret = match.groups()
        row = self._db.execute("SELECT hash, role, log, name, expires, revoked, cert_sha256 "
                               "FROM api_keys WHERE id = ?", (key_id,)).fetchone()
        # Hash and compare even when the id is unknown: timing says nothing either way.
        stored = bytes(row[0]) if row is not None else b"\x00" * 32
        if not hmac.compare_digest(stored, _hash(secret)) or row is None:
            return None
        _, role, log, name, expires, revoked, bound = row
        if revoked is not None or (expires is not None and parse_time(expires) <= now):
            return None
        if bound is not None and not hmac.compare_digest(
                bound.encode(), (client_cert_sha256 or "").encode()):
            return None
        return Principal(key_id, role, log, name)

    def revoke(self, key_id: str, now: datetime) -> None:
        """Revoke a key at once (its token stops working on the next request)."""
        cur = self._db.execute("UPDATE api_keys SET revoked = ? WHERE id = ? AND revoked IS NULL",
                               (format_time(now), key_id))
        if cur.rowcount == 0:
            raise ConfigError(f"no active key {key_id!r}")

    def listing(self) -> list[KeyInfo]:
        """Every key, oldest first (no token, no hash)."""
        rows = self._db.execute("SELECT id, role, log, name, created, expires, revoked, "
                                "cert_sha256 FROM api_keys ORDER BY created, id").fetchall()
        return [KeyInfo(*row) for row in rows]


def _hash(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()
