"""Preparing an append: everything an event goes through before it is queued for sequencing.

In order, per event (nothing is stored; any failure refuses the whole call, naming the event
by its position): validation against the event schema, the names reserved for sealtrail's own
records, redaction of secrets, that a locked keyring can still store it, and the id (a UUIDv7
dated far ahead of the log's clock is refused: retries are found by the id's time). Events
without an id get a fresh UUIDv7 here, so every receipt names its event. Then each event gets
its receive time, is sealed (an encrypted log: personal fields under their keys, blind tokens
computed) or encoded, and its leaf hashed -- so the one serial step, sequencing, only places
leaves that are ready.

This runs in the caller's thread, outside the write lock, or in a worker process
(:mod:`sealtrail.log.workers`). The result is a :class:`Request`, the unit the group commit
queues and sequences.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

import msgspec

from sealtrail.core import canonical
from sealtrail.core.errors import ValidationError
from sealtrail.core.event import MAX_EVENT_BYTES, Event, validate_event
from sealtrail.core.merkle.hashing import leaf_hash, leaf_hashes
from sealtrail.core.receipt import Receipt
from sealtrail.core.redact import Redactor
from sealtrail.core.reserved import reserved_field
from sealtrail.core.uuid7 import uuid7_ms, uuid7_texts
from sealtrail.log.keyring import Keyring
from sealtrail.log.protect import NewKeys, Protector, Sealing

MAX_BATCH: Final = 100_000        # events in one append_many call
MAX_SEQUENCED: Final = MAX_EVENT_BYTES + 1024  # an event plus its id and times, before sealing
MAX_FUTURE_MS: Final = 10 * 60_000  # a UUIDv7 id may be dated at most 10 minutes ahead


@dataclass(slots=True)
class Request:
    """One append call's events on their way through the group commit."""

    events: list[Event]         # validated, with their id, receive time and time set
    ids: list[bytes]            # the 16 id bytes of each event
    texts: list[str]            # the canonical id text of each event
    generated: frozenset[bytes] = frozenset()  # ids the log just made: cannot be stored yet
    own: bool = False           # the engine's own records (no caller sent them as a batch)
    leaves: list[bytes] = field(default_factory=list)   # each event's leaf (sealed or not)
    hashes: list[bytes] = field(default_factory=list)   # each leaf's RFC 6962 hash
    sealing: Sealing | None = None  # tokens and new subject keys (an encrypted log)
    # Prepared in worker processes, the events arrive packed: this unpacks them (a re-seal).
    unpack: Callable[[], list[Event]] | None = None
    # Runs inside the commit transaction before sequencing, given the index the request's
    # first event will get; raising fails this request alone, so it must check before it
    # writes (erasure, legal holds and retention use it).
    hook: Callable[[int], None] | None = None
    receipts: list[Receipt] = field(default_factory=list)
    error: BaseException | None = None
    done: bool = False
    wake: threading.Event = field(default_factory=threading.Event)


@dataclass(frozen=True, slots=True)
class Gate:
    """What one log checks events against: its redactor, its sealing side (for the locked
    check) and whether the events are its own (reserved names allowed)."""

    redactor: Redactor | None
    protector: Protector | None
    locked_reason: str
    own: bool = False


def prepare(events: Iterable[Event | Mapping[str, Any]], gate: Gate, now_ms: int,
            received: str, *, validated: bool = False) -> Request | None:
    """The request for ``events`` (None when there are none), sealed and hashed, received at
    ``received``; ValidationError naming ``events[i].field`` for the first event that fails.

    ``validated``: events that are already :class:`Event` values came from
    ``validate_event`` (the service validates a request whole, to report every bad event).
    """
    redactor, protector, own = gate.redactor, gate.protector, gate.own
    at = _at if not own else _unplaced
    locked = protector is not None and not protector.unlocked
    prepared: list[Event] = []
    ids: list[bytes] = []
    texts: list[str] = []
    missing: list[int] = []
    for i, raw in enumerate(events):
        if i >= MAX_BATCH:
            raise ValidationError("events", f"more than {MAX_BATCH} events in one call")
        if validated and type(raw) is Event:
            ev = raw
        else:
            try:
                ev = validate_event(raw)
            except ValidationError as exc:
                raise at(i, exc.field, exc.message) from exc
        if not own:
            claimed = reserved_field(ev.action,
                                     ev.source.service if ev.source is not None else None,
                                     ev.actor.id)
            if claimed is not None:
                raise at(i, *claimed)
        if redactor is not None:
            try:
                ev = redactor.redact(ev)[0]
            except ValidationError as exc:
                raise at(i, exc.field, exc.message) from exc
        if locked and protector is not None:
            try:
                protector.check_sealable(ev, gate.locked_reason, own)
            except ValidationError as exc:
                raise at(i, exc.field, exc.message) from exc
        prepared.append(ev)
        if ev.id is None:
            missing.append(i)
            ids.append(b"")
            texts.append("")
        else:
            raw_id = bytes.fromhex(ev.id.replace("-", ""))
            ms = uuid7_ms(raw_id)
            if ms is not None and ms > now_ms + MAX_FUTURE_MS:
                # Retries are found fast by the ids' time; a far-future id would make every
                # later lookup slow (see recent_ids), and means a client clock is wrong.
                raise at(i, "id", "UUIDv7 timestamp is more than 10 minutes ahead of the "
                          "log's clock (check the client clock, or leave id out)")
            ids.append(raw_id)
            texts.append(ev.id)
    if not prepared:
        return None
    generated: frozenset[bytes] = frozenset()
    if missing:
        # Ids are assigned here, before sequencing, so a receipt always names its event.
        fresh = uuid7_texts(now_ms, os.urandom(10 * len(missing)))
        for i, (text, raw_id) in zip(missing, fresh, strict=True):
            texts[i] = text
            ids[i] = raw_id
        generated = frozenset(raw for _, raw in fresh)
    req = Request(prepared, ids, texts, generated, own=own)
    seal(req, protector, received)
    return req


