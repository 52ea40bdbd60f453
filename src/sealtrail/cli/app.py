"""``sealtrail``: the command line over the embedded log.

Exit codes: 0 success; 1 the log failed verification, or a runtime failure (storage); 2 usage or
invalid input (nothing stored). ``--data DIR`` (env ``SEALTRAIL_DATA``, default
``./sealtrail-data``) and ``--log NAME`` (default ``default``) may come before or after the
command.
"""

from __future__ import annotations

import base64
import contextlib
import csv
import getpass
import hashlib
import json
import os
import re
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, BinaryIO, NoReturn

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from sealtrail.cli.output import dumps, printable
from sealtrail.core.errors import (
    ConfigError,
    SealtrailError,
    StorageError,
    TamperError,
    ValidationError,
    VerificationError,
)
from sealtrail.core.event import MAX_EVENT_BYTES, Event, parse_event
from sealtrail.core.note import Verifier, open_note
from sealtrail.core.note import parse as parse_note
from sealtrail.core.policy import FieldPolicy
from sealtrail.core.proofs import ConsistencyProof, InclusionProof
from sealtrail.core.sources import claims_import
from sealtrail.core.timefmt import parse_time
from sealtrail.core.tlogproof import TlogProof
from sealtrail.log import keys
from sealtrail.log.apikeys import ApiKeys
from sealtrail.log.auditlog import MAX_BATCH, AuditLog, log_dir
from sealtrail.log.derived import DerivedReport
from sealtrail.log.headmemory import HeadMemory, memory_path
from sealtrail.log.keyring import passphrase_kek
from sealtrail.log.search import Filter, sealed_filters, search
from sealtrail.log.verify import VerifyReport, verify_log
from sealtrail.store.sqlite import SQLiteStore

# rich_markup_mode=None: help texts are plain text, so their "[env ...]" and "[default: ...]"
# notes are shown as written (rich markup would take them for tags and drop them).
app = typer.Typer(no_args_is_help=True, rich_markup_mode=None,
                  help="sealtrail: a tamper-evident audit trail (RFC 6962 log, signed "
                       "C2SP checkpoints, offline-verifiable proofs).")
prove_app = typer.Typer(no_args_is_help=True, rich_markup_mode=None,
                        help="Inclusion and consistency proofs (JSON).")
app.add_typer(prove_app, name="prove")
keys_app = typer.Typer(no_args_is_help=True, rich_markup_mode=None,
                       help="Service API keys (create, list, revoke) and "
                       "the encryption keyring (rotate, info).")
app.add_typer(keys_app, name="keys")
head_app = typer.Typer(no_args_is_help=True, rich_markup_mode=None,
                       help="The head memory: the newest head this "
                       "machine saw the log sign (rollback and fork detection).")
app.add_typer(head_app, name="head")
settings_app = typer.Typer(no_args_is_help=True, rich_markup_mode=None,
                           help="The log's settings, signed at creation "
                           "(show; adopt for logs made before settings were signed).")
app.add_typer(settings_app, name="settings")
hold_app = typer.Typer(no_args_is_help=True, rich_markup_mode=None,
                       help="Legal holds on data subjects (block erasure).")
app.add_typer(hold_app, name="hold")

err = Console(stderr=True, highlight=False)
DEFAULT_DATA = "./sealtrail-data"

DataOpt = Annotated[str | None, typer.Option(
    "--data", help="Data directory [env SEALTRAIL_DATA; default ./sealtrail-data].",
    show_default=False)]
LogOpt = Annotated[str | None, typer.Option("--log", help="Log (tenant) name [default: default].",
                                            show_default=False)]
PassOpt = Annotated[Path | None, typer.Option(
    "--passphrase-file", help="File holding the keyring passphrase [else env "
    "SEALTRAIL_PASSPHRASE, else a prompt where one is needed].", show_default=False)]


class _Ctx:
    data: str | None = None
    log: str | None = None
    passphrase_file: Path | None = None


_ctx = _Ctx()


def _show_version(value: bool) -> None:
    if value:
        from importlib.metadata import PackageNotFoundError, version  # noqa: PLC0415

        try:
            typer.echo(f"sealtrail {version('sealtrail')}")
        except PackageNotFoundError:  # pragma: no cover - run from a source tree
            typer.echo("sealtrail (version unknown: not installed)")
        raise typer.Exit(0)


@app.callback()
def _main(data: DataOpt = None, log: LogOpt = None, passphrase_file: PassOpt = None,
          _version: Annotated[bool, typer.Option(
              "--version", callback=_show_version, is_eager=True,
              help="Print the version and exit.")] = False) -> None:
    """Global --data, --log and --passphrase-file."""
    _ctx.data = data
    _ctx.log = log
    _ctx.passphrase_file = passphrase_file


def _read_passphrase(path: Path) -> str:
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        fail(f"--passphrase-file {path}: {getattr(exc, 'strerror', None) or exc}")
    return text.rstrip("\r\n")


def _passphrase(passphrase_file: Path | None = None, *, prompt: bool = False,
                confirm: bool = False) -> str | None:
    """The keyring passphrase: --passphrase-file, else None (the library reads the env var),
    else, where the command needs it and a terminal is there, a prompt."""
    path = passphrase_file or _ctx.passphrase_file
    if path is not None:
        return _read_passphrase(path)
    if os.environ.get("SEALTRAIL_PASSPHRASE") is not None or "SEALTRAIL_KEK" in os.environ:
        return None
    if prompt and sys.stdin.isatty():
        first = getpass.getpass("keyring passphrase: ")
        if confirm and getpass.getpass("again: ") != first:
            fail("the passphrases differ")
        return first
    return None


def _where(data: str | None, log: str | None) -> tuple[str, str]:
    d = data or _ctx.data or os.environ.get("SEALTRAIL_DATA") or DEFAULT_DATA
    return d, log or _ctx.log or "default"


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


def fail(message: str, code: int = 2) -> NoReturn:
    """Print an error on stderr and exit."""
    err.print(f"error: {printable(message)}", markup=False)
    raise typer.Exit(code)


@contextmanager
def _errors() -> Iterator[None]:
    try:
        yield
    except SealtrailError as exc:  # each error class carries its exit code (core/errors.py)
        fail(exc.diagnostics(), exc.exit_code)
    except BrokenPipeError:
        # A reader such as `head` went away: stop quietly, as Unix tools do.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        raise typer.Exit(0) from None


