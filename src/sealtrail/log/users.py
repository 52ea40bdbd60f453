"""The console's users: passwords, a TOTP second factor, lockout, and sessions.

People sign in to the web console (``/ui/``) as users of their own, never with an API key.
A user has a role as a key has (``reader``, ``auditor``, ``admin``: docs/service.md), and
is either *local* (a password, hashed with Argon2id; optionally TOTP) or *oidc* (made on
first single sign-on, no password: it cannot sign in by one).

- **Passwords** (PCI DSS 8.3.6: at least 12 characters): Argon2id via ``argon2-cffi`` with
  its default parameters, rehashed on a successful sign-in when they change. An unknown name
  costs the same hash check as a known one, so timing does not tell whether a name exists.
- **TOTP** (RFC 6238 over RFC 4226: HMAC-SHA-1, 6 digits, 30-second steps), computed here
  with :mod:`hmac`: a code of the step before or after is accepted (clock drift), and each
  step's code once only (the last used step is stored and only a later one is taken).
- **Lockout** (PCI DSS 8.3.4: lock after at most 10 invalid attempts, for at least 30
  minutes): :class:`Lockout` decides from a name's consecutive failures. While a name waits,
  sign-in answers ``locked`` without checking the password. Failures are counted for names
  that do not exist too (their counters are pruned: bounded), and a success clears them.
- **Sessions** (PCI DSS 8.2.8: idle timeout of 15 minutes): a token of 32 random bytes that
  only its holder has (the store keeps its SHA-256), with a CSRF token of its own; a session
  ends after :attr:`Users.IDLE` idle, :attr:`Users.ABSOLUTE` after it began, when it is
  ended, or when its user is disabled.

Users live beside the API keys (``DATA/_service/service.db``, 0600, or the PostgreSQL store's
``sealtrail__service`` schema): the rows behind :class:`~sealtrail.store.users.UserRows`,
opened by ``log/datadir.py``. Everything decided about a user is decided here.
"""

from __future__ import annotations

import base64
import dataclasses
import functools
import hashlib
import hmac
import os
import re
import secrets
import struct
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Final, Literal
from urllib.parse import quote, urlencode

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError

from sealtrail.core.errors import ConfigError, StorageError
from sealtrail.core.timefmt import format_time, parse_time
from sealtrail.log.apikeys import DB_FILE, SERVICE_DIR
from sealtrail.log.datadir import open_user_rows
from sealtrail.store.users import FailureRow, SessionRow, UserRow, UserRows

__all__ = ["MAX_PASSWORD", "MIN_PASSWORD", "USER_NAME", "USER_ROLES", "Lockout", "SessionInfo",
           "SignIn", "UserInfo", "Users", "hotp", "totp_now"]

USER_ROLES: Final = ("reader", "auditor", "admin")
USER_NAME: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@+-]{0,127}")
MIN_PASSWORD: Final = 12  # PCI DSS 8.3.6
MAX_PASSWORD: Final = 1024  # Argon2 hashes any length; a bound keeps a request's cost bounded
TOTP_STEP: Final = 30
TOTP_DIGITS: Final = 6
FAILURE_ROWS: Final = 10_000  # failure counters kept (beyond: the oldest unlocked go)
FAILURE_MEMORY: Final = timedelta(days=1)  # an unlocked counter this old is forgotten
TOUCH_EVERY: Final = timedelta(seconds=30)  # last_seen is written at most this often
MAX_SUBJECT: Final = 4096  # a single sign-on subject: issuer URL, newline, sub (255 at most)

Outcome = Literal["ok", "bad", "locked", "mfa_required", "mfa_enroll_required", "disabled"]


@dataclass(frozen=True, slots=True)
class UserInfo:
    """One user as shown (never the password hash or the TOTP secret)."""

    name: str
    role: str
    created: str
    disabled: str | None
    mfa: bool
    source: str  # "local" | "oidc"


@dataclass(frozen=True, slots=True)
class SignIn:
    """What a sign-in attempt came to. ``user`` is set once the password was right (``ok``,
    ``mfa_required``, ``mfa_enroll_required``, ``disabled``); ``retry_after`` (seconds) when
    ``locked``."""

    outcome: Outcome
    user: UserInfo | None
    retry_after: float = 0.0


