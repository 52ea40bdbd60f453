"""Head memory: the largest tree head this machine has seen the log sign, kept outside the
database, so that a log moved backwards (or forked) is noticed without anyone having kept a
checkpoint.

Old signed heads are on disk (the checkpoint history, the WAL, backups): an attacker with the
files but without the signing key can delete the newest entries, trim the tree and put an
older genuine head back in ``state``, and the database alone is then consistent. The head
memory is a small file, written atomically (a temporary file, fsync, rename) under a lock,
holding the newest signed checkpoint note a process of this machine committed or verified. Its
integrity is the log's signature on that note: it cannot be forged, only replaced by an older
genuine one or deleted, which is why it may live on another volume (``SEALTRAIL_STATE_DIR``)
and why checkpoints are also published outward (docs/operations.md says what each defence
stops and what it does not).

A stored head smaller than the memory is *rolled back*; one whose first ``m`` entries do not
give the remembered root is *forked*. Both stay failures — for every process, and across
restarts — until an operator accepts the current head (``sealtrail head accept --reason``),
which sealtrail records in the log.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import hmac
import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from sealtrail.core.checkpoint import Checkpoint, open_checkpoint
from sealtrail.core.errors import StorageError, TamperError, VerificationError
from sealtrail.core.note import Verifier
from sealtrail.log.tree import range_hashes
from sealtrail.store.protocol import Store

FORMAT: Final = "sealtrail-head-memory/1"
FILE: Final = "head-memory.json"
STATE_DIR_ENV: Final = "SEALTRAIL_STATE_DIR"
WRITE_EVERY_S: Final = 0.25  # at most four writes a second under a stream of commits


@dataclass(frozen=True, slots=True)
class Remembered:
    """A remembered head: its signed note and what it says."""

    note: str
    checkpoint: Checkpoint


def memory_path(directory: Path, origin: str) -> Path:
    """Where a log's head memory lives: beside the log, or under ``SEALTRAIL_STATE_DIR``
    (one file per origin) when that is set, e.g. on a volume the database's users cannot
    write."""
    state_dir = os.environ.get(STATE_DIR_ENV)
    if not state_dir:
        return directory / FILE
    safe = "".join(c if c.isalnum() or c in "._-" else "_" for c in origin)[:100]
    tag = hashlib.sha256(origin.encode()).hexdigest()[:16]  # origins that read alike differ
    return Path(state_dir) / f"{safe}.{tag}.{FILE}"


def _note_of(doc: object) -> str:
    """The note a head-memory document holds; ValueError when it is not one."""
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise ValueError("not a head memory")
    note = doc.get("note")
    if isinstance(note, str):
        return note
    raise ValueError("it holds no note")


class HeadMemory:
    """One log's head memory file (see the module docstring)."""

    def __init__(self, path: Path, verifier: Verifier, origin: str) -> None:
        self.path = path
        self._verifier = verifier
        self._origin = origin
        self._size = -1          # the size last read or written (-1: not yet read)
        self._pending: str | None = None
        self._written_at = 0.0
        self._newest: tuple[int, str] | None = None  # the newest head this process knows
        self._accepting: str | None = None  # a head an operator is accepting (see accepting)

    # -- reading -----------------------------------------------------------------------------

    def load(self) -> Remembered | None:
        """The remembered head, None when there is none yet (first use).

        TamperError when the file exists but is not a head the log's key signed (an edited
        or replaced memory is never silently dropped).
        """
        try:
            text = self.path.read_text()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise StorageError(f"cannot read the head memory {self.path}: {exc}") from exc
        try:
            note = _note_of(json.loads(text))
            cp = open_checkpoint(note, self._verifier, self._origin)
        except (ValueError, VerificationError) as exc:
            raise TamperError("head memory", 0, f"the head memory {self.path} is not a head "
                              f"this log signed ({exc}): it was edited or replaced; if you "
                              "know why, accept the current head (sealtrail head accept "
                              "--reason TEXT)") from exc
        self._size = max(self._size, cp.size)
        return Remembered(note, cp)

    def newest(self) -> Remembered | None:
        """The newest head known: the file's, or a newer one this process signed or verified
        that is not written yet (writes are throttled; the process's memory is not)."""
        mem = self.load()
        if self._newest is not None and (mem is None or self._newest[0] > mem.checkpoint.size):
            note = self._newest[1]
            return Remembered(note, open_checkpoint(note, self._verifier, self._origin))
        return mem

    def check(self, store: Store) -> None:
        """Compare the stored head with the memory: raise TamperError when the log is
        smaller (rolled back) or its first ``m`` entries give another root (forked)."""
        if self._accepting is not None and store.state().checkpoint == self._accepting:
            return  # the head being accepted: the acceptance is appended on top of it
        mem = self.newest()
        if mem is None:
            return
        m = mem.checkpoint.size
        size = store.state().size
        if size < m:
            raise TamperError("rolled back", size, f"the log has {size} entries but this "
                              f"machine saw it sign a head of {m} entries (head memory "
                              f"{self.path}): entries were removed and an older head put "
                              "back; refusing to go on until an operator acts")
        if m and not hmac.compare_digest(range_hashes(store, [(0, m)])[0],
                                         mem.checkpoint.root):
            raise TamperError("forked", 0, f"the first {m} entries no longer give the root "
                              f"this machine saw the log sign (head memory {self.path}): the "
                              "log was rewritten")

    # -- writing -----------------------------------------------------------------------------

    def remember(self, note: str, size: int, *, now: bool = False) -> None:
        """Remember a head this process signed or verified, if it is newer than the memory.

        Writes at most every :data:`WRITE_EVERY_S` seconds unless ``now`` (the newest head
        waits in memory and :meth:`flush` writes it): the memory may lag the log by a
        fraction of a second, never lead it.
        """
        if self._newest is None or size > self._newest[0]:
            self._newest = (size, note)
        if size <= self._size and self._pending is None:
            return
        self._pending = note
        if now or time.monotonic() - self._written_at >= WRITE_EVERY_S:
            self.flush()

    def flush(self) -> None:
        """Write the pending head (if any) when it is larger than what the file holds."""
        note = self._pending
        if note is None:
            return
        self._pending = None
        self._written_at = time.monotonic()
        cp = Checkpoint.parse(note[: note.rfind("\n\n") + 1])
        with self._locked():
            # A memory that is not a head the log signed stays as it is (load raises): it is
            # evidence for verify and is replaced only by an operator's acceptance (reset).
            current = self.load()
            if current is not None and current.checkpoint.size >= cp.size:
                return
            if self._size > cp.size:
                return
            self._write(note)
            self._size = cp.size

    def accepting(self, note: str | None) -> None:
        """While an operator's acceptance of the stored head ``note`` is being appended,
        :meth:`check` lets that head pass (None ends it)."""
        self._accepting = note

    def reset(self, note: str) -> None:
        """Replace the memory with ``note`` even if smaller (an operator accepted it, and the
        acceptance is committed); this process forgets the larger heads it knew."""
        cp = open_checkpoint(note, self._verifier, self._origin)
        with self._locked():
            self._write(note)
        self._size = cp.size
        self._pending = None
        self._newest = (cp.size, note)

    def _write(self, note: str) -> None:
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.{os.urandom(6).hex()}.tmp")
        body = json.dumps({"format": FORMAT, "origin": self._origin, "note": note},
                          sort_keys=True) + "\n"
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                os.write(fd, body.encode())
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, self.path)
            dfd = os.open(self.path.parent, os.O_RDONLY)
            try:
                os.fsync(dfd)
            finally:
                os.close(dfd)
        except OSError as exc:
            raise StorageError(f"cannot write the head memory {self.path}: {exc}") from exc
        finally:
            with contextlib.suppress(OSError):
                tmp.unlink()

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """An exclusive lock across processes for read-compare-write of the memory
        (StorageError when it cannot be taken: a read-only directory, a full disk)."""
        try:
            self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd = os.open(self.path.with_name(f".{self.path.name}.lock"),
                         os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise StorageError(f"cannot lock the head memory {self.path}: {exc}") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)
