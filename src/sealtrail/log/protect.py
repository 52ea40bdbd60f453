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

from sealtrail.core import envelope
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
from sealtrail.log.keyring import Keyring
from sealtrail.store.sqlite import SQLiteStore

SEG_SHIFT: Final = 12          # blind-index segment: 4096 entries
EPOCH_KEY: Final = "key_epoch"
SUBJECT_PURPOSE: Final = "subject"
_CACHE_MAX: Final = 100_000    # subject keys kept unwrapped in memory
_enc = msgspec.json.Encoder(order="deterministic")
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
    key_rows: list[tuple[bytes, bytes, bytes]] = field(default_factory=list)
    blind_rows: list[tuple[int, int, int]] = field(default_factory=list)
    growth: int = 0  # bytes the last sealed event grew by (tokens minus plaintexts)


class Protector:
    """Seals and opens one log's personal fields. ``keyring`` None: locked (read sealed)."""

    def __init__(self, origin: str, policy: FieldPolicy, keyring: Keyring | None,
                 store: SQLiteStore) -> None:
        self.origin = origin
        self.policy = policy
        self.keyring = keyring
        self._store = store
        self._blind = BlindIndexer(keyring.blind_key) if keyring is not None else None
        self._by_ref: dict[bytes, tuple[bytes, bytes]] = {}
        self._aead: dict[str, AESGCM | None] = {}
        self._epoch = store.meta().get(EPOCH_KEY, "0")

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
        """Drop cached subject keys if any process erased one since we looked."""
        epoch = self._store.meta().get(EPOCH_KEY, "0")
        if epoch != self._epoch:
            self.forget()
            self._epoch = epoch

    def forget(self) -> None:
        """Drop every unwrapped subject key this process holds (erasure: no copy remains)."""
        self._by_ref.clear()
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

    def seal(self, ev: Event, index: int, batch: Batch) -> Event:
        """The stored form of a sequenced event (``id`` set); records its blind rows.

        Raises ValidationError for text that is not valid Unicode (a lone surrogate), like
        the leaf encoder does, so the request fails naming the event.
        """
        try:
            return self._seal(ev, index, batch)
        except UnicodeEncodeError as exc:
            raise ValidationError("event", "contains a lone surrogate (not valid Unicode)"
                                  ) from exc

    def _seal(self, ev: Event, index: int, batch: Batch) -> Event:
        keyring = self.keyring
        blind = self._blind
        if keyring is None or blind is None:
            # Locked: append_many let through only events with nothing to seal (and nothing
            # can be indexed without the blind key).
            if self.policy.extract(ev)[1]:
                raise KeyringError("the keyring is locked")
            return ev
        seg = index >> SEG_SHIFT
        rows = batch.blind_rows
        rows.append((seg, blind.token("actor.id", ev.actor.id), index))
        if ev.actor.ip is not None:
            rows.append((seg, blind.token("actor.ip", ev.actor.ip), index))
        if ev.target is not None and ev.target.id is not None:
            rows.append((seg, blind.token("target.id", ev.target.id), index))
        clear, found = self.policy.extract(ev)
        if not found:
            return ev
        if ev.subjects:
            for subject in set(ev.subjects):
                rows.append((seg, blind.token("subject", subject), index))
            kid, aead = self._subject_key(keyring, blind, ev.subjects, batch)
        else:
            kid = keyring.active
            aead = keyring.data[kid]
        nonces = os.urandom(envelope.NONCE_BYTES * len(found))
        event_id = ev.id or ""
        sealed: dict[str, str] = {}
        growth = 0
        for i, (path, value) in enumerate(found):
            plain = _enc.encode(value)
            token = sealed[path] = envelope.seal(
                aead, kid, nonces[12 * i:12 * i + 12],
                envelope.field_aad(self.origin, event_id, path), plain)
            growth += len(token) + 2 - len(plain)
        batch.growth = growth
        return msgspec.structs.replace(clear, sealed=sealed)

    def _subject_key(self, keyring: Keyring, blind: BlindIndexer, subjects: list[str],
                     batch: Batch) -> tuple[str, AESGCM]:
        parts: list[tuple[bytes, bytes]] = []
        for subject in sorted(set(subjects)):
            ref = blind.subject_ref(subject)
            got = self._by_ref.get(ref) or batch.new_keys.get(ref)
            if got is None:
                row = self._store.subject_keys_by_ref([ref]).get(ref)
                if row is not None:
                    kid, wrapped = row
                    got = (kid, self._unwrap(keyring, kid, wrapped))
                    self._remember(ref, got)
                else:
                    kid, raw = os.urandom(16), os.urandom(32)
                    got = (kid, raw)
                    batch.new_keys[ref] = got
                    batch.key_rows.append((kid, ref, envelope.wrap(
                        keyring.wrap_key, os.urandom(12), raw, self._key_aad(kid))))
            parts.append(got)
        parts.sort()
        text = "+".join(kid_text(kid) for kid, _ in parts)
        aead = self._aead.get(text)
        if aead is None:
            raw = parts[0][1] if len(parts) == 1 else _combine([r for _, r in parts])
            aead = self._aead[text] = AESGCM(raw)
        return text, aead

    def _key_aad(self, kid: bytes) -> bytes:
        return envelope.key_aad(self.origin, kid_text(kid), SUBJECT_PURPOSE)

    def _unwrap(self, keyring: Keyring, kid: bytes, wrapped: bytes) -> bytes:
        try:
            return envelope.unwrap(keyring.wrap_key, wrapped, self._key_aad(kid))
        except DecryptionError as exc:
            raise StorageError(f"subject key {kid_text(kid)} does not unwrap: the key table "
                               "was altered") from exc

    def _remember(self, ref: bytes, got: tuple[bytes, bytes]) -> None:
        if len(self._by_ref) >= _CACHE_MAX:
            self._by_ref.clear()
        self._by_ref[ref] = got

    def write(self, batch: Batch) -> None:
        """Write the batch's keys and blind rows (inside the commit transaction)."""
        if batch.key_rows:
            self._store.put_subject_keys(batch.key_rows)
        if batch.blind_rows:
            self._store.put_blind(batch.blind_rows)

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
        del obj["sealed"]
        erased: list[str] = []
        event_id = str(obj.get("id", ""))
        for path, token in sorted(sealed.items()):
            try:
                kid, blob = envelope.split_token(token)
                aead = self._opener(keyring, kid)
                if aead is None:
                    erased.append(path)
                    continue
                plain = envelope.open_blob(aead, blob,
                                           envelope.field_aad(self.origin, event_id, path))
                restore(obj, path, _dec.decode(plain))
            except (DecryptionError, FormatError, msgspec.DecodeError) as exc:
                raise DecryptionError(f"entry {index}: sealed field {path!r} failed "
                                      "authentication (altered, moved, or the wrong key); "
                                      "run sealtrail verify") from exc
        if erased:
            obj["erased"] = erased
        return obj

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
            self._aead[kid] = None
            return None
        keys = [self._unwrap(keyring, r, stored[r]) for r in raws]
        aead = AESGCM(keys[0] if len(keys) == 1 else _combine(keys))
        self._aead[kid] = aead
        return aead

    def subject_kids(self, subjects: Iterable[str]) -> dict[str, bytes | None]:
        """The key id of each subject (None when it has none: never seen, or erased)."""
        blind = self.blind()
        refs = {s: blind.subject_ref(s) for s in subjects}
        rows = self._store.subject_keys_by_ref(refs.values())
        return {s: (rows[r][0] if r in rows else None) for s, r in refs.items()}
