"""Preparing large appends in worker processes, so the costly per-event work uses every core.

Prepare (:mod:`sealtrail.log.ingest`: validate, redact, seal, encode, hash) is pure: it
writes nothing and needs only the log's settings, its keyring and a read handle for subject
keys. A :class:`PreparePool` runs it on parts of one ``append_many`` call in N processes
(``AuditLog.open(..., workers=N)``; off by default); the caller's process then sequences the
prepared leaves as it does its own. Nothing crosses a process boundary but the events
(MessagePack), the prepared leaves, hashes, tokens and proposed subject keys: every worker
opens the keyring itself, with the key-encryption key the log was opened with.

What a worker cannot see is settled by the commit (:meth:`AuditLog._settle`): two parts that
met the same new subject proposed two keys -- the first part's is kept and the other part's
events are sealed again under it; an erasure that happened meanwhile makes every event sealed
under a subject key be sealed again.

A worker that dies (kill -9) loses nothing: nothing was stored for the call yet. The pool is
started again and the call prepares in its own process instead.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import msgspec

from sealtrail.core.errors import ConfigError, KeyringError, TamperError, ValidationError
from sealtrail.core.event import Event
from sealtrail.core.policy import FieldPolicy
from sealtrail.log.ingest import Gate, Request, prepare, redactor_for
from sealtrail.log.keyring import KeyEncryptionKey, Keyring, KeyringHome
from sealtrail.log.protect import Protector, Sealing
from sealtrail.store.protocol import Store

PART: Final = 500      # events per part handed to a worker
MIN_EVENTS: Final = 2 * PART  # smaller calls prepare in the caller's process
ORPHAN_CHECK: Final = 0.5  # seconds between a worker's checks that its parent still lives
GIVE_UP: Final = 3         # pools in a row that failed before their first answer: stop trying
PART_TIMEOUT: Final = 30.0  # seconds a call waits for its parts at least (more for big calls)
DEATH_CHECK: Final = 0.25  # seconds between a waiting call's checks that its workers live

_log = logging.getLogger("sealtrail.workers")
_events = msgspec.msgpack.Decoder(list[Event])


@dataclass(frozen=True, slots=True)
class WorkerSpec:
    """What a worker needs to prepare for one log (picklable)."""

    directory: Path
    origin: str
    policy: tuple[str, ...]       # the sealed paths
    encrypted: bool
    redaction: str
    kek: KeyEncryptionKey | None  # None: locked (or unencrypted)
    keyring_home: KeyringHome | None  # where the keyring is kept (None: locked/unencrypted)
    opener: Callable[[], Store]   # a read handle of the log's store
    locked_reason: str


class _Worker:
    """One worker process's side: the log's redactor and sealing side."""

    def __init__(self, spec: WorkerSpec) -> None:
        keyring = None
        if spec.encrypted and spec.kek is not None and spec.keyring_home is not None:
            keyring = Keyring.load(spec.keyring_home, spec.origin, spec.kek)
        self.keyring = keyring
        self.protector = (Protector(spec.origin, FieldPolicy.parse(list(spec.policy)), keyring,
                                    spec.opener()) if spec.encrypted else None)
        self.gate = Gate(redactor_for(spec.redaction, keyring), self.protector,
                         spec.locked_reason)

    def follow(self) -> bool:
        """Re-read the keyring if another process rotated it (seal under the key in force);
        False when it no longer opens with this worker's key-encryption key."""
        keyring = self.keyring
        if keyring is None:
            return True
        try:
            keyring.follow()
        except (KeyringError, TamperError):
            return False  # the caller prepares in its own process, which says why
        return True


_WORKER: _Worker | None = None


def _start(spec: WorkerSpec, parent: int) -> None:
    global _WORKER  # noqa: PLW0603 - one per worker process, set by the pool's initializer
    # A worker whose parent died (kill -9) would wait for work forever, holding the parent's
    # pipes open: it leaves as soon as it sees it has been handed to another parent. The
    # parent's pid comes from the parent: one that died while this worker was still starting
    # up is already gone by now.
    if os.getppid() != parent:
        os._exit(0)
    threading.Thread(target=_leave_with, args=(parent,), name="sealtrail-orphan-watch",
                     daemon=True).start()
    _WORKER = _Worker(spec)