def _open(data: str | None, log: str | None, *, create: bool = False,
          need_keys: bool = False) -> AuditLog:
    """Open the log; ``need_keys``: the command writes or must decrypt, so prompt if needed."""
    d, name = _where(data, log)
    if not (log_dir(d, name) / "log.db").exists() and not create:
        fail(f"no log {name!r} in {d}: run 'sealtrail init' first")
    alog = AuditLog.open(d, name, create=create, passphrase=_passphrase(prompt=need_keys))
    if need_keys and alog.locked_reason:
        alog.close()
        fail(alog.locked_reason)
    return alog


OPERATOR_ROLE = "operator"  # the role the CLI's reads are recorded with (file access)


def _operator() -> dict[str, str]:
    """The operating-system user running the CLI: the actor of the CLI's own reads."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = f"uid:{os.getuid()}"
    return {"id": user, "type": "os_user"}


@app.command()
def init(data: DataOpt = None, log: LogOpt = None,
         origin: Annotated[str | None, typer.Option(
             help="Checkpoint origin (log identity) [default: sealtrail/<log>].")] = None,
         no_encryption: Annotated[bool, typer.Option(
             "--no-encryption", help="Store every field in clear (no keyring).")] = False,
         personal: Annotated[str | None, typer.Option(
             help="Comma-separated fields to encrypt [default: actor.name, actor.ip, "
                  "actor.user_agent, target.name, source.ip, changes, metadata].")] = None,
         redaction: Annotated[str, typer.Option(
             help="Secrets at ingest: mask, hash (keyed, comparable) or off.")] = "mask",
         ) -> None:
    """Create the log, its signing key and keyring (0600). Last line: the verifier key."""
    with _errors():
        d, name = _where(data, log)
        existed = (log_dir(d, name) / "log.db").exists()
        policy = FieldPolicy.parse(personal.split(",")) if personal is not None else None
        phrase = None if (existed or no_encryption) else _passphrase(prompt=True, confirm=True)
        with AuditLog.open(d, name, origin=origin, create=True, passphrase=phrase,
                           encryption=not no_encryption, policy=policy,
                           redaction=redaction) as alog:
            state = "exists" if existed else "created"
            enc = "encrypted" if alog.encrypted else "not encrypted"
            typer.echo(f"log {name!r} {state} in {log_dir(d, name)} "
                       f"(origin {alog.origin}, size {alog.size}, {enc}, "
                       f"redaction {alog.redaction})")
            typer.echo(alog.vkey())


def _lines(source: BinaryIO) -> Iterator[bytes]:
    """Lines of at most one event's size: a longer line is refused before it is read whole."""
    limit = MAX_EVENT_BYTES + 2
    while line := source.readline(limit + 1):
        yield line


def _read_events(source: BinaryIO) -> list[Event]:
    events: list[Event] = []
    for lineno, line in enumerate(_lines(source), start=1):
        if not line.strip():
            continue
        if len(line) > MAX_EVENT_BYTES + 2:
            raise ValidationError("event", f"larger than {MAX_EVENT_BYTES} bytes", line=lineno)
        if len(events) >= MAX_BATCH:
            raise ValidationError("input", f"more than {MAX_BATCH} events: split the file "
                                  "(each append is one atomic commit)", line=lineno)
        try:
            event = parse_event(line.rstrip(b"\r\n"))
            claim = claims_import(event.metadata)
            if claim is not None:
                raise claim
            events.append(event)
        except ValidationError as exc:
            raise exc.at_line(lineno) from exc
    return events


def _events_from(file: Path | None) -> list[Event]:
    """Events of a JSON Lines file, or of standard input for None or ``-``."""
    if file is None or str(file) == "-":
        return _read_events(sys.stdin.buffer)
    try:
        with file.open("rb") as fh:
            return _read_events(fh)
    except OSError as exc:
        fail(f"cannot read {file}: {exc.strerror}")


@app.command()
def append(file: Annotated[Path | None, typer.Argument(
               help="JSON Lines file of events [default: standard input].")] = None,
           data: DataOpt = None, log: LogOpt = None) -> None:
    """Append JSON Lines events durably and atomically: one bad line stores nothing."""
    with _errors():
        events = _events_from(file)
        with _open(data, log, need_keys=True) as alog:
            receipts = alog.append_many(events)
            cp = alog.checkpoint().checkpoint
        new = [r for r in receipts if not r.duplicate]
        summary: dict[str, Any] = {
            "appended": len(new), "duplicates": len(receipts) - len(new),
            "first_index": min((r.index for r in new), default=None),
            "last_index": max((r.index for r in new), default=None),
            "tree_size": cp.size,
            "root_hash": base64.b64encode(cp.root).decode()}
        typer.echo(dumps(summary))


@app.command()
def checkpoint(data: DataOpt = None, log: LogOpt = None) -> None:
    """Print the latest signed checkpoint (a C2SP signed note)."""
    with _errors(), _open(data, log) as alog:
        typer.echo(alog.checkpoint().note, nl=False)


@app.command()
def vkey(data: DataOpt = None, log: LogOpt = None) -> None:
    """Print the verifier key (name+id+key), for auditors and witnesses."""
    with _errors():
        d, name = _where(data, log)
        path = log_dir(d, name) / keys.VERIFIER_KEY
        if not path.exists():
            fail(f"no log {name!r} in {d}: run 'sealtrail init' first")
        typer.echo(keys.load_verifier(path).format())


@app.command()
def entries(start: Annotated[int, typer.Option(help="First index.", min=0)] = 0,
            end: Annotated[int | None, typer.Option(help="One past the last index "
                                                     "[default: size].", min=0)] = None,
            data: DataOpt = None, log: LogOpt = None) -> None:
    """Raw entries start <= i < end as JSON Lines: index, leaf (base64), event.

    Reading entries shows event content, so it is recorded in the log as an audit_access event.
    """
    with _errors(), _open(data, log) as alog:
        stop = alog.size if end is None else end
        alog.refresh_keys()
        entries = alog.entries(start, stop)  # checks the range before the read is recorded
        # Recorded before any content leaves: a read that cannot be recorded is not served,
        # and a reader who stops reading (a closed pipe) is still on record.
        alog.record_access(_operator(), "audit.entries.read", role=OPERATOR_ROLE,
                           details={"start": str(start), "end": str(stop)},
                           results=max(0, stop - start))
        out = sys.stdout
        for entry in entries:
            out.write(dumps({"index": entry.index,
                             "leaf": base64.b64encode(entry.leaf).decode(),
                             "event": alog.read(entry)}) + "\n")
        out.flush()


