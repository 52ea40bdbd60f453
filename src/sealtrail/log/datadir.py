"""A data directory: where each log's files live, and opening or creating one log.

The composition root of the engine: the only module that names a concrete store adapter.
Everything above it (the engine, its parts, the faces) sees the :class:`Store` protocol.

Layout, one directory per log under the data directory::

    <data>/<log>/log.db          the store (SQLite, WAL)
    <data>/<log>/signing.key     Ed25519 checkpoint key (0600, see log/keys.py)
    <data>/<log>/verifier.vkey   its public half
    <data>/<log>/keyring.json    the log's encryption keys, wrapped by the KEK (0600)
    <data>/<log>/archive/        retention's archive segments

With a PostgreSQL store (``store="postgresql://..."``, the CLI's ``--store``), a log's tables
live in a schema of their own in that database (:func:`log_schema`), and so do its keyring
and the service's rows (API keys, the monitor's alerts and outbox: :data:`SERVICE_SCHEMAS`),
so every node using the database sees the same. What must not be in the database stays
under ``<data>/<log>/`` on each node: the signing key and its public half (every node that
appends signs checkpoints; provision the same key files to each), the head memory and the
archive. The KEK never leaves the node (environment or passphrase).
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
from sealtrail.log.keyring import (
    KEYRING_FILE,
    FileHome,
    KeyEncryptionKey,
    Keyring,
    KeyringHome,
    new_kek,
    resolve_kek,
)
from sealtrail.log.settings import SETTINGS_META, Fixed, fixed_from_meta, signed_fixed
from sealtrail.log.tree import TreeEdge
from sealtrail.store.monitor_state import AlertRows
from sealtrail.store.outbox import OutboxRows
from sealtrail.store.postgres import PostgresStore
from sealtrail.store.postgres_catalog import (
    postgres_logs,
    postgres_store_exists,
    postgres_table_exists,
)
from sealtrail.store.postgres_keyring import PostgresKeyringHome
from sealtrail.store.postgres_monitor import PostgresAlertRows
from sealtrail.store.postgres_outbox import PostgresOutboxRows
from sealtrail.store.postgres_service import PostgresKeyRows
from sealtrail.store.postgres_users import PostgresUserRows
from sealtrail.store.protocol import State, Store
from sealtrail.store.service import KeyRows
from sealtrail.store.sqlite import KNOWN_SCHEMAS, SQLiteStore
from sealtrail.store.sqlite_monitor import SQLiteAlertRows
from sealtrail.store.sqlite_outbox import SQLiteOutboxRows
from sealtrail.store.sqlite_service import SQLiteKeyRows
from sealtrail.store.sqlite_users import SQLiteUserRows
from sealtrail.store.users import UserRows

Clock = Callable[[], datetime]
# Wraps the store a log opens (fault-injection tests pass one in; production passes none).
StoreWrapper = Callable[[Store], Store]

LOG_NAME: Final = re.compile(r"^[a-z0-9][a-z0-9._-]{0,62}\Z")
DB_FILE: Final = "log.db"
ARCHIVE_DIR: Final = "archive"


POSTGRES_SCHEMES: Final = ("postgresql://", "postgres://")
SCHEMA_PREFIX: Final = "sealtrail_"
SERVICE_SCHEMAS: Final = {"keys": "sealtrail__service", "alerts": "sealtrail__monitor",
                          "outbox": "sealtrail__outbox"}
"""The schemas of the service's rows in a PostgreSQL store: a log's schema never starts with
``sealtrail__`` (a log name starts with a letter or digit)."""
_ESCAPES: Final = {"_": "__", ".": "_d", "-": "_h"}
_UNESCAPES: Final = {v[1]: k for k, v in _ESCAPES.items()}


def check_store(store: str | None) -> str | None:
    """``store`` itself when it is usable: None (SQLite files under the data directory) or a
    PostgreSQL URL; ConfigError otherwise (naming what to give)."""
    if store is None or store.startswith(POSTGRES_SCHEMES):
        return store
    scheme = store.split("://", 1)[0] if "://" in store else ""
    shown = f"a {scheme}:// URL" if scheme.isalnum() else "not a URL"
    raise ConfigError(f"store: {shown} (the value is not shown: it may hold a password); "
                      "give a postgresql:// URL, or no store for SQLite files under the data "
                      "directory")


def log_schema(log: str) -> str:
    """The PostgreSQL schema of a log: ``sealtrail_`` and the name with ``_ . -`` escaped
    (``_`` -> ``__``, ``.`` -> ``_d``, ``-`` -> ``_h``), so two names never share one."""
    if not LOG_NAME.match(log):
        raise ConfigError(f"log name {log!r}: use 1-63 of a-z 0-9 . _ - (starting with a letter "
                          "or digit)")
    schema = SCHEMA_PREFIX + "".join(_ESCAPES.get(c, c) for c in log)
    if len(schema) > 63:
        raise ConfigError(f"log name {log!r} is too long for a PostgreSQL store (its schema "
                          f"{schema!r} would pass PostgreSQL's 63 characters)")
    return schema


def schema_log(schema: str) -> str | None:
    """The log whose schema ``schema`` is (:func:`log_schema` reversed), None if none."""
    if not schema.startswith(SCHEMA_PREFIX) or schema.startswith(SCHEMA_PREFIX + "_"):
        return None
    out, rest = [], iter(schema[len(SCHEMA_PREFIX):])
    for c in rest:
        char = _UNESCAPES.get(next(rest, ""), "") if c == "_" else c
        if not char:
            return None
        out.append(char)
    name = "".join(out)
    return name if LOG_NAME.match(name) else None


def log_names(data_dir: str | os.PathLike[str], store: str | None = None) -> list[str]:
    """Every log of a data directory (or, with a PostgreSQL store, of that database)."""
    url = check_store(store)
    if url is not None:
        return postgres_logs(url, SCHEMA_PREFIX, schema_log)
    path = Path(data_dir)
    if not path.is_dir():
        return []
    return sorted(p.name for p in path.iterdir()
                  if LOG_NAME.match(p.name) and (p / DB_FILE).is_file())


def log_exists(data_dir: str | os.PathLike[str], log: str,
               store: str | None = None) -> bool:
    """Whether the log exists (its store was made; it may still be unfinished)."""
    url = check_store(store)
    if url is not None:
        return postgres_store_exists(url, log_schema(log))
    return (log_dir(data_dir, log) / DB_FILE).exists()


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
    store_url: str | None = None  # None: SQLite under the directory; else PostgreSQL's URL


def _open_store(directory: Path, store_url: str | None, wrap: StoreWrapper | None) -> Store:
    store: Store = (SQLiteStore(directory / DB_FILE) if store_url is None
                    else PostgresStore(store_url, log_schema(directory.name)))
    return wrap(store) if wrap is not None else store


def open_store_readonly(directory: Path, store_url: str | None = None) -> Store:
    """The store of the log in ``directory``, opened read-only: nothing is created, upgraded
    or written (a copy an auditor was given, or files the caller may not write)."""
    url = check_store(store_url)
    if url is not None:
        return PostgresStore(url, log_schema(directory.name), readonly=True)
    return SQLiteStore(directory / DB_FILE, readonly=True)


def keyring_home(directory: Path, store_url: str | None) -> KeyringHome:
    """Where the log's keyring document lives: ``keyring.json`` beside the SQLite store, or a
    row in the log's PostgreSQL schema (so every node sees a rotation)."""
    url = check_store(store_url)
    if url is not None:
        return PostgresKeyringHome(url, log_schema(directory.name))
    return FileHome(directory / KEYRING_FILE)


