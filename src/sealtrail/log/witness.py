"""sealtrail as a C2SP tlog-witness: its key, the logs it trusts, the latest checkpoint of each.

Everything lives under the witness's data directory, ``W/_witness/``:

- ``witness.key`` (0600): ``PRIVATE+KEY+<name>+<hex key id>+base64(0x04 || seed)``, the
  cosigner's Ed25519 seed (made by :meth:`WitnessState.init`, never shown again);
- ``witness.db`` (0600, SQLite): the trusted log keys (signed-note vkeys, type 0x01, any
  implementation's: sealtrail's, Go's checksum database) and, per origin, the latest
  checkpoint cosigned.

:meth:`WitnessState.add_checkpoint` reads the stored checkpoint, decides
(:func:`sealtrail.core.witness_protocol.decide`), stores the new one and signs, inside one
``BEGIN IMMEDIATE`` transaction: two requests for one origin cannot interleave, so a slow
one cannot roll the stored size back (the race c2sp.org/tlog-witness describes), across
processes too. The new checkpoint is committed before the cosignature is returned.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Final

from sealtrail.core import b64
from sealtrail.core.cosignature import ALG_COSIGNATURE_V1, Cosigner, CosignerKey
from sealtrail.core.errors import ConfigError, FormatError, StorageError
from sealtrail.core.note import Verifier
from sealtrail.core.witness_protocol import (
    AddCheckpoint,
    Decision,
    Stored,
    TrustedLog,
    decide,
    parse_request,
)

WITNESS_DIR: Final = "_witness"
KEY_FILE: Final = "witness.key"
DB_FILE: Final = "witness.db"
_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS logs(vkey TEXT PRIMARY KEY, origin TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS latest(origin TEXT PRIMARY KEY, size INTEGER NOT NULL,
                                  root BLOB NOT NULL, note TEXT NOT NULL,
                                  updated TEXT NOT NULL);
"""


@dataclass(frozen=True, slots=True)
class Answer:
    """An HTTP answer of the witness: status, content type, body."""

    status: int
    content_type: str
    body: str


