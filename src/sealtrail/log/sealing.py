"""Forward-secure sealing of a log: the evolving key's files, evolution, and verification.

The key and its formats are :mod:`sealtrail.core.seal`. This module keeps them on disk, beside
the log (``<data>/<log>/``)::

    seal.key    the current epoch and its seed (0600, secret): {"format", "epoch", "seed"}
    seal.pub    public: the seal key's line, a newline, then every epoch's 32-byte public key
    seal.lock   a lock file: evolution is one process at a time (``serve`` and a cron
                ``sealtrail seal run`` may run side by side)

**Evolution** (:func:`advance`, called by :func:`seal_line` and :func:`run_round`): when the
clock has passed the end of the epoch in ``seal.key``, (1) the epoch's *final seal* of the
log's current checkpoint is recorded as an entry of the log (action ``sealtrail.seal``, the
seal in ``target.id``, in clear even when the log encrypts), then (2) ``seal.key`` is replaced
by the seed of the epoch ``now`` is in — a new file written, fsynced and renamed over the old
one, the directory fsynced — so the old seed is no longer in any file. Epochs the host was
down through are evolved over and never sealed: the verifier sees them as gaps. Replacing a
file does not overwrite the disk blocks that held it (journaling filesystems, SSDs, snapshots
and backups may keep old bytes): put the data directory on storage without snapshots if that
matters, as journald's documentation also warns.

Recording before erasing means a crash between the two records the same epoch's seal again
on the next round: the chain allows several seals of one epoch, each naming the one before.
The last recorded seal is kept in the ``meta`` table together with the index of its entry,
written in the same transaction as that entry (``AuditLog.commit_change``), and is only used
when that entry says the same (an edited copy is refused), so the chain's next link is read
without a scan of the log.

**Verification** (:func:`verify_seals`, ``sealtrail verify --seal-key``) runs after the tree
itself verified: it reads the public keys from ``seal.pub`` and accepts them only when their
Merkle root is the seal key's; it finds every ``sealtrail.seal`` entry (a byte search over the
stored chunks, one more read of the log) and requires that each verifies under its epoch's key,
that they form one chain from an epoch-0 anchor, and that the log's tree at each sealed size
has the sealed root. It reports the last sealed epoch, the epochs without a seal, and the
entries past the last seal (not protected yet: today's key is on the host).

What sealing does not stop, documented in docs/witnessing.md: an attacker holding the host can
drop the newest seals with the entries after them and claim downtime (a gap), and can do
anything to what was not sealed yet; a verifier who knows the host ran through those epochs,
a witness, or a checkpoint kept elsewhere tells those apart.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import fcntl
import hmac
import json
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import msgspec

from sealtrail.core import seal as core
from sealtrail.core.checkpoint import SignedCheckpoint
from sealtrail.core.errors import (
    ConfigError,
    FormatError,
    SignatureError,
    TamperError,
    VerificationError,
)
from sealtrail.core.timefmt import format_time
from sealtrail.log.auditlog import AuditLog
from sealtrail.log.changes import SetSettings
from sealtrail.log.proving import root_at
from sealtrail.store.protocol import EntryLog

SEAL_KEY_FILE: Final = "seal.key"
SEAL_PUB_FILE: Final = "seal.pub"
LOCK_FILE: Final = "seal.lock"
STATE_FORMAT: Final = "sealtrail-seal-state/1"
ACTION: Final = "sealtrail.seal"
TARGET_TYPE: Final = "seal"
LAST_META: Final = "seal_last"        # the last recorded seal's target.id
LAST_AT_META: Final = "seal_last_at"  # the index of its entry
LAST_PREV_META: Final = "seal_last_prev"  # its whole prev (the entry holds a hint only)
_NEEDLE: Final = b'"sealtrail.seal"'

__all__ = ["ACTION", "SEAL_KEY_FILE", "SEAL_PUB_FILE", "Advance", "SealKeyMismatchError",
           "SealReport", "advance", "has_sealing", "init_sealing", "load_seal_key",
           "run_round", "seal_line", "status", "verify_seals"]


class SealKeyMismatchError(VerificationError):
    """The seal key given verifies nothing here: another log's seal key, or ``seal.pub``
    replaced (the files alone cannot tell which). Never "intact"; the CLI's exit 3."""

    exit_code = 3


