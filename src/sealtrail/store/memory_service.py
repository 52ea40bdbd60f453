"""The service's API key rows in memory: the :class:`~sealtrail.store.service.KeyRows`
contract, nothing on disk (tests, an ephemeral service). No other process sees the keys, and
they are gone when the process ends."""

from __future__ import annotations

import dataclasses
import threading

from sealtrail.core.errors import StorageError
from sealtrail.store.service import KeyRow


class MemoryKeyRows:
    """API key rows in a dict, behind one lock."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rows: dict[str, KeyRow] = {}

    def close(self) -> None:
        pass  # nothing to release

    def insert(self, row: KeyRow) -> None:
        with self._lock:
            if row.id in self._rows:
                raise StorageError(f"an API key with id {row.id!r} exists")
            self._rows[row.id] = row

    def get(self, key_id: str) -> KeyRow | None:
        with self._lock:
            return self._rows.get(key_id)

    def revoke(self, key_id: str, at: str) -> bool:
        with self._lock:
            row = self._rows.get(key_id)
            if row is None or row.revoked is not None:
                return False
            self._rows[key_id] = dataclasses.replace(row, revoked=at)
            return True

    def rows(self) -> list[KeyRow]:
        with self._lock:
            return sorted(self._rows.values(), key=lambda row: (row.created, row.id))