@prove_app.command("inclusion")
def prove_inclusion(index: Annotated[int, typer.Argument(min=0)],
                    size: Annotated[int | None, typer.Option(
                        help="Tree size [default: latest checkpoint].", min=1)] = None,
                    fmt: Annotated[str, typer.Option(
                        "--format", help="json, or tlog-proof (C2SP: a self-contained receipt "
                        "at the latest checkpoint).")] = "json",
                    data: DataOpt = None, log: LogOpt = None) -> None:
    """Inclusion proof of entry INDEX (JSON; carries the signed checkpoint at the latest size)."""
    if fmt not in ("json", "tlog-proof"):
        fail("--format: use json or tlog-proof")
    if fmt == "tlog-proof" and size is not None:
        fail("--format tlog-proof proves against the latest checkpoint: leave out --size")
    with _errors(), _open(data, log) as alog:
        proof = alog.prove_inclusion(index, size)
        if fmt == "json":
            typer.echo(dumps(proof.to_json(), indent=2))
            return
        head = alog.checkpoint()
        if head.checkpoint.size != proof.tree_size:  # pragma: no cover - an append raced
            fail("the log grew while proving: try again", 1)
        typer.echo(TlogProof(index, proof.audit_path, head.note).format(), nl=False)


@prove_app.command("consistency")
def prove_consistency(first: Annotated[int, typer.Argument(min=0)],
                      second: Annotated[int, typer.Argument(min=0)],
                      data: DataOpt = None, log: LogOpt = None) -> None:
    """Consistency proof from tree size FIRST to SECOND (JSON)."""
    with _errors(), _open(data, log) as alog:
        typer.echo(dumps(alog.prove_consistency(first, second).to_json(), indent=2))


def _progress(total: int) -> tuple[Callable[[int, int], None] | None, Callable[[], None]]:
    """A bar on stderr (terminals only) that knows its total from the start (the log's
    size), so it never shows ``0/None``."""
    if not sys.stderr.isatty():
        return None, lambda: None
    bar = Progress(TextColumn("verifying"), BarColumn(),
                   TextColumn("{task.completed}/{task.total}"), TimeRemainingColumn(),
                   console=err, transient=True)
    task = bar.add_task("verify", total=total)
    bar.start()

    def update(done: int, total: int) -> None:
        bar.update(task, completed=done, total=total)

    return update, bar.stop


@app.command()
def verify(checkpoint: Annotated[Path | None, typer.Option(
               "--checkpoint", help="A checkpoint note you kept earlier: the log must extend it.")
           ] = None,
           vkey: Annotated[str | None, typer.Option(
               "--vkey", help="The verifier key you trust: its text or a file holding it "
                              "[default: the key stored with the log, which an attacker with "
                              "the files could replace]. A key that is not this log's (another "
                              "origin; or another key id when no checkpoint of the log carries "
                              "its signature and the stored head verifies with the stored "
                              "key) is NOT VERIFIED, exit 3: another log's key, or a log "
                              "replaced and re-signed; otherwise a signature the key does not "
                              "give is tampering, exit 1.")] = None,
           as_json: Annotated[bool, typer.Option("--json", help="Machine-readable result.")
                              ] = False,
           workers: Annotated[int | None, typer.Option(
               min=1, max=64, help="Processes for large logs [default: one per core].")
           ] = None,
           derived: Annotated[bool | None, typer.Option(
               "--derived/--no-derived", help="Also rebuild and compare the blind indexes and "
               "subject keys (needs the keyring; about 50 us per entry) [default: when the "
               "keyring opens without a prompt].")] = None,
           data: DataOpt = None, log: LogOpt = None) -> None:
    """Verify the whole log: exit 0 intact, 1 tampered (first bad index named), 2 usage, 3 the
    key given verifies nothing in the log.

    Besides the tree, checkpoints, id index, retention receipts and settings, the log must not
    be smaller than, or forked from, the newest head this machine saw it sign (its head
    memory); a verified head becomes the one remembered.
    """
    with _errors():
        d, name = _where(data, log)
        directory = log_dir(d, name)
        db = directory / "log.db"
        if not db.exists():
            fail(f"no log {name!r} in {d}")
        verifier = (keys.load_verifier(directory / keys.VERIFIER_KEY) if vkey is None
                    else _verifier(vkey))
        trusted = None
        if checkpoint is not None:
            try:
                trusted = checkpoint.read_text()
            except OSError as exc:
                fail(f"--checkpoint {checkpoint}: {exc.strerror}")
        store = SQLiteStore(db, readonly=True)
        if vkey is not None:
            try:
                mismatch = _key_mismatch(
                    store, verifier, keys.load_verifier(directory / keys.VERIFIER_KEY))
            except ConfigError:  # no stored key to compare with: the signatures decide
                mismatch = None
            if mismatch is not None:
                store.close()
                not_verified(mismatch, as_json=as_json)
        memory = HeadMemory(memory_path(directory, verifier.name), verifier, verifier.name)
        update, stop = _progress(store.state().size)
        derived_report: DerivedReport | None = None
        try:
            remembered = memory.load()
            report: VerifyReport = verify_log(
                store, verifier, verifier.name, trusted_checkpoint=trusted, progress=update,
                database=db, workers=workers,
                remembered=remembered.note if remembered is not None else None)
            if report.head is not None:
                with contextlib.suppress(StorageError):  # a read-only copy remembers nothing
                    memory.remember(report.head, report.size, now=True)
            derived_report = _verify_derived(d, name, derived)
        except TamperError as exc:
            stop()
            if as_json:
                typer.echo(dumps({"ok": False, "kind": exc.kind, "index": exc.index,
                                  "message": str(exc)}))
            else:
                typer.echo(f"TAMPERED: {printable(str(exc))}")
            raise typer.Exit(1) from None
        except VerificationError as exc:
            stop()
            if as_json:
                typer.echo(dumps({"ok": False, "kind": "checkpoint", "index": None,
                                  "message": str(exc)}))
            else:
                typer.echo(f"FAILED: {printable(str(exc))}")
            raise typer.Exit(1) from None
        finally:
            store.close()
        stop()
        if as_json:
            typer.echo(dumps({"ok": True, "size": report.size,
                              "root_hash": base64.b64encode(report.root).decode(),
                              "checkpoints": report.checkpoints,
                              "trusted_size": report.trusted_size,
                              "derived": derived_report.summary() if derived_report else None}))
        else:
            typer.echo(report.summary())
            if remembered is None and report.size:
                err.print(f"note: no head memory was found ({memory.path}): this machine "
                          "had not seen the log sign a head, so a rollback before now cannot "
                          "be told from here; it is remembered from now on (compare with a "
                          "checkpoint kept elsewhere: --checkpoint)", markup=False)
            if derived_report is not None:
                typer.echo(derived_report.summary())
            elif derived is None:
                err.print("note: blind indexes and subject keys were not checked (the keyring "
                          "is locked); give the passphrase or --derived to check them",
                          markup=False)