@dataclass(frozen=True, slots=True)
class SessionInfo:
    """A live session: its public id, its user and the user's role now, its CSRF token."""

    id: str
    user: str
    role: str
    csrf: str
    via: str
    created: datetime
    last_seen: datetime


@dataclass(frozen=True, slots=True)
class Lockout:
    """When a name may try again, from its consecutive failures (a pure policy).

    After ``free`` failures each attempt waits ``2 ** (n - free)`` seconds after the last
    failure (at most ``cap``); at ``limit`` failures the name is locked for ``lock``, and
    every failure after that (the lock having ended) locks it again, until a success.
    """

    free: int = 3
    cap: timedelta = timedelta(minutes=5)
    limit: int = 10
    lock: timedelta = timedelta(minutes=30)

    def __post_init__(self) -> None:
        if not 1 <= self.limit <= 10:  # PCI DSS 8.3.4: not more than 10 attempts
            raise ConfigError("lockout limit: between 1 and 10 failed attempts")
        if self.lock < timedelta(minutes=30):
            raise ConfigError("lockout: at least 30 minutes (PCI DSS 8.3.4)")

    def backoff(self, count: int) -> timedelta:
        """How long after the last of ``count`` consecutive failures the next try waits."""
        if count < self.free:
            return timedelta(0)
        return min(self.cap, timedelta(seconds=2 ** min(count - self.free, 30)))

    def wait(self, failures: FailureRow | None, now: datetime) -> float:
        """Seconds ``now`` must still wait before an attempt (0: it may try)."""
        if failures is None:
            return 0.0
        until = parse_time(failures.last) + self.backoff(failures.count)
        if failures.locked_until is not None:
            until = max(until, parse_time(failures.locked_until))
        return max(0.0, (until - now).total_seconds())


# -- TOTP (RFC 6238, RFC 4226) ------------------------------------------------------------

def hotp(secret: bytes, counter: int, digits: int = TOTP_DIGITS) -> str:
    """RFC 4226 HOTP: HMAC-SHA-1 of the 8-byte counter, dynamically truncated (§5.3)."""
    mac = hmac.new(secret, struct.pack(">Q", counter), hashlib.sha1).digest()
    offset = mac[-1] & 0x0F
    code = int.from_bytes(mac[offset:offset + 4], "big") & 0x7FFFFFFF
    return str(code % 10 ** digits).zfill(digits)


def totp_step(now: datetime) -> int:
    """The RFC 6238 time step of ``now`` (T0 = the Unix epoch, X = 30 s)."""
    return int(now.timestamp()) // TOTP_STEP


def totp_now(secret_b32: str, now: datetime) -> str:
    """The code an authenticator app shows at ``now`` for a base32 secret (tests, tools)."""
    return hotp(_b32decode(secret_b32), totp_step(now))


def _b32encode(secret: bytes) -> str:
    return base64.b32encode(secret).decode().rstrip("=")


def _b32decode(text: str) -> bytes:
    clean = text.replace(" ", "").upper()
    return base64.b32decode(clean + "=" * (-len(clean) % 8))


# -- the hasher ---------------------------------------------------------------------------

def _dummy_hash(hasher: PasswordHasher) -> str:
    """A hash checked when there is no user (or no password) to check against: the same
    parameters and the same cost as a real one (made once per set of parameters)."""
    return _dummy_for((hasher.time_cost, hasher.memory_cost, hasher.parallelism,
                       hasher.hash_len, hasher.salt_len, hasher.type))


@functools.cache
def _dummy_for(params: tuple[int, int, int, int, int, Type]) -> str:
    time_cost, memory_cost, parallelism, hash_len, salt_len, kind = params
    return PasswordHasher(time_cost, memory_cost, parallelism, hash_len, salt_len,
                          type=kind).hash(secrets.token_urlsafe(16))


def _check_password(hasher: PasswordHasher, stored: str | None, password: str) -> bool:
    try:
        return hasher.verify(stored or _dummy_hash(hasher), password) and stored is not None
    except (VerificationError, InvalidHashError):
        return False


def _token() -> str:
    return base64.urlsafe_b64encode(secrets.token_bytes(32)).rstrip(b"=").decode()


