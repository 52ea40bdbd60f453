"""Personal-data protection in the engine: sealing fields, subject keys, blind-index tokens.

Sealing happens when an append is prepared, before it is queued and outside the write lock
(in the caller's thread, or in a worker process): for each event,

1. the blind-index tokens of its searchable fields (``actor.id``, ``actor.ip``, ``target.id``,
   each subject) are computed; the index step (:mod:`sealtrail.log.indexing`) writes them
   after the commit, so the append path writes no index rows;
2. the policy's personal fields (and ``subjects``) are taken out of the event;
3. they are sealed under the subjects' own key when the event names subjects (a new subject
   gets a new random key, proposed with the request and claimed by the commit: insert or
   get, see :func:`claim_keys`), else under the keyring's active data key;
4. the tokens go into the event's ``sealed`` map, which the leaf commits to.

The commit re-seals a request (under the write lock) when its sealing is stale: another
request or process claimed one of its new subjects first, or an erasure happened since it was
prepared (``key_epoch`` moved).

On read, :meth:`Protector.reveal` opens what it can: a field whose subject key was destroyed
reads as erased; without the keyring the fields stay sealed (shown encrypted). Subject keys
and their cache are dropped when any process erases (the ``key_epoch`` setting moves).
"""

from __future__ import annotations

import base64
import binascii
import os
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import msgspec
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from sealtrail.core import canonical, envelope
from sealtrail.core.blind import BlindIndexer
from sealtrail.core.errors import (
    DecryptionError,
    FormatError,
    KeyringError,
    StorageError,
    ValidationError,
)
from sealtrail.core.event import Event
from sealtrail.core.policy import FieldPolicy, restore
from sealtrail.core.reserved import OWN_CLEAR_FIELDS, OWN_SERVICE_FIELD
from sealtrail.log.blindindex import BlindIndex
from sealtrail.log.keyring import Keyring
from sealtrail.store.protocol import Store, SubjectKey

EPOCH_KEY: Final = "key_epoch"
UNINDEXED_KEY: Final = "unindexed_from"  # the index cursor: entries from here have no rows yet
SUBJECT_PURPOSE: Final = "subject"
_CACHE_MAX: Final = 100_000    # subject keys kept unwrapped in memory
_PREFETCH: Final = 1000  # subject refs looked up per read by prefetch
_TOKEN_CACHE_MAX: Final = 32_768  # recent (field, value) -> token: actors and addresses recur
_dec = msgspec.json.Decoder()


def kid_text(raw: bytes) -> str:
    """The text form of a subject key id inside tokens: ``s`` + base64url, no padding."""
    return "s" + base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def kid_bytes(text: str) -> bytes:
    """Inverse of :func:`kid_text` for one id; FormatError when malformed."""
    try:
        raw = base64.urlsafe_b64decode(text[1:] + "==")
    except (binascii.Error, ValueError) as exc:
        raise FormatError(f"malformed subject key id {text!r}") from exc
    if len(raw) != 16 or not text.startswith("s"):
        raise FormatError(f"malformed subject key id {text!r}")
    return raw


def _combine(raws: list[bytes]) -> bytes:
    """One key from several subjects' keys: destroying any of them destroys it."""
    return HKDF(hashes.SHA256(), 32, salt=None,
                info=b"sealtrail/subjects/v1").derive(b"".join(raws))


NewKeys = dict[bytes, tuple[bytes, bytes]]  # subject ref -> (key id, raw key)


