"""The console's users, their sessions and their failed sign-ins, behind a narrow protocol.

:class:`~sealtrail.log.users.Users` decides (password hashing, TOTP, lockout, session
timeouts, roles); a :class:`UserRows` store keeps and fetches rows and holds no policy. Its
few conditional writes are the ones two service nodes could race on (a TOTP step used once,
a failure counted once, a user disabled once), so each is one statement that checks and
writes together. Times are the canonical text of ``core/timefmt.py`` (fixed width, UTC), so
comparing them as text is comparing the instants: the store prunes by them, it never decides
with them.

Adapters: ``store/sqlite_users.py`` (tables in ``DATA/_service/service.db``, beside the API
keys), ``store/memory_users.py`` (nothing on disk), ``store/postgres_users.py`` (the
``sealtrail__service`` schema). ``tests/users/test_contract_user_rows.py`` holds the
behaviour every adapter must show; ``log/datadir.py`` is the one engine module that names an
adapter.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol


@dataclass(frozen=True, slots=True)
class UserRow:
    """One console user as stored. ``hash`` is the Argon2id encoded hash (None: the user signs
    in by single sign-on only); ``totp`` the TOTP secret (None: not enrolled), kept out of the
    repr; ``totp_step`` the last 30-second step a code was accepted for (-1: none yet);
    ``subject`` the identity provider's account a single sign-on user is bound to (the
    SHA-256 hex of issuer, newline, ``sub``: never the mutable user name claim), unique among
    users; None for a local user."""

    name: str
    role: str
    source: str  # "local" (password) or "oidc" (single sign-on)
    hash: str | None = field(repr=False)
    created: str
    disabled: str | None
    totp: bytes | None = field(repr=False)
    totp_step: int
    subject: str | None = None


@dataclass(frozen=True, slots=True)
class SessionRow:
    """One console session: never its token, only the token's SHA-256 (``hash``, the key)."""

    hash: bytes = field(repr=False)
    id: str  # a random public id, for logs and listings (the token never is)
    user: str
    csrf: str = field(repr=False)
    via: str  # "password" or "oidc"
    created: str
    last_seen: str


@dataclass(frozen=True, slots=True)
class FailureRow:
    """Consecutive failed sign-ins for a name (known or not): how many, the last one's time,
    and until when the name is locked (None: it is not)."""

    name: str
    count: int
    last: str
    locked_until: str | None


class UserRows(Protocol):
    """Users, sessions and failure counters. Every method may be called from several threads
    at once."""

    # -- users ------------------------------------------------------------------------------

    def insert_user(self, row: UserRow) -> None:
        """Store a new user; a name, or a (non-None) subject, already stored fails
        (StorageError), that row unchanged."""

    def get_user(self, name: str) -> UserRow | None:
        """The user with this name (disabled alike); None when there is none."""

    def get_user_by_subject(self, subject: str) -> UserRow | None:
        """The user bound to this single sign-on subject (disabled alike); None: none is."""

    def users(self) -> list[UserRow]:
        """Every user, ordered by ``created`` and then ``name`` (as text)."""

    def set_password(self, name: str, hash_: str) -> bool:
        """Replace the user's password hash (a rehash); False when there is no such user."""

    def set_role(self, name: str, role: str) -> bool:
        """Change the user's role; False when there is no such user."""

    def disable(self, name: str, at: str) -> bool:
        """Mark the user disabled at ``at``; False (and nothing changes) when there is no such
        user or it was disabled already, so the first time stays."""

    def set_totp(self, name: str, secret: bytes) -> bool:
        """Enroll a new TOTP secret (the used step goes back to -1); False: no such user."""

    def use_totp_step(self, name: str, step: int) -> bool:
        """Record ``step`` as used when it is later than the last used one and answer True;
        False (nothing changes) when it is not, or there is no such user: a code is good
        once, even when two nodes are shown it at the same moment."""

    # -- sessions ---------------------------------------------------------------------------

    def insert_session(self, row: SessionRow) -> None:
        """Store a new session; a hash already stored fails (StorageError)."""

    def get_session(self, hash_: bytes) -> SessionRow | None:
        """The session whose token has this SHA-256; None when there is none."""

    def touch_session(self, hash_: bytes, at: str) -> bool:
        """Set the session's ``last_seen``; False when there is no such session."""

    def delete_session(self, hash_: bytes) -> bool:
        """End one session; False when there was none."""

    def delete_sessions_of(self, user: str) -> int:
        """End every session of ``user``; how many there were."""

    def prune_sessions(self, seen_before: str, created_before: str) -> int:
        """End every session last seen before ``seen_before`` or created before
        ``created_before`` (both expired by then); how many."""

    # -- failed sign-ins --------------------------------------------------------------------

    def get_failures(self, name: str) -> FailureRow | None:
        """The failure counter of ``name``; None when it has none."""

    def add_failure(self, name: str, at: str) -> int:
        """Count one more failure for ``name`` at ``at`` (a new counter starts at 1); the new
        count. Two nodes counting at once both count."""

    def lock(self, name: str, until: str) -> None:
        """Lock ``name`` until ``until`` (its counter must exist; nothing happens else)."""

    def clear_failures(self, name: str) -> None:
        """Forget the counter of ``name`` (a success)."""

    def prune_failures(self, now: str, stale_before: str, keep: int) -> int:
        """Forget counters not locked at ``now`` (no lock, or one ending at or before it)
        whose last failure is before ``stale_before``, then, of the rest not locked at
        ``now`` whose name is no user's, all but the ``keep`` with the latest failures; how
        many went. A locked counter stays until its lock ends: pruning never unlocks a name.
        A user's counter is never pushed out by the cap (only by staleness): failures of
        made-up names, however many, must not reset a real user's count toward the lockout
        (PCI DSS 8.3.4); users' counters are bounded by the users."""

    def close(self) -> None:
        """Release the store; closing twice is harmless."""
