"""The keyring: a log's encryption keys, wrapped by a key-encryption key (envelope encryption).

One JSON document per log, holding no secret in clear, kept where the log's store is (its
:class:`KeyringHome`): ``keyring.json`` (mode 0600) beside a SQLite store (:class:`FileHome`),
or a row of the log's schema in a PostgreSQL store
(:class:`sealtrail.store.postgres_keyring.PostgresKeyringHome`), so that every node sees a
rotation::

    {"format": "sealtrail-keyring/1", "origin": ..., "kek": {provider parameters},
     "active": "d2", "keys": [{"id", "purpose", "created", "wrapped"}, ...]}

Purposes: ``data`` (sealing fields of events without a subject; versioned d1, d2... — the
active one seals, all of them open), ``subject-wrap`` (wraps the per-subject keys kept in the
log database), ``blind`` (blind-index tokens and subject pseudonyms) and ``redact`` (keyed
hashes of redacted secrets). Every wrapped key's associated data names its log, id and purpose.

KEK providers (:class:`KeyEncryptionKey`): a passphrase stretched with scrypt (from
``passphrase=``, ``SEALTRAIL_PASSPHRASE`` or, in the CLI, ``--passphrase-file`` or a prompt),
a raw 256-bit key in the environment (``SEALTRAIL_KEK``, base64), or anything implementing the
protocol (an external KMS: wrap and unwrap 32-byte keys, describe itself without secrets).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import fcntl
import functools
import json
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Protocol, runtime_checkable

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from sealtrail.core import envelope
from sealtrail.core.errors import DecryptionError, KeyringError, TamperError

KEYRING_FILE: Final = "keyring.json"
FORMAT: Final = "sealtrail-keyring/1"
PASSPHRASE_ENV: Final = "SEALTRAIL_PASSPHRASE"  # noqa: S105 - the variable's name, not a secret
KEK_ENV: Final = "SEALTRAIL_KEK"
SCRYPT_N: Final = 2**15  # about 0.15 s and 32 MiB here; stored per keyring, so it can be raised
SCRYPT_R: Final = 8
SCRYPT_P: Final = 1
MIN_PASSPHRASE: Final = 8


@runtime_checkable
class KeyringHome(Protocol):
    """Where a keyring document is kept: read, written atomically, locked for a
    read-modify-write across processes, and given an identity that changes with every write
    (what :meth:`Keyring.follow` compares). Picklable: prepare workers open it again."""

    @property
    def where(self) -> str:
        """Names the place in messages (a path, or a database schema)."""
        ...

    def exists(self) -> bool:
        """Whether a keyring document is there."""
        ...

    def read_text(self) -> str:
        """The document's text; KeyringError when missing or unsafe."""
        ...

    def write_text(self, text: str, *, exclusive: bool) -> None:
        """Write the document durably; ``exclusive``: KeyringError if one is there already."""
        ...

    def locked(self) -> contextlib.AbstractContextManager[None]:
        """Exclusive across processes (and nodes) while held."""
        ...

    def identity(self) -> object:
        """Changes whenever the document is written (None when there is none)."""
        ...

    def close(self) -> None:
        """Let go of what the home holds open (a connection); it opens again on next use."""
        ...


@dataclass(frozen=True, slots=True)
class FileHome:
    """The keyring as ``keyring.json`` in the log's directory (mode 0600, written by atomic
    rename and fsynced with its directory, locked by ``flock`` on a lock file beside it)."""

    path: Path

    @property
    def where(self) -> str:
        """The file's path."""
        return str(self.path)

    def exists(self) -> bool:
        """Whether the file exists."""
        return self.path.exists()

    def read_text(self) -> str:
        """The file's text, refused when missing or readable by others."""
        path = self.path
        try:
            mode = path.stat().st_mode
        except FileNotFoundError as exc:
            raise KeyringError(f"the keyring {path} is missing: encrypted fields cannot be "
                               "read or written without it (restore it from your backup)") from exc
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise KeyringError(f"the keyring {path} is readable by others (mode "
                               f"{stat.S_IMODE(mode):o}); run: chmod 600 {path}")
        try:
            return path.read_text()
        except (OSError, ValueError) as exc:
            raise KeyringError(f"the keyring {path} cannot be read: {exc}") from exc

    def write_text(self, text: str, *, exclusive: bool) -> None:
        """Atomically, 0600 from the first byte."""
        try:
            _write(self.path, text, exclusive=exclusive)
        except FileExistsError as exc:
            raise KeyringError(f"a keyring already exists at {self.path}") from exc

    def locked(self) -> contextlib.AbstractContextManager[None]:
        """``flock`` on ``.keyring.json.lock``."""
        return _locked(self.path)

    def identity(self) -> object:
        """The file's identity (device, inode, size, change time)."""
        return file_identity(self.path)

    def close(self) -> None:
        """Nothing is held open between uses."""


