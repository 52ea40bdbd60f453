"""``Users``: passwords, TOTP, lockout and sessions, over every adapter of the rows (memory,
SQLite, PostgreSQL), with real Argon2id (cheap parameters, except where the default's rehash
is the point) and a clock passed in."""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from argon2 import PasswordHasher

from sealtrail.core.errors import ConfigError
from sealtrail.log.users import (
    FAILURE_ROWS,
    USER_ROLES,
    Lockout,
    SignIn,
    Users,
    hotp,
    totp_now,
)
from sealtrail.store.memory_users import MemoryUserRows
from sealtrail.store.users import UserRows
from tests.contract.pg_rows import pg_row_fixtures
from tests.contract.rowstores import row_fixtures
from tests.users.test_contract_user_rows import USER_ROWS

_, rows, _fresh = row_fixtures(USER_ROWS, "users")
make_rows, drop_pg_schemas = pg_row_fixtures(USER_ROWS)

CHEAP = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
T0 = datetime(2026, 3, 1, 9, 0, 0, tzinfo=UTC)
PASSWORD = "correct horse battery"
ISS = "https://idp.example.org"
SUB = ISS + "\n248289761001"
_TOKEN = re.compile(r"[A-Za-z0-9_-]{43}")


@pytest.fixture
def users(rows: UserRows) -> Users:
    return Users(rows=rows, hasher=CHEAP)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


# -- creating and listing -------------------------------------------------------------------

def test_a_user_is_made_listed_and_found(users: Users) -> None:
    made = users.create("ann", "auditor", PASSWORD, T0)
    assert (made.name, made.role, made.disabled, made.mfa, made.source) == (
        "ann", "auditor", None, False, "local")
    users.create("bob@example.org", "admin", PASSWORD, at(1))
    assert [u.name for u in users.listing()] == ["ann", "bob@example.org"]
    assert users.get("ann") == made
    assert users.get("nobody") is None
    assert users.get("../x") is None


@pytest.mark.parametrize(("name", "role", "password", "says"), [
    ("", "reader", PASSWORD, "name"),
    ("a b", "reader", PASSWORD, "name"),
    ("x" * 129, "reader", PASSWORD, "name"),
    ("-ann", "reader", PASSWORD, "name"),
    ("ann", "ingest", PASSWORD, "role"),
    ("ann", "root", PASSWORD, "role"),
    ("ann", "reader", "short pass!", "password"),
    ("ann", "reader", "x" * 1025, "password"),
])
def test_bad_input_is_refused_naming_the_field(users: Users, name: str, role: str,
                                               password: str, says: str) -> None:
    with pytest.raises(ConfigError, match=says):
        users.create(name, role, password, T0)
    assert users.listing() == []


def test_a_name_is_taken_once(users: Users) -> None:
    users.create("ann", "reader", PASSWORD, T0)
    with pytest.raises(ConfigError, match="exists"):
        users.create("ann", "admin", "another password", T0)
    assert [(u.name, u.role) for u in users.listing()] == [("ann", "reader")]


def test_the_password_is_stored_as_argon2id_only(users: Users, rows: UserRows) -> None:
    users.create("ann", "reader", PASSWORD, T0)
    row = rows.get_user("ann")
    assert row is not None
    assert row.hash is not None
    assert row.hash.startswith("$argon2id$")
    assert PASSWORD not in row.hash
    assert row.hash not in repr(row)


# -- signing in -----------------------------------------------------------------------------

def test_the_right_password_signs_in_and_a_wrong_one_does_not(users: Users) -> None:
    users.create("ann", "reader", PASSWORD, T0)
    assert users.sign_in("ann", PASSWORD, None, T0) == SignIn("ok", users.get("ann"), 0.0)
    assert users.sign_in("ann", PASSWORD + "x", None, at(1)).outcome == "bad"
    assert users.sign_in("ann", PASSWORD + "x", None, at(2)).user is None
    assert users.sign_in("nobody", PASSWORD, None, at(3)).outcome == "bad"
    assert users.sign_in("bad name", PASSWORD, None, at(4)).outcome == "bad"


