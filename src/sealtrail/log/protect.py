"""Personal-data protection in the engine: sealing fields, subject keys, blind-index rows.

On append (inside the commit transaction, for each sequenced event):

1. blind-index rows for the searchable fields (``actor.id``, ``actor.ip``, ``target.id``, each
   subject), keyed by segment (``index >> SEG_SHIFT``) so one commit's rows land in a few hot
   pages instead of all over a B-tree;
2. the policy's personal fields (and ``subjects``) are taken out of the event;
3. they are sealed under the subjects' own key when the event names subjects (a new subject
   gets a new random key, wrapped and written in the same transaction), else under the
   keyring's active data key;
4. the tokens go into the event's ``sealed`` map, which the leaf commits to.

On read, :meth:`Protector.reveal` opens what it can: a field whose subject key was destroyed
reads as erased; without the keyring the fields stay sealed (shown encrypted). Subject keys
and their cache are dropped when any process erases (the ``key_epoch`` setting moves).
"""

from __future__ import annotations

import base64
import binascii
import os
from collections.abc import Iterable
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
from sealtrail.log.blindindex import SEG_SHIFT, BlindIndex
from sealtrail.log.keyring import Keyring
from sealtrail.store.protocol import Store, SubjectKey

EPOCH_KEY: Final = "key_epoch"
UNINDEXED_KEY: Final = "unindexed_from"  # entries from here were appended with the keyring locked
SUBJECT_PURPOSE: Final = "subject"
_CACHE_MAX: Final = 100_000    # subject keys kept unwrapped in memory
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


@dataclass(slots=True)
class Batch:
    """What one commit adds beside its entries: new subject keys and blind-index rows."""

    new_keys: dict[bytes, tuple[bytes, bytes]] = field(default_factory=dict)  # ref -> kid, raw
    key_rows: list[SubjectKey] = field(default_factory=list)
    blind_rows: list[tuple[int, int, int]] = field(default_factory=list)
    growth: int = 0  # bytes the last sealed event grew by (tokens minus plaintexts)
    locked_from: int | None = None  # first entry appended locked (not blind-indexed yet)

    def mark(self) -> tuple[int, int, int]:
        """Where one request's additions start, to undo them if the request fails."""
        return len(self.key_rows), len(self.new_keys), len(self.blind_rows)

    def undo(self, mark: tuple[int, int, int]) -> None:
        """Drop what was added since ``mark`` (the request failed; its savepoint rolled back)."""
        keys, new, blind = mark
        del self.key_rows[keys:], self.blind_rows[blind:]
        for ref in list(self.new_keys)[new:]:
            del self.new_keys[ref]


