"""Personal-data use cases of one log: erasure (crypto-shredding), legal holds, key rotation.

Each is one entry of the log's own plus the store writes that go with it, committed together:
the engine calls the step's ``hook`` inside the transaction that appends the entry, with the
write lock held, so the hook checks the current state (a hold added meanwhile, a key that
changed) before it writes, and a refusal leaves nothing behind.
"""

from __future__ import annotations

import base64
import contextlib
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from sealtrail.core.canonical import leaf_object
from sealtrail.core.errors import (
    ConfigError,
    KeyringError,
    PolicyError,
    SealtrailError,
    StorageError,
    TamperError,
    ValidationError,
)
from sealtrail.core.timefmt import format_time
from sealtrail.log.blindindex import SEG_SHIFT
from sealtrail.log.keyring import KeyEncryptionKey, kid_number
from sealtrail.log.protect import kid_text
from sealtrail.log.settings import ACTIVE_KEY_META

if TYPE_CHECKING:
    from sealtrail.log.auditlog import AuditLog, Receipt


def check_reason(reason: str, hint: str) -> None:
    """A reason is required and must be valid Unicode (checked before any write)."""
    if not reason.strip():
        raise ValidationError("reason", hint)
    try:
        reason.encode()
    except UnicodeEncodeError as exc:
        raise ValidationError("reason", "contains a lone surrogate (not valid Unicode)") from exc


def ref_text(ref: bytes) -> str:
    """A subject reference as logs and holds show it (``ref:`` + unpadded base64url)."""
    return "ref:" + base64.urlsafe_b64encode(ref).rstrip(b"=").decode()


def _target(alog: AuditLog, subject: str) -> tuple[bytes, dict[str, str]]:
    ref = alog.subject_protector().blind().subject_ref(subject)
    return ref, {"type": "data_subject", "id": ref_text(ref)}


def erase(alog: AuditLog, subject: str, *, reason: str, actor: Mapping[str, Any]) -> Receipt:
    """Crypto-shred one data subject: destroy its key, append the erasure event.

    Afterwards the subject's sealed fields read as erased; every leaf, checkpoint and proof
    stays valid. Refused (PolicyError, naming the hold) while a legal hold is open. The key
    deletion and the erasure event commit in one transaction, then the store purges what it
    deleted and every cached copy of the key in this process is dropped.
    """
    protector = alog.subject_protector()
    ref, target = _target(alog, subject)
    check_reason(reason, "say why (the request or legal basis)")
    blind = protector.blind()
    token = blind.token("subject", subject)
    count = len(alog.find("subject", subject))
    kid_before = protector.subject_kids([subject])[subject]
    store = alog.store

    # Erasure cannot be undone: the holds table it consults must be what the log's own
    # hold entries say (an edited table would unblock it).
    alog.check_settings()

    def hook(_at: int) -> None:
        held = store.holds(ref)
        if held:
            hold = held[0]
            raise PolicyError(f"the subject is under legal hold #{hold.number} since "
                              f"{hold.created} ({protector.open_note(hold.reason, ref)!r}): "
                              "release it first (sealtrail hold release)")
        row = store.subject_keys_by_ref([ref]).get(ref)
        if row is None:
            raise ConfigError("this subject has no key: it was never named in an event's "
                              "subjects, or it was already erased")
        if row.kid != kid_before:
            raise ConfigError("the subject's key changed meanwhile; try again")
        rows: list[tuple[int, int, int]] = []
        sealed_blind = [f for f in ("actor.ip", "target.id") if f in protector.policy.paths]
        # Found again under the write lock: no event of the subject can slip past.
        for index in alog.find("subject", subject):
            seg = index >> SEG_SHIFT
            rows.append((seg, token, index))
            if sealed_blind:
                # Open the entry while the key still exists, to find its other tokens.
                ev = alog.read(alog.entry(index))
                for f in sealed_blind:
                    part, _, name = f.partition(".")
                    value = (ev.get(part) or {}).get(name)
                    if isinstance(value, str):
                        rows.append((seg, blind.token(f, value), index))
        protector.index.delete(rows)
        store.delete_subject_key(row.kid)
        store.set_meta({"key_epoch": protector.next_epoch()})
        # Later requests of this commit must not seal with the destroyed key.
        protector.forget()

    event = {"actor": dict(actor), "action": "subject.erase", "outcome": "success",
             "category": "admin", "target": target, "reason": reason,
             "metadata": {"key_id": "" if kid_before is None else kid_text(kid_before),
                          "entries": count}}
    receipt = alog.commit_with(event, hook)
    protector.forget()
    alog.wal_purged = store.purge_deleted(wait_s=2.0)
    return receipt


