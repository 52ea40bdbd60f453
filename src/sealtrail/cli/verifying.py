"""``verify`` (the whole log) and ``head show|accept`` (the head memory it checks against).

Exit codes of ``verify``: 0 intact, 1 tampered (the first bad index named), 2 usage, 3 the key
given verifies nothing in the log (:func:`~sealtrail.cli.common.not_verified`).

``--seal-key`` adds the forward-secure seals (:func:`sealtrail.log.sealing.verify_seals`), once
the tree itself verified: a recorded seal that fails, a broken chain or a tree that contradicts
a seal is tampering (exit 1, the seal's entry index named); a seal key that is not this log's
(another origin, or other public keys in ``seal.pub``) verifies nothing (exit 3). With
``--checkpoint`` too, that checkpoint's seal line is checked: which epoch sealed it, or that it
carries none; a line that does not verify is exit 1 (FAILED: the file, not the log).

``verify`` works on a copy an auditor was given (the database and the verifier key, no signing
key), read-only and writing nothing to it, with a key the auditor trusts rather than the stored
one: the engine's :mod:`sealtrail.log.copyverify`, not ``AuditLog.verify`` (which needs the
signing key and a writable database, checks with the stored key only and notes the verification
in the database).
"""

from __future__ import annotations

import base64
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeRemainingColumn

from sealtrail.cli.common import (
    EXIT_UNVERIFIED,
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
    store_url,
    where,
)
from sealtrail.cli.keyarg import WITNESS_POLICY_HELP, trusted_verifier, trusted_witness_policy
from sealtrail.cli.output import dumps, printable
from sealtrail.core.errors import TamperError, VerificationError
from sealtrail.core.seal import VERSION, SealKey, find_seal_line
from sealtrail.log import witnesses
from sealtrail.log.auditlog import AuditLog
from sealtrail.log.copyverify import (
    KeyMismatchError,
    LogCopy,
    copy_target_opener,
    find_copy,
    open_copy,
)
from sealtrail.log.datadir import open_store_readonly
from sealtrail.log.derived import DerivedReport
from sealtrail.log.sealing import (
    SEAL_PUB_FILE,
    SealKeyMismatchError,
    SealReport,
    verify_seals,
)

commands = typer.Typer(rich_markup_mode=None)
head_app = typer.Typer(no_args_is_help=True, rich_markup_mode=None,
                       help="The head memory: the newest head this "
                       "machine saw the log sign (rollback and fork detection).")


