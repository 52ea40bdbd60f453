"""``Retirement``: the ranges retention purged or archived."""

from __future__ import annotations

from sealtrail.store.protocol import RetiredRange, Store


def test_retired_ranges_come_back_by_start(store: Store) -> None:
    """Ranges come back with every field, in order of start whatever the order recorded."""
    with store.transaction():
        store.put_retired([RetiredRange(512, 768, 900, "archive"),
                           RetiredRange(0, 256, 800, "purge")])
    with store.transaction():
        store.put_retired([RetiredRange(256, 512, 901, "purge")])
    assert store.retired() == [RetiredRange(0, 256, 800, "purge"),
                               RetiredRange(256, 512, 901, "purge"),
                               RetiredRange(512, 768, 900, "archive")]
    assert all(type(r) is RetiredRange for r in store.retired())


def test_delete_retired_forgets_only_ranges_inside(store: Store) -> None:
    """``delete_retired(start, end)`` forgets the ranges lying inside ``[start, end)`` and
    keeps those reaching out of it."""
    rows = [RetiredRange(0, 256, 1, "purge"), RetiredRange(256, 512, 2, "archive"),
            RetiredRange(512, 768, 3, "archive"), RetiredRange(768, 1024, 4, "archive")]
    with store.transaction():
        store.put_retired(rows)
    with store.transaction():
        store.delete_retired(256, 768)
    assert store.retired() == [rows[0], rows[3]]
    with store.transaction():
        store.delete_retired(0, 900)  # the last range reaches past 900: kept
    assert store.retired() == [rows[3]]