def _leave_with(parent: int) -> None:
    while True:
        time.sleep(ORPHAN_CHECK)
        if os.getppid() != parent:
            os._exit(0)


Prepared = tuple[bytes, list[bytes], list[str], frozenset[bytes], list[bytes], list[bytes],
                 Sealing | None]


def _prepare_part(payload: bytes, now_ms: int, received: str
                  ) -> tuple[str, Prepared | tuple[str, str, int]]:
    """Prepare one part (in a worker): ``ok`` and what the request needs, or the refusal."""
    worker = _WORKER
    if worker is None:
        raise ConfigError("worker not started")
    if not worker.follow():
        return "stale", ("the keyring was re-wrapped under another key", "", -1)
    events = msgspec.msgpack.decode(payload)
    try:
        req = prepare(events, worker.gate, now_ms, received)
    except ValidationError as exc:
        return "invalid", (exc.field, exc.message, getattr(exc, "position", -1))
    except KeyringError as exc:
        return "keyring", (str(exc), "", -1)
    if req is None:
        return "ok", (msgspec.msgpack.encode([]), [], [], frozenset(), [], [], None)
    return "ok", (msgspec.msgpack.encode(req.events), req.ids, req.texts, req.generated,
                  req.leaves, req.hashes, req.sealing)


class PreparePool:
    """N worker processes preparing parts of large appends for one log."""

    def __init__(self, workers: int, spec: WorkerSpec) -> None:
        if workers < 2:
            raise ConfigError(f"workers={workers}: a pool needs at least 2 (1 prepares in the "
                              "caller's process)")
        self.workers = workers
        self._spec = spec
        self._pool: ProcessPoolExecutor | None = None
        self._failures = 0  # pools in a row that failed before answering once
        self.disabled = ""  # why the pool is no longer used (every call prepares in-process)

    def _executor(self) -> ProcessPoolExecutor:
        if self._pool is None:
            # spawn: a worker inherits no thread, lock or database handle of this process.
            self._pool = ProcessPoolExecutor(self.workers,
                                             mp_context=multiprocessing.get_context("spawn"),
                                             initializer=_start,
                                             initargs=(self._spec, os.getpid()))
        return self._pool

    @property
    def kek(self) -> KeyEncryptionKey | None:
        """The key-encryption key the workers open the keyring with."""
        return self._spec.kek

    def pids(self) -> list[int]:
        """The worker processes' ids (started on first use)."""
        pool = self._pool
        return sorted(getattr(pool, "_processes", {}) or {}) if pool is not None else []

    def prepare(self, events: Sequence[Event | Mapping[str, Any]], now_ms: int,
                received: str) -> Request | None:
        """One request for ``events``, prepared in parts by the workers; None when the pool
        cannot take them (the caller prepares in its own process: a worker died, or an
        event does not pack)."""
        if self.disabled:
            return None
        try:
            payloads = [msgspec.msgpack.encode(list(events[i:i + PART]))
                        for i in range(0, len(events), PART)]
        except (TypeError, OverflowError, msgspec.EncodeError):
            return None  # not plain data: let the in-process path name the bad field
        try:
            pool = self._executor()
            futures = [pool.submit(_prepare_part, payload, now_ms, received)
                       for payload in payloads]
            results = self._results(pool, futures, PART_TIMEOUT + 0.01 * len(events))
        except (BrokenProcessPool, OSError, TimeoutError) as exc:
            self._reset()
            self._failures += 1
            if self._failures >= GIVE_UP:
                # Workers that cannot even start (a script without the __main__ guard, a
                # keyring they cannot open): stop paying for a pool on every call.
                self.disabled = f"{self._failures} pools in a row failed: {exc}"
                _log.warning("prepare workers disabled (%s): every call prepares in this "
                             "process", self.disabled)
            else:
                _log.warning("prepare workers failed (%s): preparing in this process; the "
                             "pool starts again on the next call", exc)
            return None
        self._failures = 0
        if any(status == "stale" for status, _ in results):
            self._reset()  # started again with the keyring as it is now
            return None
        return _merge(results)

    @staticmethod
    def _results(pool: ProcessPoolExecutor, futures: list[Future[tuple[str, Any]]],
                 timeout: float) -> list[tuple[str, Any]]:
        """The parts' results, waiting ``timeout`` seconds in all (one deadline for the
        call, not one per part). A worker that died fails the call at once: the executor
        notices a dead worker itself, but one killed while it held the pool's queue lock
        can leave the executor (and so this call) waiting for good; its exit is seen here
        within :data:`DEATH_CHECK` seconds and the call then prepares in-process."""
        deadline = time.monotonic() + timeout
        pending = set(futures)
        while pending:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"the workers did not answer within {timeout:.0f} s")
            _, pending = wait(pending, timeout=min(left, DEATH_CHECK))
            if pending:
                dead = _dead(pool)
                if dead:
                    raise BrokenProcessPool(f"prepare worker(s) {dead} died")
        return [f.result() for f in futures]

    def _reset(self) -> None:
        pool = self._pool
        if pool is not None:
            self._pool = None
            for proc in list((getattr(pool, "_processes", None) or {}).values()):
                proc.kill()  # a stuck worker must not outlive its pool
            # A worker killed while writing its result leaves half a message in the result
            # pipe, and the executor's thread waits in recv() for the rest for good: the
            # interpreter then never exits (it joins that thread). With every worker dead,
            # closing this process's write end leaves the pipe without writers, so that
            # recv() ends (EOF) and the thread with it.
            writer = getattr(getattr(pool, "_result_queue", None), "_writer", None)
            if writer is not None:
                with contextlib.suppress(OSError):
                    writer.close()
            pool.shutdown(wait=False, cancel_futures=True)

    def close(self) -> None:
        """Stop the workers. A pool one of whose workers died is killed, not waited for:
        its executor may be wedged for good (see :meth:`_results`)."""
        pool = self._pool
        if pool is None:
            return
        if _dead(pool):
            self._reset()
            return
        self._pool = None
        pool.shutdown(wait=True, cancel_futures=True)


