"""A data directory: where each log's files live, and opening or creating one log.

The composition root of the engine: the only module that names a concrete store adapter.
Everything above it (the engine, its parts, the faces) sees the :class:`Store` protocol.

Layout, one directory per log under the data directory::

    <data>/<log>/log.db          the store (SQLite, WAL)
    <data>/<log>/signing.key     Ed25519 checkpoint key (0600, see log/keys.py)
    <data>/<log>/verifier.vkey   its public half
    <data>/<log>/keyring.json    the log's encryption keys, wrapped by the KEK (0600)
    <data>/<log>/archive/        retention's archive segments
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

from sealtrail.core.checkpoint import Checkpoint
from sealtrail.core.errors import ConfigError, KeyringError, StorageError, TamperError
from sealtrail.core.note import Signer
from sealtrail.core.policy import FieldPolicy
from sealtrail.core.timefmt import format_time
from sealtrail.log import keys
from sealtrail.log.idindex import VERSION, VERSION_META
from sealtrail.log.keyring import KEYRING_FILE, KeyEncryptionKey, Keyring, new_kek, resolve_kek
from sealtrail.log.settings import SETTINGS_META, Fixed, fixed_from_meta, signed_fixed
from sealtrail.log.tree import TreeEdge
from sealtrail.store.monitor_state import AlertRows
from sealtrail.store.outbox import OutboxRows
from sealtrail.store.protocol import State, Store
from sealtrail.store.service import KeyRows
from sealtrail.store.sqlite import KNOWN_SCHEMAS, SQLiteStore
from sealtrail.store.sqlite_monitor import SQLiteAlertRows
from sealtrail.store.sqlite_outbox import SQLiteOutboxRows
from sealtrail.store.sqlite_service import SQLiteKeyRows

Clock = Callable[[], datetime]
# Wraps the store a log opens (fault-injection tests pass one in; production passes none).
StoreWrapper = Callable[[Store], Store]

LOG_NAME: Final = re.compile(r"^[a-z0-9][a-z0-9._-]{0,62}\Z")
DB_FILE: Final = "log.db"
ARCHIVE_DIR: Final = "archive"


def system_clock() -> datetime:
    """The wall clock, in UTC."""
    return datetime.now(UTC)


def log_dir(data_dir: str | os.PathLike[str], log: str) -> Path:
    """The directory of one log inside a data directory (validates the log name)."""
    if not LOG_NAME.match(log):
        raise ConfigError(f"log name {log!r}: use 1-63 of a-z 0-9 . _ - (starting with a letter "
                          "or digit)")
    return Path(data_dir) / log


@dataclass(frozen=True, slots=True)
class OpenSettings:
    """What the caller gave for opening (the KEK sources) and for creating a log."""

    passphrase: str | None
    kek: KeyEncryptionKey | None
    encryption: bool
    policy: FieldPolicy
    redaction: str


@dataclass(frozen=True, slots=True)
class Opened:
    """The parts of one opened log, for :class:`sealtrail.log.auditlog.AuditLog`."""

    directory: Path
    store: Store
    signer: Signer
    origin: str
    name: str
    keyring: Keyring | None
    locked: str  # why an encrypted log's keyring stays locked ("" when open or unencrypted)


def _open_store(path: Path, wrap: StoreWrapper | None) -> Store:
    store: Store = SQLiteStore(path)
    return wrap(store) if wrap is not None else store


def open_store_readonly(directory: Path) -> Store:
    """The store of the log in ``directory``, opened read-only: nothing is created, upgraded
    or written (a copy an auditor was given, or files the caller may not write)."""
    return SQLiteStore(directory / DB_FILE, readonly=True)


def open_key_rows(path: Path) -> KeyRows:
    """The service's API key rows, kept in the SQLite file ``path`` (``log/apikeys.py`` says
    where: ``<data>/_service/service.db``), created 0600 in a 0700 directory when missing."""
    return SQLiteKeyRows(path)


def open_alert_rows(path: Path) -> AlertRows:
    """The monitor's alert index, changes queue and cursors, kept in the SQLite file ``path``
    (``monitor/alerts.py`` says where: ``<data>/_monitor/monitor.db``), created 0600 in a 0700
    directory when missing."""
    return SQLiteAlertRows(path)


def open_outbox_rows(path: Path, *, readonly: bool = False) -> OutboxRows:
    """The monitor's delivery outbox, kept in the SQLite file ``path``
    (``<data>/_monitor/outbox.db``), created 0600 in a 0700 directory when missing; read-only
    (compliance reports), the file must exist and nothing is written."""
    return SQLiteOutboxRows(path, readonly=readonly)


def signer_of(directory: Path, origin: str) -> Signer:
    """The log's signing key, which must belong to ``origin``."""
    signer = keys.load_signer(directory)
    if signer.name != origin:
        raise ConfigError("the signing key does not belong to this log's origin")
    return signer


def open_keyring(directory: Path, origin: str, settings: OpenSettings
                 ) -> tuple[Keyring | None, str]:
    """The log's keyring, unlocked with what the caller or environment gives.

    Returns (None, why) when it stays locked: no key given, or the file is missing (then the
    log still verifies and proves; sealed fields stay sealed). A key that does not open the
    keyring is an error, never a silent lock.
    """
    path = directory / KEYRING_FILE
    if not path.exists():
        return None, (f"the keyring {path} is missing: encrypted fields cannot be read or "
                      "written without it (restore it from your backup)")
    doc = Keyring.read(path)
    kek = settings.kek or resolve_kek(doc.get("kek", {}), settings.passphrase)
    if kek is None:
        return None, ("the keyring is locked: set SEALTRAIL_PASSPHRASE (or pass passphrase=, "
                      "or the CLI's --passphrase-file) to write or read encrypted fields")
    return Keyring.load(path, origin, kek), ""


