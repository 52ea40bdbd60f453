"""The service's own state behind a narrow protocol: the rows of its API keys.

:class:`~sealtrail.log.apikeys.ApiKeys` decides (token format, hashing, the constant-time
check, expiry, client-certificate binding, roles); a :class:`KeyRows` store only keeps and
fetches rows, and holds no policy. Times are kept as the text ``ApiKeys`` gives
(``core/timefmt.py``), and compared by it, never by the store.

Adapters: ``store/sqlite_service.py`` (``DATA/_service/service.db``, the service's default),
``store/memory_service.py`` (nothing on disk). ``tests/contract/test_contract_key_rows.py``
holds the behaviour every adapter must show; ``log/datadir.py`` is the one engine module that
names an adapter.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol


@dataclass(frozen=True, slots=True)
class KeyRow:
    """One API key as stored: never its token, only the SHA-256 of its secret (``hash``,
    kept out of the repr all the same)."""

    id: str  # the key id: 16 lowercase hex digits, the token's middle part
    hash: bytes = field(repr=False)
    role: str
    log: str | None  # the log the key is scoped to; None: every log
    name: str
    created: str
    expires: str | None
    revoked: str | None
    cert_sha256: str | None  # the client certificate the key is bound to (mTLS), if any


class KeyRows(Protocol):
    """The API keys' rows. Every method may be called from several threads at once."""

    def insert(self, row: KeyRow) -> None:
        """Store a new key; a row with the same id already stored fails (StorageError), and
        the stored row stays as it was."""

    def get(self, key_id: str) -> KeyRow | None:
        """The key with this id, revoked or expired alike; None when there is none."""

    def revoke(self, key_id: str, at: str) -> bool:
        """Mark the key revoked at ``at``; False (and nothing changes) when there is no such
        key or it was already revoked, so the first revocation time stays."""

    def rows(self) -> list[KeyRow]:
        """Every key, ordered by ``created`` and then ``id`` (as text)."""

    def close(self) -> None:
        """Release the store; closing twice is harmless."""
