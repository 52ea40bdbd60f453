"""Verification of the tables derived from the entries, which only the keyring can rebuild.

``verify`` (``log/verify.py``) needs no key: it checks the leaves, the tree, the checkpoints and
the retention receipts. Two tables beside them hold what the log *derived* from the events,
and an attacker with the database file can edit them without touching a leaf:

- the **blind index** (``blind`` and the per-commit packed ``blind_pending`` rows, see
  ``log/blindindex.py``): a deleted row silently empties a search, an IP lookup or a GDPR
  subject export; an extra row points a search at the wrong entries;
- the **subject keys** (``subject_keys``): a deleted row crypto-shreds a data subject's
  events, which is legitimate only as an erasure, recorded by a ``subject.erase`` event
  (reserved to the engine) whose sealed ``metadata.key_id`` names the key. A key row put
  back after its erasure (from a backup) makes erased events readable again.

:func:`verify_derived` rebuilds both from the opened events in one streaming pass (memory: one
4096-entry segment of rows, plus the ids of the subject keys met, O(subjects)) inside one read
snapshot of its own, and raises :class:`TamperError` naming the first entry that disagrees.

What it expects, per entry (``log/protect.py`` computes it, ``log/indexing.py`` writes it):

- a token for ``actor.id``, ``actor.ip`` and ``target.id`` when the event has them, and one per
  distinct subject, in segment ``index >> 12`` (folded into ``blind``, or still pending);
- entries at or past the index cursor (``unindexed_from``) carry no rows: the index step
  (``log/indexing.py``) writes them after the commit, or, for entries appended while the
  keyring was locked, once a process with the keyring runs it;
- an erased event (its subject key destroyed) keeps the tokens of its clear fields; the tokens
  of the erased subject and of its sealed ``actor.ip``/``target.id`` are gone, those of its
  other subjects stay. Its fields are unreadable, so the rows it may keep beyond its clear
  fields are only counted: at most one per co-subject whose key remains, plus its sealed
  ``actor.ip``/``target.id`` (erasure cannot open an entry that was archived at the time, so
  those two stay for such entries);
- purged entries are not checked (their bodies are gone); archived entries are checked from
  their segment file when it is in ``archive/`` and opens, else counted as unread.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final

from sealtrail.core import canonical
from sealtrail.core.blind import BlindIndexer
from sealtrail.core.errors import (
    ConfigError,
    DecryptionError,
    FormatError,
    KeyringError,
    StorageError,
    TamperError,
)
from sealtrail.core.policy import FieldPolicy
from sealtrail.log.blindindex import SEG_SHIFT
from sealtrail.log.protect import UNINDEXED_KEY, Protector, kid_bytes, kid_text
from sealtrail.store.protocol import Store

if TYPE_CHECKING:
    from sealtrail.log.auditlog import AuditLog

ERASE_ACTION: Final = "subject.erase"
_SEALED_BLIND: Final = ("actor.ip", "target.id")


@dataclass(frozen=True, slots=True)
class DerivedReport:
    """What a successful check of the derived tables covered."""

    size: int
    entries: int                 # entries whose blind-index rows were rebuilt and compared
    blind_rows: int              # stored rows compared
    subject_keys: int            # distinct subject keys in use and present
    erased_keys: int             # subject keys gone, each with its erasure record
    unread: int = 0              # retired entries not checked (purged, or archive file away)
    unconfirmed_erasures: int = 0  # keys gone whose erasure record may be in retired entries

    def summary(self) -> str:
        """One line for people."""
        extra = ""
        if self.unread:
            extra += f"; {self.unread} retired entries not read"
        if self.unconfirmed_erasures:
            extra += (f"; {self.unconfirmed_erasures} erased keys whose erasure record may "
                      "be among retired entries")
        return (f"OK: blind index of {self.entries} entries ({self.blind_rows} rows) and "
                f"{self.subject_keys} subject keys match the events; {self.erased_keys} "
                f"erased keys each have their erasure record{extra}")


@dataclass(slots=True)
class _Expect:
    """One entry's expected rows."""

    index: int
    tokens: dict[int, str]            # token -> field it indexes
    kids: tuple[bytes, ...] = ()      # subject key ids its fields are sealed under
    erased: bool = False
    sealed_blind: int = 0             # sealed actor.ip / target.id (erased entries)


@dataclass(slots=True)
class _State:
    """What the pass accumulates beyond one segment (O(subjects))."""

    present: set[bytes] = field(default_factory=set)
    missing: dict[bytes, tuple[int, int]] = field(default_factory=dict)  # kid -> first, last
    erased_by: dict[str, int] = field(default_factory=dict)  # kid text -> erasure entry
    pending: dict[int, set[tuple[int, int]]] = field(default_factory=dict)  # seg -> rows
    error: TamperError | None = None  # the first blind-index mismatch (keys explain first)
    unindexed: int | None = None  # entries from here without sealed fields: not indexed yet
    entries: int = 0
    rows: int = 0
    unread: int = 0
    last_unread: int = -1


