"""Verifying a copy of a log: read-only, with the key the verifier trusts.

An auditor is given a log's files (the database and its verifier key; no signing key, no
keyring) and must verify them without writing to them, with a key they trust rather than the
one stored beside the database, which whoever handed over the files could have replaced.
:meth:`~sealtrail.log.auditlog.AuditLog.verify` does not fit: opening a log needs the signing
key and a writable database, it checks with the stored key only, and it notes the verification
in the database. Here the store is opened read-only (:func:`~sealtrail.log.datadir.
open_store_readonly`) and :func:`~sealtrail.log.verify.verify_log` runs on it.

A key given that is not this log's key verifies nothing (:class:`KeyMismatchError`, the CLI's
exit 3), which from the files alone cannot be told apart from a log replaced and re-signed; the
rule is :func:`key_mismatch`. The head memory (log/headmemory.py) is kept per origin as for any
verification: the log must not be smaller than, or forked from, the newest head this machine
saw it sign, and a verified head becomes the one remembered (unless the memory cannot be
written, which on a read-only copy is expected and quiet).

:func:`verify_copy` does it all. A face that checks its own arguments in between (and so
reports the same error first as it always has) takes the steps one by one: :func:`find_copy`
(the log exists), :func:`open_copy` (the key is settled), :meth:`LogCopy.verify` (the store
is opened, the log's size given for a progress bar, the log verified).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sealtrail.core.errors import ConfigError, StorageError, VerificationError
from sealtrail.core.note import Verifier, open_note
from sealtrail.core.note import parse as parse_note
from sealtrail.core.policy import FieldPolicy
from sealtrail.log import keys
from sealtrail.log.datadir import (
    OpenSettings,
    log_dir,
    log_exists,
    open_keyring,
    open_store_readonly,
)
from sealtrail.log.headmemory import HeadMemory, memory_path
from sealtrail.log.protect import Protector
from sealtrail.log.settings import SettingRecord, target_opener
from sealtrail.log.verify import VerifyReport, verify_log
from sealtrail.store.protocol import Store

__all__ = ["CopyReport", "KeyMismatchError", "LogCopy", "copy_target_opener", "find_copy",
           "key_mismatch", "open_copy", "verify_copy"]

Progress = Callable[[int, int], None]  # (entries done, entries in all)


class KeyMismatchError(VerificationError):
    """The key given verifies nothing in this log: another log's key, or a log replaced and
    re-signed (the files alone cannot tell which). Never "intact", never a usage error."""

    exit_code = 3  # the CLI's EXIT_UNVERIFIED


@dataclass(frozen=True, slots=True)
class CopyReport:
    """What a verification of a copy found, and the head memory it checked against."""

    report: VerifyReport
    had_memory: bool   # this machine remembered a head of the log before this verification
    memory_path: Path  # where that memory is kept (and the verified head now remembered)


@dataclass(frozen=True, slots=True)
class LogCopy:
    """A log's files, found, with the key to verify them by (:func:`open_copy`)."""

    directory: Path
    verifier: Verifier
    stored: Verifier | None  # the stored key to compare a given one with (None: the same)
    store_url: str | None = None  # None: the SQLite file in directory; else PostgreSQL

    def verify(self, *, trusted_checkpoint: str | None = None,
               progress: Progress | None = None, workers: int | None = None,
               size: Callable[[int], None] | None = None,
               open_target: Callable[[SettingRecord], str | None] | None = None
               ) -> CopyReport:
        """Verify the copy (read-only) and remember its verified head.

        ``open_target`` opens a setting entry's target an older version sealed (see
        :func:`sealtrail.log.settings.check_stored`; :func:`copy_target_opener` makes one);
        without it such an entry cannot be checked (KeyringError).

        ``size`` is told the log's size before the work starts (to size a progress bar);
        ``progress`` is then told how far it got. Raises :class:`KeyMismatchError` when the
        given key is not this log's, before anything is verified; TamperError naming the
        first problem; another VerificationError when a trusted checkpoint or the head memory
        does not verify.
        """
        store = open_store_readonly(self.directory, self.store_url)
        try:
            if self.stored is not None:
                mismatch = key_mismatch(store, self.verifier, self.stored)
                if mismatch is not None:
                    raise KeyMismatchError(mismatch)
            if size is not None:
                size(store.state().size)
            memory = HeadMemory(memory_path(self.directory, self.verifier.name),
                                self.verifier, self.verifier.name)
            remembered = memory.load()
            report = verify_log(
                store, self.verifier, self.verifier.name, trusted_checkpoint=trusted_checkpoint,
                progress=progress, opener=store.opener(), workers=workers,
                remembered=remembered.note if remembered is not None else None,
                open_target=open_target)
            if report.head is not None:
                with contextlib.suppress(StorageError):  # a read-only copy remembers nothing
                    memory.remember(report.head, report.size, now=True)
            return CopyReport(report, remembered is not None, memory.path)
        finally:
            store.close()