@dataclass(slots=True)
class Sealing:
    """What sealing one request produced beside its leaves (picklable: worker processes
    return it)."""

    epoch: str                                   # key_epoch when the request was sealed
    tokens: list[tuple[int, int]] = field(default_factory=list)  # (event position, token)
    new_keys: NewKeys = field(default_factory=dict)  # subjects first seen by this request
    # Events sealed under subject keys: (position, the subjects' refs).
    keyed: list[tuple[int, tuple[bytes, ...]]] = field(default_factory=list)
    redo: set[int] = field(default_factory=set)  # positions to seal again before placing
    locked: bool = False                         # prepared with the keyring locked (no tokens)
    growth: int = 0  # bytes the last sealed event grew by (tokens minus plaintexts)
    # Subject keys looked up for the whole request at once (Protector.prefetch): ref ->
    # (key id, raw key), or None when the store had none. Not returned by workers.
    known: dict[bytes, tuple[bytes, bytes] | None] = field(default_factory=dict)
    known_generation: int = -1  # the Protector's cache generation when they were read

    def __getstate__(self) -> dict[str, object]:
        state = {name: getattr(self, name) for name in self.__slots__}
        state["known"] = {}
        return state

    def __setstate__(self, state: dict[str, object]) -> None:
        for name, value in state.items():
            object.__setattr__(self, name, value)

    def join(self, other: Sealing, offset: int) -> Sealing:
        """This record followed by ``other``, whose positions start at ``offset`` (parts of
        one request prepared apart). A subject both proposed a key for keeps this one's;
        the events of ``other`` sealed under its own proposal are to be sealed again."""
        self.tokens.extend((pos + offset, tok) for pos, tok in other.tokens)
        clash = {ref for ref, got in other.new_keys.items()
                 if ref in self.new_keys and self.new_keys[ref] != got}
        for ref, got in other.new_keys.items():
            self.new_keys.setdefault(ref, got)
        for pos, refs in other.keyed:
            self.keyed.append((pos + offset, refs))
            if clash.intersection(refs):
                self.redo.add(pos + offset)
        self.redo.update(pos + offset for pos in other.redo)
        if other.epoch != self.epoch:
            self.epoch = ""  # parts of two epochs: the commit seals every keyed event again
        self.locked = self.locked or other.locked
        return self


