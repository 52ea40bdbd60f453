"""``users``: the web console's users (``create``, ``list``, ``disable``, ``mfa``).

Users belong to the data directory, beside the API keys (``log/users.py``): the same
``--data`` and ``--store`` reach them. A password never comes as an argument (it would sit in
the shell's history and in every process listing): it is read from ``--password-file``, or
from standard input (a prompt, asked twice, on a terminal). A TOTP secret is printed once,
when enrolled, and never again.
"""

from __future__ import annotations

import getpass
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

from sealtrail.cli.common import DataOpt, errors, fail, say, store_url, where
from sealtrail.cli.output import dumps, printable
from sealtrail.log.users import USER_ROLES, UserInfo, Users

users_app = typer.Typer(no_args_is_help=True, rich_markup_mode=None,
                        help="Users of the web console (create, list, disable, mfa).")

NameArg = Annotated[str, typer.Argument(help="The user's name (letters, digits, . _ @ + -).")]


def _users(data: str | None) -> Users:
    d, _ = where(data, None)
    return Users(d, store=store_url())


def _password(path: Path | None) -> str:
    """The new password: the file's first line, else standard input's (prompted twice on a
    terminal); its line end removed, nothing else."""
    if path is not None:
        try:
            text = path.read_text()
        except (OSError, UnicodeDecodeError) as exc:
            fail(f"--password-file {path}: {getattr(exc, 'strerror', None) or exc}")
        return text.split("\n", 1)[0].removesuffix("\r")
    if sys.stdin.isatty():
        first = getpass.getpass("password: ")
        if getpass.getpass("again: ") != first:
            fail("the passwords differ")
        return first
    line = sys.stdin.readline()
    if not line:
        fail("no password: give --password-file FILE, or the password on standard input")
    return line.removesuffix("\n").removesuffix("\r")


def _row(info: UserInfo) -> dict[str, object]:
    return {"name": info.name, "role": info.role, "source": info.source,
            "created": info.created, "disabled": info.disabled, "mfa": info.mfa}


@users_app.command("create")
def users_create(name: NameArg,
                 role: Annotated[str, typer.Option(help=f"{', '.join(USER_ROLES)}.")],
                 password_file: Annotated[Path | None, typer.Option(
                     "--password-file", help="File whose first line is the password [else "
                     "standard input]. Never give a password as an argument.",
                     show_default=False)] = None,
                 data: DataOpt = None) -> None:
    """Create a console user with a password (at least 12 characters)."""
    password = _password(password_file)
    with errors():
        users = _users(data)
        try:
            info = users.create(name, role, password, datetime.now(UTC))
        finally:
            users.close()
    say(f"created console user {info.name!r} ({info.role})")
    typer.echo(dumps(_row(info)))


@users_app.command("list")
def users_list(fmt: Annotated[str, typer.Option(
                   "--format", help="table, or json (one JSON object a line).")] = "table",
               data: DataOpt = None) -> None:
    """The console's users, oldest first (never a password hash or TOTP secret)."""
    if fmt not in ("table", "json"):
        fail("--format: use table or json")
    with errors():
        users = _users(data)
        try:
            found = users.listing()
        finally:
            users.close()
    if fmt == "json":
        for info in found:
            typer.echo(dumps(_row(info)))
        return
    rows = [("NAME", "ROLE", "SOURCE", "MFA", "CREATED", "DISABLED")]
    rows += [(printable(i.name), i.role, i.source, "yes" if i.mfa else "no", i.created,
              i.disabled or "-") for i in found]
    widths = [max(len(r[c]) for r in rows) for c in range(len(rows[0]))]
    for r in rows:
        typer.echo("  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip())
    if not found:
        say("no console users yet: sealtrail users create NAME --role ROLE")


@users_app.command("disable")
def users_disable(name: NameArg, data: DataOpt = None) -> None:
    """Disable a user at once: their sessions end and they cannot sign in again."""
    with errors():
        users = _users(data)
        try:
            info = users.disable(name, datetime.now(UTC))
        finally:
            users.close()
    typer.echo(dumps(_row(info)))


@users_app.command("mfa")
def users_mfa(name: NameArg, issuer: Annotated[str, typer.Option(
                  help="The name authenticator apps show.")] = "sealtrail",
              data: DataOpt = None) -> None:
    """Enroll a TOTP second factor (RFC 6238) for a user, replacing any earlier one: prints
    the secret and its otpauth:// URI, once."""
    with errors():
        users = _users(data)
        try:
            secret = users.enroll_totp(name, datetime.now(UTC))
        finally:
            users.close()
    say("give these to the user only, now: they cannot be shown again")
    typer.echo(dumps({"name": name, "secret": secret,
                      "uri": Users.totp_uri(name, secret, issuer)}))
