"""What every command shares: the global options, opening the log, the error boundary, stderr.

The command modules (one per command group) import this module and never each other, nor
``cli/app.py``, which imports them all to build the root app; pyproject.toml's import-linter
contract keeps it so.

The command line runs in one process many times over (tests call it in-process): nothing here
reads the environment, standard streams or options at import. The global options are kept for
the run in progress only (:func:`given`), the environment is read when a command needs it, and
the stderr console is made for each message, on whatever standard error is at that moment.

Exit codes (see ``core/errors.py``): 0 success; 1 the log failed verification, or a runtime
failure (storage); 2 usage or invalid input (nothing stored); 3 the key given verifies nothing.
"""

from __future__ import annotations

import getpass
import os
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from rich.console import Console

from sealtrail.cli.output import dumps, printable
from sealtrail.core.errors import SealtrailError
from sealtrail.core.timefmt import parse_time
from sealtrail.log.auditlog import AuditLog
from sealtrail.log.datadir import check_store, log_exists

DEFAULT_DATA = "./sealtrail-data"

DataOpt = Annotated[str | None, typer.Option(
    "--data", help="Data directory [env SEALTRAIL_DATA; default ./sealtrail-data].",
    show_default=False)]
LogOpt = Annotated[str | None, typer.Option("--log", help="Log (tenant) name [default: default].",
                                            show_default=False)]
StoreOpt = Annotated[str | None, typer.Option(
    "--store", help="Where logs are stored: a postgresql:// URL [env SEALTRAIL_STORE; default: "
    "SQLite files under --data]. Key files stay under --data either way.",
    show_default=False)]
PassOpt = Annotated[Path | None, typer.Option(
    "--passphrase-file", help="File holding the keyring passphrase [else env "
    "SEALTRAIL_PASSPHRASE, else a prompt where one is needed].", show_default=False)]


# -- the global options --------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Globals:
    """The options given before the command: ``sealtrail --data D --log L --passphrase-file F
    COMMAND``. A command's own ``--data``/``--log`` win over them."""

    data: str | None = None
    log: str | None = None
    passphrase_file: Path | None = None
    store: str | None = None


_GIVEN: ContextVar[Globals | None] = ContextVar("sealtrail_cli_globals", default=None)


def given() -> Globals:
    """The global options of the run in progress (set by :func:`global_options` and reset when
    the run ends, so one run never sees another's); none outside a run."""
    return _GIVEN.get() or Globals()


def _show_version(value: bool) -> None:
    if value:
        from importlib.metadata import PackageNotFoundError, version  # noqa: PLC0415

        try:
            typer.echo(f"sealtrail {version('sealtrail')}")
        except PackageNotFoundError:  # pragma: no cover - run from a source tree
            typer.echo("sealtrail (version unknown: not installed)")
        raise typer.Exit(0)


def global_options(ctx: typer.Context, data: DataOpt = None, log: LogOpt = None,
                   passphrase_file: PassOpt = None, store: StoreOpt = None,
                   _version: Annotated[bool, typer.Option(
                       "--version", callback=_show_version, is_eager=True,
                       help="Print the version and exit.")] = False) -> None:
    """Global --data, --log, --passphrase-file and --store."""
    token = _GIVEN.set(Globals(data, log, passphrase_file, store))
    ctx.call_on_close(lambda: _GIVEN.reset(token))


def where(data: str | None, log: str | None) -> tuple[str, str]:
    """The data directory and log name: the command's option, else the global one, else (data
    only) env ``SEALTRAIL_DATA``, else the default."""
    g = given()
    d = data or g.data or os.environ.get("SEALTRAIL_DATA") or DEFAULT_DATA
    return d, log or g.log or "default"


def store_url() -> str | None:
    """The store: global ``--store``, else env ``SEALTRAIL_STORE``, else None (SQLite under
    the data directory); exit 2 naming the option when it is not a usable URL."""
    url = given().store or os.environ.get("SEALTRAIL_STORE") or None
    try:
        return check_store(url)
    except SealtrailError as exc:
        fail(f"--store (or SEALTRAIL_STORE): {exc}")


def place(data: str) -> str:
    """Where logs are, for messages: the data directory, or the PostgreSQL store."""
    return data if store_url() is None else "the PostgreSQL store (--store)"


# -- the keyring passphrase ----------------------------------------------------------------

def read_passphrase(path: Path) -> str:
    """A passphrase file's text without its line end (exit 2 when unreadable)."""
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        fail(f"--passphrase-file {path}: {getattr(exc, 'strerror', None) or exc}")
    return text.rstrip("\r\n")