def _verify_derived(data: str, name: str, wanted: bool | None) -> DerivedReport | None:
    """The keyed check of derived data (blind indexes, subject keys), when wanted or when the
    keyring opens without a prompt; None when skipped."""
    if wanted is False:
        return None
    with AuditLog.open(data, name, create=False,
                       passphrase=_passphrase(prompt=bool(wanted))) as alog:
        if not alog.encrypted:
            return None
        if alog.locked_reason:
            if wanted:
                fail(f"--derived: {alog.locked_reason}")
            return None
        return alog.verify_derived()


@settings_app.command("show")
def settings_show(data: DataOpt = None, log: LogOpt = None) -> None:
    """The settings the log runs with (signed by its key at creation), as JSON."""
    with _errors(), _open(data, log) as alog:
        typer.echo(dumps(alog.settings()))


@settings_app.command("adopt")
def settings_adopt(reason: Annotated[str, typer.Option(help="Why these settings are right.")],
                   data: DataOpt = None, log: LogOpt = None) -> None:
    """Sign the settings of a log made before settings were signed (check them first with
    'settings show'); recorded in the log. Refused when a statement exists."""
    with _errors(), _open(data, log, need_keys=True) as alog:
        receipt = alog.adopt_settings(reason=reason, actor=_operator())
        typer.echo(dumps({"adopted": alog.settings(), "event_index": receipt.index}))


@head_app.command("show")
def head_show(data: DataOpt = None, log: LogOpt = None) -> None:
    """The head this machine remembers the log signing, and the log's head now (JSON)."""
    with _errors(), _open(data, log) as alog:
        mem = alog.head_memory.load()
        typer.echo(dumps({"memory": str(alog.head_memory.path),
                          "remembered_size": mem.checkpoint.size if mem else None,
                          "log_size": alog.size}))


@head_app.command("accept")
def head_accept(reason: Annotated[str, typer.Option(help="Why the current head is right "
                                                    "(e.g. the backup it was restored from).")],
                data: DataOpt = None, log: LogOpt = None) -> None:
    """After a reported rollback or fork you have investigated: accept the log's current head
    as the one to remember. The acceptance is recorded in the log."""
    with _errors(), _open(data, log, need_keys=True) as alog:
        receipt = alog.accept_head(reason=reason, actor=_operator())
        typer.echo(dumps({"accepted_size": alog.size, "event_index": receipt.index}))


def _read_text(path: Path, option: str) -> str:
    try:
        return sys.stdin.read() if str(path) == "-" else path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        fail(f"{option} {path}: {getattr(exc, 'strerror', None) or exc}")


VKEY_RULE = ("the key as text (name+keyid+key, as 'sealtrail vkey' prints it) or the path of "
             "a file holding it (@FILE works too)")


def _verifier(vkey: str, option: str = "--vkey") -> Verifier:
    """A key argument, one rule everywhere: vkey text, or a file holding it (``@FILE`` is
    kept as an alias). Anything else is a usage error (exit 2) naming the option."""
    value = vkey.strip()
    path = Path(value[1:] if value.startswith("@") else value)
    if value.startswith("@") or path.is_file():
        if not path.is_file():
            fail(f"{option} {path}: no such file")
        try:
            text = path.read_text().strip()
        except (OSError, UnicodeDecodeError) as exc:
            fail(f"{option} {path}: {getattr(exc, 'strerror', None) or exc}")
        try:
            return Verifier.parse(text)
        except VerificationError as exc:
            fail(f"{option} {path}: the file holds no verifier key ({exc})")
    if "+" not in value:
        fail(f"{option} {value!r}: no such file, and not a verifier key: give {VKEY_RULE}")
    try:
        return Verifier.parse(value)
    except VerificationError as exc:
        fail(f"{option}: not a verifier key ({exc}); give {VKEY_RULE}")


def _note_origin(note: str | None) -> str | None:
    """The origin line of a checkpoint note, unverified (to name it in messages)."""
    if not note:
        return None
    return note.split("\n", 1)[0] or None


def _key_mismatch(store: SQLiteStore, given: Verifier, stored: Verifier) -> str | None:
    """Why ``given`` verifies nothing in this log (exit 3, :func:`not_verified`), or None.

    The rule: a key named for another origin is not the log's key. A key with the log's
    name but another key id than the stored verifier.vkey is not the log's key when the
    stored head verifies with the stored key and no checkpoint the log holds (head, history)
    carries a valid signature by the given key. Otherwise verification runs and a bad
    signature is tampering (exit 1): a log re-signed by another key, checked with the right
    key, still shows a checkpoint the right key signed, or a head the stored key does not.
    """
    head = store.state().checkpoint
    origin = _note_origin(head) or stored.name
    if given.name != origin:
        return (f"the key given is for {given.name!r}; this log's head names the origin "
                f"{origin!r}")
    if given.key_id == stored.key_id and given.public_key == stored.public_key:
        return None
    notes = [head] if head else []
    notes += [note for _, note in store.iter_checkpoints()]
    for note in notes:
        try:
            parsed = parse_note(note)
        except VerificationError:
            continue
        message = parsed.text.encode()
        if any(sig.name == given.name and sig.key_id == given.key_id
               and given.verify(message, sig.signature) for sig in parsed.signatures):
            return None  # the given key signed this log: its checks decide
    if head is None:
        return None
    try:
        open_note(head, [stored])
    except VerificationError:
        return None  # the stored head does not verify with the stored key: tampering
    return (f"no checkpoint of this log (origin {origin!r}, signed by key id "
            f"{stored.key_id.hex()}) carries a signature by the key given "
            f"({given.name}+{given.key_id.hex()})")


