"""``sealtrail users``: the real command line (in-process, ``tests/clirun.py``) over a data
directory, and over a PostgreSQL store."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from sealtrail.log.users import Users, totp_now
from tests.clirun import sealtrail

PASSWORD = "a long enough password"


def _create(data: Path, name: str, role: str, *extra: str, stdin: str | None = None,
            store: str | None = None) -> tuple[int, str, str]:
    pre = ["--store", store] if store else []
    ran = sealtrail(*pre, "users", "create", name, "--role", role, "--data", str(data), *extra,
                    stdin=stdin, text=True)
    return ran.returncode, ran.stdout, ran.stderr


def test_create_from_a_password_file_then_sign_in(tmp_path: Path) -> None:
    """The issue's contract: ``users create NAME --role ROLE --password-file FILE`` makes a
    user who signs in with the file's first line (its line end not part of it)."""
    secret = tmp_path / "pw"
    secret.write_text(PASSWORD + "\nsecond line ignored\n")
    code, out, err = _create(tmp_path / "d", "ann", "admin", "--password-file", str(secret))
    assert code == 0, err
    assert json.loads(out) == {"name": "ann", "role": "admin", "source": "local",
                               "created": json.loads(out)["created"], "disabled": None,
                               "mfa": False}
    assert PASSWORD not in out + err
    users = Users(tmp_path / "d")
    try:
        now = datetime.now(UTC)
        assert users.sign_in("ann", PASSWORD, None, now).outcome == "ok"
        assert users.sign_in("ann", PASSWORD + "\n", None, now).outcome == "bad"
    finally:
        users.close()


def test_create_reads_standard_input_without_a_file(tmp_path: Path) -> None:
    code, _, err = _create(tmp_path, "bob", "reader", stdin=PASSWORD + "\r\n")
    assert code == 0, err
    users = Users(tmp_path)
    try:
        assert users.sign_in("bob", PASSWORD, None, datetime.now(UTC)).outcome == "ok"
    finally:
        users.close()


@pytest.mark.parametrize(("name", "role", "password", "says"), [
    ("ann", "ingest", PASSWORD, "role"),
    ("bad name", "reader", PASSWORD, "name"),
    ("ann", "reader", "too short", "password"),
])
def test_bad_input_exits_2_naming_it_and_stores_nothing(tmp_path: Path, name: str, role: str,
                                                        password: str, says: str) -> None:
    code, out, err = _create(tmp_path, name, role, stdin=password + "\n")
    assert code == 2
    assert says in err
    assert password not in out + err
    listed = sealtrail("users", "list", "--format", "json", "--data", str(tmp_path), text=True)
    assert listed.stdout == ""


def test_no_password_at_all_is_refused(tmp_path: Path) -> None:
    code, _, err = _create(tmp_path, "ann", "reader", stdin="")
    assert code == 2
    assert "password" in err
    code, _, err = _create(tmp_path, "ann", "reader", "--password-file",
                           str(tmp_path / "missing"))
    assert code == 2
    assert "--password-file" in err


def test_a_password_cannot_be_an_argument(tmp_path: Path) -> None:
    ran = sealtrail("users", "create", "ann", "--role", "reader", "--password", PASSWORD,
                    "--data", str(tmp_path), text=True)
    assert ran.returncode == 2


def test_a_duplicate_name_is_refused(tmp_path: Path) -> None:
    assert _create(tmp_path, "ann", "reader", stdin=PASSWORD)[0] == 0
    code, _, err = _create(tmp_path, "ann", "admin", stdin=PASSWORD)
    assert code == 2
    assert "exists" in err


def test_list_disable_and_mfa(tmp_path: Path) -> None:
    """``list`` shows a table (or JSON Lines), never a hash; ``disable`` ends sign-in;
    ``mfa`` prints a secret and otpauth URI once, and the user then needs a code."""
    for name, role in (("ann", "admin"), ("bob", "reader")):
        assert _create(tmp_path, name, role, stdin=PASSWORD)[0] == 0
    table = sealtrail("users", "list", "--data", str(tmp_path), text=True)
    assert table.returncode == 0
    lines = table.stdout.splitlines()
    assert lines[0].split() == ["NAME", "ROLE", "SOURCE", "MFA", "CREATED", "DISABLED"]
    assert [line.split()[:2] for line in lines[1:]] == [["ann", "admin"], ["bob", "reader"]]
    assert "argon2" not in table.stdout

    enrolled = sealtrail("users", "mfa", "ann", "--data", str(tmp_path), text=True)
    assert enrolled.returncode == 0, enrolled.stderr
    shown = json.loads(enrolled.stdout)
    assert shown["uri"].startswith("otpauth://totp/sealtrail%3Aann?secret=" + shown["secret"])
    disabled = sealtrail("users", "disable", "bob", "--data", str(tmp_path), text=True)
    assert disabled.returncode == 0
    assert json.loads(disabled.stdout)["disabled"] is not None

    listed = [json.loads(line) for line in sealtrail(
        "users", "list", "--format", "json", "--data", str(tmp_path), text=True
    ).stdout.split("\n") if line]
    assert [(u["name"], u["mfa"], u["disabled"] is not None) for u in listed] == [
        ("ann", True, False), ("bob", False, True)]
    users = Users(tmp_path)
    try:
        now = datetime.now(UTC)
        assert users.sign_in("bob", PASSWORD, None, now).outcome == "disabled"
        assert users.sign_in("ann", PASSWORD, None, now).outcome == "mfa_required"
        assert users.sign_in("ann", PASSWORD, totp_now(shown["secret"], now),
                             now).outcome == "ok"
    finally:
        users.close()

    again = sealtrail("users", "disable", "bob", "--data", str(tmp_path), text=True)
    assert again.returncode == 2
    assert sealtrail("users", "mfa", "nobody", "--data", str(tmp_path)).returncode == 2
    assert sealtrail("users", "list", "--format", "xml", "--data",
                     str(tmp_path)).returncode == 2


@pytest.mark.postgres
def test_users_on_a_postgresql_store(tmp_path: Path, pg_store: str) -> None:
    """With ``--store``, the users are the PostgreSQL store's: another data directory on
    the same store sees them."""
    code, _, err = _create(tmp_path / "a", "ann", "auditor", stdin=PASSWORD, store=pg_store)
    assert code == 0, err
    listed = sealtrail("--store", pg_store, "users", "list", "--format", "json", "--data",
                       str(tmp_path / "b"), text=True)
    assert [json.loads(line)["name"] for line in listed.stdout.split("\n") if line] == ["ann"]
    assert not (tmp_path / "a" / "_service" / "service.db").exists()
    users = Users(tmp_path / "c", store=pg_store)
    try:
        assert users.sign_in("ann", PASSWORD, None, datetime.now(UTC)).outcome == "ok"
    finally:
        users.close()