class _Bar:
    """A bar on stderr (terminals only), started once the log's size is known, so it never
    shows ``0/None``."""

    def __init__(self) -> None:
        self.shown = sys.stderr.isatty()
        self._bar: Progress | None = None
        self._task: TaskID | None = None

    def start(self, total: int) -> None:
        if not self.shown:
            return
        self._bar = Progress(TextColumn("verifying"), BarColumn(),
                             TextColumn("{task.completed}/{task.total}"), TimeRemainingColumn(),
                             console=stderr(), transient=True)
        self._task = self._bar.add_task("verify", total=total)
        self._bar.start()

    def update(self, done: int, total: int) -> None:
        if self._bar is not None and self._task is not None:
            self._bar.update(self._task, completed=done, total=total)

    def stop(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None


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
           seal_key: Annotated[str | None, typer.Option(
               "--seal-key", help="The seal key printed by 'sealtrail seal init' and kept off "
               "the host (its text, or a file holding it): also check that every recorded "
               "seal verifies, that they chain from the epoch-0 anchor and that the tree at "
               "each sealed size is the one sealed; reports the last sealed epoch, epochs "
               "without a seal and entries not sealed yet. A seal that fails is exit 1; a "
               "seal key that is not this log's, exit 3.")] = None,
           witness_policy: Annotated[Path | None, typer.Option(
               "--witness-policy", help=WITNESS_POLICY_HELP + " Checked on --checkpoint when "
               "given, else on the latest witnessed checkpoint the log keeps (its witnessing "
               "state), which the tree must then match; reports up to which entry the log is "
               "witnessed.")] = None,
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
        store = store_url()
        directory = find_copy(d, name, store)
        copy = open_copy(directory, verifier=None if vkey is None else trusted_verifier(vkey),
                         store_url=store)
        trusted = None
        if checkpoint is not None:
            try:
                trusted = checkpoint.read_text()
            except OSError as exc:
                fail(f"--checkpoint {checkpoint}: {exc.strerror}")
        sealed_by = None if seal_key is None else _seal_key(seal_key)
        policy = None if witness_policy is None else trusted_witness_policy(witness_policy)
        if policy is not None and trusted is None:
            trusted = _kept_witnessed(copy)  # the tree must then match it
        bar = _Bar()
        derived_report: DerivedReport | None = None
        seal_report: SealReport | None = None
        try:
            result = copy.verify(
                trusted_checkpoint=trusted, progress=bar.update if bar.shown else None,
                workers=workers, size=bar.start,
                open_target=copy_target_opener(copy, passphrase(prompt=False)))
            line_seal: dict[str, Any] | None = None
            if sealed_by is not None:
                seal_report = _verify_seals(copy, sealed_by, result.report.size)
                if trusted is not None:
                    line_seal = _checkpoint_seal(trusted, sealed_by)
            derived_report = _verify_derived(d, name, derived)
            witnessed = None if policy is None or trusted is None else policy.check(trusted)
        except KeyMismatchError as exc:
            bar.stop()
            not_verified(str(exc), as_json=as_json)
        except SealKeyMismatchError as exc:
            bar.stop()
            _seal_not_verified(str(exc), as_json=as_json)
        except TamperError as exc:
            bar.stop()
            if as_json:
                typer.echo(dumps({"ok": False, "kind": exc.kind, "index": exc.index,
                                  "message": str(exc)}))
            else:
                typer.echo(f"TAMPERED: {printable(str(exc))}")
            raise typer.Exit(1) from None
        except VerificationError as exc:
            bar.stop()
            if as_json:
                typer.echo(dumps({"ok": False, "kind": "checkpoint", "index": None,
                                  "message": str(exc)}))
            else:
                typer.echo(f"FAILED: {printable(str(exc))}")
            raise typer.Exit(1) from None
        bar.stop()
        report = result.report
        unmet = policy is not None and (witnessed is None or not witnessed.met)
        wit_json = None if policy is None else {
            "met": not unmet, "size": report.trusted_size if witnessed else None,
            "cosigned": witnessed.cosigned if witnessed else {},
            "missing": list(witnessed.missing) if witnessed else [],
            "quorum": policy.quorum,
            "unwitnessed": report.size - (report.trusted_size or 0) if witnessed
            else report.size}
        if as_json:
            typer.echo(dumps({"ok": not unmet, "size": report.size,
                              "root_hash": base64.b64encode(report.root).decode(),
                              "checkpoints": report.checkpoints,
                              "trusted_size": report.trusted_size,
                              "derived": derived_report.summary() if derived_report else None,
                              "seal": seal_report.to_json() if seal_report else None,
                              "checkpoint_seal": line_seal,
                              "witnessed": wit_json}))
        else:
            typer.echo(report.summary())
            if seal_report is not None:
                typer.echo(seal_report.summary())
            if line_seal is not None and line_seal["epoch"] is None:
                typer.echo("the checkpoint given carries no seal line (saved before sealing "
                           "began, or not from the log's own server)")
            elif line_seal is not None:
                typer.echo(f"SEALED CHECKPOINT: the checkpoint given (size {line_seal['size']}) "
                           f"carries a seal of epoch {line_seal['epoch']}, which ended "
                           f"{line_seal['epoch_end']}: the host held that state by then")
            if policy is not None and witnessed is None:
                typer.echo("NOT WITNESSED: the log keeps no witnessed checkpoint (no round "
                           "has met its quorum yet, or it has no witnesses); give one you "
                           "fetched with --checkpoint")
            elif witnessed is not None:
                size = report.trusted_size or 0
                typer.echo(f"the checkpoint at size {size} is {witnessed.summary()}"
                           + (f"; entries {size}..{report.size - 1} are not under a witnessed "
                              "checkpoint yet" if witnessed.met and size < report.size
                              else ""))
            if not result.had_memory and report.size:
                say(f"note: no head memory was found ({result.memory_path}): this machine "
                    "had not seen the log sign a head, so a rollback before now cannot "
                    "be told from here; it is remembered from now on (compare with a "
                    "checkpoint kept elsewhere: --checkpoint)")
            if sealed_by is None and (directory / SEAL_PUB_FILE).exists():
                say("note: this log is sealed (forward-secure sealing): give --seal-key with "
                    "the seal key kept off its host to check that nothing sealed in a past "
                    "epoch changed")
            if derived_report is not None:
                typer.echo(derived_report.summary())
            elif derived is None:
                say("note: blind indexes and subject keys were not checked (the keyring "
                    "is locked); give the passphrase or --derived to check them")
        if unmet:
            raise typer.Exit(1)


def _kept_witnessed(copy: LogCopy) -> str | None:
    """The latest witnessed checkpoint the copy keeps (its witnessing state), or None. Not
    trusted as such: verification checks its signature and the tree against it, the policy
    its cosignatures."""
    store = open_store_readonly(copy.directory, copy.store_url)
    try:
        note = witnesses.State.from_meta(store.meta()).witnessed_note
    finally:
        store.close()
    return note or None


def _seal_key(value: str) -> SealKey:
    """``--seal-key``: the key's text, or a file holding it; exit 2 naming what is wrong."""
    text = value.strip()
    path = Path(text[1:] if text.startswith("@") else text)
    if not text.startswith(VERSION):
        if not path.is_file():
            fail(f"--seal-key {text[:60]!r}: no such file, and not a seal key (it starts "
                 f"{VERSION!r}, as 'sealtrail seal init' printed it)")
        try:
            text = path.read_text().strip()
        except (OSError, UnicodeDecodeError) as exc:
            fail(f"--seal-key {path}: {getattr(exc, 'strerror', None) or exc}")
    try:
        return SealKey.parse(text)
    except VerificationError as exc:
        fail(f"--seal-key: {exc}")


def _checkpoint_seal(note: str, key: SealKey) -> dict[str, Any]:
    """The seal line of the checkpoint given (``--checkpoint``, or the kept witnessed one),
    verified with the seal key alone: its size, epoch and when that epoch ended (all None
    when it carries no line). A line that does not verify is a VerificationError about the
    file (the log's tree already matched the checkpoint, so the line was forged or
    altered)."""
    try:
        line = find_seal_line(note, key)
    except VerificationError as exc:
        # The log itself matched the checkpoint: what is wrong is the file's unsigned line.
        raise VerificationError("the checkpoint given carries a seal line that does not "
                                f"verify with the seal key: {exc}") from exc
    if line is None:
        return {"size": None, "epoch": None, "epoch_end": None}
    end = key.start + (line.seal.epoch + 1) * key.seconds
    return {"size": line.checkpoint.size, "epoch": line.seal.epoch,
            "epoch_end": datetime.fromtimestamp(end, UTC).isoformat().replace("+00:00", "Z")}


def _seal_not_verified(message: str, *, as_json: bool) -> NoReturn:
    """Exit 3 for a seal key that verifies nothing here: never intact, never a usage error."""
    text = (f"{message}. Either it is another log's seal key (give the one 'sealtrail seal "
            "init' printed for this log, kept off its host), or, if it is the seal key you "
            "trust for this log, its seals or public keys were replaced: treat that as "
            "tampering")
    if as_json:
        typer.echo(dumps({"ok": False, "kind": "seal_key", "index": None, "message": text}))
    else:
        typer.echo(f"NOT VERIFIED: {printable(text)}")
    raise typer.Exit(EXIT_UNVERIFIED)


def _verify_seals(copy: LogCopy, key: SealKey, size: int) -> SealReport:
    """The recorded seals of the copy, once its tree verified (read-only)."""
    store = open_store_readonly(copy.directory, copy.store_url)
    try:
        return verify_seals(store, copy.directory, key, origin=copy.verifier.name, size=size,
                            now=datetime.now(UTC))
    finally:
        store.close()


def _verify_derived(data: str, name: str, wanted: bool | None) -> DerivedReport | None:
    """The keyed check of derived data (blind indexes, subject keys), when wanted or when the
    keyring opens without a prompt; None when skipped."""
    if wanted is False:
        return None
    with AuditLog.open(data, name, create=False, passphrase=passphrase(prompt=bool(wanted)),
                       store=store_url()) as alog:
        if not alog.encrypted:
            return None
        if alog.locked_reason:
            if wanted:
                fail(f"--derived: {alog.locked_reason}")
            return None
        return alog.verify_derived()


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