def verify_derived(alog: AuditLog) -> DerivedReport:
    """Rebuild the blind index and the subject-key set from the opened events and compare
    them with what is stored; raises TamperError naming the first entry that disagrees.

    The log must be unlocked (KeyringError otherwise). An unencrypted log has neither table:
    the report is empty.
    """
    if not alog.encrypted:
        return DerivedReport(alog.size, 0, 0, 0, 0)
    keyring = alog.keyring
    if keyring is None:
        raise KeyringError(alog.locked_reason or "the keyring is locked: checking the blind "
                           "index and subject keys needs it (set SEALTRAIL_PASSPHRASE)")
    reader = alog.store.reader()
    try:
        protector = Protector(alog.origin, FieldPolicy.parse(alog.sealed_paths), keyring,
                              reader)
        with reader.snapshot():
            return _run(alog, reader, protector)
    finally:
        reader.close()


def _run(alog: AuditLog, reader: Store, protector: Protector) -> DerivedReport:
    size = reader.state().size
    meta = reader.meta()
    blind = protector.blind()
    state = _State(unindexed=int(meta[UNINDEXED_KEY]) if UNINDEXED_KEY in meta else None)
    pending = state.pending
    for _, data in reader.blind_pending():
        for tok, idx in _pairs(data):
            pending.setdefault(idx >> SEG_SHIFT, set()).add((tok, idx))
    seg = -1
    batch: list[_Expect] = []
    skipped: set[int] = set()
    for index, leaf in _leaves(alog, reader, size, state):
        if index >> SEG_SHIFT != seg:
            if seg >= 0:
                _flush_noting(reader, seg, batch, skipped, state)
            seg, batch, skipped = index >> SEG_SHIFT, [], set()
        if leaf is None:
            skipped.add(index)
            continue
        batch.append(_expect(protector, blind, index, leaf, state))
    if seg >= 0:
        _flush_noting(reader, seg, batch, skipped, state)
    # A subject key deleted or put back makes its entries' rows disagree too: the keys are
    # reported first, as the cause.
    report = _keys_report(reader, size, state)
    if state.error is not None:
        raise state.error
    last_seg = (size - 1) >> SEG_SHIFT if size else -1
    stray = reader.blind_outside(last_seg)
    if stray:
        s, _, idx = stray[0]
        raise TamperError("extra", idx, f"a blind-index row in segment {s} names entry {idx}, "
                          f"outside the log's {size} entries")
    for s in sorted(pending):
        if s > last_seg:
            idx = min(i for _, i in pending[s])
            raise TamperError("extra", idx, f"a pending blind-index row names entry {idx}, "
                              f"outside the log's {size} entries")
    return report


def _pairs(data: bytes) -> Iterator[tuple[int, int]]:
    view = memoryview(data).cast("q") if len(data) % 16 == 0 else None
    if view is None:
        raise TamperError("changed", 0, "a pending blind-index row is not whole (token, "
                          "index) pairs")
    for k in range(0, len(view), 2):
        yield int(view[k]), int(view[k + 1])


def _leaves(alog: AuditLog, reader: Store, size: int, state: _State
            ) -> Iterator[tuple[int, bytes | None]]:
    """(index, leaf) of every entry; None for one that cannot be read (purged, or archived
    with its segment file away): its rows are not checked."""
    # Imported here: archive imports the engine, which may one day import this module.
    from sealtrail.log.archive import Segment, archive_dir, read_segment  # noqa: PLC0415

    archived = {s: e for s, e, _, kind in reader.retired() if kind == "archive"}
    away: dict[int, bytes] = {}
    for chunk in reader.iter_chunks(0, size):
        try:
            leaves = chunk.leaves()
        except ValueError as exc:
            raise TamperError("changed", chunk.start, f"{exc}; run sealtrail verify") from exc
        for k, leaf in enumerate(leaves):
            index = chunk.start + k
            if not 0 <= index < size:
                continue
            if leaf:
                yield index, leaf
                continue
            if index in archived:
                away = {}
                path = archive_dir(alog) / Segment(index, archived[index], "").name
                try:
                    start, _, got = read_segment(alog, path)
                    away = {start + j: b for j, b in enumerate(got)}
                except (OSError, ConfigError, DecryptionError):
                    away = {}
            found = away.pop(index, None)
            if found is None:
                state.unread += 1
                state.last_unread = index
            yield index, found