def seal(req: Request, protector: Protector | None, received: str) -> None:
    """Give a request's events their id, receive time and time, then their leaves (sealed
    when the log is encrypted) and leaf hashes. A ValidationError names the event."""
    replace = msgspec.structs.replace
    events = req.events
    for pos, (ev, text) in enumerate(zip(events, req.texts, strict=True)):
        events[pos] = replace(ev, id=text, received_at=received, time=ev.time or received)
    encode(req, protector)


def encode(req: Request, protector: Protector | None) -> None:
    """The leaves and leaf hashes of a request's sequenced events."""
    leaves: list[bytes] = []
    sealing = protector.sealing() if protector is not None else None
    if protector is not None and sealing is not None:
        protector.prefetch((ev.subjects for ev in req.events if ev.subjects), sealing)
    for pos, ev in enumerate(req.events):
        leaves.append(_leaf(req, pos, ev, protector, sealing=sealing, claimed=None))
    req.leaves = leaves
    req.hashes = leaf_hashes(leaves)
    req.sealing = sealing


def reseal(req: Request, protector: Protector, positions: Iterable[int],
           claimed: NewKeys) -> None:
    """Seal the events at ``positions`` again, under the write lock, with the subject keys
    the commit settled (``claimed``, which gains the keys this makes). Their tokens do not
    change (they do not depend on keys)."""
    if not req.events and req.unpack is not None:
        req.events = req.unpack()
    sealing = Sealing(protector.epoch)
    for pos in positions:
        leaf = _leaf(req, pos, req.events[pos], protector, sealing=sealing,
                     claimed=claimed)
        req.leaves[pos] = leaf
        req.hashes[pos] = leaf_hash(leaf)
    claimed.update(sealing.new_keys)


def _leaf(req: Request, pos: int, ev: Event, protector: Protector | None, *,
          sealing: Sealing | None, claimed: NewKeys | None) -> bytes:
    try:
        if sealing is not None and protector is not None:
            leaf = protector.seal(ev, pos, sealing, claimed, own=req.own)
            if sealing.growth:
                check_unsealed_size(len(leaf) - sealing.growth)
            return leaf
        return canonical.encode_leaf(ev)
    except ValidationError as exc:
        raise located(exc, pos, ev, positioned=not req.own) from exc


def redactor_for(redaction: str, keyring: Keyring | None) -> Redactor | None:
    """A log's redactor: ``hash`` needs the keyring's key (locked, it masks rather than
    store a secret), ``mask`` masks, ``off`` has none."""
    if redaction == "hash" and keyring is not None:
        return Redactor("hash", keyring.redact_key)
    if redaction in ("mask", "hash"):
        return Redactor("mask")
    return None


def _at(pos: int, field_name: str, message: str) -> ValidationError:
    """An error about event ``pos`` of a request: its field is ``events[pos].field`` (for
    people) and its ``position`` the event's place (the service's 422 answers carry it as
    ``index``, so no client parses the field text)."""
    exc = ValidationError(f"events[{pos}].{field_name}", message)
    exc.position = pos
    return exc


def _unplaced(pos: int, field_name: str, message: str) -> ValidationError:
    """An error about the engine's own record ``pos``: named like :func:`_at`, without a
    position (the caller sent no batch, so no event of theirs is to be named)."""
    return ValidationError(f"events[{pos}].{field_name}", message)


def check_unsealed_size(size: int) -> None:
    """The size limit holds for the event as sent, not for its (larger) sealed form."""
    if size > MAX_SEQUENCED:
        raise ValidationError("event", f"larger than {MAX_EVENT_BYTES} bytes once sequenced")


def _surrogate_path(value: Any, path: str) -> str | None:
    """The path of the first string (or key) holding a lone surrogate (failure path only)."""
    if isinstance(value, str):
        try:
            value.encode()
        except UnicodeEncodeError:
            return path
        return None
    if isinstance(value, dict):
        for key, item in value.items():
            sub = f"{path}.{key}" if path else str(key)
            found = _surrogate_path(key, sub) or _surrogate_path(item, sub)
            if found is not None:
                return found
    if isinstance(value, list):
        for i, item in enumerate(value):
            found = _surrogate_path(item, f"{path}[{i}]")
            if found is not None:
                return found
    return None


def located(exc: ValidationError, pos: int, ev: Event, *, positioned: bool = True
            ) -> ValidationError:
    """An error found while encoding event ``pos`` of a request, named like validation errors.

    Encoding finds what validation cannot (lone surrogates, the sequenced size); its error says
    only ``event``, so add the event's position and, for a surrogate, the field that holds it.
    """
    field_name = exc.field
    if field_name == "event":
        field_name = _surrogate_path(ev.to_dict(), "") or ""
    out = ValidationError(f"events[{pos}].{field_name}" if field_name else f"events[{pos}]",
                          exc.message)
    if positioned:
        out.position = pos
    out.__cause__ = exc
    return out