@app.command("verify-proof")
def verify_proof(proof: Annotated[Path, typer.Argument(
                     help="Proof JSON from 'sealtrail prove' ('-' for standard input).")],
                 vkey: Annotated[str, typer.Option(
                     "--vkey", help="The log's verifier key you trust: its text or a file "
                     "holding it. A key for another origin than the proof's: NOT VERIFIED, "
                     "exit 3 (another log's key, or an altered proof).")],
                 entry: Annotated[Path | None, typer.Option(
                     help="Inclusion: the entry as a line of 'sealtrail entries'; its leaf "
                          "must be the one proven.")] = None,
                 first: Annotated[Path | None, typer.Option(
                     help="Consistency: the older checkpoint note you kept.")] = None,
                 second: Annotated[Path | None, typer.Option(
                     help="Consistency: the newer checkpoint note.")] = None) -> None:
    """Check a proof offline with only the verifier key: no data directory, no network.

    Exit 0 when it holds, 1 when it does not (saying why), 2 on usage errors.
    """
    with _errors():
        text = _read_text(proof, "PROOF")
        verifier = _verifier(vkey)
        try:
            doc = json.loads(text) if text.lstrip().startswith("{") else None
        except ValueError as exc:
            fail(f"PROOF {proof}: not JSON ({exc})")
        other_origin = None  # a hint only, read from unverified notes: used after a failure
        if isinstance(doc, dict):
            notes = [doc.get("checkpoint")]
            notes += [_read_text(p, o) for p, o in ((first, "--first"), (second, "--second"))
                      if p is not None and "consistency" in doc]
            for note in notes:
                origin = _note_origin(note) if isinstance(note, str) else None
                if origin is not None and origin != verifier.name:
                    other_origin = origin
        try:
            _check_proof(doc, text, verifier, entry, first, second)
        except VerificationError:
            if other_origin is not None:
                not_verified(f"the key given is for {verifier.name!r}; the proof's checkpoint "
                             f"names {other_origin!r}")
            raise


def _check_proof(doc: Any, text: str, verifier: Verifier, entry: Path | None,
                 first: Path | None, second: Path | None) -> None:
    """Verify an inclusion or consistency proof (raises VerificationError) and say so."""
    if isinstance(doc, dict) and "leaf_index" in doc:
        inc = InclusionProof.parse(text)
        leaf = None
        if entry is not None:
            try:
                line = json.loads(_read_text(entry, "--entry"))
                leaf = base64.b64decode(line["leaf"], validate=True)
                index = line["index"]
            except (ValueError, KeyError, TypeError) as exc:
                fail(f"--entry: not a line of 'sealtrail entries' ({exc})")
            if index != inc.leaf_index:
                fail(f"--entry is index {index}, the proof is for {inc.leaf_index}", 1)
        cp = inc.verify_signed(verifier, leaf)
        what = "and the entry's bytes match" if leaf is not None else "(leaf hash only)"
        typer.echo(f"OK: entry {inc.leaf_index} is in {cp.origin} at size {cp.size}, "
                   f"signed by {verifier.name} {what}")
    elif isinstance(doc, dict) and "consistency" in doc:
        if first is None or second is None:
            fail("a consistency proof needs --first and --second checkpoint notes")
        cons = ConsistencyProof.parse(text)
        cons.verify_signed(verifier, _read_text(first, "--first"),
                           _read_text(second, "--second"))
        typer.echo(f"OK: size {cons.second} extends size {cons.first}, both signed by "
                   f"{verifier.name}")
    else:
        fail("PROOF is neither an inclusion nor a consistency proof")


def _filter(**fields: Any) -> Filter:
    """A search filter; a value no event can hold (``--outcome sucess``) is a usage error
    naming the option and the allowed values."""
    try:
        return Filter(**fields)
    except ValidationError as exc:
        fail(f"--{exc.field}: {exc.message}")


def _open_for_search(data: str | None, log: str | None, flt: Filter) -> AuditLog:
    """Open the log for a search: when the filter reads sealed fields and the keyring is
    locked, prompt for the passphrase on a terminal, else refuse (exit 2) saying why."""
    alog = _open(data, log)
    if not (alog.encrypted and alog.locked_reason):
        return alog
    needs = sealed_filters(alog, flt)
    if not needs:
        return alog
    alog.close()
    if sys.stdin.isatty() and _ctx.passphrase_file is None:
        return _open(data, log, need_keys=True)
    fail(f"cannot search by {', '.join('--' + n for n in needs)}: this log seals the "
         "field(s) searched and its keyring is locked; give the passphrase with env "
         "SEALTRAIL_PASSPHRASE or --passphrase-file FILE (a terminal is prompted)")


TIME_HELP = ("RFC 3339 (2026-10-01T08:00:00Z) or a plain date (2026-10-01, meaning "
             "00:00 UTC that day).")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def _time_opt(value: str | None, name: str) -> Any:
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