def _private(path: Path, text: str) -> None:
    """Create ``path`` with mode 0600 (refusing to overwrite) and write ``text``."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text)


class WitnessState:
    """A witness's data directory (see the module docstring)."""

    def __init__(self, data_dir: str | os.PathLike[str]) -> None:
        self.dir = Path(data_dir) / WITNESS_DIR
        # One connection, kept: opening and closing one per request made every answer pay a
        # WAL checkpoint on close (about 3 ms each, 24 ms a request in all). The lock
        # serialises this process's requests on it; BEGIN IMMEDIATE serialises processes.
        self._conn: sqlite3.Connection | None = None
        self._lock = threading.RLock()
        self._cosigner: Cosigner | None = None

    def close(self) -> None:
        """Close the state's database connection (it reopens on the next use)."""
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    # -- key --------------------------------------------------------------------------------

    def init(self, name: str) -> CosignerKey:
        """Make the witness's key (once); return its public key (the cosigner vkey)."""
        self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        path = self.dir / KEY_FILE
        if path.exists():
            raise ConfigError(f"{path} exists: this directory already has a witness key")
        cosigner = Cosigner(name, os.urandom(32))
        key = cosigner.key
        seed = b64.encode(bytes([ALG_COSIGNATURE_V1]) + cosigner.seed)
        _private(path, f"PRIVATE+KEY+{name}+{key.key_id.hex()}+{seed}\n")
        self._db()
        return key

    def cosigner(self) -> Cosigner:
        """The witness's signing key (ConfigError when ``init`` was not run); read once."""
        if self._cosigner is not None:
            return self._cosigner
        path = self.dir / KEY_FILE
        try:
            text = path.read_text().strip()
        except FileNotFoundError as exc:
            raise ConfigError(f"no witness key in {self.dir}: run 'sealtrail witness "
                              "init' first") from exc
        parts = text.split("+", 4)
        if len(parts) != 5 or parts[:2] != ["PRIVATE", "KEY"]:
            raise FormatError(f"{path}: not a witness key")
        raw = b64.decode(parts[4], "witness key")
        if len(raw) != 33 or raw[0] != ALG_COSIGNATURE_V1:
            raise FormatError(f"{path}: not a cosignature/v1 (0x04) key")
        cosigner = Cosigner(parts[2], raw[1:])
        if cosigner.key.key_id.hex() != parts[3]:
            raise FormatError(f"{path}: the key id does not match the key")
        self._cosigner = cosigner
        return cosigner

    # -- trusted logs -----------------------------------------------------------------------

    def add_log(self, vkey: str, origin: str | None = None) -> Verifier:
        """Trust a log's signed-note key for ``origin`` (default: the key's name, as for
        sealtrail's logs; Go's checksum database signs ``go.sum database tree`` with the
        key ``sum.golang.org``)."""
        verifier = Verifier.parse(vkey)
        origin = verifier.name if origin is None else origin
        if not origin or not origin.isprintable() or len(origin) > 256:
            raise FormatError("origin: one printable line of at most 256 characters")
        with self._lock:
            # A key is trusted for one origin: adding it again with --origin moves it.
            self._db().execute("INSERT INTO logs(vkey, origin) VALUES (?, ?) ON CONFLICT(vkey) "
                               "DO UPDATE SET origin = excluded.origin",
                               (verifier.format(), origin))
        return verifier

    def trusted(self) -> list[TrustedLog]:
        """The trusted log keys, each with the origin it is trusted for."""
        with self._lock:
            rows = self._db().execute("SELECT origin, vkey FROM logs ORDER BY origin, vkey"
                                      ).fetchall()
        return [TrustedLog(str(origin), Verifier.parse(vkey)) for origin, vkey in rows]

    def logs(self) -> list[Verifier]:
        """The trusted log keys."""
        with self._lock:
            rows = self._db().execute("SELECT vkey FROM logs ORDER BY origin, vkey").fetchall()
        return [Verifier.parse(row[0]) for row in rows]

    def latest(self, origin: str) -> Stored | None:
        """The latest checkpoint cosigned for ``origin``."""
        with self._lock:
            row = self._db().execute("SELECT size, root, note FROM latest WHERE origin = ?",
                                     (origin,)).fetchone()
        return None if row is None else Stored(int(row[0]), bytes(row[1]), str(row[2]))

    # -- the protocol -----------------------------------------------------------------------

    def add_checkpoint(self, body: bytes, now: datetime) -> Answer:
        """The answer to a ``POST /add-checkpoint`` body (c2sp.org/tlog-witness)."""
        try:
            request = parse_request(body)
        except FormatError as exc:
            return Answer(400, "text/plain; charset=utf-8", f"{exc}\n")
        cosigner = self.cosigner()
        trusted = self.trusted()
        with self._lock:
            return self._add(request, trusted, cosigner, now)

    def _add(self, request: AddCheckpoint, trusted: list[TrustedLog], cosigner: Cosigner,
             now: datetime) -> Answer:
        db = self._db()
        try:
            db.execute("BEGIN IMMEDIATE")
            origin = _origin(request.note)
            row = None if origin is None else db.execute(
                "SELECT size, root, note FROM latest WHERE origin = ?", (origin,)).fetchone()
            stored = None if row is None else Stored(int(row[0]), bytes(row[1]), str(row[2]))
            decision: Decision = decide(request, trusted, stored)
            if decision.status != 200 or decision.checkpoint is None:
                db.execute("ROLLBACK")
                return Answer(decision.status, decision.content_type, decision.body)
            cp = decision.checkpoint
            db.execute("INSERT INTO latest(origin, size, root, note, updated) "
                       "VALUES (?, ?, ?, ?, ?) ON CONFLICT(origin) DO UPDATE SET "
                       "size = excluded.size, root = excluded.root, note = excluded.note, "
                       "updated = excluded.updated",
                       (cp.origin, cp.size, cp.root, request.note, now.isoformat()))
            db.execute("COMMIT")
        except sqlite3.Error as exc:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise StorageError(f"witness state: {exc}") from exc
        except BaseException:
            # Whatever it was, the write lock must not outlive this request (every other
            # origin's request, in every process, would wait on it).
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
        line = cosigner.line(decision.text, int(now.timestamp()))
        return Answer(200, "text/plain; charset=utf-8", line + "\n")

    def _db(self) -> sqlite3.Connection:
        if self._conn is not None:
            return self._conn
        self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        path = self.dir / DB_FILE
        if not path.exists():
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
        db = sqlite3.connect(path, isolation_level=None, timeout=30, check_same_thread=False)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")
        db.executescript(_SCHEMA)
        self._conn = db
        return db


def _origin(note: str) -> str | None:
    """The origin line of a note (the decision checks everything else)."""
    first = note.split("\n", 1)[0]
    return first or None