def _dead(pool: ProcessPoolExecutor) -> list[int]:
    """The pool's worker processes that have exited (a killed one, say)."""
    return [pid for pid, proc in (getattr(pool, "_processes", None) or {}).items()
            if proc.exitcode is not None]


def _merge(results: list[tuple[str, Any]]) -> Request:
    """One request from the parts, in order; a part's refusal is raised naming the event by
    its place in the whole call."""
    req = Request([], [], [], frozenset())
    packed: list[bytes] = []
    generated: set[bytes] = set()
    sealing: Sealing | None = None
    for k, (status, body) in enumerate(results):
        offset = k * PART
        if status == "invalid":
            field_name, message, pos = body
            raise _shifted(field_name, message, pos, offset)
        if status == "keyring":
            raise KeyringError(body[0])
        events, ids, texts, gen, leaves, hashes, part_sealing = body
        packed.append(events)
        req.ids.extend(ids)
        req.texts.extend(texts)
        generated.update(gen)
        req.leaves.extend(leaves)
        req.hashes.extend(hashes)
        if part_sealing is not None:
            sealing = part_sealing if sealing is None else sealing.join(part_sealing, offset)
    req.generated = frozenset(generated)
    req.sealing = sealing
    req.unpack = lambda: [ev for part in packed for ev in _events.decode(part)]
    return req


def _shifted(field_name: str, message: str, pos: int, offset: int) -> ValidationError:
    """A part's refusal of its event ``pos``, named by the event's place in the call."""
    prefix = f"events[{pos}]"
    if pos >= 0 and field_name.startswith(prefix):
        field_name = f"events[{pos + offset}]" + field_name[len(prefix):]
    exc = ValidationError(field_name, message)
    if pos >= 0:
        exc.position = pos + offset
    return exc


def default_workers() -> int:
    """The number of cores (what ``workers=0`` means)."""
    return os.cpu_count() or 1
