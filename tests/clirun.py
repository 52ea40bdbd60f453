"""Run the ``sealtrail`` command line in this process, read as a finished subprocess is read.

A subprocess pays the interpreter start and every import again (half a second to a second a
command) and, for an encrypted log, the scrypt stretching of the passphrase. Tests of what a
command prints and exits with run it here instead, through the app the console script runs
(``sealtrail.cli.app.app``), in the isolation of Typer's test runner: standard output and
standard error apart, an environment overlay (``None`` removes a variable) restored afterwards,
the standard input given as bytes, an optional working directory. The result has the
``returncode``, ``stdout`` and ``stderr`` of :class:`subprocess.CompletedProcess`, as bytes, or
as text with ``text=True`` (decoded, newlines made universal, as ``subprocess.run(text=True)``
does).

Tests of the process itself stay subprocesses: the console script, exit codes of the real binary,
signals, crashes and kills, a closed standard output, a terminal, a running service.

An exception the command does not turn into an exit code is raised here (a subprocess would print
a traceback and exit 1): a test then fails on the bug instead of reading exit code 1 as an answer.
"""

from __future__ import annotations

import contextlib
import functools
import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import AnyStr, Generic, Literal, overload

import typer
from typer.testing import CliRunner

from sealtrail.cli.app import app

# What the subprocess runs set for every command: wide enough that no message wraps.
BASE_ENV: Mapping[str, str] = {"COLUMNS": "200"}


@dataclass(frozen=True, slots=True)
class Ran(Generic[AnyStr]):
    """A finished command: its arguments, exit code, standard output and standard error."""

    args: list[str]
    returncode: int
    stdout: AnyStr
    stderr: AnyStr


@functools.cache
def _main() -> Callable[..., object]:
    # The Click command ``app()`` builds on every call (about 0.1 s: Typer reads the signature of
    # every command), built once; Typer's ``CliRunner.invoke`` would build it for each command.
    return typer.main.get_command(app).main


def _exit_code(exc: SystemExit) -> int:
    """The exit status the interpreter would give for ``exc`` (a message: printed, status 1)."""
    if exc.code is None:
        return 0
    if isinstance(exc.code, int):
        return exc.code
    print(exc.code, file=sys.stderr)
    return 1


def _text(raw: bytes) -> str:
    return raw.decode().replace("\r\n", "\n").replace("\r", "\n")


@overload
def sealtrail(*args: str | os.PathLike[str], stdin: bytes | str | None = ...,
              env: Mapping[str, str | None] | None = ..., cwd: Path | None = ...,
              text: Literal[False] = ...) -> Ran[bytes]: ...


@overload
def sealtrail(*args: str | os.PathLike[str], stdin: bytes | str | None = ...,
              env: Mapping[str, str | None] | None = ..., cwd: Path | None = ...,
              text: Literal[True]) -> Ran[str]: ...


def sealtrail(*args: str | os.PathLike[str], stdin: bytes | str | None = None,
              env: Mapping[str, str | None] | None = None, cwd: Path | None = None,
              text: bool = False) -> Ran[bytes] | Ran[str]:
    """``sealtrail ARGS`` in-process: ``env`` is laid over this process's environment for the
    run (a ``None`` value removes the variable), ``stdin`` is the whole standard input."""
    argv = [os.fspath(a) for a in args]
    overlay: dict[str, str | None] = {**BASE_ENV, **(env or {})}
    where = contextlib.chdir(cwd) if cwd is not None else contextlib.nullcontext()
    with where, CliRunner().isolation(input=stdin, env=overlay) as (out, err, _):
        try:
            _main()(args=argv, prog_name="sealtrail")  # standalone: always ends in SystemExit
            code = 0
        except SystemExit as exc:
            code = _exit_code(exc)
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
        stdout, stderr = out.getvalue(), err.getvalue()
    if text:
        return Ran(argv, code, _text(stdout), _text(stderr))
    return Ran(argv, code, stdout, stderr)
