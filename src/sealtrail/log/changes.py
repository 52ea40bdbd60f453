"""Typed changes to a log's stored state, committed with the entry that records them.

Retention, archive and settings steps do not write the store themselves: they describe what
is to change (a value of :data:`Change`) and the engine applies it with :func:`apply` inside
the transaction that appends the step's own entry (``AuditLog.commit_change``). Applying
checks first that the change still fits the store as it is now — the write lock is held, so
another process's purge, restore or new legal hold since the plan was made is seen — and
refuses (ConfigError, PolicyError) before anything is written, which fails that request alone.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from sealtrail.core.errors import ConfigError, PolicyError
from sealtrail.store.protocol import Chunk, RetiredRange, Store


@dataclass(frozen=True, slots=True)
class SetSettings:
    """Write settings (meta items); ``index_key``, when set, also records the index of the
    entry that made the change (``verify`` holds the setting to that entry)."""

    items: Mapping[str, str]
    index_key: str | None = None


@dataclass(frozen=True, slots=True)
class Retire:
    """Empty the bodies of entries ``ranges`` (purge or archive); their leaf hashes stay.

    ``holds`` are the open legal holds the plan respected (a purge is refused when another
    appeared since); ``replaces_archive``: the ranges are archived segments now purged.
    """

    ranges: tuple[tuple[int, int], ...]
    kind: str
    holds: tuple[int, ...] = ()
    replaces_archive: bool = False


@dataclass(frozen=True, slots=True)
class Restore:
    """Put archived bodies back: ``leaves`` are entries ``start .. end - 1`` (already checked
    against their leaf hashes in the tree)."""

    start: int
    end: int
    leaves: tuple[bytes, ...]


Change = SetSettings | Retire | Restore


def reframed(store: Store, start: int, end: int, bodies: Mapping[int, bytes], *,
             fill_only: bool = False) -> list[tuple[int, bytes]]:
    """New framing of every chunk overlapping ``[start, end)`` whose leaves ``bodies``
    replaces (by index); chunks it does not touch are left out. ``fill_only``: only empty
    (retired) leaves are replaced, a body still in place never is."""
    out: list[tuple[int, bytes]] = []
    for chunk in store.iter_chunks(start, end):
        leaves = chunk.leaves()
        hit = False
        for k in range(chunk.count):
            body = bodies.get(chunk.start + k)
            if body is not None and body != leaves[k] and not (fill_only and leaves[k]):
                leaves[k] = body
                hit = True
        if hit:
            out.append((chunk.start, Chunk.pack(chunk.start, chunk.batch_end,
                                                chunk.id_list(), leaves).data))
    return out


def _retire(store: Store, change: Retire, at: int) -> None:
    ranges = list(change.ranges)
    taken = store.retired()
    for row in taken:
        for a, b in ranges:
            if not (a < row.end and row.start < b):
                continue
            if change.replaces_archive and row.kind == "archive" and (row.start, row.end) == (a, b):
                continue
            raise ConfigError(f"entries {max(a, row.start)}..{min(b, row.end) - 1} were retired "
                              "meanwhile; plan again")
    if change.replaces_archive:
        archived = {(row.start, row.end) for row in taken if row.kind == "archive"}
        if not set(ranges) <= archived:
            raise ConfigError("the segments to purge are no longer archived; plan again")
    current = {hold.number for hold in store.holds(open_only=True)}
    if change.kind == "purge" and current - set(change.holds):
        # Archiving destroys nothing (restore brings it back): only a purge must respect a
        # hold that appeared after its plan.
        raise PolicyError("a legal hold was added since the plan was made; plan again")
    # Checked: now write.
    if change.replaces_archive:
        for s, e in ranges:
            store.delete_retired(s, e)
    if ranges:
        empty = {i: b"" for s, e in ranges for i in range(s, e)}
        store.replace_chunk_data(reframed(store, ranges[0][0], ranges[-1][1], empty))
    store.put_retired([RetiredRange(s, e, at, change.kind) for s, e in ranges])
    if change.kind == "purge":
        # Purged entries are gone for good: so are their blind tokens. Archived ones keep them
        # (search skips retired entries), so a restored segment is found again.
        for s, e in ranges:
            store.delete_blind_range(s, e)


def _restore(store: Store, change: Restore) -> None:
    start, end = change.start, change.end
    rows = [r for r in store.retired() if r.start < end and start < r.end]
    if not rows or any(r.kind != "archive" for r in rows):
        raise ConfigError(f"entries {start}..{end - 1} are not archived (already restored, "
                          "or purged)")
    bodies = dict(zip(range(start, end), change.leaves, strict=True))
    store.replace_chunk_data(reframed(store, start, end, bodies, fill_only=True))
    store.delete_retired(start, end)


def apply(store: Store, change: Change, at: int) -> None:
    """Check ``change`` against the store as it is and write it (inside the transaction that
    appends entry ``at``, which records it); ConfigError or PolicyError refuse it first."""
    if isinstance(change, SetSettings):
        items = dict(change.items)
        if change.index_key is not None:
            items[change.index_key] = str(at)
        store.set_meta(items)
    elif isinstance(change, Retire):
        _retire(store, change, at)
    else:
        _restore(store, change)