class KeyEncryptionKey(Protocol):
    """Wraps the keyring's keys. Implement it to keep the KEK in an external KMS or HSM."""

    def describe(self) -> dict[str, Any]:
        """How to find this KEK again (stored in the keyring file): never a secret."""

    def wrap(self, key: bytes, aad: bytes) -> bytes:
        """``key`` encrypted and authenticated with ``aad``."""

    def unwrap(self, blob: bytes, aad: bytes) -> bytes:
        """The key in ``blob``; raises DecryptionError when the KEK or the blob is wrong."""


@dataclass(frozen=True)
class LocalKek:
    """An AES-256 KEK held in memory (derived from a passphrase, or given raw)."""

    key: bytes = field(repr=False)
    description: dict[str, Any]

    def describe(self) -> dict[str, Any]:
        return dict(self.description)

    def wrap(self, key: bytes, aad: bytes) -> bytes:
        return envelope.wrap(AESGCM(self.key), os.urandom(envelope.NONCE_BYTES), key, aad)

    def unwrap(self, blob: bytes, aad: bytes) -> bytes:
        return envelope.unwrap(AESGCM(self.key), blob, aad)


@functools.lru_cache(maxsize=8)
def _scrypt(passphrase: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    # Cached per process: reopening a log must not pay the stretching again.
    return Scrypt(salt=salt, length=32, n=n, r=r, p=p).derive(passphrase.encode())


def passphrase_kek(passphrase: str, params: dict[str, Any] | None = None) -> LocalKek:
    """A KEK stretched from a passphrase with scrypt (new random salt unless ``params``)."""
    if params is None:
        if len(passphrase) < MIN_PASSPHRASE:
            raise KeyringError(f"the passphrase is shorter than {MIN_PASSPHRASE} characters")
        params = {"provider": "passphrase", "kdf": "scrypt",
                  "salt": base64.b64encode(os.urandom(16)).decode(),
                  "n": SCRYPT_N, "r": SCRYPT_R, "p": SCRYPT_P}
    try:
        salt = base64.b64decode(params["salt"], validate=True)
        n, r, p = int(params["n"]), int(params["r"]), int(params["p"])
    except (KeyError, TypeError, ValueError, binascii.Error) as exc:
        raise KeyringError("the keyring's scrypt parameters are malformed") from exc
    if not (2**14 <= n <= 2**22 and n & (n - 1) == 0 and 1 <= r <= 32 and 1 <= p <= 16):
        raise KeyringError("the keyring's scrypt parameters are out of range")
    return LocalKek(_scrypt(passphrase, salt, n, r, p), params)


def env_kek(variable: str = KEK_ENV) -> LocalKek:
    """A raw 256-bit KEK from an environment variable (base64)."""
    text = os.environ.get(variable)
    if text is None:
        raise KeyringError(f"{variable} is not set")
    try:
        key = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise KeyringError(f"{variable} is not base64") from exc
    if len(key) != 32:
        raise KeyringError(f"{variable} must hold 32 bytes (base64), not {len(key)}")
    return LocalKek(key, {"provider": "env", "variable": variable})


def resolve_kek(description: dict[str, Any], passphrase: str | None) -> KeyEncryptionKey | None:
    """The KEK a keyring names, from what this process has; None when it has nothing."""
    provider = description.get("provider")
    if provider == "passphrase":
        phrase = passphrase if passphrase is not None else os.environ.get(PASSPHRASE_ENV)
        return None if phrase is None else passphrase_kek(phrase, description)
    if provider == "env":
        variable = str(description.get("variable", KEK_ENV))
        return env_kek(variable) if variable in os.environ else None
    return None  # an external KMS: the caller passes its KEK object to AuditLog.open


def new_kek(passphrase: str | None) -> KeyEncryptionKey | None:
    """The KEK for a new keyring: the passphrase (argument or env), else a raw env key."""
    phrase = passphrase if passphrase is not None else os.environ.get(PASSPHRASE_ENV)
    if phrase is not None:
        return passphrase_kek(phrase)
    if KEK_ENV in os.environ:
        return env_kek()
    return None


def file_identity(path: Path) -> tuple[int, int, int, int] | None:
    """(device, inode, size, mtime) of a file, None when it is missing: a replaced or
    rewritten file has another identity."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


def kid_number(kid: str) -> int:
    """The number of a data key id (``d7`` -> 7); -1 for anything else."""
    return int(kid[1:]) if kid[:1] == "d" and kid[1:].isdigit() else -1


@dataclass
class Keyring:
    """An opened keyring: every key unwrapped, ready to seal and open."""

    home: KeyringHome
    origin: str
    kek: KeyEncryptionKey
    doc: dict[str, Any]
    data: dict[str, AESGCM]
    active: str
    wrap_key: AESGCM
    blind_key: bytes = field(repr=False)
    redact_key: bytes = field(repr=False)
    # The home's identity when it was last read here (:meth:`follow` compares it).
    seen: object = field(default=None, repr=False, compare=False)

    @property
    def where(self) -> str:
        """Where the keyring is kept (for messages)."""
        return self.home.where

    # -- creating and loading ---------------------------------------------------------------

    @classmethod
    def create(cls, home: KeyringHome, origin: str, kek: KeyEncryptionKey, now: str
               ) -> Keyring:
        """Write a new keyring with fresh keys (refuses to replace an existing one)."""
        if home.exists():
            raise KeyringError(f"a keyring already exists at {home.where}")
        doc: dict[str, Any] = {"format": FORMAT, "origin": origin, "kek": kek.describe(),
                               "active": "d1", "keys": []}
        for kid, purpose in (("d1", "data"), ("w1", "subject-wrap"), ("b1", "blind"),
                             ("r1", "redact")):
            doc["keys"].append(_wrapped(kek, origin, kid, purpose, os.urandom(32), now))
        home.write_text(_text(doc), exclusive=True)
        return cls._unlock(home, doc, kek)

    @staticmethod
    def read(home: KeyringHome) -> dict[str, Any]:
        """The keyring document (nothing unwrapped); KeyringError when missing or unsafe."""
        text = home.read_text()
        try:
            doc = json.loads(text)
        except ValueError as exc:
            raise KeyringError(f"the keyring {home.where} cannot be read: {exc}") from exc
        if not isinstance(doc, dict) or doc.get("format") != FORMAT:
            raise KeyringError(f"{home.where} is not a {FORMAT} document")
        return doc

    @classmethod
    def load(cls, home: KeyringHome, origin: str, kek: KeyEncryptionKey) -> Keyring:
        """Open the keyring with ``kek``; KeyringError names a wrong passphrase or key."""
        seen = home.identity()  # before reading: a change after it is seen next time
        doc = cls.read(home)
        if doc.get("origin") != origin:
            raise KeyringError(f"the keyring {home.where} belongs to {doc.get('origin')!r}, "
                               f"not {origin!r}")
        opened = cls._unlock(home, doc, kek)
        opened.seen = seen
        return opened

    @classmethod
    def _unlock(cls, home: KeyringHome, doc: dict[str, Any], kek: KeyEncryptionKey
                ) -> Keyring:
        path = home.where
        origin = str(doc["origin"])
        keys: dict[str, tuple[str, bytes]] = {}
        try:
            for item in doc["keys"]:
                kid, purpose = str(item["id"]), str(item["purpose"])
                blob = base64.b64decode(item["wrapped"], validate=True)
                keys[kid] = (purpose, kek.unwrap(blob, envelope.key_aad(origin, kid, purpose)))
        except DecryptionError as exc:
            what = ("passphrase" if doc.get("kek", {}).get("provider") == "passphrase"
                    else "key-encryption key")
            raise KeyringError(f"the {what} does not open the keyring {path}") from exc
        except (KeyError, TypeError, ValueError, binascii.Error) as exc:
            raise KeyringError(f"the keyring {path} is malformed") from exc

        def one(purpose: str) -> bytes:
            found = [k for p, k in keys.values() if p == purpose]
            if len(found) != 1:
                raise KeyringError(f"the keyring {path} needs exactly one {purpose} key")
            return found[0]

        data = {kid: AESGCM(k) for kid, (p, k) in keys.items() if p == "data"}
        active = str(doc.get("active"))
        if active not in data:
            raise KeyringError(f"the keyring {path} names an active key it does not hold")
        return cls(home, origin, kek, doc, data, active, AESGCM(one("subject-wrap")),
                   one("blind"), one("redact"))

    # -- rotating ---------------------------------------------------------------------------

    def rotate(self, now: str, new_kek: KeyEncryptionKey | None = None) -> str:
        """Start a new data key (and rewrap everything under ``new_kek`` if given).

        Old data keys stay, so old entries stay readable; nothing in the tree changes.
        Returns the new active key id.
        """
        with self.home.locked():
            doc = self.read(self.home)  # another process may have rotated meanwhile
            self._unlock(self.home, doc, self.kek)  # the KEK still opens what is stored
            n = max(int(k["id"][1:]) for k in doc["keys"] if k["purpose"] == "data") + 1
            kid = f"d{n}"
            kek = new_kek or self.kek
            keys = []
            for item in doc["keys"]:
                raw = self.kek.unwrap(base64.b64decode(item["wrapped"]),
                                      envelope.key_aad(self.origin, item["id"], item["purpose"]))
                keys.append(_wrapped(kek, self.origin, item["id"], item["purpose"], raw,
                                     item["created"]) if new_kek is not None else item)
            keys.append(_wrapped(kek, self.origin, kid, "data", os.urandom(32), now))
            doc.update(keys=keys, active=kid, kek=kek.describe())
            self.home.write_text(_text(doc), exclusive=False)
            self.seen = self.home.identity()  # this process's own change
        reloaded = self._unlock(self.home, doc, kek)
        self.kek, self.doc, self.data, self.active = kek, doc, reloaded.data, kid
        return kid

    def next_data_kid(self) -> str:
        """The id the next :meth:`rotate` will give (as of the document last read)."""
        return f"d{max(int(k['id'][1:]) for k in self.doc['keys'] if k['purpose'] == 'data') + 1}"

    def reload(self) -> None:
        """Re-read the document (another process rotated): learn the new data keys.

        TamperError when the active data key went back (an older copy of the keyring put in
        place: it would bring a retired, perhaps compromised, data key back into use, and a
        rotation on top of it would issue a used key id again). Nothing here takes a key
        back: a rotation whose record did not commit keeps its key (subjects.rotate_keys)."""
        before = self.active
        fresh = self.load(self.home, self.origin, self.kek)
        if kid_number(fresh.active) < kid_number(before):
            raise TamperError("settings", 0, f"the keyring's active data key went back from "
                              f"{before} to {fresh.active}: the keyring ({self.home.where}) "
                              "was replaced by an older copy")
        self.doc, self.data, self.active = fresh.doc, fresh.data, fresh.active
        self.seen = fresh.seen

    def follow(self) -> bool:
        """Re-read the file if it changed since it was read here (another process rotated):
        whether it did. Every sealing side calls it before sealing, so none keeps sealing
        under a retired data key. TamperError when the active data key went back (an older
        copy of the file put in place); KeyringError when it no longer opens with this KEK.
        """
        if self.home.identity() == self.seen:
            return False
        self.reload()
        return True

    def describe_keys(self) -> list[dict[str, Any]]:
        """Key ids, purposes and creation times (no key material)."""
        return [{"id": k["id"], "purpose": k["purpose"], "created": k["created"],
                 "active": k["id"] == self.active} for k in self.doc["keys"]]


def _wrapped(kek: KeyEncryptionKey, origin: str, kid: str, purpose: str, key: bytes,  # noqa: PLR0917
             created: str) -> dict[str, Any]:
    blob = kek.wrap(key, envelope.key_aad(origin, kid, purpose))
    return {"id": kid, "purpose": purpose, "created": created,
            "wrapped": base64.b64encode(blob).decode()}


def _text(doc: dict[str, Any]) -> str:
    return json.dumps(doc, indent=1, sort_keys=True) + "\n"


def _write(path: Path, text: str, *, exclusive: bool) -> None:
    """Write the keyring atomically, 0600 from the first byte, fsynced with its directory."""
    tmp = path.with_name(f".{path.name}.{os.urandom(6).hex()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        try:
            os.write(fd, text.encode())
            os.fsync(fd)
        finally:
            os.close(fd)
        if exclusive:
            os.link(tmp, path)  # fails if a keyring appeared meanwhile
        else:
            os.replace(tmp, path)
        dfd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive lock for read-modify-write of the keyring across processes."""
    fd = os.open(path.with_name(f".{path.name}.lock"), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)