def passphrase(passphrase_file: Path | None = None, *, prompt: bool = False,
               confirm: bool = False) -> str | None:
    """The keyring passphrase: --passphrase-file, else None (the library reads the env var),
    else, where the command needs it and a terminal is there, a prompt."""
    path = passphrase_file or given().passphrase_file
    if path is not None:
        return read_passphrase(path)
    if os.environ.get("SEALTRAIL_PASSPHRASE") is not None or "SEALTRAIL_KEK" in os.environ:
        return None
    if prompt and sys.stdin.isatty():
        first = getpass.getpass("keyring passphrase: ")
        if confirm and getpass.getpass("again: ") != first:
            fail("the passphrases differ")
        return first
    return None


# -- opening the log -----------------------------------------------------------------------

def open_log(data: str | None, log: str | None, *, create: bool = False,
             need_keys: bool = False) -> AuditLog:
    """Open the log; ``need_keys``: the command writes or must decrypt, so prompt if needed."""
    d, name = where(data, log)
    store = store_url()
    if not create and not log_exists(d, name, store):
        fail(f"no log {name!r} in {place(d)}: run 'sealtrail init' first")
    alog = AuditLog.open(d, name, create=create, passphrase=passphrase(prompt=need_keys),
                         store=store)
    if need_keys and alog.locked_reason:
        alog.close()
        fail(alog.locked_reason)
    return alog


OPERATOR_ROLE = "operator"  # the role the CLI's reads are recorded with (file access)


def operator() -> dict[str, str]:
    """The operating-system user running the CLI: the actor of the CLI's own reads."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = f"uid:{os.getuid()}"
    return {"id": user, "type": "os_user"}


# -- standard error and the error boundary -------------------------------------------------

def stderr() -> Console:
    """A console on standard error as it is now (made per use: a run in-process swaps the
    stream), that never highlights: event text is shown as it is."""
    return Console(stderr=True, highlight=False)


def say(message: str, *, soft_wrap: bool = False) -> None:
    """A line for the person running the command (notes, warnings, counts), on stderr, so
    standard output stays the command's result; never read as markup."""
    stderr().print(message, markup=False, soft_wrap=soft_wrap)


def fail(message: str, code: int = 2) -> NoReturn:
    """Print an error on stderr and exit."""
    say(f"error: {printable(message)}")
    raise typer.Exit(code)


EXIT_UNVERIFIED = 3  # the key given verifies nothing here: another log's key, or a replaced log


def not_verified(message: str, *, as_json: bool = False) -> NoReturn:
    """Exit 3: the given key verifies nothing in what was checked. From the files alone that
    cannot be told apart from a log (or proof, or bundle) replaced and re-signed, so it is
    never reported as intact nor as a mere usage error; the message names both readings."""
    text = (f"{message}. Either it is another log's key (give this log's key: 'sealtrail vkey' "
            "on a machine you trust, or the key you were given for it), or, if it is the key "
            "you trust for this log, what was checked was replaced or re-signed: treat that "
            "as tampering")
    if as_json:
        typer.echo(dumps({"ok": False, "kind": "key", "index": None, "message": text}))
    else:
        typer.echo(f"NOT VERIFIED: {printable(text)}")
    raise typer.Exit(EXIT_UNVERIFIED)


def silence_stdout() -> None:
    """Point standard output at /dev/null after its reader went away, so the interpreter's
    final flush does not fail on the closed pipe again."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, sys.stdout.fileno())
    finally:
        os.close(devnull)


@contextmanager
def errors() -> Iterator[None]:
    """The error boundary of a command: a sealtrail error becomes its message on stderr and
    its exit code (each error class carries one, core/errors.py); a closed pipe, a quiet exit."""
    try:
        yield
    except SealtrailError as exc:
        fail(exc.diagnostics(), exc.exit_code)
    except BrokenPipeError:
        # A reader such as `head` went away: stop quietly, as Unix tools do.
        silence_stdout()
        raise typer.Exit(0) from None


# -- arguments shared by several groups ----------------------------------------------------

def read_text(path: Path, option: str) -> str:
    """The text of the file an option names (``-``: standard input); exit 2 when unreadable."""
    try:
        return sys.stdin.read() if str(path) == "-" else path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        fail(f"{option} {path}: {getattr(exc, 'strerror', None) or exc}")


TIME_HELP = ("RFC 3339 (2026-10-01T08:00:00Z) or a plain date (2026-10-01, meaning "
             "00:00 UTC that day).")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def time_opt(value: str | None, name: str) -> datetime | None:
    """A time option: RFC 3339, or a plain date meaning UTC midnight of that day."""
    if value is None:
        return None
    text = value.strip()
    if _DATE.fullmatch(text):
        text += "T00:00:00Z"
    try:
        return parse_time(text)
    except ValueError as exc:
        fail(f"{name} {value!r}: {exc} (give RFC 3339, e.g. 2026-10-01T08:00:00Z, or a date, "
             "e.g. 2026-10-01)")
