"""``AuditLog``: the embedded, tamper-evident audit trail — a facade over the engine's parts.

Appends are prepared in the caller's thread (``log/ingest.py``), then committed by a *group
commit* (``log/groupcommit.py``): whichever caller finds no commit in progress becomes the
leader and commits every queued request in one transaction (one fsync, one checkpoint
signature); the others wait and get their receipts. Each request is atomic: all of its events
are stored, or none.

Commit, in order (markers in :meth:`AuditLog._commit_batch`; ``docs/architecture.md`` draws it):
1. take the write lock; if the head is new to us (first commit, or another process appended),
   check it is the one this log signed, then reload the tree edge and the recent ids;
2. drop events whose id is already in the log (``log/dedupe.py``: the original receipt);
3. place, seal or encode and hash each request's events, each request in its own savepoint
   (``log/sequencer.py``), then extend the tree and cut the chunks;
4. sign a checkpoint for the new size;
5. write keys and blind rows, chunks, node blocks, id index, kept checkpoint, and the head by
   compare-and-swap; commit (fsync);
6. only then adopt the new in-memory edge and hand out receipts.

The data directory and the store are opened by ``log/datadir.py``; proofs and tiles are
``log/proving.py``; erasure, holds and rotation ``log/subjects.py``; retention's changes are
typed values applied by :meth:`AuditLog.commit_change` (``log/changes.py``).
"""

from __future__ import annotations

import contextlib
import copy
import hmac
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final, Self

from sealtrail.core import canonical
from sealtrail.core.blind import BLIND_FIELDS
from sealtrail.core.checkpoint import Checkpoint, SignedCheckpoint, open_checkpoint
from sealtrail.core.errors import (
    ConfigError,
    KeyringError,
    PolicyError,
    SealtrailError,
    StorageError,
    TamperError,
    ValidationError,
    VerificationError,
)
from sealtrail.core.event import Event, validate_event
from sealtrail.core.note import Signer, Verifier
from sealtrail.core.policy import FieldPolicy
from sealtrail.core.proofs import ConsistencyProof, InclusionProof
from sealtrail.core.receipt import Receipt
from sealtrail.core.redact import Finding
from sealtrail.core.reserved import OWN_SERVICE
from sealtrail.core.tiles import TileRef
from sealtrail.core.timefmt import format_time, unix_micros
from sealtrail.log import changes, proving, subjects
from sealtrail.log.changes import Change
from sealtrail.log.datadir import (
    DB_FILE,
    LOG_NAME,
    Clock,
    OpenSettings,
    StoreWrapper,
    keyring_home,
    log_dir,
    newer_reason,
    open_log,
    system_clock,
)
from sealtrail.log.dedupe import IdLookup
from sealtrail.log.groupcommit import GroupCommit
from sealtrail.log.headmemory import HeadMemory, memory_path
from sealtrail.log.idindex import (
    late_window,
)
from sealtrail.log.indexing import Indexed, Indexer
from sealtrail.log.ingest import (
    MAX_BATCH,
    Gate,
    Request,
    prepare,
    redactor_for,
    reseal,
)
from sealtrail.log.keyring import KeyEncryptionKey, Keyring
from sealtrail.log.protect import UNINDEXED_KEY, NewKeys, Protector
from sealtrail.log.sequencer import BatchPlan, Slot, plan_commit
from sealtrail.log.sequencer import write as write_commit
from sealtrail.log.settings import (
    SETTINGS_META,
    Fixed,
    SettingRecord,
    check_stored,
    digest,
    fixed_from_meta,
    signed_fixed,
    target_opener,
)
from sealtrail.log.tree import (
    TreeEdge,
)
from sealtrail.log.verify import (
    Increment,
    VerifyReport,
    increment_at,
    setting_records,
    stored_holds,
    verify_increment,
    verify_log,
)
from sealtrail.log.workers import MIN_EVENTS, PreparePool, WorkerSpec, default_workers
from sealtrail.store.protocol import KeptCheckpoint, State, Store

if TYPE_CHECKING:
    from sealtrail.log.derived import DerivedReport



# The engine's public names (some defined in the modules it is made of).
__all__ = ["DB_FILE", "LOG_NAME", "MAX_BATCH", "READ_ACTIONS", "READ_ROLES", "AuditLog",
           "Clock", "Entry", "Receipt", "log_dir", "system_clock"]

_HOST = socket.gethostname()[:255] or "localhost"
# The kinds of read that are recorded (one name each, whichever face serves the read) and
# the roles a reader can have (API key roles, and the CLI's operating-system user).
READ_ACTIONS: Final = ("audit.search", "audit.entries.read", "audit.export",
                       "audit.subject_export")
READ_ROLES: Final = ("reader", "auditor", "admin", "ingest", "operator")


_log = logging.getLogger("sealtrail")
_memory_warned: set[str] = set()


def _warn_memory(exc: StorageError | TamperError) -> None:
    """The head memory could not be written (a read-only directory, a full disk): say so once
    per problem; the entries themselves are committed."""
    text = str(exc)
    if text not in _memory_warned:
        _memory_warned.add(text)
        _log.warning("sealtrail: %s (rollback detection relies on an older head until it can "
                     "be written)", text)


@dataclass(frozen=True, slots=True)
class Entry:
    """One stored entry: its index and exact leaf bytes."""

    index: int
    leaf: bytes

    @property
    def retired(self) -> bool:
        """True when retention removed the entry's body (its leaf hash stays in the tree)."""
        return not self.leaf

    def event(self) -> dict[str, Any]:
        """The event as a JSON object (the leaf without its format version).

        A retired entry (purged or archived by retention) reads as ``{"retired": true}``.
        """
        if not self.leaf:
            return {"retired": True}
        obj = canonical.leaf_object(self.leaf)
        obj.pop("v", None)
        return obj


