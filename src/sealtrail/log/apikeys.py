"""API keys of the service: random 256-bit tokens, stored only as hashes, with a role and scope.

A token reads ``st_<key id>_<secret>``: the key id (8 random bytes, hex) finds the row, the
secret (32 random bytes, base64url) is checked against its SHA-256 with a constant-time
comparison. The token is shown once, when created; sealtrail cannot show it again.

Roles (docs/service.md has the full route table):

- ``ingest``: append to its log(s); read checkpoints and proofs (to check its receipts);
- ``reader``: search and read its log(s), checkpoints and proofs;
- ``auditor``: read, proofs and exports on every log;
- ``admin``: create logs and keys, service metrics; reads no event content.

Keys live in ``DATA/_service/service.db`` (a name no log can take), mode 0600: the rows behind
the :class:`~sealtrail.store.service.KeyRows` protocol, the SQLite adapter opened by
``log/datadir.py``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
import secrets
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Final, Literal, cast

from sealtrail.core.errors import ConfigError
from sealtrail.core.timefmt import format_time, parse_time
from sealtrail.log.datadir import open_key_rows
from sealtrail.store.service import KeyRow, KeyRows

Role = Literal["ingest", "reader", "auditor", "admin"]
ROLES: Final = ("ingest", "reader", "auditor", "admin")
SERVICE_DIR: Final = "_service"
DB_FILE: Final = "service.db"
_TOKEN = re.compile(r"^st_([0-9a-f]{16})_([A-Za-z0-9_-]{43})\Z")


@dataclass(frozen=True, slots=True)
class Principal:
    """Who a request is: the key's id, role and log scope (None: every log)."""

    key_id: str
    role: Role
    log: str | None
    name: str
    # "api_key" for a bearer key; "user" for a console session (key_id is "user:<name>").
    kind: str = "api_key"

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
    """The service's API keys, over a :class:`~sealtrail.store.service.KeyRows` store.

    ``ApiKeys(data_dir)`` opens the data directory's SQLite file (safe for several
    processes), ``ApiKeys(data_dir, store=URL)`` the PostgreSQL store's rows (every node's);
    ``ApiKeys(rows=...)`` works over any other store of the rows (tests:
    ``MemoryKeyRows``). The store keeps rows; everything decided about a key is decided here.
    """

    def __init__(self, data_dir: str | os.PathLike[str] | None = None, *,
                 rows: KeyRows | None = None, store: str | None = None) -> None:
        if rows is None:
            if data_dir is None:
                raise TypeError("ApiKeys needs a data directory or rows=")
            rows = open_key_rows(Path(data_dir) / SERVICE_DIR / DB_FILE, store)
        elif data_dir is not None:
            raise TypeError("ApiKeys takes a data directory or rows=, not both")
        self._rows = rows

    def close(self) -> None:
        """Close the store."""
        self._rows.close()

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
        self._rows.insert(KeyRow(key_id, _hash(secret), role, log, name[:128], format_time(now),
                                 None if expires is None else format_time(expires), None,
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
        row = self._rows.get(key_id)
        # Hash and compare even when the id is unknown: timing says nothing either way.
        stored = row.hash if row is not None else b"\x00" * 32
        if not hmac.compare_digest(stored, _hash(secret)) or row is None:
            return None
        if row.revoked is not None or (row.expires is not None
                                       and parse_time(row.expires) <= now):
            return None
        if row.cert_sha256 is not None and not hmac.compare_digest(
                row.cert_sha256.encode(), (client_cert_sha256 or "").encode()):
            return None
        # The role was checked against ROLES when the key was created.
        return Principal(key_id, cast(Role, row.role), row.log, row.name)

    def revoke(self, key_id: str, now: datetime) -> None:
        """Revoke a key at once (its token stops working on the next request)."""
        if not self._rows.revoke(key_id, format_time(now)):
            raise ConfigError(f"no active key {key_id!r}")

    def listing(self) -> list[KeyInfo]:
        """Every key, oldest first (no token, no hash)."""
        return [KeyInfo(row.id, row.role, row.log, row.name, row.created, row.expires,
                        row.revoked, row.cert_sha256) for row in self._rows.rows()]


def _hash(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()