@app.command()
def query(actor: Annotated[str | None, typer.Option(help="actor.id equals.")] = None,
          ip: Annotated[str | None, typer.Option(help="actor.ip equals.")] = None,
          subject: Annotated[str | None, typer.Option(
              help="The event names this data subject.")] = None,
          action: Annotated[str | None, typer.Option(
              help="Action, its dotted prefix (user matches user.login) or a glob (user.*).")
          ] = None,
          category: Annotated[str | None, typer.Option()] = None,
          outcome: Annotated[str | None, typer.Option()] = None,
          target: Annotated[str | None, typer.Option(help="target.id equals.")] = None,
          source: Annotated[str | None, typer.Option(help="source.service equals.")] = None,
          request_id: Annotated[str | None, typer.Option("--request-id")] = None,
          trace_id: Annotated[str | None, typer.Option("--trace-id")] = None,
          since: Annotated[str | None, typer.Option(
              "--since", "--from", help=f"Event time >= this. {TIME_HELP}")] = None,
          until: Annotated[str | None, typer.Option(
              "--until", "--to", help=f"Event time < this. {TIME_HELP}")] = None,
          text: Annotated[str | None, typer.Option(help="Case-insensitive text anywhere.")
                          ] = None,
          limit: Annotated[int, typer.Option(min=1, max=1_000_000)] = 100,
          oldest_first: Annotated[bool, typer.Option("--oldest-first")] = False,
          fmt: Annotated[str, typer.Option("--format", help="table, jsonl or csv.")] = "table",
          data: DataOpt = None, log: LogOpt = None) -> None:
    """Search events (newest first). The search itself is recorded as an audit_access event."""
    if fmt not in ("table", "jsonl", "csv"):
        fail("--format: use table, jsonl or csv")
    flt = _filter(actor=actor, actor_ip=ip, subject=subject, action=action, category=category,
                  outcome=outcome, target=target, source=source, request_id=request_id,
                  trace_id=trace_id, since=_time_opt(since, "--since"),
                  until=_time_opt(until, "--until"), text=text)
    with _errors(), _open_for_search(data, log, flt) as alog:
        if alog.encrypted and alog.locked_reason:
            err.print("note: the keyring is locked; encrypted fields are shown sealed",
                      markup=False)
        rows = list(search(alog, flt, limit=limit, newest_first=not oldest_first))
        alog.record_access(_operator(), "audit.search", role=OPERATOR_ROLE,
                           details=flt.describe(alog.pseudonym), results=len(rows))
        if fmt == "jsonl":
            for entry, ev in rows:
                typer.echo(dumps({"index": entry.index, "event": ev}))
        elif fmt == "csv":
            w = csv.writer(sys.stdout, lineterminator="\n")
            cols = ["index", "time", "actor", "action", "outcome", "category", "target",
                    "source", "id"]
            w.writerow(cols)
            for entry, ev in rows:
                w.writerow([printable(str(v)) for v in _row(entry.index, ev)])
        else:
            table = Table(show_lines=False, highlight=False)
            for col in ("#", "time", "actor", "action", "outcome", "category", "target"):
                table.add_column(col, overflow="fold")
            for entry, ev in rows:
                table.add_row(*[printable(str(v)) for v in _row(entry.index, ev)[:7]])
            Console(highlight=False, soft_wrap=False).print(table)
            err.print(f"{len(rows)} event(s)", markup=False)


def _row(index: int, ev: dict[str, Any]) -> list[Any]:
    target = ev.get("target") or {}
    return [index, ev.get("time", ""), ev.get("actor", {}).get("id", ""), ev.get("action", ""),
            ev.get("outcome", ""), ev.get("category", ""),
            target.get("id") or target.get("name") or "",
            (ev.get("source") or {}).get("service", ""), ev.get("id", "")]


SubjectOpt = Annotated[str, typer.Option("--subject", help="The data subject's id.")]
ReasonOpt = Annotated[str, typer.Option("--reason", help="Why (request number, legal basis).")]


@keys_app.command("rotate")
def keys_rotate(new_passphrase_file: Annotated[Path | None, typer.Option(
                    "--new-passphrase-file", help="Also rewrap the keyring under this new "
                    "passphrase.")] = None,
                data: DataOpt = None, log: LogOpt = None) -> None:
    """Start a new data key (old entries stay readable; the tree is untouched)."""
    with _errors(), _open(data, log, need_keys=True) as alog:
        new_kek = None
        if new_passphrase_file is not None:
            new_kek = passphrase_kek(_read_passphrase(new_passphrase_file))
        kid = alog.rotate_keys(actor=_operator(), new_kek=new_kek)
        typer.echo(dumps({"active": kid, "rewrapped": new_kek is not None}))


@keys_app.command("info")
def keys_info(data: DataOpt = None, log: LogOpt = None) -> None:
    """The keyring's keys: ids, purposes, creation times (never key material)."""
    with _errors(), _open(data, log, need_keys=True) as alog:
        for item in alog.keyring_info():
            typer.echo(dumps(item))


@app.command()
def erase(subject: SubjectOpt, reason: ReasonOpt,
          data: DataOpt = None, log: LogOpt = None) -> None:
    """Erase a data subject by destroying its key (crypto-shredding); proofs stay valid.

    Refused while a legal hold is open on the subject. The erasure is an audit event.
    """
    with _errors(), _open(data, log, need_keys=True) as alog:
        receipt = alog.erase_subject(subject, reason=reason, actor=_operator())
        typer.echo(dumps({"erased": True, "event_index": receipt.index,
                          "wal_purged": alog.wal_purged}))
        if not alog.wal_purged:
            err.print("warning: a reader kept the WAL busy; the destroyed key's old pages "
                      "stay in log.db-wal until the next WAL checkpoint after readers finish",
                      markup=False)


@hold_app.command("add")
def hold_add(subject: SubjectOpt, reason: ReasonOpt,
             data: DataOpt = None, log: LogOpt = None) -> None:
    """Put a legal hold on a subject: its erasure is refused until released."""
    with _errors(), _open(data, log, need_keys=True) as alog:
        receipt = alog.hold_subject(subject, reason=reason, actor=_operator())
        typer.echo(dumps({"held": True, "event_index": receipt.index}))


@hold_app.command("release")
def hold_release(subject: SubjectOpt, reason: ReasonOpt,
                 data: DataOpt = None, log: LogOpt = None) -> None:
    """Release the legal holds on a subject."""
    with _errors(), _open(data, log, need_keys=True) as alog:
        receipt = alog.release_subject(subject, reason=reason, actor=_operator())
        typer.echo(dumps({"released": True, "event_index": receipt.index}))


@hold_app.command("list")
def hold_list(all_holds: Annotated[bool, typer.Option("--all", help="Released ones too.")
                                   ] = False,
              data: DataOpt = None, log: LogOpt = None) -> None:
    """Legal holds as JSON Lines (subjects by pseudonym)."""
    with _errors(), _open(data, log) as alog:
        for item in alog.holds(open_only=not all_holds):
            typer.echo(dumps(item))


@app.command("subject-export")
def subject_export(subject: Annotated[str, typer.Argument(help="The data subject's id.")],
                   data: DataOpt = None, log: LogOpt = None) -> None:
    """Every event about a data subject, with dates and purposes (GDPR Art. 15), JSON Lines.

    The export reads event content, so it is itself recorded as an audit_access event.
    """
    with _errors(), _open(data, log, need_keys=True) as alog:
        found = list(alog.subject_events(subject))
        # Recorded before any content leaves (a read that cannot be recorded is not served).
        alog.record_access(_operator(), "audit.subject_export", role=OPERATOR_ROLE,
                           details={"subject": alog.pseudonym(subject)}, results=len(found))
        for entry, ev in found:
            typer.echo(dumps({"index": entry.index, "time": ev.get("time"),
                              "action": ev.get("action"), "purpose": ev.get("purpose"),
                              "event": ev}))


