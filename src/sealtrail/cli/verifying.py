"""``verify`` (the whole log) and ``head show|accept`` (the head memory it checks against).

Exit codes of ``verify``: 0 intact, 1 tampered (the first bad index named), 2 usage, 3 the key
given verifies nothing in the log (:func:`~sealtrail.cli.common.not_verified`).

``verify`` is the one command that opens the store itself rather than through
:class:`~sealtrail.log.auditlog.AuditLog`: it must work on a copy an auditor was given
(the database and the verifier key, no signing key), read-only and writing nothing to it, with
a key the auditor trusts rather than the stored one. ``AuditLog.open`` needs the signing key
and a writable database, and ``AuditLog.verify`` checks with the stored key only and notes the
verification in the database; until the engine offers a read-only verification with a given
key, the store is opened here.
"""

from __future__ import annotations

import base64
import contextlib
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

from sealtrail.cli.common import (
    DataOpt,
    LogOpt,
    errors,
    fail,
    not_verified,
    open_log,
    operator,
    passphrase,
    say,
    stderr,
    where,
)
from sealtrail.cli.keyarg import note_origin, trusted_verifier
from sealtrail.cli.output import dumps, printable
from sealtrail.core.errors import ConfigError, StorageError, TamperError, VerificationError
from sealtrail.core.note import Verifier, open_note
from sealtrail.core.note import parse as parse_note
from sealtrail.log import keys
from sealtrail.log.auditlog import AuditLog, log_dir
from sealtrail.log.derived import DerivedReport
from sealtrail.log.headmemory import HeadMemory, memory_path
from sealtrail.log.verify import VerifyReport, verify_log
from sealtrail.store.sqlite import SQLiteStore

commands = typer.Typer(rich_markup_mode=None)
head_app = typer.Typer(no_args_is_help=True, rich_markup_mode=None,
                       help="The head memory: the newest head this "
                       "machine saw the log sign (rollback and fork detection).")


def _progress(total: int) -> tuple[Callable[[int, int], None] | None, Callable[[], None]]:
    """A bar on stderr (terminals only) that knows its total from the start (the log's
    size), so it never shows ``0/None``."""
    if not sys.stderr.isatty():
        return None, lambda: None
    bar = Progress(TextColumn("verifying"), BarColumn(),
                   TextColumn("{task.completed}/{task.total}"), TimeRemainingColumn(),
                   console=stderr(), transient=True)
    task = bar.add_task("verify", total=total)
    bar.start()

    def update(done: int, total: int) -> None:
        bar.update(task, completed=done, total=total)

    return update, bar.stop


@commands.command()
def verify(checkpoint: Annotated[Path | None, typer.Option(  # noqa: PLR0917 - CLI options
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
    with errors():
        d, name = where(data, log)
        directory = log_dir(d, name)
        db = directory / "log.db"
        if not db.exists():
            fail(f"no log {name!r} in {d}")
        verifier = (keys.load_verifier(directory / keys.VERIFIER_KEY) if vkey is None
                    else trusted_verifier(vkey))
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
                opener=store.opener(), workers=workers,
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
                say(f"note: no head memory was found ({memory.path}): this machine "
                    "had not seen the log sign a head, so a rollback before now cannot "
                    "be told from here; it is remembered from now on (compare with a "
                    "checkpoint kept elsewhere: --checkpoint)")
            if derived_report is not None:
                typer.echo(derived_report.summary())
            elif derived is None:
                say("note: blind indexes and subject keys were not checked (the keyring "
                    "is locked); give the passphrase or --derived to check them")


def _verify_derived(data: str, name: str, wanted: bool | None) -> DerivedReport | None:
    """The keyed check of derived data (blind indexes, subject keys), when wanted or when the
    keyring opens without a prompt; None when skipped."""
    if wanted is False:
        return None
    with AuditLog.open(data, name, create=False,
                       passphrase=passphrase(prompt=bool(wanted))) as alog:
        if not alog.encrypted:
            return None
        if alog.locked_reason:
            if wanted:
                fail(f"--derived: {alog.locked_reason}")
            return None
        return alog.verify_derived()


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
    origin = note_origin(head) or stored.name
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


@head_app.command("show")
def head_show(data: DataOpt = None, log: LogOpt = None) -> None:
    """The head this machine remembers the log signing, and the log's head now (JSON)."""
    with errors(), open_log(data, log) as alog:
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
    with errors(), open_log(data, log, need_keys=True) as alog:
        receipt = alog.accept_head(reason=reason, actor=operator())
        typer.echo(dumps({"accepted_size": alog.size, "event_index": receipt.index}))