class AuditLog:
    """A tamper-evident audit log in a data directory. Use :meth:`open`."""

    def __init__(self, directory: Path, store: Store, signer: Signer, *, origin: str,
                 name: str, clock: Clock, keyring: Keyring | None = None,
                 store_url: str | None = None) -> None:
        self.directory = directory
        self.store_url = store_url  # None: SQLite under directory; else PostgreSQL's URL
        self.name = name
        self.origin = origin
        self._store = store
        self._signer = signer
        self._clock = clock
        # The newest head this machine saw the log sign, kept outside the database: a log
        # moved backwards or forked is refused (log/headmemory.py).
        self.head_memory = HeadMemory(memory_path(directory, origin), signer.verifier(),
                                      origin)
        # Appends are queued and committed together (log/groupcommit.py).
        self._group = GroupCommit(self._commit_batch)
        self._closed = False
        state = store.state()
        self._edge = TreeEdge.load(store, state.size)
        self._hwm = state.id_hwm
        # Exactly-once (log/dedupe.py): recent ids in memory, the id index behind a filter.
        self._ids = IdLookup(store, state.size, state.id_hwm)
        # The stored head is checked against its signature before the log first signs on top
        # of it (reads need no check: verify is how a reader finds tampering).
        self._head_checked = False
        meta = store.meta()
        # The settings this log runs with are the ones its key signed; when they cannot be
        # trusted the log still opens (to be verified and read) but refuses to append.
        self.settings_problem = ""
        try:
            fixed = signed_fixed(meta, signer.verifier(), origin)
        except TamperError as exc:
            self.settings_problem = exc.detail
            fixed = fixed_from_meta(meta)
        self.encrypted = fixed.encryption == "on"
        self.redaction = fixed.redaction
        policy = FieldPolicy.parse(fixed.policy.split(","))
        self._protector = (Protector(origin, policy, keyring, store) if self.encrypted
                           else None)
        # Blind-index rows are written after the commit, from a cursor (log/indexing.py).
        self._indexer = (Indexer(store, self._protector) if self._protector is not None
                         else None)
        self._integrated = threading.Condition()  # notified after each commit
        self._tx_owner: int | None = None  # the thread inside the commit transaction
        self.locked_reason = ""  # why an encrypted log's keyring is not open, if it is not
        # After erase_subject: whether the WAL (old pages with the key) was truncated; False
        # when a reader held it past the wait (the next checkpoint overwrites them).
        self.wal_purged = True
        # Which id-index rule this log was made with (log/idindex.py): late ids get exact rows.
        self._late_ms = late_window(meta)
        self._newer = newer_reason(meta)
        self._settings_checked: tuple[Any, ...] | None = None  # the state check_settings passed
        # The setting records read so far: (entries read, retired ranges then, records).
        self._setting_cache: tuple[int, tuple[Any, ...], list[SettingRecord]] | None = None
        self._redactor = redactor_for(self.redaction, keyring)
        self._pool: PreparePool | None = None  # worker processes for large appends

    # -- opening ---------------------------------------------------------------------------

    @classmethod
    def open(cls, data_dir: str | os.PathLike[str], log: str = "default", *,
             origin: str | None = None, create: bool = True,
             clock: Clock | None = None, passphrase: str | None = None,
             kek: KeyEncryptionKey | None = None, encryption: bool = True,
             policy: FieldPolicy | None = None, redaction: str = "mask",
             wrap_store: StoreWrapper | None = None, workers: int = 1,
             store: str | None = None) -> AuditLog:
        """Open a log, creating it (database, signing key, keyring) when ``create`` and new.

        ``origin`` names the log in its checkpoints (default ``sealtrail/<log>``); it is fixed
        when the log is created, as are ``encryption`` (on by default), the field ``policy``
        (default :meth:`FieldPolicy.default`) and ``redaction`` (``mask``, ``hash`` or ``off``).

        The keyring opens with ``kek``, else ``passphrase``, else the environment
        (``SEALTRAIL_PASSPHRASE``, or ``SEALTRAIL_KEK`` for a raw key). Without any, an
        encrypted log still opens, locked: verify, proofs and checkpoints work; fields read
        as sealed; appends raise KeyringError.

        ``store``: where the log's data lives — None (the default) for SQLite files under
        ``data_dir``, or a PostgreSQL URL (``postgresql://user@host/db``): the log's tables,
        keyring and rows are then in that database, shared by every node using it, while
        the signing key, head memory and archive stay under ``data_dir`` on this node
        (``log/datadir.py`` says what goes where).

        ``wrap_store`` wraps the store the log opens (fault-injection tests pass one).

        ``workers``: with 2 or more, ``append_many`` of a large batch prepares its events
        (validation, redaction, sealing, hashing) in that many worker processes
        (:mod:`sealtrail.log.workers`); 0 means one per core. Off (1) by default.
        """
        if workers < 0:
            raise ConfigError(f"workers={workers}: give 0 (one per core), 1 (off) or more")
        if redaction not in ("mask", "hash", "off"):
            raise ConfigError(f"redaction {redaction!r}: use mask, hash or off")
        settings = OpenSettings(passphrase, kek, encryption, policy or FieldPolicy.default(),
                                redaction)
        clock = clock or system_clock
        parts = open_log(data_dir, log, origin, create=create, clock=clock, settings=settings,
                         wrap=wrap_store, store_url=store)
        alog = cls(parts.directory, parts.store, parts.signer, origin=parts.origin,
                   name=parts.name, clock=clock, keyring=parts.keyring,
                   store_url=parts.store_url)
        alog.locked_reason = parts.locked
        count = default_workers() if workers == 0 else workers
        if count > 1:
            alog.start_workers(count)
        try:
            subjects.record_interrupted_rotation(alog)
        except (StorageError, VerificationError):
            # A read-only copy, or a log that fails its checks: nothing can be recorded now,
            # and reads and verify must still work (the next writable open records it).
            pass
        except BaseException:
            alog.close()
            raise
        return alog

    def start_workers(self, count: int) -> None:
        """Prepare large appends in ``count`` worker processes from now on."""
        keyring = self._protector.keyring if self._protector is not None else None
        opener = self._store.opener()
        if opener is None:
            raise ConfigError("this log's store cannot be opened from another process: "
                              "prepare in this process (workers=1)")
        spec = WorkerSpec(self.directory, self.origin, self.sealed_paths, self.encrypted,
                          self.redaction, keyring.kek if keyring is not None else None,
                          keyring.home if keyring is not None else None,
                          opener, self.locked_reason)
        if self._pool is not None:
            self._pool.close()
        self._pool = PreparePool(count, spec)

    @property
    def workers(self) -> PreparePool | None:
        """The worker processes preparing large appends (None: in the caller's process)."""
        return self._pool

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        """Close the store. Everything acknowledged is already on disk."""
        if not self._closed:
            self._closed = True
            if self._pool is not None:
                self._pool.close()
            if self._indexer is not None:
                self._close_indexer(self._indexer)
            try:
                self.head_memory.flush()
            except (StorageError, TamperError) as exc:
                _warn_memory(exc)
            finally:
                self._store.close()
                keyring = self._protector.keyring if self._protector is not None else None
                if keyring is not None:
                    keyring.home.close()

    def _close_indexer(self, indexer: Indexer) -> None:
        """Stop the index step, writing what it has first (best effort: what it leaves, the
        next run rebuilds from the entries)."""
        indexer.close()
        try:
            indexer.run()
        except (SealtrailError, OSError) as exc:
            _log.warning("index step at close: %s (the next run catches up)", exc)
        if self._protector is not None:
            self._protector.close()

    @property
    def store(self) -> Store:
        """The underlying store (for the verifier and tools; never write to it directly)."""
        return self._store

    @property
    def verifier(self) -> Verifier:
        """The key that verifies this log's checkpoints."""
        return self._signer.verifier()

    def vkey(self) -> str:
        """The verifier key text (``name+id+key``)."""
        return self.verifier.format()

    def without_unsealable(self, event: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
        """``event`` as it can be appended now, and the fields left out: an encrypted log
        whose keyring is locked cannot seal, so its personal fields (this log's policy) are
        dropped and its ``reason`` says so; otherwise the event is unchanged. For records
        sealtrail must write even then (a console sign-in), rather than not at all."""
        plain = copy.deepcopy(dict(event))
        if self._protector is None or self._protector.unlocked:
            return plain, []
        taken = self._protector.policy.take(plain)
        plain.pop("subjects", None)
        dropped = [path for path, _ in taken]
        if dropped and "reason" not in self._protector.policy.paths:
            said = plain.get("reason")
            plain["reason"] = ((f"{said}; " if said else "") + "recorded without "
                               f"{', '.join(sorted(dropped))}: the keyring is locked")
        return plain, dropped

    @property
    def size(self) -> int:
        """The committed tree size (re-read, so appends by other processes count)."""
        return self._store.state().size

    # -- appending -------------------------------------------------------------------------

    def append(self, event: Event | Mapping[str, Any]) -> Receipt:
        """Append one event durably; return its receipt (the original one for a known id)."""
        return self.append_many([event])[0]

    def append_many(self, events: Iterable[Event | Mapping[str, Any]]) -> list[Receipt]:
        """Append events atomically (all or none) and durably; receipts in input order.

        Raises ValidationError (its ``field`` names the event's position and field) before
        anything is stored if any event is invalid.
        """
        return self._append(events)

    def append_own(self, events: Iterable[Mapping[str, Any]]) -> list[Receipt]:
        """Append events sealtrail writes itself (the monitor's ``alert.*``): the only way,
        with :meth:`commit_with`, to write a reserved action (:mod:`sealtrail.core.reserved`)."""
        return self._append([{"source": self.own_source, **e} for e in events], own=True)

    def append_validated(self, events: list[Event]) -> list[Receipt]:
        """``append_many`` for events that came from ``validate_event`` / ``parse_event``.

        Skips the second validation (the service validates a request whole, to report every
        bad event at once). Passing an Event built any other way bypasses the checks that
        msgspec does not run at construction: do not.
        """
        return self._append(events, validated=True)

    def _append(self, events: Iterable[Event | Mapping[str, Any]],
                hook: Callable[[int], None] | None = None, *,
                validated: bool = False, own: bool = False,
                adopting: bool = False) -> list[Receipt]:
        if self._closed:
            raise ConfigError("the log is closed")
        if self._newer:
            raise ConfigError(self._newer)
        if self.settings_problem and not adopting:
            raise TamperError("settings", 0, f"{self.settings_problem}: refusing to append")
        if self._protector is not None:
            self._follow_keyring()  # sealing happens now: under the key in force
        gate = Gate(self._redactor, self._protector, self.locked_reason, own)
        now = self._clock()
        now_ms, received = unix_micros(now) // 1000, format_time(now)
        req = None
        pool = self._pool
        keyring = self.keyring
        if pool is not None and keyring is not None and pool.kek is not keyring.kek:
            self.start_workers(pool.workers)  # the keyring was re-wrapped under a new KEK
            pool = self._pool
        if (pool is not None and hook is None and not own and isinstance(events, Sequence)
                and MIN_EVENTS <= len(events) <= MAX_BATCH):
            req = pool.prepare(events, now_ms, received)
        if req is None:
            req = prepare(events, gate, now_ms, received, validated=validated)
        if req is None:
            return []
        req.hook = hook
        return self._submit(req)

    def _require_unlocked(self) -> None:
        if self._protector is not None and not self._protector.unlocked:
            raise KeyringError(self.locked_reason or "the keyring is locked")

    def redact_preview(self, event: Event | Mapping[str, Any]
                       ) -> tuple[dict[str, Any], tuple[Finding, ...]]:
        """What this log's redaction would store for ``event`` (nothing is stored)."""
        ev = validate_event(event)
        if self._redactor is None:
            return ev.to_dict(), ()
        out, findings = self._redactor.redact(ev)
        return out.to_dict(), findings

    def _submit(self, req: Request) -> list[Receipt]:
        """Queue a prepared request for the group commit (log/groupcommit.py)."""
        return self._group.submit(req)

    def _commit(self, batch: list[Request]) -> None:
        """Commit a batch now (every request answered, whatever happens)."""
        self._group.commit(batch)

    def _commit_batch(self, batch: list[Request]) -> None:
        store = self._store
        protector, indexer = self._protector, self._indexer
        claimed: NewKeys = {}
        with store.transaction(), self._owning():
            # 1. The file is still the one we opened, and another process may have appended
            #    since we last looked.
            self.check_identity()
            state = store.state()
            if state.size != self._edge.size or not self._head_checked:
                self._catch_up(state)
            hwm = max(self._hwm, state.id_hwm)
            if protector is not None:
                self._follow_keyring()
                protector.refresh()
                if indexer is not None and any(req.hook is not None for req in batch):
                    # An engine change (erasure, retention) sees every entry indexed. If the
                    # step fails, the other requests of the batch do not: the change's own
                    # search runs it again and fails that request alone.
                    try:
                        with store.savepoint():
                            indexer.step()
                    except SealtrailError as exc:
                        _log.warning("index step before an engine change: %s", exc)
            # 2. Known ids: look up those that may be old, then dedupe within the batch.
            found = self._ids.existing(((req.ids, req.generated) for req in batch),
                                       self._edge.size)
            # 3. Sequence (log/sequencer.py): place every request's prepared leaves.
            edge = self._edge
            plan = BatchPlan(edge.size)
            placed: list[tuple[Request, list[Slot]]] = []
            for req in batch:
                mark = plan.mark()
                try:
                    if req.hook is None:
                        slots = self._place(req, plan, found, claimed)
                    else:
                        # A savepoint for a request with a hook (an engine step's own
                        # writes): if it fails, it leaves no trace, whatever it wrote.
                        with store.savepoint():
                            req.hook(plan.start + plan.mark())
                            slots = self._place(req, plan, found, claimed)
                except (PolicyError, ConfigError, ValidationError) as exc:
                    # This request alone fails; undo what it added to the batch.
                    plan.undo(mark)
                    req.error = exc
                    req.done = True
                    continue
                placed.append((req, slots))
            commit = plan_commit(plan, edge, hwm, self._late_ms)
            new_edge = commit.edge
            if plan.hashes:
                # 4. Checkpoint.
                note = self._signer.sign(Checkpoint(self.origin, new_edge.size,
                                                    new_edge.root()).format())
                # 5. Write; the commit at the end of the block fsyncs. No index rows: the
                #    index step writes them from the cursor (log/indexing.py).
                if protector is not None and UNINDEXED_KEY not in store.meta():
                    store.set_meta({UNINDEXED_KEY: str(plan.start)})
                write_commit(store, commit, note, state)
            if claimed and protector is not None:
                # The keys of requests that placed events (only those are claimed).
                store.put_subject_keys(protector.wrap_rows(claimed))
        # 6. Durable: adopt, remember the head outside the database, and answer.
        if protector is not None:
            protector.adopt(claimed)
        if plan.hashes:
            try:
                self.head_memory.remember(note, new_edge.size)
            except (StorageError, TamperError) as exc:
                # The entries are committed and are answered as such; an unwritable or
                # edited memory is reported (and found by verify), never a failed append.
                _warn_memory(exc)
        index, hashes = plan.start, plan.hashes
        self._ids.committed(index, plan.ids, commit.exact, new_edge.size)
        self._edge = new_edge
        self._hwm = commit.id_hwm
        rows: list[tuple[int, int]] = []
        for req, slots in placed:
            out: list[Receipt] = []
            for (ident_text, idx, dup), ident in zip(slots, req.ids, strict=True):
                if idx == -1:
                    out.append(found[ident])
                else:
                    out.append(Receipt(ident_text, idx, hashes[idx - index], new_edge.size,
                                       dup))
            if req.sealing is not None and req.sealing.tokens:
                rows.extend((slots[pos][1], tok) for pos, tok in req.sealing.tokens
                            if not slots[pos][2])
            req.receipts = out
            req.done = True
        if indexer is not None and plan.hashes:
            if not any(req.hook is not None for req, _ in placed):
                # (After an engine change -- an erasure -- the step rebuilds this commit's
                # rows from the entries as they now open, instead.)
                indexer.committed(Indexed(index, new_edge.size, rows))
            indexer.start()
        with self._integrated:
            self._integrated.notify_all()

    @contextlib.contextmanager
    def _owning(self) -> Iterator[None]:
        """Mark this thread as the one inside the commit transaction (its hooks may run the
        index step in it; any other thread must open a transaction of its own)."""
        self._tx_owner = threading.get_ident()
        try:
            yield
        finally:
            self._tx_owner = None

    def _place(self, req: Request, plan: BatchPlan, found: dict[bytes, Receipt],
               claimed: NewKeys) -> list[Slot]:
        """Settle a request's sealing (an encrypted log), then place its leaves. Its new
        subject keys are claimed only when it placed an event: a request of duplicates
        stores nothing, so a key only it used must not be written, nor cached as stored."""
        mine = (self._settle(req, self._protector, claimed)
                if self._protector is not None else {})
        slots = plan.add(req.ids, req.texts, req.leaves, req.hashes, found=found)
        if mine and any(not dup for _, _, dup in slots):
            claimed.update(mine)
        return slots

    def _settle(self, req: Request, protector: Protector, claimed: NewKeys) -> NewKeys:
        """Make a request's sealing current before it is placed (under the write lock).

        Its new subject keys are claimed for this commit -- insert or get: a subject that an
        earlier request of the commit, or another process, gave a key first keeps that key,
        and the request is sealed again under it. A request sealed before an erasure that
        used subject keys is sealed again too (its keys may be the destroyed ones).
        """
        sealing = req.sealing
        if sealing is None:
            return {}
        redo = set(sealing.redo)
        if sealing.keyed and sealing.epoch != protector.epoch:
            redo.update(pos for pos, _ in sealing.keyed)
        new = sealing.new_keys
        if new:
            stored = self._store.subject_keys_by_ref([ref for ref in new if ref not in claimed])
            lost = {ref for ref in new if ref in claimed or ref in stored}
            if lost:
                redo.update(pos for pos, refs in sealing.keyed if lost.intersection(refs))
                for ref in lost:
                    del new[ref]
        if redo:
            view = {**claimed, **new}
            reseal(req, protector, sorted(redo), view)
            return {ref: got for ref, got in view.items() if ref not in claimed}
        return new

    def _trusted_edge(self, state: State) -> TreeEdge:
        """The stored tree's edge, checked against the head checkpoint this log signed.

        The log never signs on top of state it did not sign itself: an entry slipped into the
        file, a rewritten tree or a head moved backwards make appends fail instead of being
        laundered into a new signed checkpoint.
        """
        if state.size < self._edge.size:
            raise TamperError("truncated", state.size, f"the log shrank from {self._edge.size} "
                              "entries: refusing to append; run sealtrail verify")
        edge, _ = self._signed_head(state, "refusing to append; run sealtrail verify")
        self.head_memory.check(self._store)  # not rolled back or forked behind our back
        return edge

    def _signed_head(self, state: State, then: str) -> tuple[TreeEdge, Checkpoint]:
        """The stored tree's edge and head checkpoint, checked: the head carries this log's
        signature and the stored tree has its root (TamperError ending with ``then``)."""
        edge = TreeEdge.load(self._store, state.size)
        try:
            cp = open_checkpoint(state.checkpoint or "", self.verifier, self.origin)
        except VerificationError as exc:
            raise TamperError("checkpoint", state.size, "the head checkpoint is not one this log "
                              f"signed: {then}") from exc
        if cp.size != state.size or not hmac.compare_digest(edge.root(), cp.root):
            raise TamperError("changed", min(cp.size, state.size), "the stored tree does not "
                              f"match the signed head: {then}")
        return edge, cp

    def _catch_up(self, state: State) -> None:
        """Another process appended (or the head is new to us): check it, reload edge and ids."""
        old = self._edge.size
        self._edge = self._trusted_edge(state)
        self._head_checked = True
        self._ids.follow(old, state.size, state.id_hwm)

    # -- reading ---------------------------------------------------------------------------

    def stored_notes(self) -> dict[str, str]:
        """The log's stored settings and notes (signed settings, retention policy, when it
        was last verified and up to what size): a copy, as stored (``verify`` checks them)."""
        return self._store.meta()

    def kept_checkpoints(self) -> list[KeptCheckpoint]:
        """The signed checkpoints the log keeps in its history (the first one and each
        crossing of 1024 entries), by size."""
        return list(self._store.iter_checkpoints())

    def checkpoint(self) -> SignedCheckpoint:
        """The latest signed checkpoint."""
        note = self._store.state().checkpoint
        if note is None:
            raise StorageError("the log has no checkpoint")
        return SignedCheckpoint(Checkpoint.parse(note[: note.rfind("\n\n") + 1]), note)

    def entries(self, start: int, end: int | None = None) -> Iterator[Entry]:
        """Raw entries ``start <= i < end`` in order (``end`` defaults to the size).

        The range is checked at the call (ConfigError), before the first entry is read, so a
        caller can record the read between asking and reading.
        """
        size = self.size
        end = size if end is None else end
        if not 0 <= start <= end:
            raise ConfigError(f"entries: need 0 <= start <= end, got start={start} end={end}")
        if end > size:
            raise ConfigError(f"entries: end {end} is past the log size {size}")
        return self._entries(start, end)

    def _entries(self, start: int, end: int) -> Iterator[Entry]:
        for chunk in self._store.iter_chunks(start, end):
            for k, leaf in enumerate(chunk.leaves()):
                if start <= chunk.start + k < end:
                    yield Entry(chunk.start + k, leaf)

    def entries_reversed(self, before: int | None = None) -> Iterator[Entry]:
        """Every entry (with index < ``before``, if given), newest first."""
        size = self.size if before is None else min(before, self.size)
        for chunk in self._store.iter_chunks_desc(size):
            leaves = chunk.leaves()
            for k in range(chunk.count - 1, -1, -1):
                if 0 <= chunk.start + k < size:
                    yield Entry(chunk.start + k, leaves[k])

    def record_access(self, actor: Mapping[str, Any], action: str, *, role: str,
                      details: Mapping[str, Any], results: int) -> Receipt:
        """Record a read of event content (a search, an export, entries) as an audit event.

        Every face that shows event content calls this *before* the content leaves: a read
        that cannot be recorded is not served. ``action`` is one of :data:`READ_ACTIONS` (one
        name per kind of read, whichever face serves it) and ``role`` the reader's role (an
        API key's role, ``operator`` for the CLI's operating-system user), which the built-in
        ``audit_access`` rule matches.
        """
        if action not in READ_ACTIONS:
            raise ConfigError(f"read action {action!r}: use one of {', '.join(READ_ACTIONS)}")
        if role not in READ_ROLES:
            raise ConfigError(f"reader role {role!r}: use one of {', '.join(READ_ROLES)}")
        event: dict[str, Any] = {"actor": dict(actor), "action": action, "outcome": "success",
                                 "category": "audit_access", "source": self.own_source,
                                 "target": {"type": "log", "id": self.name}}
        if self._protector is not None and not self._protector.unlocked:
            # Locked: the reader saw sealed fields only, and the details cannot be sealed;
            # record the read with no personal field (the only kind a locked log can write).
            event["reason"] = (f"{results} result(s) read by role {role} with the keyring "
                               "locked")
        else:
            event["metadata"] = {"role": role, "filter": dict(details), "results": results}
        return self._append([event], own=True)[0]

    # -- personal data: reading, searching, subjects, keys -----------------------------------

    def entry(self, index: int) -> Entry:
        """One entry by index (reads only its bytes)."""
        size = self.size
        if not 0 <= index < size:
            raise ConfigError(f"index {index} must be in 0..{size - 1}")
        leaf = self._store.entry_at(index)
        if leaf is None:
            raise TamperError("missing", index, "the entry is not in the store; run sealtrail "
                              "verify")
        return Entry(index, leaf)

    def read(self, entry: Entry) -> dict[str, Any]:
        """The entry's event with its sealed fields opened where this log's keyring allows.

        Fields whose subject key was erased are listed under ``erased``; a locked keyring
        leaves them under ``sealed`` (encrypted). Raises DecryptionError for an altered
        ciphertext (never returns garbage).
        """
        obj = entry.event()
        if self._protector is None or entry.retired:
            return obj
        return self._protector.reveal(entry.index, obj)

    def refresh_keys(self) -> None:
        """Forget cached subject keys if another process erased one (call before reads)."""
        if self._protector is not None:
            self._protector.refresh()

    def find(self, field: str, value: str, *, limit: int | None = None,
             before: int | None = None) -> list[int]:
        """Indexes of entries whose ``field`` equals ``value``, newest first (blind index).

        ``field`` is one of ``actor.id``, ``actor.ip``, ``target.id``, ``subject``. Tokens are
        64-bit, so a match is confirmed against the opened event by the caller (``read``).
        """
        if field not in BLIND_FIELDS:
            raise ConfigError(f"field {field!r} has no blind index; use one of "
                              f"{', '.join(BLIND_FIELDS)}")
        if self._protector is None:
            raise ConfigError("blind indexes exist only in encrypted logs; search by scanning")
        token = self._protector.blind().token(field, value)
        self.catch_up_index()
        end = self.size if before is None else min(before, self.size)
        return self._protector.index.lookup(token, end, limit)

    def catch_up_index(self) -> None:
        """Index every committed entry now (searches call it: none misses an entry the
        background index step has not reached yet)."""
        indexer = self._indexer
        if indexer is None or not indexer.pending():
            return
        if self._tx_owner == threading.get_ident():
            indexer.step()  # inside this thread's commit (an erasure's hook)
        else:
            indexer.run()

    def index_status(self) -> dict[str, int]:
        """How far the blind index has caught up: ``indexed`` entries of ``size``."""
        with self._store.snapshot():
            size = self._store.state().size
            cursor = self._indexer.cursor() if self._indexer is not None else None
        return {"indexed": size if cursor is None else min(cursor, size), "size": size}

    def wait_integrated(self, size: int, timeout: float | None = None) -> bool:
        """Wait until the log's signed checkpoint covers ``size`` entries (appends by any
        process count); False when ``timeout`` seconds pass first.

        Integration (the tree, its node blocks and the signed checkpoint) runs in the
        transaction that sequences the entries, so every receipt is already covered by the
        checkpoint of its ``tree_size``; this is how a caller holding only a size waits.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._integrated:
            while self.size < size:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return False
                # Another process's appends notify nobody here: look again now and then.
                self._integrated.wait(0.05 if left is None else min(left, 0.05))
        return True

    def subject_events(self, subject: str) -> Iterator[tuple[Entry, dict[str, Any]]]:
        """Every event naming ``subject`` (oldest first), opened (GDPR Art. 15 access)."""
        self.refresh_keys()
        for index in reversed(self.find("subject", subject)):
            entry = self.entry(index)
            ev = self.read(entry)
            if subject in (ev.get("subjects") or ()) or "subjects" in ev.get("erased", ()):
                yield entry, ev

    def subject_protector(self) -> Protector:
        """The sealing side of an encrypted, unlocked log (subjects, erasure and holds)."""
        if self._protector is None:
            raise ConfigError("subjects, erasure and holds need an encrypted log")
        self._require_unlocked()
        return self._protector

    def pseudonym(self, subject: str) -> str:
        """A subject's pseudonym (``ref:`` + keyed hash), or ``(withheld)`` without the key."""
        if self._protector is None or not self._protector.unlocked:
            return "(withheld)"
        return subjects.ref_text(self._protector.blind().subject_ref(subject))

    def subject_ref(self, subject: str) -> bytes:
        """The 16-byte reference of a subject (what holds and subject keys are filed under)."""
        return self.subject_protector().blind().subject_ref(subject)

    @property
    def keyring(self) -> Keyring | None:
        """The open keyring (None for an unencrypted or locked log); archives use its keys."""
        return self._protector.keyring if self._protector is not None else None

    @property
    def sealed_paths(self) -> tuple[str, ...]:
        """The field paths this log seals (empty for an unencrypted log)."""
        return self._protector.policy.paths if self._protector is not None else ()

    def now(self) -> datetime:
        """The log's clock (injected in tests, so retention can be moved through time)."""
        return self._clock()

    def sign_statement(self, text: str) -> str:
        """A signed note by the log's key over a statement that is not a checkpoint.

        Evidence bundles use it. The statement's first line must name what it is and must
        not be the log's origin, so no checkpoint verifier can ever accept it as a tree head.
        """
        first = text.split("\n", 1)[0]
        if first == self.origin or "/" not in first or "@" not in first:
            raise ConfigError("a statement's first line names its format (like "
                              "sealtrail.org/evidence-bundle@v1), never the log's origin")
        return self._signer.sign(text)

    @property
    def own_source(self) -> dict[str, str]:
        """The ``source`` of events sealtrail writes itself (its reads, erasures, receipts):
        every security event names its origin (PCI DSS 10.2.2)."""
        return {"service": OWN_SERVICE, "host": _HOST}

    def commit_with(self, event: Mapping[str, Any], hook: Callable[[int], None]) -> Receipt:
        """Append one event of the engine's own together with the store writes ``hook`` makes.

        Both commit in one transaction or neither does; ``hook`` gets the index the event
        will have and may refuse by raising PolicyError or ConfigError (the engine's own
        steps use it: log/subjects.py, and :meth:`commit_change`).
        """
        return self._append([{"source": self.own_source, **event}], hook, own=True)[0]

    def commit_change(self, event: Mapping[str, Any], change: Change) -> Receipt:
        """Append one event of the engine's own and apply ``change`` to the stored state in
        the same transaction (:func:`sealtrail.log.changes.apply` checks it still fits first;
        a refusal fails this request alone and stores nothing)."""
        store = self._store
        indexer = self._indexer

        def hook(at: int) -> None:
            if isinstance(change, changes.Retire) and indexer is not None:
                # The index step ran just before (when it could): entries past its cursor
                # have no rows yet, and emptied now, nothing could ever index them.
                cursor = indexer.cursor()
                if cursor is not None and any(end > cursor for _, end in change.ranges):
                    raise ConfigError(f"entries from {cursor} are not blind-indexed yet (the "
                                      "keyring is locked here): retention runs once a "
                                      "process with the keyring has indexed them")
            changes.apply(store, change, at)

        return self.commit_with(event, hook)

    # -- personal data use cases (log/subjects.py) ------------------------------------------

    def erase_subject(self, subject: str, *, reason: str, actor: Mapping[str, Any]) -> Receipt:
        """Crypto-shred one data subject (see :func:`sealtrail.log.subjects.erase`)."""
        return subjects.erase(self, subject, reason=reason, actor=actor)

    def hold_subject(self, subject: str, *, reason: str, actor: Mapping[str, Any]) -> Receipt:
        """Put a legal hold on a subject: erasure is refused until it is released."""
        return subjects.hold(self, subject, reason=reason, actor=actor)

    def release_subject(self, subject: str, *, reason: str, actor: Mapping[str, Any]
                        ) -> Receipt:
        """Release every open legal hold on a subject."""
        return subjects.release(self, subject, reason=reason, actor=actor)

    def holds(self, *, open_only: bool = True) -> list[dict[str, Any]]:
        """Legal holds: number, subject pseudonym, reason, since, released."""
        return subjects.holds(self, open_only=open_only)

    def rotate_keys(self, *, actor: Mapping[str, Any], new_kek: KeyEncryptionKey | None = None
                    ) -> str:
        """Start a new data key (see :func:`sealtrail.log.subjects.rotate_keys`); returns the
        new active key id."""
        return subjects.rotate_keys(self, actor=actor, new_kek=new_kek)

    def check_settings(self) -> None:
        """Raise TamperError unless every stored setting (signed statement, retention policy,
        legal holds, active key) is what the log's key signed and its own entries set.

        Irreversible steps (a purge, an archive, an erasure) call this before they trust a
        stored copy: ``verify`` would find the edit, but only after the evidence is gone. It
        reads the entries (a byte search skips chunks without setting entries; about a
        second per million entries) and remembers a pass until the log or a setting changes.
        """
        store = self._store
        with store.snapshot():
            state = store.state()
            meta = store.meta()
            holds = stored_holds(store)
            key = (state.size, state.checkpoint, tuple(sorted(meta.items())), tuple(holds))
            if key == self._settings_checked:
                return
            check_stored(meta, holds, self._setting_records(state.size), self.verifier,
                         self.origin, open_target=self.setting_target)
        self._settings_checked = key

    def setting_target(self, record: SettingRecord) -> str | None:
        """The target id of a setting entry an older version sealed, opened from its verified
        bytes with the keyring ("" when it has none, None while it stays sealed)."""
        if self._protector is None:
            return None
        return target_opener(self._protector.reveal)(record)

    def _setting_records(self, size: int) -> list[SettingRecord]:
        """:func:`setting_records` of the first ``size`` entries, read incrementally: the
        records this process already read are kept (entries are append-only), and read again
        from the start only when retention changed which entries keep their bodies. Without
        this, each erasure read the whole log (about a second per million entries)."""
        store = self._store
        retired = tuple(store.retired())
        cached = self._setting_cache
        if cached is not None and cached[1] == retired and cached[0] <= size:
            records = cached[2] + setting_records(store, size, start=cached[0])
        else:
            records = setting_records(store, size)
        self._setting_cache = (size, retired, records)
        return records

    def _follow_keyring(self) -> None:
        """Re-read the keyring when another process rotated it (called before each prepare
        and at each commit), so a running service does not keep sealing under a retired data
        key (requests prepared just before a rotation keep the key they were sealed under:
        it stays in the keyring, for reading)."""
        keyring = self.keyring
        if keyring is None:
            return
        try:
            keyring.follow()
        except TamperError as exc:
            self.settings_problem = exc.detail
            raise TamperError("settings", 0, f"{exc.detail}: refusing to seal") from exc

    def keyring_info(self) -> list[dict[str, Any]]:
        """The keyring's key ids, purposes, dates (no key material)."""
        if self._protector is None or self._protector.keyring is None:
            self._require_unlocked()
            return []
        return self._protector.keyring.describe_keys()

    # -- proofs and tiles (log/proving.py) -------------------------------------------------

    def find_leaf(self, leaf_hash_value: bytes) -> int | None:
        """The index of the entry with this leaf hash (a scan of the stored leaf hashes)."""
        return proving.find_leaf(self._store, self.size, leaf_hash_value)

    def tile(self, ref: TileRef) -> bytes:
        """The bytes of one C2SP tlog-tiles tile or entry bundle of the latest tree.

        ConfigError when the tile reaches past the tree (a client asks again later).
        """
        return proving.tile(self._store, self.checkpoint(), ref)

    def root_at(self, size: int) -> bytes:
        """The root of the first ``size`` entries, from stored nodes."""
        return proving.root_at(self._store, size)

    def prove_inclusion(self, index: int, size: int | None = None) -> InclusionProof:
        """An audit path for entry ``index`` in the tree of ``size`` entries (default: latest).

        At the latest size the proof carries the signed checkpoint, so it verifies offline.
        """
        return proving.prove_inclusion(self._store, self.checkpoint(), index, size)

    def inclusion_paths(self, indexes: Iterable[int], size: int
                        ) -> Iterator[tuple[int, tuple[bytes, ...]]]:
        """Audit paths of many entries in the tree of ``size`` entries (the latest size or
        smaller), reading each stored node block once (bulk exports)."""
        return proving.inclusion_paths(self._store, self.checkpoint(), indexes, size)

    def prove_consistency(self, first: int, second: int | None = None) -> ConsistencyProof:
        """A consistency proof from size ``first`` to ``second`` (default: latest)."""
        return proving.prove_consistency(self._store, self.checkpoint(), first, second)

    def verify(self, trusted_checkpoint: str | None = None,
               progress: Callable[[int, int], None] | None = None,
               workers: int = 1) -> VerifyReport:
        """Verify the whole log (see :mod:`sealtrail.log.verify`); raises TamperError.

        ``workers > 1`` verifies large logs in that many spawned processes (about 2x on two
        cores). Spawned processes re-import the main module, so a script that asks for
        workers must guard its entry point with ``if __name__ == "__main__":``. The CLI's
        ``verify`` uses every core by default.
        """
        # A connection of its own: a long verification never holds up appends.
        store = self._store.reader()
        try:
            self.check_identity()
            remembered = self.head_memory.newest()
            report = verify_log(store, self.verifier, self.origin,
                                trusted_checkpoint=trusted_checkpoint, progress=progress,
                                opener=self._store.opener(), workers=workers,
                                remembered=remembered.note if remembered is not None else None,
                                open_target=self.setting_target)
        except TamperError:
            self._note_verification("verify_failed_at", None)
            raise
        finally:
            store.close()
        if report.head is not None:
            try:  # verified: this head is now the one to remember
                self.head_memory.remember(report.head, report.size, now=True)
            except (StorageError, TamperError) as exc:
                _warn_memory(exc)
        self._note_verification("verified_at", report.size)
        return report

    def adopt_settings(self, *, reason: str, actor: Mapping[str, Any]) -> Receipt:
        """Sign the settings of a log created before settings were signed (its statement is
        missing), as the settings table states them now, and record that in the log
        (``sealtrail.settings.adopt``, target the statement's digest). Check the settings
        first (``sealtrail settings show``): this trusts them. Refused when a statement
        exists, even one that does not verify: that is tampering, not an old log."""
        subjects.check_reason(reason, "say why these settings are right (e.g. checked against the "
                      "deployment's configuration)")
        meta = self._store.meta()
        if SETTINGS_META in meta:
            raise ConfigError("this log already has a settings statement; one that does not "
                              "verify is tampering (run sealtrail verify), not something to "
                              "adopt")
        fixed = fixed_from_meta(meta)
        if fixed.origin != self.origin:
            raise ConfigError("the settings table names another origin; it cannot be adopted")
        self._check_adoptable(fixed)
        note = fixed.sign(self._signer)

        def hook(_at: int) -> None:
            self._store.set_meta({**fixed.as_meta(), SETTINGS_META: note})

        receipt = self._append([{"source": self.own_source, "actor": dict(actor),
                                 "action": "sealtrail.settings.adopt", "outcome": "success",
                                 "category": "configuration",
                                 "target": {"type": "log_settings",
                                            "id": digest(fixed.statement())},
                                 "reason": reason}], hook, own=True, adopting=True)[0]
        self.settings_problem = ""
        return receipt

    def _check_adoptable(self, fixed: Fixed) -> None:
        """Refuse to adopt settings weaker than the log shows it ran with: a log with a
        keyring or sealed entries was encrypted, and every path it sealed stays sealed (the
        table may have been edited before the statement was deleted)."""
        sealed_paths: set[str] = set()
        sealed_any = False
        for chunk in self._store.iter_chunks(0, self.size):
            if b'"sealed":' not in chunk.data:
                continue
            for leaf in chunk.leaves():
                if leaf and b'"sealed":' in leaf:
                    sealed_any = True
                    sealed_paths.update(canonical.leaf_object(leaf).get("sealed", {})
                                        .get("fields", []))
        home = keyring_home(self.directory, self.store_url)
        try:
            keyring_kept = home.exists()
        finally:
            home.close()
        if fixed.encryption != "on" and (sealed_any or keyring_kept):
            raise ConfigError("the log has sealed entries or a keyring, so it was encrypted, "
                              "but the settings table says encryption off: it was edited; "
                              "restore it from a backup before adopting")
        missing = sorted(sealed_paths - set(fixed.policy.split(",")) - {"subjects"})
        if missing:
            raise ConfigError(f"the log sealed {', '.join(missing)}, which the settings table's "
                              "policy no longer names: it was edited; restore it before "
                              "adopting")

    def settings(self) -> dict[str, str]:
        """The settings this log runs with (what its key signed), and any problem with them."""
        try:
            fixed = signed_fixed(self._store.meta(), self.verifier, self.origin)
            return {**fixed.as_meta(), "signed": "yes"}
        except TamperError as exc:
            return {**fixed_from_meta(self._store.meta()).as_meta(), "signed": "no",
                    "problem": exc.detail}

    def verify_derived(self) -> DerivedReport:
        """Rebuild the blind indexes and check the subject keys against the events (needs
        the keyring; see :mod:`sealtrail.log.derived`); raises TamperError."""
        from sealtrail.log.derived import verify_derived  # noqa: PLC0415 - derived imports us

        return verify_derived(self)

    def check_identity(self) -> None:
        """Raise TamperError when the database file was replaced since the log opened it
        (an older copy moved into place under a running process, whose appends would then
        go to the unlinked file and vanish)."""
        if self._store.replaced():
            raise TamperError("replaced", self.size_opened, f"the database file "
                              f"{self._store.location} was replaced or removed while the log "
                              "was open: refusing to go on; run sealtrail verify")

    @property
    def size_opened(self) -> int:
        """The tree size this process last committed or loaded (not re-read from the file)."""
        return self._edge.size

    def accept_head(self, *, reason: str, actor: Mapping[str, Any]) -> Receipt:
        """An operator accepts the stored head after a rollback or fork was reported (a
        restore from backup, say): the head memory is reset to it and the acceptance is
        recorded in the log, with the head it replaces. The stored head must still carry
        the log's signature and match its tree."""
        subjects.check_reason(reason, "say why the current head is accepted (e.g. the backup "
                              "restored)")
        state = self._store.state()
        _, cp = self._signed_head(state, "it cannot be accepted")
        try:
            old = self.head_memory.newest()
            was = str(old.checkpoint.size) if old is not None else "none"
        except TamperError:
            was = "unreadable"
        # The acceptance is appended on top of the accepted head, and only once it is
        # committed does the memory move (to the head that includes the acceptance).
        self.head_memory.accepting(state.checkpoint or "")
        self._edge = TreeEdge(0, [], {})  # reload everything at this commit
        self._head_checked = False
        try:
            receipt = self.append_own([{
                "actor": dict(actor), "action": "sealtrail.head.accept", "outcome": "success",
                "category": "admin", "target": {"type": "log_head", "id": f"{was}->{cp.size}"},
                "reason": reason}])[0]
        finally:
            self.head_memory.accepting(None)
        self.head_memory.reset(self.checkpoint().note)
        return receipt

    def increment_at(self, size: int) -> Increment:
        """Where an incremental check starts after a full verification of ``size`` entries."""
        return increment_at(self._store, size)

    def verify_increment(self, since: Increment) -> Increment:
        """Check the entries appended since ``since`` against the signed head (see
        :func:`sealtrail.log.verify.verify_increment`); raises TamperError."""
        return verify_increment(self._store, self.verifier, self.origin, since)

    def _note_verification(self, key: str, size: int | None) -> None:
        """Keep when the log was last verified (compliance reports show it; PCI DSS 10.7)."""
        items = {key: format_time(self._clock())}
        if size is not None:
            items["verified_size"] = str(size)
        # A read-only data directory cannot keep the note; the verification result stands.
        with contextlib.suppress(StorageError), self._store.transaction():
            self._store.set_meta(items)