class Protector:
    """Seals and opens one log's personal fields. ``keyring`` None: locked (read sealed)."""

    def __init__(self, origin: str, policy: FieldPolicy, keyring: Keyring | None,
                 store: Store) -> None:
        self.origin = origin
        self.policy = policy
        self.keyring = keyring
        self._store = store
        self.index = BlindIndex(store)
        self._blind = BlindIndexer(keyring.blind_key) if keyring is not None else None
        self._by_ref: dict[bytes, tuple[bytes, bytes]] = {}
        self._tokens: dict[tuple[str, str], int] = {}
        self._aead: dict[str, AESGCM | None] = {}
        self._epoch = store.meta().get(EPOCH_KEY, "0")
        self._version = store.change_marker()

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

    def refresh(self) -> None:
        """Drop cached subject keys if any process erased one since we looked.

        Inside a commit (the write lock held) it also indexes entries that were appended while
        the keyring was locked, so no event escapes ``find`` and ``query``.
        """
        meta = self._store.meta()
        epoch = meta.get(EPOCH_KEY, "0")
        if epoch != self._epoch:
            self.forget()
            self._epoch = epoch
        self._version = self._store.change_marker()
        start = meta.get(UNINDEXED_KEY)
        if start is not None and self._blind is not None and self._store.in_transaction:
            self._backfill(self._blind, int(start))

    def needs_backfill(self) -> bool:
        """Whether entries appended with the keyring locked still wait for blind indexing."""
        return UNINDEXED_KEY in self._store.meta()

    def _check_fresh(self) -> None:
        """Cheap per-read check: another connection committed, so an erasure may have too."""
        if self._store.change_marker() != self._version:
            self.refresh()

    def _backfill(self, blind: BlindIndexer, start: int) -> None:
        """Blind-index the clear fields of entries appended while the keyring was locked
        (they carry no sealed field: a locked log cannot write one)."""
        rows: list[tuple[int, int, int]] = []
        for chunk in self._store.iter_chunks(start):
            for k, leaf in enumerate(chunk.leaves()):
                index = chunk.start + k
                if index < start or not leaf:
                    continue
                obj = _dec.decode(leaf)
                if not isinstance(obj, dict) or "sealed" in obj:
                    continue
                seg = index >> SEG_SHIFT
                actor = obj.get("actor") or {}
                target = obj.get("target") or {}
                for field_name, value in (("actor.id", actor.get("id")),
                                          ("actor.ip", actor.get("ip")),
                                          ("target.id", target.get("id"))):
                    if isinstance(value, str):
                        rows.append((seg, blind.token(field_name, value), index))
        self.index.add_sorted(rows)
        self._store.delete_meta(UNINDEXED_KEY)

    def forget(self) -> None:
        """Drop every unwrapped subject key this process holds (erasure: no copy remains)."""
        self._by_ref.clear()
        self._tokens.clear()
        self._aead = {k: v for k, v in self._aead.items() if not k.startswith("s")}

    def next_epoch(self) -> str:
        """The epoch value an erasure writes (inside its transaction)."""
        self._epoch = str(int(self._store.meta().get(EPOCH_KEY, "0")) + 1)
        return self._epoch

    # -- sealing ----------------------------------------------------------------------------

    def check_sealable(self, ev: Event, locked_reason: str) -> None:
        """With the keyring locked, only events without personal fields can be appended."""
        if self.policy.extract(ev)[1]:
            raise KeyringError(locked_reason or "the keyring is locked")

    def seal(self, ev: Event, index: int, batch: Batch) -> bytes:
        """The leaf of a sequenced event (``id`` set), personal fields sealed; records its
        blind rows and, in ``batch.growth``, how much sealing grew it.

        Raises ValidationError for text that is not valid Unicode (a lone surrogate), like
        the leaf encoder does, so the request fails naming the event.
        """
        try:
            return self._seal(ev, index, batch)
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

    def _seal(self, ev: Event, index: int, batch: Batch) -> bytes:
        keyring = self.keyring
        blind = self._blind
        batch.growth = 0
        if keyring is None or blind is None:
            # Locked: append_many let through only events with nothing to seal; they are
            # blind-indexed by the next commit made with the keyring open.
            if self.policy.extract(ev)[1]:
                raise KeyringError("the keyring is locked")
            if batch.locked_from is None:
                batch.locked_from = index
            return canonical.encode_leaf(ev)
        seg = index >> SEG_SHIFT
        rows = batch.blind_rows
        token = self._token
        rows.append((seg, token(blind, "actor.id", ev.actor.id), index))
        if ev.actor.ip is not None:
            rows.append((seg, token(blind, "actor.ip", ev.actor.ip), index))
        if ev.target is not None and ev.target.id is not None:
            rows.append((seg, token(blind, "target.id", ev.target.id), index))
        obj: dict[str, Any] = msgspec.to_builtins(ev)
        found = self.policy.take(obj)
        if not found:
            return canonical.encode_leaf(ev)
        if ev.subjects:
            for subject in set(ev.subjects):
                rows.append((seg, token(blind, "subject", subject), index))
            kid, aead = self._subject_key(keyring, blind, ev.subjects, batch)
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
        batch.growth = len(ct) + 24 + sum(len(p) + 3 for p in paths) - len(plain)
        return canonical.encode_leaf(obj)

    def _subject_key(self, keyring: Keyring, blind: BlindIndexer, subjects: list[str],
                     batch: Batch) -> tuple[str, AESGCM]:
        parts: list[tuple[bytes, bytes]] = []
        for subject in sorted(set(subjects)):
            ref = blind.subject_ref(subject)
            got = self._by_ref.get(ref) or batch.new_keys.get(ref)
            if got is None:
                row = self._store.subject_keys_by_ref([ref]).get(ref)
                if row is not None:
                    got = (row.kid, self._unwrap(keyring, row.kid, ref, row.wrapped))
                    self._remember(ref, got)
                else:
                    kid, raw = os.urandom(16), os.urandom(32)
                    got = (kid, raw)
                    batch.new_keys[ref] = got
                    nonce = os.urandom(envelope.NONCE_BYTES)
                    batch.key_rows.append(SubjectKey(kid, ref, envelope.wrap(
                        keyring.wrap_key, nonce, raw, self._key_aad(kid, ref))))
            parts.append(got)
        parts.sort()
        text = "+".join(kid_text(kid) for kid, _ in parts)
        aead = self._aead.get(text)
        if aead is None:
            raw = parts[0][1] if len(parts) == 1 else _combine([r for _, r in parts])
            aead = AESGCM(raw)
            self._cache_aead(text, aead)
        return text, aead

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

    def _remember(self, ref: bytes, got: tuple[bytes, bytes]) -> None:
        if len(self._by_ref) >= _CACHE_MAX:
            self._by_ref.clear()
        self._by_ref[ref] = got

    def write(self, batch: Batch, end: int) -> None:
        """Write the batch's keys and blind rows (inside the commit transaction); ``end`` is
        the tree size the commit reaches."""
        if batch.key_rows:
            self._store.put_subject_keys(batch.key_rows)
        self.index.add(batch.blind_rows, end)
        if batch.locked_from is not None and UNINDEXED_KEY not in self._store.meta():
            self._store.set_meta({UNINDEXED_KEY: str(batch.locked_from)})

    def adopt(self, batch: Batch) -> None:
        """After the commit: the batch's new keys are stored, so they may be cached."""
        for ref, got in batch.new_keys.items():
            self._remember(ref, got)

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
                raise KeyringError(f"data key {kid} is not in the keyring {keyring.path}")
            self._aead[kid] = keyring.data[kid]
            return keyring.data[kid]
        raws = [kid_bytes(part) for part in kid.split("+")]
        stored = self._store.subject_keys_by_kid(raws)
        if len(stored) != len(set(raws)):
            self._cache_aead(kid, None)
            return None
        keys = [self._unwrap(keyring, r, stored[r].ref, stored[r].wrapped) for r in raws]
        aead = AESGCM(keys[0] if len(keys) == 1 else _combine(keys))
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