def open_key_rows(path: Path, store_url: str | None = None) -> KeyRows:
    """The service's API key rows, kept in the SQLite file ``path`` (``log/apikeys.py`` says
    where: ``<data>/_service/service.db``), created 0600 in a 0700 directory when missing;
    with a PostgreSQL store, in its ``sealtrail__service`` schema (every node's keys)."""
    url = check_store(store_url)
    if url is not None:
        return PostgresKeyRows(url, SERVICE_SCHEMAS["keys"])
    return SQLiteKeyRows(path)


def open_user_rows(path: Path, store_url: str | None = None) -> UserRows:
    """The console's users, sessions and failed sign-ins, kept in the SQLite file ``path``
    (``log/users.py`` says where: ``<data>/_service/service.db``, beside the API keys),
    created 0600 in a 0700 directory when missing; with a PostgreSQL store, in its
    ``sealtrail__service`` schema (every node's users and sessions)."""
    url = check_store(store_url)
    if url is not None:
        return PostgresUserRows(url, SERVICE_SCHEMAS["keys"])
    return SQLiteUserRows(path)


def open_alert_rows(path: Path, store_url: str | None = None) -> AlertRows:
    """The monitor's alert index, changes queue and cursors, kept in the SQLite file ``path``
    (``monitor/alerts.py`` says where: ``<data>/_monitor/monitor.db``), created 0600 in a 0700
    directory when missing; with a PostgreSQL store, in its ``sealtrail__monitor`` schema."""
    url = check_store(store_url)
    if url is not None:
        return PostgresAlertRows(url, SERVICE_SCHEMAS["alerts"])
    return SQLiteAlertRows(path)


def service_rows_exist(kind: str, path: Path, store_url: str | None = None) -> bool:
    """Whether the service's ``kind`` rows (``keys``, ``alerts``, ``outbox``) were ever made:
    their SQLite file ``path``, or their schema in the PostgreSQL store."""
    url = check_store(store_url)
    if url is None:
        return path.exists()
    return postgres_table_exists(url, SERVICE_SCHEMAS[kind], "row_layouts")