# -- the files -------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class _State:
    """``seal.key``: the epoch whose seed is held (``seed`` None once the key's epochs are
    over and the last seed was erased)."""

    epoch: int
    seed: bytes | None

    def __repr__(self) -> str:  # never show the seed
        return f"_State(epoch={self.epoch})"


@dataclass(frozen=True, slots=True)
class _Public:
    """``seal.pub``, read and checked against the Merkle root of the keys it holds."""

    key: core.SealKey
    tree: core.KeyTree


def has_sealing(directory: Path) -> bool:
    """Whether the log in ``directory`` has a sealing key (``seal.key``)."""
    return (directory / SEAL_KEY_FILE).exists()


def _read_state(directory: Path) -> _State:
    path = directory / SEAL_KEY_FILE
    try:
        doc = json.loads(path.read_text())
    except FileNotFoundError as exc:
        raise ConfigError(f"{path} is missing: run 'sealtrail seal init' first") from exc
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path} cannot be read: {exc}") from exc
    if not isinstance(doc, dict) or doc.get("format") != STATE_FORMAT:
        raise ConfigError(f"{path}: not a {STATE_FORMAT} file")
    epoch, seed = doc.get("epoch"), doc.get("seed")
    if not isinstance(epoch, int) or isinstance(epoch, bool) or epoch < 0:
        raise ConfigError(f"{path}: epoch is not a whole number")
    if seed is None:
        return _State(epoch, None)
    try:
        raw = base64.b64decode(str(seed), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ConfigError(f"{path}: seed is not base64") from exc
    if len(raw) != core.SEED_SIZE:
        raise ConfigError(f"{path}: seed is not {core.SEED_SIZE} bytes")
    return _State(epoch, raw)


def _write_file(directory: Path, name: str, data: bytes, mode: int = 0o600) -> None:
    """Replace ``name`` atomically by a new file holding ``data``: a temporary file (created
    with ``mode``, 0600 by default: never readable by others), fsync, rename over, fsync the
    directory."""
    tmp = directory / f".{name}.{os.urandom(6).hex()}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, directory / name)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    dfd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


def _write_state(directory: Path, state: _State) -> None:
    seed = None if state.seed is None else base64.b64encode(state.seed).decode()
    doc = {"format": STATE_FORMAT, "epoch": state.epoch, "seed": seed}
    _write_file(directory, SEAL_KEY_FILE, (json.dumps(doc) + "\n").encode())


_PUBLIC_CACHE: dict[Path, tuple[tuple[int, int], _Public]] = {}
_CACHE_LOCK = threading.Lock()


def _read_public(directory: Path) -> _Public:
    """``seal.pub``, its keys' tree built once per process (cached while the file is the
    same): ConfigError when missing, FormatError when its keys are not its seal key's."""
    path = directory / SEAL_PUB_FILE
    try:
        st = path.stat()
    except FileNotFoundError as exc:
        raise ConfigError(f"{path} is missing (the public keys of the epochs)") from exc
    stamp = (st.st_mtime_ns, st.st_size)
    with _CACHE_LOCK:
        hit = _PUBLIC_CACHE.get(path)
    if hit is not None and hit[0] == stamp:
        return hit[1]
    data = path.read_bytes()
    head, sep, body = data.partition(b"\n")
    if not sep:
        raise FormatError(f"{path}: no seal key line")
    try:
        key = core.SealKey.parse(head.decode("ascii"))
    except UnicodeDecodeError as exc:
        raise FormatError(f"{path}: the seal key line is not ASCII") from exc
    if len(body) != 32 * key.epochs:
        raise FormatError(f"{path}: holds {len(body) // 32} keys, its seal key says "
                          f"{key.epochs}")
    tree = core.KeyTree([body[i:i + 32] for i in range(0, len(body), 32)])
    if not hmac.compare_digest(tree.root, key.root):
        raise FormatError(f"{path}: its keys' Merkle root is not its seal key's root")
    public = _Public(key, tree)
    with _CACHE_LOCK:
        _PUBLIC_CACHE[path] = (stamp, public)
    return public


def load_seal_key(directory: Path) -> core.SealKey:
    """The seal key of the log in ``directory`` as ``seal.pub`` states it (for ``seal
    status``; a verifier uses the copy it kept off the host instead)."""
    return _read_public(directory).key


_THREAD_LOCKS: dict[Path, threading.Lock] = {}


@contextlib.contextmanager
def _locked(directory: Path) -> Iterator[None]:
    """One evolution at a time: a thread lock in this process, a file lock across processes."""
    with _CACHE_LOCK:
        tlock = _THREAD_LOCKS.setdefault(directory.resolve(), threading.Lock())
    with tlock:
        fd = os.open(directory / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing releases the lock


# -- the chain's last link -----------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class _Last:
    """The last recorded seal and the index of its entry."""

    seal: core.Seal
    index: int
    time: str


def _last_recorded(alog: AuditLog, public: _Public, *, anchor: bool = False) -> _Last | None:
    """The last recorded seal, whole, from ``meta``: held to the entry it names, its root
    re-read from the tree and its signature checked (TamperError otherwise: a chain continued
    from an edited copy would break). None only while the anchor is being recorded
    (``anchor``): once ``seal init`` is done a sealed log always has one, and rows deleted
    would otherwise start a second chain."""
    meta = alog.store.meta()
    text = meta.get(LAST_META)
    if text is None:
        if anchor:
            return None
        raise TamperError("seal", 0, "the log has a sealing key but the settings table keeps "
                          "no recorded seal (its rows were deleted, or 'seal init' was "
                          "interrupted before the anchor was recorded): refusing to start a "
                          "second seal chain; run sealtrail verify --seal-key")
    try:
        at = int(meta.get(LAST_AT_META, ""))
        event = alog.entry(at).event()
    except (ValueError, ConfigError, TamperError):
        event = {}
    target = event.get("target") or {}
    problem = ""
    if event.get("action") != ACTION or target.get("id") != text:
        problem = "is not the entry it names"
    else:
        try:
            rec = core.Recorded.parse(text)
            prev = base64.b64decode(meta.get(LAST_PREV_META, ""), validate=True)
            seal = rec.seal(alog.root_at(rec.size), prev)
            seal.verify(public.key.origin, public.tree.keys[rec.epoch])
        except (ValueError, IndexError, VerificationError, ConfigError):
            problem = "does not verify against the log"
        else:
            return _Last(seal, at, str(event.get("received_at", "")))
    raise TamperError("seal", 0, f"the last recorded seal kept in the settings table "
                      f"{problem} (the table or the log was edited): refusing to continue "
                      "the seal chain from it; run sealtrail verify --seal-key")


def _seal_event(seal: core.Seal, why: str) -> dict[str, Any]:
    end = seal.size - 1
    covered = f"entries 0..{end}" if seal.size else "no entries"
    return {"actor": {"id": "sealtrail", "type": "service"}, "action": ACTION,
            "outcome": "success", "category": "system",
            "target": {"type": TARGET_TYPE, "id": seal.recorded().format()},
            "reason": f"epoch {seal.epoch} seal ({why}): {covered} (size {seal.size})"}


def _record(alog: AuditLog, public: _Public, state: _State, why: str, *,
            anchor: bool = False) -> int:
    """Record the seal of ``state``'s epoch over the log's current checkpoint (the chain's
    first when ``anchor``); its index."""
    if state.seed is None:
        raise ConfigError("the seal key's epochs are over: nothing can be sealed")
    last = _last_recorded(alog, public, anchor=anchor)
    prev = core.link(public.key.origin, last.seal) if last is not None else core.NO_LINK
    cp = alog.checkpoint().checkpoint
    seal = core.make_seal(state.seed, public.key.origin, state.epoch, size=cp.size,
                          root=cp.root, prev=prev)
    event = _seal_event(seal, why)
    stored, _ = alog.redact_preview(event)
    if stored.get("target") != event["target"]:  # pragma: no cover - the format cannot match
        raise ConfigError("this log's redaction would alter a seal: not recorded")
    receipt = alog.commit_change(event, SetSettings(
        {LAST_META: event["target"]["id"], LAST_PREV_META: base64.b64encode(prev).decode()},
        index_key=LAST_AT_META))
    return receipt.index


# -- setting up --------------------------------------------------------------------------------

def init_sealing(alog: AuditLog, *, now: datetime, seconds: int = core.DEFAULT_SECONDS,
                 epochs: int = core.DEFAULT_EPOCHS, seed: bytes | None = None
                 ) -> core.SealKey:
    """Make the log's sealing key and record the epoch-0 anchor seal; return the seal key.

    Epoch 0 begins at ``now`` (whole seconds). ``seed`` is for tests (default: 32 random
    bytes). Refused (ConfigError) when the log already has a sealing key. The recorded
    seals' targets stay clear whatever the log's field policy seals
    (:data:`sealtrail.core.reserved.OWN_CLEAR_FIELDS`).
    """
    directory = alog.directory
    if alog.locked_reason:
        raise ConfigError(alog.locked_reason)
    seed0 = os.urandom(core.SEED_SIZE) if seed is None else seed
    with _locked(directory):
        for name in (SEAL_KEY_FILE, SEAL_PUB_FILE):
            if (directory / name).exists():
                raise ConfigError(f"{directory / name} exists: this log already has a "
                                  "sealing key (a second one would restart the chain)")
        if alog.store.meta().get(LAST_META) is not None:
            raise ConfigError("this log already recorded seals (its seal files are gone): "
                              "a new sealing key would restart the chain")
        keys = core.public_keys(seed0, epochs)
        tree = core.KeyTree(keys)
        key = core.SealKey(alog.origin, core.unix_seconds(now), seconds, epochs, tree.root)
        pub = directory / SEAL_PUB_FILE
        # Public, but not derivable again once seed 0 is gone: written durably, and worth
        # a backup (any copy will do: verification checks it against the seal key's root).
        _write_file(directory, SEAL_PUB_FILE, key.format().encode() + b"\n" + b"".join(keys),
                    0o644)
        _write_state(directory, _State(0, seed0))
        try:
            _record(alog, _Public(key, tree), _State(0, seed0), "the anchor, at seal init",
                    anchor=True)
        except BaseException:
            (directory / SEAL_KEY_FILE).unlink()
            pub.unlink()
            raise
    return key


# -- evolving --------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Advance:
    """What one evolution step did."""

    epoch_before: int
    epoch: int                       # the epoch held now
    recorded: int | None = None      # the index of the final seal recorded, if one was
    skipped: tuple[int, int] | None = None  # epochs evolved over without a seal (first, last)
    exhausted: bool = False          # the key's epochs are over; its last seed is erased


def advance(alog: AuditLog, now: datetime) -> Advance:
    """Evolve the log's sealing key to ``now``'s epoch, recording the closing epoch's final
    seal first (see the module docstring). Nothing happens within the held epoch."""
    directory = alog.directory
    with _locked(directory):
        return _advance(alog, directory, now)


def _advance(alog: AuditLog, directory: Path, now: datetime) -> Advance:
    public = _read_public(directory)
    state = _read_state(directory)
    key = public.key
    target = min(key.epoch_at(now), key.epochs)
    if state.seed is None or target <= state.epoch:
        return Advance(state.epoch, state.epoch, exhausted=state.seed is None)
    # 1. The closing epoch's final seal, durably in the log, before its seed goes.
    index = _record(alog, public, state, f"closing epoch {state.epoch}")
    # 2. Evolve through any missed epochs (never sealed: gaps) to now's; erase the old seed.
    seed = state.seed
    for _ in range(target - state.epoch):
        seed = core.evolve(seed)
    exhausted = target >= key.epochs
    _write_state(directory, _State(target, None if exhausted else seed))
    skipped = (state.epoch + 1, target - 1) if target - state.epoch > 1 else None
    return Advance(state.epoch, target, index, skipped, exhausted)


def seal_line(alog: AuditLog, signed: SignedCheckpoint, now: datetime) -> str | None:
    """The seal line of ``signed`` by the current epoch's key (None without a sealing key).

    First evolves the key to ``now``'s epoch (:func:`advance`: recording each closing epoch's
    final seal before its seed is erased); then returns one signed-note signature line (no
    newline, starting with :data:`sealtrail.core.note.SIG_PREFIX`) sealing the checkpoint's
    origin, size and root, chained to the last recorded seal, and carrying the epoch key and
    its path so the seal key alone verifies it (:func:`sealtrail.core.seal.open_seal_line`).
    ConfigError once the key's epochs are over (sealing has stopped: say so, do not hide it).
    """
    directory = alog.directory
    if not has_sealing(directory):
        if alog.store.meta().get(LAST_META) is not None:
            # Sealed, but not from here: another node of a shared store ran 'seal init' (the
            # key stays on its disk), or this node's key file was lost. Say so: serving
            # checkpoints without their seal must not pass unnoticed.
            raise ConfigError("this log is sealed, but this node holds no sealing key "
                              f"({SEAL_KEY_FILE} stays on the node that ran 'seal init'): "
                              "checkpoints served from here are not sealed")
        return None
    with _locked(directory):
        step = _advance(alog, directory, now)
        if step.exhausted:
            raise ConfigError("the log's seal key has no epochs left: checkpoints are no "
                              "longer sealed (see docs/witnessing.md)")
        public = _read_public(directory)
        state = _read_state(directory)
        if state.seed is None:  # pragma: no cover - exhausted above
            raise ConfigError("the log's seal key has no epochs left")
        last = _last_recorded(alog, public)
        prev = core.link(public.key.origin, last.seal) if last is not None else core.NO_LINK
        cp = signed.checkpoint
        if cp.origin != public.key.origin:
            raise ConfigError(f"checkpoint origin {cp.origin!r} is not the seal key's "
                              f"{public.key.origin!r}")
        seal = core.make_seal(state.seed, cp.origin, state.epoch, size=cp.size, root=cp.root,
                              prev=prev)
        return core.seal_line(public.key, seal, public.tree.keys[state.epoch],
                              public.tree.path(state.epoch))


def status(alog: AuditLog, now: datetime) -> dict[str, Any]:
    """The sealing state (``seal status``): the epoch held, the next evolution, the last
    recorded seal. Reads only; no evolution."""
    directory = alog.directory
    if not has_sealing(directory):
        return {"sealing": False}
    public = _read_public(directory)
    state = _read_state(directory)
    key = public.key
    last = _last_recorded(alog, public)
    end = key.epoch_start(key.epochs)
    return {
        "sealing": True, "seal_key": key.format(), "epoch_seconds": key.seconds,
        "epochs": key.epochs, "epoch": state.epoch, "epoch_now": key.epoch_at(now),
        "exhausted": state.seed is None,
        "next_evolution": None if state.seed is None else _time(
            key.epoch_start(state.epoch + 1)),
        "due": state.seed is not None and key.epoch_at(now) > state.epoch,
        "key_ends": _time(end),
        "last_seal": None if last is None else {
            "epoch": last.seal.epoch, "size": last.seal.size, "index": last.index,
            "time": last.time},
    }


def run_round(alog: AuditLog, now: datetime) -> dict[str, Any]:
    """One round now (``seal run``, for embedded logs or cron): evolve if due, recording the
    closing epoch's seal; then the status."""
    step = advance(alog, now)
    out = status(alog, now)
    out["round"] = {"evolved": step.epoch != step.epoch_before, "from_epoch": step.epoch_before,
                    "to_epoch": step.epoch, "recorded_index": step.recorded,
                    "skipped": list(step.skipped) if step.skipped else None}
    return out


def _time(unix: int) -> str:
    return format_time(datetime.fromtimestamp(unix, UTC))


# -- verification ------------------------------------------------------------------------------

class _Target(msgspec.Struct):
    id: str | None = None
    type: str | None = None


class _SealEvent(msgspec.Struct):
    action: str = ""
    target: _Target | None = None
    received_at: str = ""


_decoder = msgspec.json.Decoder(_SealEvent)


@dataclass(frozen=True, slots=True)
class _Found:
    index: int
    target: str
    time: str


def _recorded(store: EntryLog, size: int) -> Iterator[_Found]:
    """Every ``sealtrail.seal`` entry below ``size``, in log order (a byte search skips
    chunks without one; retired entries are empty and skipped)."""
    for chunk in store.iter_chunks(0, size):
        if _NEEDLE not in chunk.data:
            continue
        try:
            leaves = chunk.leaves()
        except ValueError:
            continue  # broken framing: the tree's verification names it
        for k, leaf in enumerate(leaves):
            index = chunk.start + k
            if index >= size or _NEEDLE not in leaf:
                continue
            try:
                ev = _decoder.decode(leaf)
            except (msgspec.DecodeError, msgspec.ValidationError):
                continue
            if ev.action == ACTION and ev.target is not None and ev.target.id is not None:
                yield _Found(index, ev.target.id, ev.received_at)


@dataclass(frozen=True, slots=True)
class SealReport:
    """What :func:`verify_seals` found (every seal verified, else it raised)."""

    seals: int                 # recorded seals checked
    last_epoch: int            # the last sealed epoch
    last_size: int             # the size it sealed: entries 0..last_size-1 are protected
    last_index: int            # the index of its entry
    last_time: str             # when it was recorded (its entry's received_at)
    last_epoch_end: str        # when that epoch ended
    size: int                  # the log's verified size
    gaps: tuple[tuple[int, int], ...] = ()  # epochs without a seal between recorded ones
    epoch_now: int | None = None  # the epoch by the verifier's clock
    key: core.SealKey | None = field(default=None, repr=False)

    @property
    def unsealed(self) -> int:
        """Entries past the last seal (not protected yet)."""
        return self.size - self.last_size

    def to_json(self) -> dict[str, Any]:
        """The report for ``verify --json``."""
        return {"ok": True, "seals": self.seals, "last_epoch": self.last_epoch,
                "last_size": self.last_size, "last_index": self.last_index,
                "last_time": self.last_time, "last_epoch_end": self.last_epoch_end,
                "gaps": [list(g) for g in self.gaps], "unsealed": self.unsealed,
                "epoch_now": self.epoch_now}

    def summary(self) -> str:
        """Lines for people."""
        lines = [f"SEALED: {self.seals} recorded seals verify under the seal key; the last, "
                 f"epoch {self.last_epoch} (ended {self.last_epoch_end}, recorded at index "
                 f"{self.last_index}, {self.last_time}), seals entries 0..{self.last_size - 1}"
                 if self.last_size else
                 f"SEALED: {self.seals} recorded seals verify under the seal key; the last, "
                 f"epoch {self.last_epoch}, seals an empty log"]
        for a, b in self.gaps:
            span = f"epoch {a}" if a == b else f"epochs {a}..{b}"
            lines.append(f"GAP: {span} have no seal (the host was down, or their seals were "
                         "dropped with the entries after them: entries recorded then are "
                         f"protected only from the next seal, epoch {b + 1})")
        if self.unsealed:
            lines.append(f"NOT YET SEALED: {self.unsealed} entries past the last seal "
                         f"(indexes {self.last_size}..{self.size - 1}): the current key is "
                         "on the host, so nothing protects them from it yet")
        if self.epoch_now is not None and self.epoch_now > self.last_epoch + 1:
            now = (f"the key's {self.key.epochs} epochs are over" if self.key is not None
                   and self.epoch_now >= self.key.epochs else f"the key is in epoch "
                   f"{self.epoch_now}")
            lines.append(f"note: by this machine's clock {now}; no seal since epoch "
                         f"{self.last_epoch} (is the key evolving? 'sealtrail seal status')")
        return "\n".join(lines)


def _why_not(rec: core.Recorded, root: bytes, link: bytes, where: str,
             prev: tuple[_Found, core.Seal] | None) -> str:
    """Why a recorded seal does not verify, from the hints it names (the signature decides;
    the hints only say which input differs). The link first: a seal dropped from between
    also changes the tree (its entry was in it), while a changed entry leaves the link."""
    if not hmac.compare_digest(rec.prev_hint, link[:core.HINT]):
        before = (f"the previous recorded seal (epoch {prev[1].epoch}, index {prev[0].index})"
                  if prev is not None else "no seal (it is the first)")
        return (f"the seal chain is broken: {where} follows a seal that is not {before}: a "
                "recorded seal was dropped or changed")
    if not hmac.compare_digest(rec.root_hint, root[:core.HINT]):
        since = prev[1].size if prev is not None else 0
        return (f"the log's tree at size {rec.size} contradicts {where}: entries "
                f"{since}..{rec.size - 1} were changed after epoch {rec.epoch} sealed them "
                "(the seal before it still holds), and re-signed")
    return (f"{where} does not verify under that epoch's key (forged, or altered; an "
            "attacker holding the host's current key cannot sign a past epoch)")


def verify_seals(store: EntryLog, directory: Path, key: core.SealKey, *, origin: str,
                 size: int, now: datetime | None = None) -> SealReport:
    """Verify the recorded seals of a log whose tree (first ``size`` entries) verified.

    Raises SealKeyMismatchError when ``key`` is not this log's seal key (another origin, or
    ``seal.pub`` holds other keys); TamperError (kind ``seal``, the index of the seal's entry)
    when a seal does not verify, the chain is broken or does not start at epoch 0, or the tree
    contradicts a seal; returns the report otherwise.
    """
    if key.origin != origin:
        raise SealKeyMismatchError(f"the seal key given is for {key.origin!r}; this log's "
                                   f"origin is {origin!r}")
    try:
        public = _read_public(directory)
    except ConfigError as exc:
        raise TamperError("seal", 0, f"{exc}: without it no seal can be checked (the "
                          "seal key commits to these keys; restore the file from the log's "
                          "copy, it is public)") from exc
    except FormatError as exc:
        raise TamperError("seal", 0, f"{exc}: no seal can be checked") from exc
    if public.key != key:
        raise SealKeyMismatchError(
            f"the seal key given is not the one whose public keys are in "
            f"{directory / SEAL_PUB_FILE} ({public.key.format()})")
    keys = public.tree.keys
    seals = 0
    link = core.NO_LINK
    prev: tuple[_Found, core.Seal] | None = None
    gaps: list[tuple[int, int]] = []
    for found in _recorded(store, size):
        at = found.index
        try:
            rec = core.Recorded.parse(found.target)
        except FormatError as exc:
            raise TamperError("seal", at, f"the seal recorded at index {at} is malformed: "
                              f"{exc}") from exc
        where = f"the seal of epoch {rec.epoch} recorded at index {at}"
        # 1. Its place in the chain: from the epoch-0 anchor, epochs and sizes never going
        #    back, a size the entry comes after, an epoch the seal key has.
        if rec.epoch >= key.epochs:
            raise TamperError("seal", at, f"{where} names an epoch past the seal key's "
                              f"{key.epochs}")
        if prev is None and rec.epoch != 0:
            raise TamperError("seal", at, f"the first recorded seal is {where}, not the "
                              "epoch-0 anchor recorded at seal init: the seals before it were "
                              "dropped")
        if prev is not None and (rec.epoch < prev[1].epoch or rec.size < prev[1].size):
            raise TamperError("seal", at, f"{where} goes back (epoch or size) from the seal "
                              f"of epoch {prev[1].epoch} before it at index {prev[0].index}")
        if rec.size > at:
            raise TamperError("seal", at, f"{where} claims size {rec.size}, past its own "
                              "entry")
        # 2. The signature, over the tree as it is and the link of the seal before it.
        root = root_at(store, rec.size)
        seal = rec.seal(root, link)
        try:
            seal.verify(origin, keys[rec.epoch])
        except SignatureError as exc:
            raise TamperError("seal", at, _why_not(rec, root, link, where, prev)) from exc
        if prev is not None and rec.epoch > prev[1].epoch + 1:
            gaps.append((prev[1].epoch + 1, rec.epoch - 1))
        link = core.link(origin, seal)
        prev = (found, seal)
        seals += 1
    if prev is None:
        raise TamperError("seal", 0, "the log holds no recorded seal: it was never sealed, or "
                          "its seals were removed")
    found, seal = prev
    return SealReport(seals, seal.epoch, seal.size, found.index, found.time,
                      _time(key.epoch_start(seal.epoch + 1)), size, tuple(gaps),
                      None if now is None else key.epoch_at(now), key)