def test_a_success_clears_the_failures(users: Users, rows: UserRows) -> None:
    users.create("ann", "reader", PASSWORD, T0)
    for n in range(2):
        users.sign_in("ann", "wrong password", None, at(n))
    assert users.sign_in("ann", PASSWORD, None, at(5)).outcome == "ok"
    assert rows.get_failures("ann") is None


def test_backoff_then_a_30_minute_lock_after_ten_failures(users: Users) -> None:
    """Three failures are free; then each try waits 2**(n-3) s after the last failure (a
    try during the wait is answered locked, and not counted); the tenth failure locks the
    name for 30 minutes, the right password included; after it, the password works."""
    users.create("ann", "reader", PASSWORD, T0)
    clock = 0.0
    for n in range(1, 10):
        assert users.sign_in("ann", "wrong password", None, at(clock)).outcome == "bad"
        wait = 0 if n < 3 else 2 ** (n - 3)
        if wait:
            early = users.sign_in("ann", PASSWORD, None, at(clock + wait - 0.5))
            assert early.outcome == "locked"
            assert early.retry_after == pytest.approx(0.5)
        clock += wait
    tenth = users.sign_in("ann", "wrong password", None, at(clock))
    assert tenth == SignIn("locked", None, 1800.0)
    during = users.sign_in("ann", PASSWORD, None, at(clock + 1799))
    assert during.outcome == "locked"
    assert during.retry_after == pytest.approx(1.0)
    assert users.sign_in("ann", PASSWORD, None, at(clock + 1800)).outcome == "ok"
    assert users.sign_in("ann", "wrong password", None, at(clock + 1801)).outcome == "bad"


def test_a_failure_after_a_lock_locks_again(users: Users) -> None:
    users.create("ann", "reader", PASSWORD, T0)
    users2 = Users(rows=MemoryUserRows(), hasher=CHEAP,
                   lockout=Lockout(free=1, limit=2, lock=timedelta(minutes=30)))
    users2.create("ann", "reader", PASSWORD, T0)
    assert users2.sign_in("ann", "wrong password", None, at(0)).outcome == "bad"
    assert users2.sign_in("ann", "wrong password", None, at(2)).outcome == "locked"
    assert users2.sign_in("ann", "wrong password", None, at(1802)).outcome == "locked"
    assert users2.sign_in("ann", PASSWORD, None, at(1803)).outcome == "locked"


def test_unknown_names_are_locked_out_too(users: Users) -> None:
    """Failures for a name that does not exist count and lock as for a real one: the
    answers do not tell the two apart."""
    users.create("ann", "reader", PASSWORD, T0)
    clock = 0.0
    answers: dict[str, list[str]] = {"ann": [], "ghost": []}
    for n in range(1, 11):
        for name, seen in answers.items():
            seen.append(users.sign_in(name, "wrong password", None, at(clock)).outcome)
        clock += 0 if n < 3 else 2 ** (n - 3)
    assert answers["ann"] == answers["ghost"] == ["bad"] * 9 + ["locked"]


def test_failures_of_unknown_names_do_not_reset_a_users_count() -> None:
    """9 wrong passwords for ``rita``, then more failures of made-up names than the failure
    table keeps (FAILURE_ROWS), then 9 more for ``rita``: the count went on (the 10th
    locked the name, PCI DSS 8.3.4), it did not restart when the junk filled the table.

    In memory only (10,000 failures each prune the table: over a minute per durable
    store); every adapter's pruning is held to the same rule by
    ``test_contract_user_rows.py::test_the_cap_never_pushes_out_a_users_counter``."""
    users = Users(rows=MemoryUserRows(), hasher=CHEAP)
    users.create("rita", "reader", PASSWORD, T0)
    clock = 0.0
    for n in range(1, 10):
        assert users.sign_in("rita", "wrong password", None, at(clock)).outcome == "bad"
        clock += 0 if n < 3 else 2 ** (n - 3)
    for n in range(FAILURE_ROWS + 1):
        clock += 0.001
        users.sign_in(f"junk{n}", "wrong password", None, at(clock))
    answers = []
    for _ in range(9):
        clock += 64  # past the backoff of 9 failures (2 ** 6 s): each attempt is counted
        answers.append(users.sign_in("rita", "wrong password", None, at(clock)).outcome)
    assert answers == ["locked"] * 9
    assert users.sign_in("rita", PASSWORD, None, at(clock + 1)).outcome == "locked"


