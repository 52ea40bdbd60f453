"""The console's user, session and failure rows in memory: the
:class:`~sealtrail.store.users.UserRows` contract, nothing on disk (tests, an ephemeral
service). No other process sees them, and they are gone when the process ends."""

from __future__ import annotations

import dataclasses
import threading

from sealtrail.core.errors import StorageError
from sealtrail.store.users import FailureRow, SessionRow, UserRow


class MemoryUserRows:
    """User, session and failure rows in dicts, behind one lock."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._users: dict[str, UserRow] = {}
        self._sessions: dict[bytes, SessionRow] = {}
        self._failures: dict[str, FailureRow] = {}

    def close(self) -> None:
        pass  # nothing to release

    # -- users ------------------------------------------------------------------------------

    def insert_user(self, row: UserRow) -> None:
        with self._lock:
            if row.name in self._users:
                raise StorageError(f"a user named {row.name!r} exists")
            if row.subject is not None and any(
                    other.subject == row.subject for other in self._users.values()):
                raise StorageError("a user bound to this single sign-on subject exists")
            self._users[row.name] = row

    def get_user(self, name: str) -> UserRow | None:
        with self._lock:
            return self._users.get(name)

    def get_user_by_subject(self, subject: str) -> UserRow | None:
        with self._lock:
            return next((row for row in self._users.values() if row.subject == subject),
                        None)

    def users(self) -> list[UserRow]:
        with self._lock:
            return sorted(self._users.values(), key=lambda row: (row.created, row.name))

    def _change(self, name: str, **changes: object) -> bool:
        with self._lock:
            row = self._users.get(name)
            if row is None:
                return False
            self._users[name] = dataclasses.replace(row, **changes)  # type: ignore[arg-type]
            return True

    def set_password(self, name: str, hash_: str) -> bool:
        return self._change(name, hash=hash_)

    def set_role(self, name: str, role: str) -> bool:
        return self._change(name, role=role)

    def disable(self, name: str, at: str) -> bool:
        with self._lock:
            row = self._users.get(name)
            if row is None or row.disabled is not None:
                return False
            self._users[name] = dataclasses.replace(row, disabled=at)
            return True

    def set_totp(self, name: str, secret: bytes) -> bool:
        return self._change(name, totp=secret, totp_step=-1)

    def use_totp_step(self, name: str, step: int) -> bool:
        with self._lock:
            row = self._users.get(name)
            if row is None or step <= row.totp_step:
                return False
            self._users[name] = dataclasses.replace(row, totp_step=step)
            return True

    # -- sessions ---------------------------------------------------------------------------

    def insert_session(self, row: SessionRow) -> None:
        with self._lock:
            if row.hash in self._sessions:
                raise StorageError("a session with this token hash exists")
            self._sessions[row.hash] = row

    def get_session(self, hash_: bytes) -> SessionRow | None:
        with self._lock:
            return self._sessions.get(hash_)

    def touch_session(self, hash_: bytes, at: str) -> bool:
        with self._lock:
            row = self._sessions.get(hash_)
            if row is None:
                return False
            self._sessions[hash_] = dataclasses.replace(row, last_seen=at)
            return True

    def delete_session(self, hash_: bytes) -> bool:
        with self._lock:
            return self._sessions.pop(hash_, None) is not None

    def delete_sessions_of(self, user: str) -> int:
        with self._lock:
            gone = [h for h, row in self._sessions.items() if row.user == user]
            for h in gone:
                del self._sessions[h]
            return len(gone)

    def prune_sessions(self, seen_before: str, created_before: str) -> int:
        with self._lock:
            gone = [h for h, row in self._sessions.items()
                    if row.last_seen < seen_before or row.created < created_before]
            for h in gone:
                del self._sessions[h]
            return len(gone)

    # -- failed sign-ins --------------------------------------------------------------------

    def get_failures(self, name: str) -> FailureRow | None:
        with self._lock:
            return self._failures.get(name)

    def add_failure(self, name: str, at: str) -> int:
        with self._lock:
            row = self._failures.get(name)
            new = (FailureRow(name, 1, at, None) if row is None
                   else dataclasses.replace(row, count=row.count + 1, last=at))
            self._failures[name] = new
            return new.count

    def lock(self, name: str, until: str) -> None:
        with self._lock:
            row = self._failures.get(name)
            if row is not None:
                self._failures[name] = dataclasses.replace(row, locked_until=until)

    def clear_failures(self, name: str) -> None:
        with self._lock:
            self._failures.pop(name, None)

    def prune_failures(self, now: str, stale_before: str, keep: int) -> int:
        with self._lock:
            free = [row for row in self._failures.values()
                    if row.locked_until is None or row.locked_until <= now]
            stale = {row.name for row in free if row.last < stale_before}
            rest = sorted((row for row in free  # a user's counter never competes for the cap
                           if row.name not in stale and row.name not in self._users),
                          key=lambda row: (row.last, row.name), reverse=True)
            gone = stale | {row.name for row in rest[max(keep, 0):]}
            for name in gone:
                del self._failures[name]
            return len(gone)