def find_copy(data_dir: str | os.PathLike[str], log: str = "default",
              store_url: str | None = None) -> Path:
    """The directory of a log's files (with a PostgreSQL store: of its key files);
    ConfigError when the name is not a log name or there is no such log."""
    directory = log_dir(data_dir, log)
    if not log_exists(data_dir, log, store_url):
        where = data_dir if store_url is None else "the PostgreSQL store"
        raise ConfigError(f"no log {log!r} in {where}")
    return directory


def open_copy(directory: Path, *, verifier: Verifier | None = None,
              store_url: str | None = None) -> LogCopy:
    """Settle the key to verify the log in ``directory`` (:func:`find_copy`) by: ``verifier``
    when given (a key the caller trusts), else the stored ``verifier.vkey``.

    Raises ConfigError when no key is given and the stored one cannot be read; a stored key
    that is not a key at all is a FormatError. A given key is compared with the stored one
    when that can be read; with none stored, the signatures decide.
    """
    path = directory / keys.VERIFIER_KEY
    if verifier is None:
        return LogCopy(directory, keys.load_verifier(path), None, store_url)
    try:
        stored = keys.load_verifier(path)
    except ConfigError:  # no stored key to compare with: the signatures decide
        stored = None
    return LogCopy(directory, verifier, stored, store_url)


def copy_target_opener(copy: LogCopy, passphrase: str | None
                       ) -> Callable[[SettingRecord], str | None]:
    """For :meth:`LogCopy.verify`: opens the target of a setting entry an older version sealed,
    from the entry's verified bytes, with the copy's keyring (``passphrase``, else the
    environment) on a read-only store; None when the keyring stays locked. Nothing is opened
    until such an entry is met, and nothing is written."""
    opened: list[Protector | None] = []

    def reveal(index: int, obj: dict[str, Any]) -> dict[str, Any]:
        if not opened:
            opened.append(_read_only_protector(copy, passphrase))
        protector = opened[0]
        return obj if protector is None else protector.reveal(index, obj)

    return target_opener(reveal)


def _read_only_protector(copy: LogCopy, passphrase: str | None) -> Protector | None:
    store = open_store_readonly(copy.directory, copy.store_url)
    meta = store.meta()
    origin = meta.get("origin", copy.verifier.name)
    policy = FieldPolicy.parse((meta.get("policy") or "").split(","))
    keyring, _ = open_keyring(copy.directory, origin, OpenSettings(
        passphrase, None, True, policy, ""), copy.store_url)
    if keyring is None:
        store.close()
        return None
    return Protector(origin, policy, keyring, store)


def verify_copy(data_dir: str | os.PathLike[str], log: str = "default", *,
                verifier: Verifier | None = None, trusted_checkpoint: str | None = None,
                progress: Progress | None = None, workers: int | None = None,
                size: Callable[[int], None] | None = None) -> CopyReport:
    """Verify a log's files read-only: :func:`find_copy`, :func:`open_copy`, then
    :meth:`LogCopy.verify`."""
    return open_copy(find_copy(data_dir, log), verifier=verifier).verify(
        trusted_checkpoint=trusted_checkpoint, progress=progress, workers=workers, size=size)


def key_mismatch(store: Store, given: Verifier, stored: Verifier) -> str | None:
    """Why ``given`` verifies nothing in this log (:class:`KeyMismatchError`), or None.

    The rule: a key named for another origin is not the log's key. A key with the log's
    name but another key id than the stored verifier.vkey is not the log's key when the
    stored head verifies with the stored key and no checkpoint the log holds (head, history)
    carries a valid signature by the given key. Otherwise verification runs and a bad
    signature is tampering: a log re-signed by another key, checked with the right key,
    still shows a checkpoint the right key signed, or a head the stored key does not.
    """
    head = store.state().checkpoint
    # The origin line the head names, unverified (to name it in the message).
    origin = (head.split("\n", 1)[0] if head else "") or stored.name
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