def test_the_lockout_policy_keeps_to_pci_dss() -> None:
    """PCI DSS 8.3.4: at most ten attempts, a lock of at least 30 minutes."""
    with pytest.raises(ConfigError):
        Lockout(limit=11)
    with pytest.raises(ConfigError):
        Lockout(lock=timedelta(minutes=29))
    policy = Lockout()
    assert [policy.backoff(n).total_seconds() for n in range(1, 7)] == [0, 0, 1, 2, 4, 8]
    assert policy.backoff(40) == policy.cap


def test_a_sso_user_cannot_sign_in_by_password(users: Users) -> None:
    users.oidc_user("sso@example.org", "reader", T0, subject=SUB)
    assert users.sign_in("sso@example.org", "", None, T0).outcome == "bad"
    assert users.sign_in("sso@example.org", PASSWORD, None, at(1)).outcome == "bad"


def test_a_disabled_user_does_not_sign_in(users: Users) -> None:
    users.create("ann", "reader", PASSWORD, T0)
    gone = users.disable("ann", at(1))
    assert gone.disabled is not None
    result = users.sign_in("ann", PASSWORD, None, at(2))
    assert result.outcome == "disabled"
    assert users.sign_in("ann", "wrong password", None, at(3)).outcome == "bad"
    with pytest.raises(ConfigError, match="already"):
        users.disable("ann", at(4))
    with pytest.raises(ConfigError, match="no user"):
        users.disable("nobody", at(4))


def test_a_password_hashed_with_old_parameters_is_rehashed(rows: UserRows) -> None:
    """Signing in with the right password rehashes it when the parameters changed (here
    from the tests' cheap ones to argon2-cffi's defaults); the new hash still works."""
    Users(rows=rows, hasher=CHEAP).create("ann", "reader", PASSWORD, T0)
    before = rows.get_user("ann")
    current = Users(rows=rows)
    assert current.sign_in("ann", PASSWORD, None, T0).outcome == "ok"
    after = rows.get_user("ann")
    assert before is not None
    assert after is not None
    assert after.hash is not None
    assert after.hash != before.hash
    assert not PasswordHasher().check_needs_rehash(after.hash)
    assert current.sign_in("ann", PASSWORD, None, at(1)).outcome == "ok"


# -- TOTP -----------------------------------------------------------------------------------