def _sha256(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def _info(row: UserRow) -> UserInfo:
    return UserInfo(row.name, row.role, row.created, row.disabled, row.totp is not None,
                    row.source)


class Users:
    """The console's users and sessions, over a :class:`~sealtrail.store.users.UserRows`.

    ``Users(data_dir)`` opens the data directory's service file, ``Users(data_dir,
    store=URL)`` the PostgreSQL store's rows (every node's), ``Users(rows=...)`` any other
    store of the rows (tests: ``MemoryUserRows``). ``hasher`` replaces the Argon2id
    parameters (tests use cheaper ones; the default is argon2-cffi's).
    """

    IDLE: Final = timedelta(minutes=15)
    ABSOLUTE: Final = timedelta(hours=12)

    def __init__(self, data_dir: str | os.PathLike[str] | None = None, *,
                 store: str | None = None, rows: UserRows | None = None,
                 lockout: Lockout | None = None, hasher: PasswordHasher | None = None) -> None:
        if rows is None:
            if data_dir is None:
                raise TypeError("Users needs a data directory or rows=")
            rows = open_user_rows(Path(data_dir) / SERVICE_DIR / DB_FILE, store)
        elif data_dir is not None:
            raise TypeError("Users takes a data directory or rows=, not both")
        self._rows = rows
        self._lockout = lockout or Lockout()
        self._hasher = hasher or PasswordHasher()

    def close(self) -> None:
        """Close the store."""
        self._rows.close()

    # -- users ------------------------------------------------------------------------------

    def create(self, name: str, role: str, password: str, now: datetime) -> UserInfo:
        """Make a local user with a password (ConfigError naming what is wrong)."""
        _check_name(name)
        _check_role(role)
        if not isinstance(password, str) or len(password) < MIN_PASSWORD:
            raise ConfigError(f"password: at least {MIN_PASSWORD} characters")
        if len(password) > MAX_PASSWORD:
            raise ConfigError(f"password: at most {MAX_PASSWORD} characters")
        if self._rows.get_user(name) is not None:
            raise ConfigError(f"name: a user named {name!r} exists")
        row = UserRow(name, role, "local", self._hasher.hash(password), format_time(now), None,
                      None, -1)
        try:
            self._rows.insert_user(row)
        except StorageError as exc:
            if self._rows.get_user(name) is not None:  # made at the same moment elsewhere
                raise ConfigError(f"name: a user named {name!r} exists") from exc
            raise
        return _info(row)

    def listing(self) -> list[UserInfo]:
        """Every user, oldest first (no hash, no secret)."""
        return [_info(row) for row in self._rows.users()]

    def get(self, name: str) -> UserInfo | None:
        """The user ``name``; None when there is none."""
        row = self._rows.get_user(name) if USER_NAME.fullmatch(name) else None
        return None if row is None else _info(row)

    def disable(self, name: str, now: datetime) -> UserInfo:
        """Disable a user at once: every session of theirs ends, and no sign-in works again
        (ConfigError when there is no such user or it is disabled already)."""
        if self.get(name) is None:
            raise ConfigError(f"no user {name!r}")
        changed = self._rows.disable(name, format_time(now))
        # End the sessions either way: one a racing sign-in made must not outlive this.
        self._rows.delete_sessions_of(name)
        if not changed:
            raise ConfigError(f"user {name!r} is disabled already")
        row = self._rows.get_user(name)
        if row is None:  # pragma: no cover - users are never deleted
            raise ConfigError(f"no user {name!r}")
        return _info(row)

    def enroll_totp(self, name: str, now: datetime) -> str:
        """Give a local user a new TOTP secret (any earlier one stops working); return it,
        base32, once: show it (or :meth:`totp_uri`) to the user and nowhere else."""
        row = self._rows.get_user(name) if USER_NAME.fullmatch(name) else None
        if row is None:
            raise ConfigError(f"no user {name!r}")
        if row.source != "local":
            raise ConfigError(f"user {name!r} signs in by single sign-on: its provider "
                              "holds its second factor")
        if row.disabled is not None:
            raise ConfigError(f"user {name!r} is disabled")
        secret = secrets.token_bytes(20)  # RFC 4226 §4: 160 bits
        if not self._rows.set_totp(name, secret):
            raise ConfigError(f"no user {name!r}")
        return _b32encode(secret)

    @staticmethod
    def totp_uri(name: str, secret: str, issuer: str = "sealtrail") -> str:
        """The ``otpauth://`` URI authenticator apps read (as a QR code or pasted)."""
        label = quote(f"{issuer}:{name}", safe="")
        query = urlencode({"secret": secret, "issuer": issuer, "algorithm": "SHA1",
                           "digits": TOTP_DIGITS, "period": TOTP_STEP})
        return f"otpauth://totp/{label}?{query}"

    def oidc_user(self, name: str, role: str, now: datetime, *, subject: str) -> UserInfo:
        """The user single sign-on vouched for, found by ``subject`` (the provider's account:
        its issuer, a newline, its ``sub``), never by ``name`` alone: the name claim
        (``preferred_username``) is chosen by the user or the provider's administrators and
        may change or be reused, ``sub`` is the provider's never-reassigned id (OpenID
        Connect Core 1.0, 5.7). The store keeps the subject's SHA-256 (fixed length, no
        provider identifier at rest).

        - A user bound to ``subject`` is the one, whatever ``name`` arrives now: a disabled
          one is answered with ``disabled`` set and not changed (a new name at the provider
          is no new user); an enabled one's role follows the claim.
        - Else ``name`` must be free: a local user of that name is never taken over, and an
          SSO user bound to another subject (or to none: made before subjects were kept)
          is another account (ConfigError either way).
        - Else a new SSO user, bound to ``subject``.
        """
        _check_name(name)
        _check_role(role)
        if not isinstance(subject, str) or not subject or len(subject) > MAX_SUBJECT:
            raise ConfigError(f"subject: 1 to {MAX_SUBJECT} characters")
        bound = hashlib.sha256(subject.encode("utf-8", "surrogatepass")).hexdigest()
        row = self._rows.get_user_by_subject(bound)
        if row is None:
            self._name_is_free(name, bound)
            row = UserRow(name, role, "oidc", None, format_time(now), None, None, -1, bound)
            try:
                self._rows.insert_user(row)
            except StorageError:
                found = self._rows.get_user_by_subject(bound)  # made at once elsewhere
                if found is None:
                    self._name_is_free(name, bound)
                    raise
                row = found
        if row.disabled is None and row.role != role:
            self._rows.set_role(row.name, role)
            row = dataclasses.replace(row, role=role)
        return _info(row)

    def _name_is_free(self, name: str, bound: str) -> None:
        """ConfigError when ``name`` is a user's not bound to the subject ``bound``."""
        row = self._rows.get_user(name)
        if row is None or row.subject == bound:
            return
        if row.source != "oidc":
            raise ConfigError(f"a local user named {name!r} exists: single sign-on does not "
                              "take it over")
        raise ConfigError(f"the user {name!r} belongs to another account at the identity "
                          "provider: single sign-on does not take it over")

    # -- signing in -------------------------------------------------------------------------

    def sign_in(self, name: str, password: str, otp: str | None, now: datetime, *,
                require_mfa_roles: frozenset[str] = frozenset()) -> SignIn:
        """Check a sign-in attempt (see the module docstring for the rules).

        1. A name waiting (backoff or lock) is answered ``locked``, nothing checked.
        2. The password is checked (against a dummy hash when there is no such local user).
        3. A wrong password, or a wrong or reused code, counts a failure.
        4. A right password: ``disabled``, ``mfa_required`` (no code, or a bad one),
           ``mfa_enroll_required`` (the role needs TOTP and none is enrolled), else ``ok``
           and the failures are cleared.
        """
        if not isinstance(name, str) or not USER_NAME.fullmatch(name):
            _check_password(self._hasher, None, password)  # same cost as any attempt
            return SignIn("bad", None)
        wait = self._lockout.wait(self._rows.get_failures(name), now)  # 1
        if wait > 0:
            return SignIn("locked", None, wait)
        row = self._rows.get_user(name)
        stored = row.hash if row is not None and row.source == "local" else None
        ok = (isinstance(password, str) and len(password) <= MAX_PASSWORD
              and _check_password(self._hasher, stored, password))  # 2
        if not ok or row is None:
            return self._failed(name, now, "bad", None)  # 3
        user = _info(row)
        if row.disabled is not None:  # 4
            return SignIn("disabled", user)
        if row.totp is not None:
            if otp is None or not otp.strip():
                return SignIn("mfa_required", user)
            if not self._take_code(row, otp, now):
                return self._failed(name, now, "mfa_required", user)
        elif row.role in require_mfa_roles:
            return SignIn("mfa_enroll_required", user)
        self._rows.clear_failures(name)
        if stored is not None and self._hasher.check_needs_rehash(stored):
            self._rows.set_password(name, self._hasher.hash(password))
        return SignIn("ok", user)

    def _take_code(self, row: UserRow, otp: str, now: datetime) -> bool:
        """Whether ``otp`` is the code of the step of ``now`` or one either side, not used
        before (that step is then recorded as used)."""
        code = otp.replace(" ", "")
        if row.totp is None or len(code) != TOTP_DIGITS or not code.isascii() \
                or not code.isdigit():
            return False
        step = totp_step(now)
        for candidate in (step - 1, step, step + 1):
            if hmac.compare_digest(hotp(row.totp, candidate), code):
                return self._rows.use_totp_step(row.name, candidate)
        return False

    def _failed(self, name: str, now: datetime, outcome: Outcome, user: UserInfo | None
                ) -> SignIn:
        """Count a failure; the answer is ``locked`` when this failure locks the name."""
        at = format_time(now)
        count = self._rows.add_failure(name, at)
        self._rows.prune_failures(at, format_time(now - FAILURE_MEMORY), FAILURE_ROWS)
        if count >= self._lockout.limit:
            self._rows.lock(name, format_time(now + self._lockout.lock))
            return SignIn("locked", None, self._lockout.lock.total_seconds())
        return SignIn(outcome, user)

    # -- sessions ---------------------------------------------------------------------------

    def start_session(self, user: UserInfo, now: datetime, *, via: str
                      ) -> tuple[str, SessionInfo]:
        """Begin a session for a user just signed in; (its token, shown to the browser once
        as a cookie, and the session). Expired sessions of every user are swept here."""
        at = format_time(now)
        self._rows.prune_sessions(format_time(now - self.IDLE),
                                  format_time(now - self.ABSOLUTE))
        token = _token()
        row = SessionRow(_sha256(token), secrets.token_hex(8), user.name, _token(), via,
                         at, at)
        self._rows.insert_session(row)
        when = parse_time(at)
        return token, SessionInfo(row.id, user.name, user.role, row.csrf, via, when, when)

    def session(self, token: str, now: datetime, *, touch: bool = True
                ) -> SessionInfo | None:
        """The live session of ``token``; None when unknown, idle past :attr:`IDLE`, older
        than :attr:`ABSOLUTE`, or its user is disabled or gone (that session is ended).

        ``touch=False`` checks the session against both limits but leaves ``last_seen`` as
        it was: requests the page makes by itself (background polling) are no activity of
        the person, and must not keep an unattended console signed in past the idle
        timeout (PCI DSS 8.2.8)."""
        if not isinstance(token, str) or len(token) > 128:
            return None
        digest = _sha256(token)
        row = self._rows.get_session(digest)
        if row is None or not hmac.compare_digest(row.hash, digest):
            return None
        created, seen = parse_time(row.created), parse_time(row.last_seen)
        user = self._rows.get_user(row.user)
        if (now - seen > self.IDLE or now - created > self.ABSOLUTE or user is None
                or user.disabled is not None):
            self._rows.delete_session(digest)
            return None
        if touch and now - seen >= TOUCH_EVERY:
            self._rows.touch_session(digest, format_time(now))
            seen = now
        return SessionInfo(row.id, row.user, user.role, row.csrf, row.via, created, seen)

    def end_session(self, token: str) -> None:
        """End a session (sign-out); an unknown token is no error."""
        if isinstance(token, str) and len(token) <= 128:
            self._rows.delete_session(_sha256(token))


def _check_name(name: str) -> None:
    if not isinstance(name, str) or not USER_NAME.fullmatch(name):
        raise ConfigError("name: 1 to 128 characters, letters, digits and . _ @ + -, "
                          "starting with a letter or digit")


def _check_role(role: str) -> None:
    if role not in USER_ROLES:
        raise ConfigError(f"role {role!r}: use one of {', '.join(USER_ROLES)}")