def hold(alog: AuditLog, subject: str, *, reason: str, actor: Mapping[str, Any]) -> Receipt:
    """Put a legal hold on a subject: erasure is refused until it is released."""
    ref, target = _target(alog, subject)
    check_reason(reason, "say why (the matter or legal basis)")
    created = format_time(alog.now())
    protector = alog.subject_protector()

    def hook(_at: int) -> None:
        # The reason is sealed: it may say more about the person than it should.
        alog.store.put_hold(ref, protector.seal_note(reason, ref), created)

    # The entry's time is the hold's: verify holds the stored row to it.
    return alog.commit_with({"actor": dict(actor), "action": "subject.hold.add",
                             "outcome": "success", "category": "admin", "target": target,
                             "reason": reason, "time": created}, hook)


def release(alog: AuditLog, subject: str, *, reason: str, actor: Mapping[str, Any]) -> Receipt:
    """Release every open legal hold on a subject."""
    ref, target = _target(alog, subject)
    check_reason(reason, "say why the hold ends")
    released = format_time(alog.now())

    def hook(_at: int) -> None:
        if not alog.store.holds(ref):
            raise ConfigError("this subject has no open legal hold")
        alog.store.release_holds(ref, released)

    return alog.commit_with({"actor": dict(actor), "action": "subject.hold.release",
                             "outcome": "success", "category": "admin", "target": target,
                             "reason": reason, "time": released}, hook)


def holds(alog: AuditLog, *, open_only: bool = True) -> list[dict[str, Any]]:
    """Legal holds: number, subject pseudonym, reason, since, released."""
    protector = alog.subject_protector()
    return [{"hold": h.number, "subject_ref": ref_text(h.ref),
             "reason": protector.open_note(h.reason, h.ref), "since": h.created,
             "released": h.released} for h in alog.store.holds(open_only=open_only)]


def rotate_keys(alog: AuditLog, *, actor: Mapping[str, Any],
                new_kek: KeyEncryptionKey | None = None) -> str:
    """Start a new data key (optionally rewrapping the keyring under ``new_kek``).

    Old keys stay, so old entries stay readable; the tree is untouched. The keyring is
    replaced inside the transaction that appends the ``keys.rotate`` record. When that
    transaction does not commit, the new key is kept, never taken back: another process or
    node follows the keyring before each sealing and may already have sealed events under
    it, which taking it back would make unreadable. The rotation is then recorded as soon as
    a commit succeeds here, else when the log next opens
    (:func:`record_interrupted_rotation`). Returns the new active key id.
    """
    if not alog.encrypted:
        raise ConfigError("this log is not encrypted: it has no keys to rotate")
    keyring = alog.keyring
    if keyring is None:
        raise KeyringError(alog.locked_reason or "the keyring is locked")
    now = format_time(alog.now())
    keyring.reload()  # another process may have rotated: name the key this one will make
    kid = keyring.next_data_kid()

    def hook(_at: int) -> None:
        made = keyring.rotate(now, new_kek)
        if made != kid:
            raise ConfigError("the keyring was rotated by another process meanwhile; "
                              "try again")
        alog.store.set_meta({ACTIVE_KEY_META: made})

    try:
        alog.commit_with({"actor": dict(actor), "action": "keys.rotate",
                          "outcome": "success", "category": "configuration",
                          "target": {"type": "keyring", "id": kid},
                          "reason": "rewrapped under a new key-encryption key" if new_kek
                          else "new data key"}, hook)
    except Exception:
        # Not committed, but the keyring may hold the new key already (kept: see above).
        # Record it now if a commit works again; else the next open does.
        with contextlib.suppress(SealtrailError):
            record_interrupted_rotation(alog)
        raise
    return kid