def test_hotp_and_totp_match_the_rfc_vectors() -> None:
    """RFC 4226 appendix D (6 digits) and RFC 6238 appendix B (SHA-1, 8 digits)."""
    key = b"12345678901234567890"
    assert [hotp(key, c) for c in range(10)] == [
        "755224", "287082", "359152", "969429", "338314", "254676", "287922", "162583",
        "399871", "520489"]
    for unix, code in ((59, "94287082"), (1111111109, "07081804"), (1111111111, "14050471"),
                       (1234567890, "89005924"), (2000000000, "69279037"),
                       (20000000000, "65353130")):
        assert hotp(key, unix // 30, digits=8) == code


def test_totp_second_factor(users: Users) -> None:
    """Enrolled: no code asks for one (not a failure); a wrong code asks again and counts a
    failure; the code of this step or one either side signs in, each step once only."""
    users.create("ann", "admin", PASSWORD, T0)
    secret = users.enroll_totp("ann", T0)
    assert re.fullmatch(r"[A-Z2-7]{32}", secret)
    info = users.get("ann")
    assert info is not None
    assert info.mfa
    asked = users.sign_in("ann", PASSWORD, None, at(0))
    assert asked.outcome == "mfa_required"
    assert asked.user == info
    wrong = str((int(totp_now(secret, at(0))) + 1) % 1_000_000).zfill(6)
    assert users.sign_in("ann", PASSWORD, wrong, at(0)).outcome == "mfa_required"
    assert users.sign_in("ann", PASSWORD, "12ab56", at(0)).outcome == "mfa_required"
    assert users.sign_in("ann", PASSWORD, totp_now(secret, at(-30)), at(0)).outcome == "ok"
    # The same step again (a replayed code) is refused; the next step's code works.
    assert users.sign_in("ann", PASSWORD, totp_now(secret, at(-30)), at(0)).outcome \
        == "mfa_required"
    assert users.sign_in("ann", PASSWORD, totp_now(secret, at(0)), at(1)).outcome == "ok"
    assert users.sign_in("ann", PASSWORD, totp_now(secret, at(0)), at(2)).outcome \
        == "mfa_required"
    assert users.sign_in("ann", PASSWORD, totp_now(secret, at(60)), at(31)).outcome == "ok"
    # Two steps away is too far.
    assert users.sign_in("ann", PASSWORD, totp_now(secret, at(150)), at(91)).outcome \
        == "mfa_required"


def test_a_wrong_code_counts_toward_the_lockout(users: Users, rows: UserRows) -> None:
    """A missing code is a question, not a failure; a wrong code is a failure."""
    users.create("ann", "admin", PASSWORD, T0)
    secret = users.enroll_totp("ann", T0)
    users.sign_in("ann", PASSWORD, None, T0)
    assert rows.get_failures("ann") is None
    codes = {totp_now(secret, at(s)) for s in (-30, 0, 30)}
    wrong = next(c for c in ("000000", "111111", "222222", "333333") if c not in codes)
    users.sign_in("ann", PASSWORD, wrong, at(1))
    found = rows.get_failures("ann")
    assert found is not None
    assert found.count == 1


def test_roles_that_require_mfa_must_enroll(users: Users) -> None:
    users.create("ann", "admin", PASSWORD, T0)
    users.create("bob", "reader", PASSWORD, T0)
    admins = frozenset({"admin"})
    enroll = users.sign_in("ann", PASSWORD, None, T0, require_mfa_roles=admins)
    assert enroll.outcome == "mfa_enroll_required"
    assert enroll.user is not None
    assert users.sign_in("bob", PASSWORD, None, T0, require_mfa_roles=admins).outcome == "ok"
    secret = users.enroll_totp("ann", T0)
    assert users.sign_in("ann", PASSWORD, totp_now(secret, at(1)), at(1),
                         require_mfa_roles=admins).outcome == "ok"


def test_a_new_secret_replaces_the_old_one(users: Users) -> None:
    users.create("ann", "reader", PASSWORD, T0)
    old = users.enroll_totp("ann", T0)
    new = users.enroll_totp("ann", T0)
    assert old != new
    code = totp_now(old, at(0))
    if code != totp_now(new, at(0)):
        assert users.sign_in("ann", PASSWORD, code, at(0)).outcome == "mfa_required"
    assert users.sign_in("ann", PASSWORD, totp_now(new, at(40)), at(40)).outcome == "ok"
    with pytest.raises(ConfigError):
        users.enroll_totp("nobody", T0)


def test_the_totp_uri_is_what_authenticator_apps_read() -> None:
    uri = Users.totp_uri("ann@example.org", "JBSWY3DPEHPK3PXP")
    parts = urlsplit(uri)
    assert (parts.scheme, parts.netloc) == ("otpauth", "totp")
    assert parts.path == "/sealtrail%3Aann%40example.org"
    assert parse_qs(parts.query) == {"secret": ["JBSWY3DPEHPK3PXP"], "issuer": ["sealtrail"],
                                     "algorithm": ["SHA1"], "digits": ["6"],
                                     "period": ["30"]}


# -- single sign-on users -------------------------------------------------------------------

def test_sso_users_are_made_and_follow_their_role(users: Users) -> None:
    made = users.oidc_user("sso@example.org", "reader", T0, subject=SUB)
    assert (made.source, made.role, made.mfa) == ("oidc", "reader", False)
    again = users.oidc_user("sso@example.org", "auditor", at(1), subject=SUB)
    assert (again.role, again.created) == ("auditor", made.created)
    users.create("ann", "reader", PASSWORD, T0)
    with pytest.raises(ConfigError, match="local user"):
        users.oidc_user("ann", "admin", T0, subject=ISS + "\nann-at-idp")
    users.disable("sso@example.org", at(2))
    refused = users.oidc_user("sso@example.org", "admin", at(3), subject=SUB)
    assert refused.disabled is not None
    assert refused.role == "auditor"
    with pytest.raises(ConfigError):
        users.oidc_user("sso@example.org", "ingest", at(3), subject=SUB)
    for subject in ("", "x" * 5000):
        with pytest.raises(ConfigError, match="subject"):
            users.oidc_user("new", "reader", at(3), subject=subject)
    with pytest.raises(ConfigError):
        users.enroll_totp("sso@example.org", T0)


def test_a_sso_user_is_its_providers_account_not_its_name(users: Users,
                                                          rows: UserRows) -> None:
    """The user is found by issuer and ``sub``: a new name claim for the same account is the
    same user (disabled stays disabled, no second user is made); another account claiming a
    name bound to someone else, or a local user's, is refused; the store keeps the subject's
    SHA-256, not the provider's identifiers."""
    made = users.oidc_user("carol", "reader", T0, subject=SUB)
    stored = rows.get_user("carol")
    assert stored is not None
    assert stored.subject == hashlib.sha256(SUB.encode()).hexdigest()
    renamed = users.oidc_user("carol2", "auditor", at(1), subject=SUB)
    assert (renamed.name, renamed.role, renamed.created) == ("carol", "auditor", made.created)
    assert users.get("carol2") is None
    users.disable("carol", at(2))
    again = users.oidc_user("carol-new-name", "admin", at(3), subject=SUB)
    assert (again.name, again.role) == ("carol", "auditor")
    assert again.disabled is not None
    assert users.get("carol-new-name") is None
    with pytest.raises(ConfigError, match="another account"):
        users.oidc_user("carol", "reader", at(4), subject=ISS + "\nsomeone-else")
    with pytest.raises(ConfigError, match="another account"):  # same sub, another issuer
        users.oidc_user("carol", "reader", at(4), subject="https://other.example\n248289761001")
    other = users.oidc_user("dave", "reader", at(5), subject=ISS + "\nsomeone-else")
    assert other.name == "dave"
    assert [u.name for u in users.listing()] == ["carol", "dave"]


def test_a_sso_user_made_before_subjects_were_kept_is_not_taken_over(rows: UserRows) -> None:
    """An SSO user stored without a subject (made before they were bound) belongs to no
    account that can be proven: single sign-on refuses its name rather than guess."""
    from sealtrail.store.users import UserRow

    rows.insert_user(UserRow("old", "reader", "oidc", None, "2026-01-01T00:00:00.000000Z",
                             None, None, -1))
    users = Users(rows=rows, hasher=CHEAP)
    with pytest.raises(ConfigError, match="another account"):
        users.oidc_user("old", "admin", T0, subject=SUB)
    assert users.get("old") == users.listing()[0]
    assert rows.get_user_by_subject(hashlib.sha256(SUB.encode()).hexdigest()) is None


# -- sessions -------------------------------------------------------------------------------

def test_a_session_is_a_random_token_of_which_only_the_hash_is_kept(users: Users,
                                                                    rows: UserRows) -> None:
    info = users.create("ann", "auditor", PASSWORD, T0)
    token, session = users.start_session(info, T0, via="password")
    other, _ = users.start_session(info, T0, via="password")
    assert _TOKEN.fullmatch(token)
    assert _TOKEN.fullmatch(session.csrf)
    assert token != other
    assert session.csrf != token
    assert (session.user, session.role, session.via) == ("ann", "auditor", "password")
    row = rows.get_session(hashlib.sha256(token.encode()).digest())
    assert row is not None
    assert token not in repr(row)
    assert users.session(token, at(1)) == session


def test_sessions_end_when_idle_old_ended_or_disabled(users: Users) -> None:
    """Idle 15 minutes ends a session, activity keeps it, 12 hours end it whatever the
    activity; sign-out and disabling the user end it at once."""
    info = users.create("ann", "auditor", PASSWORD, T0)
    token, _ = users.start_session(info, T0, via="password")
    clock = 0
    while clock < 12 * 3600 - 600:
        clock += 600
        assert users.session(token, at(clock)) is not None, clock
    assert users.session(token, at(12 * 3600 + 1)) is None
    idle, _ = users.start_session(info, T0, via="password")
    assert users.session(idle, at(15 * 60 + 1)) is None
    assert users.session(idle, at(1)) is None  # ended, not merely expired
    ended, _ = users.start_session(info, T0, via="password")
    users.end_session(ended)
    assert users.session(ended, at(1)) is None
    users.end_session(ended)
    live, _ = users.start_session(info, T0, via="password")
    users.disable("ann", at(2))
    assert users.session(live, at(3)) is None
    assert users.session("nonsense", at(3)) is None
    assert users.session("x" * 5000, at(3)) is None


def test_last_seen_is_written_at_most_every_30_seconds(users: Users, rows: UserRows) -> None:
    info = users.create("ann", "reader", PASSWORD, T0)
    token, _ = users.start_session(info, T0, via="password")
    digest = hashlib.sha256(token.encode()).digest()
    users.session(token, at(10))
    first = rows.get_session(digest)
    assert first is not None
    assert first.last_seen == first.created
    users.session(token, at(31))
    second = rows.get_session(digest)
    assert second is not None
    assert second.last_seen > first.last_seen


def test_background_requests_do_not_keep_a_session_alive(users: Users,
                                                         rows: UserRows) -> None:
    """``touch=False`` (a page polling by itself) answers the session while it is live but
    never moves ``last_seen``: polls every 15 s do not stop the 15-minute idle timeout; a
    request of the person (``touch=True``, the default) does. Both limits still apply."""
    info = users.create("ann", "reader", PASSWORD, T0)
    token, _ = users.start_session(info, T0, via="password")
    digest = hashlib.sha256(token.encode()).digest()
    clock = 0
    while clock < 15 * 60 - 15:
        clock += 15
        found = users.session(token, at(clock), touch=False)
        assert found is not None, clock
        assert found.last_seen == T0
    stored = rows.get_session(digest)
    assert stored is not None
    assert stored.last_seen == stored.created
    assert users.session(token, at(15 * 60 + 1), touch=False) is None
    assert users.session(token, at(15 * 60 + 2)) is None  # ended, not merely skipped

    active, _ = users.start_session(info, T0, via="password")
    assert users.session(active, at(600)) is not None  # the person did something
    assert users.session(active, at(600 + 15 * 60 - 1), touch=False) is not None
    assert users.session(active, at(600 + 15 * 60 + 1), touch=False) is None

    old, _ = users.start_session(info, T0, via="password")
    clock = 0
    while clock < 12 * 3600 - 600:
        clock += 600
        assert users.session(old, at(clock)) is not None
    assert users.session(old, at(12 * 3600 + 1), touch=False) is None  # absolute limit


def test_a_session_shows_the_users_role_now(users: Users, rows: UserRows) -> None:
    made = users.oidc_user("sso@example.org", "admin", T0, subject=SUB)
    token, _ = users.start_session(made, T0, via="oidc")
    users.oidc_user("sso@example.org", "reader", at(1), subject=SUB)
    found = users.session(token, at(2))
    assert found is not None
    assert (found.role, found.via) == ("reader", "oidc")


def test_every_role_of_a_key_but_ingest_is_a_user_role() -> None:
    assert USER_ROLES == ("reader", "auditor", "admin")


def test_users_in_a_data_directory_share_the_keys_file(tmp_path: Path) -> None:
    made = Users(tmp_path, hasher=CHEAP)
    try:
        made.create("ann", "reader", PASSWORD, T0)
    finally:
        made.close()
    again = Users(tmp_path, hasher=CHEAP)
    try:
        assert again.sign_in("ann", PASSWORD, None, T0).outcome == "ok"
    finally:
        again.close()
    assert (tmp_path / "_service" / "service.db").exists()