def open_outbox_rows(path: Path, *, readonly: bool = False,
                     store_url: str | None = None) -> OutboxRows:
    """The monitor's delivery outbox, kept in the SQLite file ``path``
    (``<data>/_monitor/outbox.db``), created 0600 in a 0700 directory when missing; read-only
    (compliance reports), the file must exist and nothing is written. With a PostgreSQL
    store, in its ``sealtrail__outbox`` schema."""
    url = check_store(store_url)
    if url is not None:
        return PostgresOutboxRows(url, SERVICE_SCHEMAS["outbox"], readonly=readonly)
    return SQLiteOutboxRows(path, readonly=readonly)


def signer_of(directory: Path, origin: str) -> Signer:
    """The log's signing key, which must belong to ``origin``."""
    signer = keys.load_signer(directory)
    if signer.name != origin:
        raise ConfigError("the signing key does not belong to this log's origin")
    return signer


def open_keyring(directory: Path, origin: str, settings: OpenSettings,
                 store_url: str | None = None) -> tuple[Keyring | None, str]:
    """The log's keyring, unlocked with what the caller or environment gives.

    Returns (None, why) when it stays locked: no key given, or the file is missing (then the
    log still verifies and proves; sealed fields stay sealed). A key that does not open the
    keyring is an error, never a silent lock.
    """
    home = keyring_home(directory, store_url)
    try:
        if not home.exists():
            home.close()
            return None, (f"the keyring {home.where} is missing: encrypted fields cannot be "
                          "read or written without it (restore it from your backup)")
        doc = Keyring.read(home)
        kek = settings.kek or resolve_kek(doc.get("kek", {}), settings.passphrase)
        if kek is None:
            home.close()
            return None, ("the keyring is locked: set SEALTRAIL_PASSPHRASE (or pass "
                          "passphrase=, or the CLI's --passphrase-file) to write or read "
                          "encrypted fields")
        return Keyring.load(home, origin, kek), ""
    except BaseException:
        home.close()
        raise


def open_log(data_dir: str | os.PathLike[str], log: str, origin: str | None, *, create: bool,
             clock: Clock, settings: OpenSettings, wrap: StoreWrapper | None = None,
             store_url: str | None = None) -> Opened:
    """Open one log's parts, creating the log when ``create`` and it is new (or its creation
    was cut short before anything was stored). ``store_url``: None for SQLite files under the
    data directory, else a PostgreSQL URL."""
    directory = log_dir(data_dir, log)
    where = data_dir if check_store(store_url) is None else "the PostgreSQL store"
    db: object = directory / DB_FILE if store_url is None else log_schema(log)
    if not log_exists(data_dir, log, store_url):
        if not create:
            raise ConfigError(f"no log {log!r} in {where}: run 'sealtrail init' first")
        return create_log(directory, log, origin or f"sealtrail/{log}", clock=clock,
                          settings=settings, wrap=wrap, store_url=store_url)
    store = _open_store(directory, store_url, wrap)
    meta = store.meta()
    stored_origin = meta.get("origin")
    if stored_origin is None:
        unfinished = set(meta) <= {"schema"} and store.state() == State(0, None, 0)
        store.close()
        if not unfinished:
            raise StorageError(f"{db} has no origin: it was not created by sealtrail")
        # A crash cut the creation short before anything was stored: finish it.
        if not create:
            raise ConfigError(f"no log {log!r} in {where}: run 'sealtrail init' first")
        return create_log(directory, log, origin or f"sealtrail/{log}", clock=clock,
                          settings=settings, wrap=wrap, store_url=store_url)
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
            keyring, locked = open_keyring(directory, stored_origin, settings, store_url)
    except BaseException:
        store.close()
        raise
    return Opened(directory, store, signer, stored_origin, log, keyring, locked, store_url)


def create_log(directory: Path, log: str, origin: str, *, clock: Clock,
               settings: OpenSettings, wrap: StoreWrapper | None = None,
               store_url: str | None = None) -> Opened:
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
        home = keyring_home(directory, store_url)
        now = format_time(clock())
        try:
            # A crash after the keyring was written but before the log: reuse it.
            keyring = (Keyring.load(home, origin, kek) if home.exists()
                       else Keyring.create(home, origin, kek, now))
        except BaseException:
            home.close()
            raise
    try:
        store = _open_store(directory, store_url, wrap)
    except BaseException:
        if keyring is not None:
            keyring.home.close()
        raise
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
        if keyring is not None:
            keyring.home.close()
        raise
    return Opened(directory, store, signer, origin, log, keyring, "", store_url)


def newer_reason(meta: dict[str, str]) -> str:
    """Why this sealtrail must not write to a log made by a newer one ("" when it may): its
    id-index rule or store schema is unknown here, and appending by older rules could break
    exactly-once. Such a log is read and verified as it is."""
    if meta.get(VERSION_META, VERSION) == VERSION and meta.get("schema", "1") in KNOWN_SCHEMAS:
        return ""
    return (f"this log was made by a newer sealtrail (id index {meta.get(VERSION_META)}, "
            f"schema {meta.get('schema')}): upgrade sealtrail to write to it (it reads and "
            "verifies as it is)")