def record_interrupted_rotation(alog: AuditLog) -> None:
    """Record a rotation whose ``keys.rotate`` entry was lost (a crash between the keyring
    write and the commit): the keyring's active key differs from the last recorded one."""
    keyring = alog.keyring
    if keyring is None:
        return
    recorded = alog.store.meta().get(ACTIVE_KEY_META, "d1")
    try:
        later = _recorded_rotation_past(alog, keyring.active)
    except TamperError as exc:
        # Looking found tampering (of the index or the entries): appends refuse until
        # verify has named it and it is mended.
        alog.settings_problem = f"the keyring's recorded rotations cannot be read: {exc}"
        return
    if later is not None:
        # The log records a rotation past the keyring's active key: the keyring was put
        # back (with the unsigned active_key setting, or without), not cut short.
        alog.settings_problem = (f"the keyring's active data key is {keyring.active} but the "
                                 f"log recorded a rotation to {later[1]} at entry {later[0]}: "
                                 f"the keyring ({keyring.where}) was replaced by an older "
                                 "copy (restore the current one)")
        return
    if keyring.active == recorded:
        return
    if kid_number(keyring.active) < kid_number(recorded) or recorded not in keyring.data:
        # Only a forward move is a rotation cut short; an older keyring put back would bring
        # a retired (perhaps compromised) data key back into use.
        alog.settings_problem = (f"the keyring's active data key is {keyring.active} but the "
                                 f"log's last rotation made {recorded} active: keyring.json "
                                 "was replaced by an older copy (restore the current one)")
        return

    def hook(_at: int) -> None:
        alog.store.set_meta({ACTIVE_KEY_META: keyring.active})

    alog.commit_with({"actor": {"id": "sealtrail", "type": "service"},
                      "action": "keys.rotate", "outcome": "success",
                      "category": "configuration",
                      "target": {"type": "keyring", "id": keyring.active},
                      "reason": f"recorded at open: the keyring's active key is "
                      f"{keyring.active}, the last recorded rotation {recorded} (a rotation "
                      "was cut short before its record, or the keyring file was replaced)"},
                     hook)


def _recorded_rotation_past(alog: AuditLog, active: str) -> tuple[int, str] | None:
    """The entry (index, kid) recording the rotation that followed ``active``, if the log
    has one: the next key id looked up as a ``keys.rotate`` target (a reserved action only the
    engine writes) in the blind index as far as it reaches, and the entries past it read.
    Nothing is written (an open must not): None when there is no such entry, or when it
    cannot be looked up; then the unsigned ``active_key`` setting is all there is."""
    following = f"d{kid_number(active) + 1}"
    try:
        protector = alog.subject_protector()
        status = alog.index_status()
        token = protector.blind().token("target.id", following)
        hits = protector.index.lookup(token, status["indexed"], None)
        tail = range(status["indexed"], status["size"])
        for index in [*hits, *tail]:
            leaf = alog.entry(index).leaf
            if not leaf or b'"keys.rotate"' not in leaf:
                continue  # retired by retention (its body is gone), or another action
            event = leaf_object(leaf)
            target = event.get("target")
            if (event.get("action") == "keys.rotate" and isinstance(target, dict)
                    and target.get("id") == following):
                return index, following
    except (StorageError, ConfigError, KeyringError):
        # Cannot be looked up (a read-only copy, a locked keyring). Not TamperError: a log
        # that fails its checks while looking must not open as if nothing were found.
        return None
    return None