def open_log(data_dir: str | os.PathLike[str], log: str, origin: str | None, *, create: bool,
             clock: Clock, settings: OpenSettings, wrap: StoreWrapper | None = None) -> Opened:
    """Open one log's parts, creating the log when ``create`` and it is new (or its creation
    was cut short before anything was stored)."""
    directory = log_dir(data_dir, log)
    db = directory / DB_FILE
    if not db.exists():
        if not create:
            raise ConfigError(f"no log {log!r} in {data_dir}: run 'sealtrail init' first")
        return create_log(directory, log, origin or f"sealtrail/{log}", clock=clock,
                          settings=settings, wrap=wrap)
    store = _open_store(db, wrap)
    meta = store.meta()
    stored_origin = meta.get("origin")
    if stored_origin is None:
        unfinished = set(meta) <= {"schema"} and store.state() == State(0, None, 0)
        store.close()
        if not unfinished:
            raise StorageError(f"{db} has no origin: it was not created by sealtrail")
        # A crash cut the creation short before anything was stored: finish it.
        if not create:
            raise ConfigError(f"no log {log!r} in {data_dir}: run 'sealtrail init' first")
        return create_log(directory, log, origin or f"sealtrail/{log}", clock=clock,
                          settings=settings, wrap=wrap)
    if origin is not None and origin != stored_origin:
        store.close()
        raise ConfigError(f"origin {origin!r} differs from the log's origin "
                          f"{stored_origin!r}, which cannot change")
    try:
        signer = signer_of(directory, stored_origin)
        keyring, locked = None, ""
        try:
            fixed = signed_fixed(meta, signer.verifier(), stored_origin)
        except TamperError:
            fixed = fixed_from_meta(meta)  # the log opens to be verified; appends refuse
        if fixed.encryption == "on":
            keyring, locked = open_keyring(directory, stored_origin, settings)
    except BaseException:
        store.close()
        raise
    return Opened(directory, store, signer, stored_origin, log, keyring, locked)


def create_log(directory: Path, log: str, origin: str, *, clock: Clock,
               settings: OpenSettings, wrap: StoreWrapper | None = None) -> Opened:
    """Create a log: its signing key, keyring (when encrypted) and store, whose first
    commit holds the signed settings and the signed empty checkpoint. Each step is
    idempotent, so a creation cut short by a crash is finished by the next open."""
    kek = None
    if settings.encryption:
        kek = settings.kek or new_kek(settings.passphrase)
        if kek is None:
            raise KeyringError("encryption is on by default and needs a key: set "
                               "SEALTRAIL_PASSPHRASE (the CLI also takes --passphrase-file "
                               "FILE; the library passphrase=...), or SEALTRAIL_KEK to a "
                               "base64 256-bit key; or create the log unencrypted (CLI: "
                               "sealtrail init --no-encryption; library: encryption=False)")
    elif settings.redaction == "hash":
        raise ConfigError("redaction 'hash' needs the keyring: it is only available when "
                          "encryption is on")
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    signer = (keys.load_signer(directory) if (directory / keys.SIGNING_KEY).exists()
              else keys.create_signer(directory, origin))
    if signer.name != origin:
        raise ConfigError("an existing signing key has another origin")
    keyring = None
    if kek is not None:
        path = directory / KEYRING_FILE
        now = format_time(clock())
        # A crash after the keyring was written but before the log: reuse it.
        keyring = (Keyring.load(path, origin, kek) if path.exists()
                   else Keyring.create(path, origin, kek, now))
    store = _open_store(directory / DB_FILE, wrap)
    try:
        with store.transaction():
            # Another process creating the same log may have finished first (and appended).
            if "origin" not in store.meta():
                fixed = Fixed(origin, log, "1", "on" if keyring is not None else "off",
                              ",".join(settings.policy.paths), settings.redaction)
                # The settings are signed: a log opens with what its key signed, never with
                # an edited table (see log/settings.py).
                store.set_meta({**fixed.as_meta(), SETTINGS_META: fixed.sign(signer),
                                VERSION_META: VERSION})
                empty = TreeEdge(0, [], {})
                note = signer.sign(Checkpoint(origin, 0, empty.root()).format())
                store.put_state(State(0, note, 0))
                store.put_checkpoint(0, note)
    except BaseException:
        store.close()
        raise
    return Opened(directory, store, signer, origin, log, keyring, "")


def newer_reason(meta: dict[str, str]) -> str:
    """Why this sealtrail must not write to a log made by a newer one ("" when it may): its
    id-index rule or store schema is unknown here, and appending by older rules could break
    exactly-once. Such a log is read and verified as it is."""
    if meta.get(VERSION_META, VERSION) == VERSION and meta.get("schema", "1") in KNOWN_SCHEMAS:
        return ""
    return (f"this log was made by a newer sealtrail (id index {meta.get(VERSION_META)}, "
            f"schema {meta.get('schema')}): upgrade sealtrail to write to it (it reads and "
            "verifies as it is)")