@app.command("redact-test")
def redact_test(file: Annotated[Path | None, typer.Argument(
                    help="JSON Lines events [default: standard input].")] = None,
                data: DataOpt = None, log: LogOpt = None) -> None:
    """Show what redaction would store for sample events (nothing is stored)."""
    with _errors():
        events = _events_from(file)
        with _open(data, log, need_keys=True) as alog:
            for ev in events:
                out, findings = alog.redact_preview(ev)
                typer.echo(dumps({"event": out, "redacted": [
                    {"field": f.path, "kind": f.kind} for f in findings]}))


@keys_app.command("create")
def keys_create(role: Annotated[str, typer.Option(
                    help="ingest, reader, auditor or admin.")],
                log: Annotated[str | None, typer.Option(
                    "--log", help="Limit the key to this log [default: every log].")] = None,
                name: Annotated[str, typer.Option(help="What the key is for.")] = "",
                expires: Annotated[str | None, typer.Option(
                    help=f"When the key stops working. {TIME_HELP}")] = None,
                client_cert: Annotated[Path | None, typer.Option(
                    "--client-cert", help="PEM certificate the key is bound to (mTLS): the "
                    "token works only over a connection presenting it.")] = None,
                data: DataOpt = None) -> None:
    """Create an API key for the service. The token is the last line (shown only once)."""
    with _errors():
        d, _ = _where(data, None)
        # The global ``sealtrail --log NAME keys create`` limits the key too: never widen a
        # key's scope because the option came before the command.
        log = log if log is not None else _ctx.log
        store = ApiKeys(d)
        try:
            now = datetime.now(UTC)
            token = store.create(role, log=log, name=name, now=now,
                                 expires=_time_opt(expires, "--expires"),
                                 client_cert_sha256=_cert_fingerprint(client_cert))
        finally:
            store.close()
        article = "an" if role[:1] in "aeiou" else "a"
        err.print(f"created {article} {role} key" + (f" for log {log!r}" if log else "")
                  + "; store the token now: it cannot be shown again", markup=False)
        typer.echo(token)


def _cert_fingerprint(path: Path | None) -> str | None:
    """SHA-256 (hex) of a PEM certificate's DER form, as the server sees it."""
    if path is None:
        return None
    from cryptography import x509  # noqa: PLC0415 - only this option needs it
    from cryptography.hazmat.primitives.serialization import Encoding  # noqa: PLC0415
    try:
        cert = x509.load_pem_x509_certificate(path.read_bytes())
    except (OSError, ValueError) as exc:
        fail(f"--client-cert {path}: {getattr(exc, 'strerror', None) or exc}")
    return hashlib.sha256(cert.public_bytes(Encoding.DER)).hexdigest()


@keys_app.command("list")
def keys_list(data: DataOpt = None) -> None:
    """The service's API keys as JSON Lines (never tokens)."""
    with _errors():
        d, _ = _where(data, None)
        store = ApiKeys(d)
        try:
            for info in store.listing():
                typer.echo(dumps({"id": info.id, "role": info.role, "log": info.log,
                                  "name": info.name, "created": info.created,
                                  "expires": info.expires, "revoked": info.revoked,
                                  "client_cert_sha256": info.client_cert_sha256}))
        finally:
            store.close()


@keys_app.command("revoke")
def keys_revoke(key_id: Annotated[str, typer.Argument(help="The key's id (keys list).")],
                data: DataOpt = None) -> None:
    """Revoke an API key at once."""
    with _errors():
        d, _ = _where(data, None)
        store = ApiKeys(d)
        try:
            store.revoke(key_id, datetime.now(UTC))
        finally:
            store.close()
        typer.echo(dumps({"revoked": key_id}))


LOOPBACK = ("127.0.0.1", "::1", "localhost")