def _expect(protector: Protector, blind: BlindIndexer, index: int, leaf: bytes,
            state: _State) -> _Expect:
    try:
        obj = canonical.leaf_object(leaf)
    except ValueError as exc:
        raise TamperError("changed", index, "the entry is not an event; run sealtrail verify"
                          ) from exc
    if not isinstance(obj, dict):
        raise TamperError("changed", index, "the entry is not an event; run sealtrail verify")
    obj.pop("v", None)
    sealed = obj.get("sealed")
    kid_field = ""
    sealed_fields: list[str] = []
    if isinstance(sealed, dict):
        kid_field = str(sealed.get("ct", "")).split(":", 1)[0]
        sealed_fields = [f for f in sealed.get("fields") or () if isinstance(f, str)]
    kids: tuple[bytes, ...] = ()
    if kid_field.startswith("s"):
        try:
            kids = tuple(kid_bytes(part) for part in kid_field.split("+"))
        except FormatError as exc:
            raise TamperError("changed", index, f"{exc}; run sealtrail verify") from exc
    try:
        ev = protector.reveal(index, obj)
    except (DecryptionError, StorageError) as exc:
        raise TamperError("changed", index, f"the entry does not open: {exc}") from exc
    tokens: dict[int, str] = {}
    erased = "erased" in ev
    if ev.get("action") == ERASE_ACTION:
        key_id = (ev.get("metadata") or {}).get("key_id")
        if isinstance(key_id, str) and key_id:
            state.erased_by.setdefault(key_id, index)
    if state.unindexed is not None and index >= state.unindexed:
        # At or past the index cursor: the index step has not written its rows yet (it
        # runs after the commit), so none may be stored.
        return _Expect(index, tokens, kids, erased, 0)
    actor = ev.get("actor") or {}
    target = ev.get("target") or {}
    for name, value in (("actor.id", actor.get("id")), ("actor.ip", actor.get("ip")),
                        ("target.id", target.get("id"))):
        if isinstance(value, str):
            tokens[blind.token(name, value)] = name
    if not erased:
        for subject in ev.get("subjects") or ():
            if isinstance(subject, str):
                tokens[blind.token("subject", subject)] = "subject"
    return _Expect(index, tokens, kids, erased,
                   sum(1 for f in _SEALED_BLIND if f in sealed_fields))


def _flush_noting(reader: Store, seg: int, batch: list[_Expect], skipped: set[int],
                  state: _State) -> None:
    """:func:`_flush`, keeping the first mismatch for later and going on."""
    try:
        _flush(reader, seg, batch, skipped, state)
    except TamperError as exc:
        if state.error is None:
            state.error = exc


def _flush(reader: Store, seg: int, batch: list[_Expect], skipped: set[int],
           state: _State) -> None:
    """Compare one segment's expected rows with the stored ones; note its subject keys."""
    stored: dict[int, set[int]] = {}
    rows = set(reader.blind_segment(seg)) | state.pending.pop(seg, set())
    for tok, idx in rows:
        stored.setdefault(idx, set()).add(tok)
    state.rows += len(rows)
    kids = {k for e in batch for k in e.kids}
    have = set(reader.subject_keys_by_kid(kids)) if kids else set()
    state.present |= have
    for e in batch:
        for k in e.kids:
            if k not in have:
                first, _ = state.missing.get(k, (e.index, e.index))
                state.missing[k] = (first, e.index)
    known = {e.index for e in batch} | skipped
    for idx in sorted(i for i in stored if i not in known):
        raise TamperError("extra", idx, f"blind-index rows in segment {seg} name entry {idx}, "
                          "which is not in that segment")
    for e in batch:
        got = stored.get(e.index, set())
        for tok, name in e.tokens.items():
            if tok not in got:
                raise TamperError("missing", e.index, f"the blind-index row for {name} is "
                                  "missing: searches and subject exports would skip this "
                                  "entry")
        extra = len(got - e.tokens.keys())
        allowed = (sum(1 for k in e.kids if k in have) + e.sealed_blind) if e.erased else 0
        if extra > allowed:
            raise TamperError("extra", e.index, f"{extra} blind-index row(s) for this entry "
                              "match none of its fields")
    state.entries += len(batch)


def _keys_report(reader: Store, size: int, state: _State) -> DerivedReport:
    """Every subject key gone has its erasure record, after its last use; every erased key is
    gone."""
    confirmed = unconfirmed = 0
    for kid, (first, last) in sorted(state.missing.items(), key=lambda kv: kv[1]):
        text = kid_text(kid)
        at = state.erased_by.get(text)
        if at is None:
            if state.last_unread > last:
                unconfirmed += 1  # its record may be among the retired entries
                continue
            raise TamperError("missing", first, f"subject key {text} of this entry is gone "
                              "from subject_keys: crypto-shredded without an erasure record")
        if at < last:
            raise TamperError("missing", last, f"subject key {text} was erased by entry {at} "
                              "but this later entry was sealed under it")
        confirmed += 1
    if state.erased_by:
        raws = {}
        for text, at in state.erased_by.items():
            try:
                raws[kid_bytes(text)] = at
            except FormatError:
                continue
        back = reader.subject_keys_by_kid(raws)
        if back:
            kid = min(back, key=lambda k: raws[k])
            raise TamperError("extra", raws[kid], f"subject key {kid_text(kid)} was erased by "
                              "this entry but is back in subject_keys (restored from a "
                              "backup?): the erased events read again")
    return DerivedReport(size, state.entries, state.rows, len(state.present), confirmed,
                         state.unread, unconfirmed)


__all__ = ["DerivedReport", "verify_derived"]