class Protector:
    """Seals and opens one log's personal fields. ``keyring`` None: locked (read sealed)."""

    def __init__(self, origin: str, policy: FieldPolicy, keyring: Keyring | None,
                 store: Store) -> None:
        self.origin = origin
        self.policy = policy
        # sealtrail's own records: source.service ("sealtrail") stays clear in all of them,
        # and the target too in those whose target is a reference of its own (reserved.py).
        self._own_policy = policy.without((OWN_SERVICE_FIELD,))
        self._own_policies = {action: policy.without(fields)
                              for action, fields in OWN_CLEAR_FIELDS.items()}
        self.keyring = keyring
        self._store = store
        self.index = BlindIndex(store)
        self._blind = BlindIndexer(keyring.blind_key) if keyring is not None else None
        # Unwrapped subject keys by reference, each with the key_epoch it was read under: a
        # request uses only those of the epoch it was sealed in (see sealing()).
        self._by_ref: dict[bytes, tuple[str, bytes, bytes]] = {}
        self._tokens: dict[tuple[str, str], int] = {}
        self._aead: dict[str, AESGCM | None] = {}
        self._epoch = store.meta().get(EPOCH_KEY, "0")
        self._version = store.change_marker()
        # Prepare reads subject keys outside the write lock, on a read handle of its own.
        self._reader: Store | None = None
        self._read_lock = threading.Lock()
        self._read_version: int | None = None
        self._read_epoch = self._epoch
        self._generation = 0  # moved by forget(): caches filled before it are not kept

    @property
    def unlocked(self) -> bool:
        """Whether the keyring is open (sealing and opening are possible)."""
        return self.keyring is not None

    def blind(self) -> BlindIndexer:
        """The blind indexer; KeyringError when the keyring is locked."""
        if self._blind is None:
            raise KeyringError("the keyring is locked: set SEALTRAIL_PASSPHRASE (or pass "
                               "passphrase=) to search or write encrypted fields")
        return self._blind

    # -- caches -----------------------------------------------------------------------------

    def close(self) -> None:
        """Close the preparing side's read handle (the log closes its store)."""
        with self._read_lock:
            if self._reader is not None:
                self._reader.close()
                self._reader = None

    def refresh(self) -> None:
        """Drop cached subject keys if any process erased one since we looked."""
        epoch = self._store.meta().get(EPOCH_KEY, "0")
        if epoch != self._epoch:
            self.forget()
            self._epoch = epoch
        self._version = self._store.change_marker()

    def _check_fresh(self) -> None:
        """Cheap per-read check: another connection committed, so an erasure may have too."""
        if self._store.change_marker() != self._version:
            self.refresh()

    def forget(self) -> None:
        """Drop every unwrapped subject key this process holds (erasure: no copy remains).

        A lookup that began before this call (another thread reading a key the erasure is
        destroying) must not put it back: it checks the generation before it caches."""
        self._generation += 1
        self._by_ref.clear()
        self._tokens.clear()
        self._aead = {k: v for k, v in self._aead.items() if not k.startswith("s")}

    def next_epoch(self) -> str:
        """The epoch value an erasure writes (inside its transaction)."""
        self._epoch = str(int(self._store.meta().get(EPOCH_KEY, "0")) + 1)
        return self._epoch

    # -- sealing ----------------------------------------------------------------------------

    def policy_for(self, ev: Event, own: bool) -> FieldPolicy:
        """The fields sealed in ``ev``: the log's policy, less what sealtrail's own records
        keep clear (:data:`sealtrail.core.reserved.OWN_CLEAR_FIELDS`) when ``own``."""
        if not own:
            return self.policy
        return self._own_policies.get(ev.action, self._own_policy)

    def check_sealable(self, ev: Event, locked_reason: str, own: bool = False) -> None:
        """With the keyring locked, only events without personal fields can be appended."""
        if self.policy_for(ev, own).extract(ev)[1]:
            raise KeyringError(locked_reason or "the keyring is locked")

    @property
    def epoch(self) -> str:
        """The ``key_epoch`` this side last saw (an erasure moves it)."""
        return self._epoch

    def sealing(self) -> Sealing:
        """A fresh record for sealing one request, stamped with the ``key_epoch`` committed
        now. Read before any key is looked up: a key found afterwards existed in that epoch
        or a later one, so a request whose epoch is not the commit's is sealed again."""
        return Sealing(self._committed_epoch(), locked=self._blind is None)

    def _committed_epoch(self) -> str:
        with self._read_lock:
            reader = self._read_handle()
            version = reader.change_marker()
            if version != self._read_version:
                epoch = reader.meta().get(EPOCH_KEY, "0")
                if epoch != self._read_epoch:
                    # Some process erased: no unwrapped subject key stays here either (a
                    # worker process learns of erasures only this way).
                    self.forget()
                self._read_epoch = epoch
                self._read_version = version
            return self._read_epoch

    def _read_handle(self) -> Store:
        if self._reader is None:
            self._reader = self._store.reader()
        return self._reader

    def seal(self, ev: Event, pos: int, out: Sealing, claimed: NewKeys | None = None, *,
             own: bool = False) -> bytes:
        """The leaf of a sequenced event (``id`` and times set), personal fields sealed; its
        blind tokens go to ``out.tokens`` under ``pos`` and, in ``out.growth``, how much
        sealing grew it. ``claimed``: subject keys this commit already holds (a re-seal
        under the write lock uses them before the store).

        Raises ValidationError for text that is not valid Unicode (a lone surrogate), like
        the leaf encoder does, so the request fails naming the event.
        """
        try:
            return self._seal(ev, pos, out, claimed, self.policy_for(ev, own))
        except UnicodeEncodeError as exc:
            raise ValidationError("event", "contains a lone surrogate (not valid Unicode)"
                                  ) from exc

    def _token(self, blind: BlindIndexer, field: str, value: str) -> int:
        """A blind token, cached: actors, addresses and targets recur (one HMAC each)."""
        key = (field, value)
        tok = self._tokens.get(key)
        if tok is None:
            if len(self._tokens) >= _TOKEN_CACHE_MAX:
                self._tokens.clear()
            tok = self._tokens[key] = blind.token(field, value)
        return tok

    def _seal(self, ev: Event, pos: int, out: Sealing, claimed: NewKeys | None,
              policy: FieldPolicy) -> bytes:
        keyring = self.keyring
        blind = self._blind
        out.growth = 0
        if keyring is None or blind is None:
            # Locked: append_many let through only events with nothing to seal; the index
            # step indexes them once a process with the keyring open runs it.
            if policy.extract(ev)[1]:
                raise KeyringError("the keyring is locked")
            return canonical.encode_leaf(ev)
        rows = out.tokens
        token = self._token
        rows.append((pos, token(blind, "actor.id", ev.actor.id)))
        if ev.actor.ip is not None:
            rows.append((pos, token(blind, "actor.ip", ev.actor.ip)))
        if ev.target is not None and ev.target.id is not None:
            rows.append((pos, token(blind, "target.id", ev.target.id)))
        obj: dict[str, Any] = msgspec.to_builtins(ev)
        found = policy.take(obj)
        if not found:
            return canonical.encode_leaf(ev)
        if ev.subjects:
            for subject in set(ev.subjects):
                rows.append((pos, token(blind, "subject", subject)))
            kid, aead = self._subject_key(blind, pos, ev.subjects, out, claimed)
        else:
            kid = keyring.active
            aead = keyring.data[kid]
        # One seal per event: the values as one JSON array, bound to the list of paths.
        paths = [path for path, _ in found]
        plain = canonical.encode_json([value for _, value in found])
        nonce = os.urandom(envelope.NONCE_BYTES)
        ct = envelope.seal(aead, kid, nonce, envelope.fields_aad(self.origin, ev.id or "", paths),
                           plain)
        obj["sealed"] = {"ct": ct, "fields": paths}
        out.growth = len(ct) + 24 + sum(len(p) + 3 for p in paths) - len(plain)
        return canonical.encode_leaf(obj)

    def _subject_key(self, blind: BlindIndexer, pos: int, subjects: list[str], out: Sealing,
                     claimed: NewKeys | None) -> tuple[str, AESGCM]:
        parts: list[tuple[bytes, bytes]] = []
        generation = self._generation
        refs = [blind.subject_ref(subject) for subject in sorted(set(subjects))]
        out.keyed.append((pos, tuple(refs)))
        for ref in refs:
            if claimed is not None:
                # Under the write lock (a re-seal): the commit's own view, not the cache (an
                # erasure earlier in this commit has deleted its key there).
                got = claimed.get(ref) or out.new_keys.get(ref)
            else:
                cached = self._by_ref.get(ref)
                got = (cached[1:] if cached is not None and cached[0] == out.epoch
                       else out.new_keys.get(ref))
            if got is None and claimed is None and ref in out.known:
                got = out.known[ref]
                if out.known_generation != generation:
                    generation = -1  # read before a forget(): cache nothing made from it
                if got is None:  # none stored when the request looked: propose one
                    got = out.new_keys[ref] = (os.urandom(16), os.urandom(32))
            if got is None:
                row = (self._store.subject_keys_by_ref([ref]) if claimed is not None
                       else self._lookup_keys([ref])).get(ref)
                if row is not None:
                    got = (row.kid, self.unwrap_row(row))
                    if claimed is None and self._generation == generation:
                        self._remember(ref, out.epoch, got)
                else:
                    # New here: proposed with the request, claimed (or lost) by the commit.
                    got = out.new_keys[ref] = (os.urandom(16), os.urandom(32))
            parts.append(got)
        parts.sort()
        text = "+".join(kid_text(kid) for kid, _ in parts)
        aead = self._aead.get(text)
        if aead is None:
            raw = parts[0][1] if len(parts) == 1 else _combine([r for _, r in parts])
            aead = AESGCM(raw)
            if claimed is None and self._generation == generation:
                self._cache_aead(text, aead)
        return text, aead

    def prefetch(self, subjects: Iterable[Sequence[str]], out: Sealing) -> None:
        """Look up the stored keys of every subject a request names that the cache does not
        hold, in one read per thousand (not one per subject: a round trip each on a database
        server), into ``out.known``. Sealing then takes them from there, as it would have
        looked them up one by one at the same point (after ``sealing()`` read the epoch)."""
        blind = self._blind
        if blind is None or self.keyring is None:
            return
        generation = self._generation
        out.known_generation = generation
        wanted: dict[bytes, None] = {}
        for names in subjects:
            for subject in names:
                ref = blind.subject_ref(subject)
                cached = self._by_ref.get(ref)
                if (cached is None or cached[0] != out.epoch) and ref not in out.known:
                    wanted[ref] = None
        refs = list(wanted)
        for start in range(0, len(refs), _PREFETCH):
            part = refs[start:start + _PREFETCH]
            rows = self._lookup_keys(part)
            for ref in part:
                row = rows.get(ref)
                got = None if row is None else (row.kid, self.unwrap_row(row))
                out.known[ref] = got
                if got is not None and self._generation == generation:
                    self._remember(ref, out.epoch, got)

    def _lookup_keys(self, refs: list[bytes]) -> dict[bytes, SubjectKey]:
        """Stored subject keys by reference, read through the preparing side's own read
        handle (prepare runs outside the write lock, beside a commit in progress)."""
        with self._read_lock:
            return self._read_handle().subject_keys_by_ref(refs)

    def unwrap_row(self, row: SubjectKey) -> bytes:
        """The raw key of a stored subject-key row (StorageError when it does not unwrap)."""
        keyring = self.keyring
        if keyring is None:
            raise KeyringError("the keyring is locked")
        return self._unwrap(keyring, row.kid, row.ref, row.wrapped)

    def wrap_rows(self, keys: NewKeys) -> list[SubjectKey]:
        """Rows for new subject keys, wrapped under the keyring's current wrap key (done by
        the commit, so a key proposed by a worker is wrapped under the key in force)."""
        keyring = self.keyring
        if keyring is None:
            raise KeyringError("the keyring is locked")
        return [SubjectKey(kid, ref, envelope.wrap(keyring.wrap_key,
                                                   os.urandom(envelope.NONCE_BYTES), raw,
                                                   self._key_aad(kid, ref)))
                for ref, (kid, raw) in keys.items()]

    def _key_aad(self, kid: bytes, ref: bytes) -> bytes:
        # Binds the key to its subject's pseudonym: rows swapped between subjects fail.
        return envelope.key_aad(self.origin, kid_text(kid), f"{SUBJECT_PURPOSE}:{ref.hex()}")

    def _unwrap(self, keyring: Keyring, kid: bytes, ref: bytes, wrapped: bytes) -> bytes:
        try:
            return envelope.unwrap(keyring.wrap_key, wrapped, self._key_aad(kid, ref))
        except DecryptionError as exc:
            raise StorageError(f"subject key {kid_text(kid)} does not unwrap: the key table "
                               "was altered") from exc

    def _cache_aead(self, kid: str, aead: AESGCM | None) -> None:
        """Keep a subject key's cipher, bounded (about 2.5 KiB each in OpenSSL)."""
        if len(self._aead) >= _CACHE_MAX // 10:
            self._aead = {k: v for k, v in self._aead.items() if not k.startswith("s")}
        self._aead[kid] = aead

    def _remember(self, ref: bytes, epoch: str, got: tuple[bytes, bytes]) -> None:
        if len(self._by_ref) >= _CACHE_MAX:
            self._by_ref.clear()
        self._by_ref[ref] = (epoch, *got)

    def adopt(self, keys: NewKeys) -> None:
        """After the commit: these new keys are stored, so they may be cached."""
        for ref, got in keys.items():
            self._remember(ref, self._epoch, got)

    # -- opening ----------------------------------------------------------------------------

    def reveal(self, index: int, obj: dict[str, Any]) -> dict[str, Any]:
        """The event with its sealed fields opened (erased ones listed under ``erased``).

        Locked: the event as stored, sealed fields included. A field that fails
        authentication raises DecryptionError naming the entry and field (never garbage).
        """
        sealed = obj.get("sealed")
        keyring = self.keyring
        if not sealed or keyring is None:
            return obj
        self._check_fresh()
        try:
            opened = self._open_sealed(keyring, sealed, str(obj.get("id", "")))
        except (DecryptionError, FormatError, msgspec.DecodeError, KeyError,
                TypeError) as exc:
            raise DecryptionError(f"entry {index}: its sealed fields failed authentication "
                                  "(altered, moved, or the wrong key); run sealtrail verify"
                                  ) from exc
        del obj["sealed"]
        if opened is None:
            obj["erased"] = list(sealed["fields"])
            return obj
        for path, value in opened:
            restore(obj, path, value)
        return obj

    def _open_sealed(self, keyring: Keyring, sealed: dict[str, Any], event_id: str
                     ) -> list[tuple[str, Any]] | None:
        """(path, value) of each sealed field; None when the key was erased."""
        paths = sealed["fields"]
        if not isinstance(paths, list) or not all(isinstance(p, str) for p in paths):
            raise FormatError("sealed fields are not a list of paths")
        kid, blob = envelope.split_token(sealed["ct"])
        aead = self._opener(keyring, kid)
        if aead is None:
            return None
        plain = envelope.open_blob(aead, blob, envelope.fields_aad(self.origin, event_id, paths))
        values = _dec.decode(plain)
        if not isinstance(values, list) or len(values) != len(paths):
            raise FormatError("sealed values do not match their fields")
        return list(zip(paths, values, strict=True))

    def _opener(self, keyring: Keyring, kid: str) -> AESGCM | None:
        """The key for ``kid``; None when it was erased."""
        if kid in self._aead:
            return self._aead[kid]
        if kid.startswith("d"):
            if kid not in keyring.data:
                keyring.reload()  # rotated by another process
            if kid not in keyring.data:
                raise KeyringError(f"data key {kid} is not in the keyring {keyring.where}")
            self._aead[kid] = keyring.data[kid]
            return keyring.data[kid]
        raws = [kid_bytes(part) for part in kid.split("+")]
        generation = self._generation
        stored = self._store.subject_keys_by_kid(raws)
        if len(stored) != len(set(raws)):
            self._cache_aead(kid, None)
            return None
        keys = [self._unwrap(keyring, r, stored[r].ref, stored[r].wrapped) for r in raws]
        aead = AESGCM(keys[0] if len(keys) == 1 else _combine(keys))
        if self._generation == generation:  # not when an erasure ran meanwhile
            self._cache_aead(kid, aead)
        return aead

    def seal_note(self, text: str, ref: bytes) -> str:
        """A short text about a subject (a hold's reason) sealed under the active data key."""
        keyring = self.keyring
        if keyring is None:
            raise KeyringError("the keyring is locked")
        return envelope.seal(keyring.data[keyring.active], keyring.active,
                             os.urandom(envelope.NONCE_BYTES),
                             envelope.field_aad(self.origin, "note", ref.hex()), text.encode())

    def open_note(self, token: str, ref: bytes) -> str:
        """The text of :meth:`seal_note` (``(sealed)`` when the keyring is locked)."""
        keyring = self.keyring
        if keyring is None:
            return "(sealed)"
        kid, blob = envelope.split_token(token)
        aead = self._opener(keyring, kid)
        if aead is None:
            return "(erased)"
        return envelope.open_blob(aead, blob, envelope.field_aad(self.origin, "note",
                                                                 ref.hex())).decode()

    def subject_kids(self, subjects: Iterable[str]) -> dict[str, bytes | None]:
        """The key id of each subject (None when it has none: never seen, or erased)."""
        blind = self.blind()
        refs = {s: blind.subject_ref(s) for s in subjects}
        rows = self._store.subject_keys_by_ref(refs.values())
        return {s: (rows[r].kid if r in rows else None) for s, r in refs.items()}