@app.command()
def serve(host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
          port: Annotated[int, typer.Option(min=0, max=65535)] = 8470,
          tls_cert: Annotated[Path | None, typer.Option("--tls-cert")] = None,
          tls_key: Annotated[Path | None, typer.Option("--tls-key")] = None,
          client_ca: Annotated[Path | None, typer.Option(
              "--client-ca", help="Ask clients for certificates signed by this CA (mTLS).")
          ] = None,
          allow_plain_http: Annotated[bool, typer.Option(
              "--allow-plain-http", help="Serve plain HTTP on a non-loopback address.")
          ] = False,
          rate: Annotated[float, typer.Option(
              min=0.1, help="Requests per second allowed per API key.")] = 200.0,
          burst: Annotated[float, typer.Option(
              min=1, help="Requests a key may send at once before the rate applies.")
          ] = 400.0,
          rules: Annotated[list[Path] | None, typer.Option(
              "--rules", help="Rule files or directories (native and Sigma), beside the "
              "built-in pack. Repeatable.")] = None,
          alert_webhook: Annotated[str | None, typer.Option(
              "--alert-webhook", help="Send alerts to this URL (signed: Sealtrail-Signature).")
          ] = None,
          alert_secret_file: Annotated[Path | None, typer.Option(
              "--alert-webhook-secret-file", help="The webhook's signing secret [else env "
              "SEALTRAIL_WEBHOOK_SECRET].")] = None,
          monitor_config: Annotated[Path | None, typer.Option(
              "--monitor-config", help="Monitor configuration (JSON or YAML): rules, sinks, "
              "grouping, suppression; see docs/alerts.md.")] = None,
          no_monitor: Annotated[bool, typer.Option(
              "--no-monitor", help="Run no rules and raise no alerts.")] = False,
          monitor_in_process: Annotated[bool, typer.Option(
              "--monitor-in-process", help="Run the rules in a thread of the service instead "
              "of a child process (one core).")] = False,
          create: Annotated[bool, typer.Option(
              "--create", help="Serve a data directory that holds no log yet (made if "
              "missing; an admin key creates logs over the API). Without it, a directory "
              "with no log (a mistyped --data) is refused.")] = False,
          data: DataOpt = None) -> None:
    """Run the HTTP API (loopback by default; TLS with --tls-cert/--tls-key) and the monitor.

    Encrypted logs need the keyring passphrase (env SEALTRAIL_PASSPHRASE, --passphrase-file,
    or a prompt on a terminal); without it they are served locked and a warning at start
    says what is refused.
    """
    import ssl  # noqa: PLC0415 - only the server needs these

    from sealtrail.server.app import ServiceConfig, create_app  # noqa: PLC0415
    with _errors():
        if (tls_cert is None) != (tls_key is None):
            fail("--tls-cert and --tls-key go together")
        if tls_cert is None and host not in LOOPBACK and not allow_plain_http:
            fail(f"refusing plain HTTP on {host}: give --tls-cert/--tls-key, or "
                 "--allow-plain-http if a TLS proxy in front does it")
        d, _ = _where(data, None)
        found = _log_names(Path(d))
        if not found and not create:
            where = Path(d).resolve()
            fail(f"no log in {where}" + ("" if where.is_dir() else " (no such directory)")
                 + ": check --data (or env SEALTRAIL_DATA); create a log with 'sealtrail "
                 "init', or give --create to serve an empty data directory")
        monitor = None if no_monitor else _monitor_config(
            rules or [], alert_webhook, alert_secret_file, monitor_config)
        passphrase = _passphrase(prompt=True)
        _warn_locked(d, found, passphrase)
        command = None
        if monitor is not None and not monitor_in_process:
            # The child re-reads the same options; secrets reach it through its environment.
            if passphrase is not None:
                os.environ["SEALTRAIL_PASSPHRASE"] = passphrase
            if alert_webhook is not None and alert_secret_file is not None:
                os.environ["SEALTRAIL_WEBHOOK_SECRET"] = _read_text(
                    alert_secret_file, "--alert-webhook-secret-file").strip()
            command = [sys.executable, "-m", "sealtrail.cli", "--data", d, "monitor"]
            for path in rules or []:
                command += ["--rules", str(path.resolve())]
            if alert_webhook is not None:
                command += ["--alert-webhook", alert_webhook]
            if monitor_config is not None:
                command += ["--monitor-config", str(monitor_config.resolve())]
        config = ServiceConfig(Path(d), passphrase=passphrase, rate=rate, burst=burst,
                               monitor=monitor, monitor_command=command)
        # Header, body and keep-alive timeouts against slow clients (server/serving.py).
        from sealtrail.server.serving import listen  # noqa: PLC0415
        from sealtrail.server.serving import serve as serve_http  # noqa: PLC0415
        if tls_cert is not None and tls_key is not None:
            # Loaded once here so a missing or bad certificate is an error, not a traceback
            # after "serving" was announced (uvicorn loads it again to serve).
            try:
                ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(
                    str(tls_cert), str(tls_key))
                if client_ca is not None:
                    ssl.create_default_context(cafile=str(client_ca))
            except (OSError, ssl.SSLError) as exc:
                fail(f"--tls-cert/--tls-key/--client-ca: {exc}")
        sockets = listen(host, port)  # bound before anything is announced (a taken port)
        application = create_app(config)
        scheme = "https" if tls_cert else "http"
        bound = sockets[0].getsockname()[1] if sockets else port  # --port 0: the one chosen
        err.print(f"sealtrail serving {d} on {scheme}://{host}:{bound} (API docs at /docs)",
                  markup=False)
        serve_http(application, sockets=sockets, host=host, port=port, log_level="warning",
                   ssl_certfile=str(tls_cert) if tls_cert else None,
                   ssl_keyfile=str(tls_key) if tls_key else None,
                   ssl_ca_certs=str(client_ca) if client_ca else None,
                   ssl_cert_reqs=ssl.CERT_OPTIONAL if client_ca else ssl.CERT_NONE)


def _log_names(data: Path) -> list[str]:
    """The logs of a data directory (subdirectories holding a log database)."""
    if not data.is_dir():
        return []
    return sorted(p.name for p in data.iterdir() if (p / "log.db").is_file())


def _warn_locked(data: str, names: list[str], passphrase: str | None) -> None:
    """Warn on stderr about encrypted logs the service will run locked (no passphrase)."""
    locked = []
    for name in names:
        try:
            with AuditLog.open(data, name, create=False, passphrase=passphrase) as alog:
                if alog.encrypted and alog.locked_reason:
                    locked.append(name)
        except SealtrailError:
            continue  # the service reports a log it cannot open itself
    if locked:
        err.print(f"warning: encrypted log(s) {', '.join(repr(n) for n in locked)} have no "
                  "keyring passphrase: the service runs them locked and refuses events with "
                  "personal fields (503), searches by sealed fields and reads of sealed values; "
                  "give the passphrase with env SEALTRAIL_PASSPHRASE or --passphrase-file FILE "
                  "and restart", markup=False)


def _monitor_config(rules: list[Path], webhook: str | None, secret_file: Path | None,
                    config_file: Path | None) -> Any:
    """The monitor's configuration from the serve options (errors name the option)."""
    from sealtrail.monitor.config import load_config  # noqa: PLC0415 - serve only

    sinks: list[dict[str, Any]] = []
    if webhook is not None:
        if secret_file is not None:
            secret = _read_text(secret_file, "--alert-webhook-secret-file").strip()
        else:
            secret = os.environ.get("SEALTRAIL_WEBHOOK_SECRET", "")
        if not secret:
            fail("--alert-webhook needs a signing secret: --alert-webhook-secret-file FILE "
                 "or env SEALTRAIL_WEBHOOK_SECRET")
        sinks.append({"type": "webhook", "url": webhook, "secret": secret})
    for path in rules:
        if not path.exists():
            fail(f"--rules {path}: no such file or directory")
    return load_config(config_file, rules_paths=rules, sinks=sinks)


@app.command()
def demo(port: Annotated[int, typer.Option(min=1, max=65535)] = 8470,
         data: Annotated[Path, typer.Option(
             "--data", help="Demo data directory.")] = Path("./sealtrail-demo")) -> None:
    """The service with sample data and a key per role, on loopback (the README's run)."""
    from sealtrail.cli.demo import run_demo  # noqa: PLC0415 - only the demo needs it
    with _errors():
        run_demo(data, port)


@app.command()
def tour(keep: Annotated[Path | None, typer.Option(
             help="Keep the tour's log in this directory instead of a temporary one.")
         ] = None) -> None:
    """A five-minute tour: create a log, append events, verify, prove, catch tampering."""
    from sealtrail.cli.tour import run_tour  # noqa: PLC0415 - only the tour needs it
    with _errors():
        run_tour(keep)


def main() -> None:
    """Console-script entry point."""
    app()


# Command groups kept in modules of their own register themselves on ``app``; they use the
# helpers above, so they are imported last.

from sealtrail.cli import evidence as _evidence  # noqa: E402, F401
from sealtrail.cli import importing as _importing  # noqa: E402, F401
from sealtrail.cli import monitoring as _monitoring  # noqa: E402, F401
from sealtrail.cli import report as _report  # noqa: E402, F401
