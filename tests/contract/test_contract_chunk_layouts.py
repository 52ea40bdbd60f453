"""Random chunk layouts (gaps, rows below 0, rows put in any order): every chunk lookup
against a dumb reference computed from the docstrings, over every start, end and index
around the layout."""

from __future__ import annotations

import random
from collections.abc import Callable
from contextlib import AbstractContextManager

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sealtrail.store.protocol import Chunk, Store
from tests.contract.rows import chunk

Fresh = Callable[[], AbstractContextManager[Store]]

# (gap before the row, entries in it): rows never overlap, as the engine writes them.
layouts = st.tuples(
    st.integers(-4, 2),  # where the first row starts (below 0: a stray row)
    st.lists(st.tuples(st.integers(0, 3), st.integers(1, 5)), max_size=7),
    st.integers(0, 2**32),  # the order rows are put in, and how they are split in commits
)


def _build(offset: int, shape: list[tuple[int, int]]) -> list[Chunk]:
    rows, pos = [], offset
    for gap, count in shape:
        pos += gap
        rows.append(chunk(pos, count, pos + count + gap))
        pos += count
    return rows


def _store_rows(store: Store, rows: list[Chunk], seed: int) -> None:
    order = list(rows)
    rng = random.Random(seed)
    rng.shuffle(order)
    cut = rng.randint(0, len(order))
    for part in (order[:cut], order[cut:]):
        with store.transaction():
            store.put_chunks(part)


def _overlapping(rows: list[Chunk], start: int, end: int | None) -> list[Chunk]:
    return [c for c in rows if c.start + c.count > start and (end is None or c.start < end)
            and (end is None or start < end)]


def _window(rows: list[Chunk]) -> range:
    low = min((c.start for c in rows), default=0)
    high = max((c.start + c.count for c in rows), default=0)
    return range(min(low, 0) - 2, high + 3)


@settings(max_examples=40, deadline=None)
@given(layouts)
def test_lookups_match_the_reference(fresh: Fresh,
                                     layout: tuple[int, list[tuple[int, int]], int]) -> None:
    """``iter_all_chunks``, ``iter_chunks_desc``, ``entry_at``, ``stray_chunk`` and
    ``chunks_at`` answer as the reference for every argument around the layout; so does
    ``iter_chunks`` from any ``start`` a row holds, or no row precedes."""
    offset, shape, seed = layout
    rows = _build(offset, shape)
    window = _window(rows)
    with fresh() as store:
        _store_rows(store, rows, seed)
        assert list(store.iter_all_chunks()) == rows
        for before in window:
            assert list(store.iter_chunks_desc(before)) == [
                c for c in reversed(rows) if 0 <= c.start < before]
        leaves = {c.start + k: leaf for c in rows for k, leaf in enumerate(c.leaves())}
        for i in window:
            assert store.entry_at(i) == leaves.get(i)
        for size in range(window.stop):
            stray = store.stray_chunk(size)
            outside = {c.start for c in rows if not 0 <= c.start < size}
            assert stray in outside if outside else stray is None
        wanted = set(range(window.start, window.stop, 2))
        assert sorted(store.chunks_at(wanted), key=lambda c: c.start) == [
            c for c in rows if c.start in wanted]
        # Starts a row holds, or that no row comes before.
        for start in window:
            if rows and rows[0].start <= start and start not in leaves:
                continue
            for end in [None, *range(start + 1, window.stop)]:
                assert list(store.iter_chunks(start, end)) == _overlapping(rows, start, end)


@pytest.mark.deviation("iter_chunks_overlap")
@settings(max_examples=40, deadline=None)
@given(layouts)
def test_iter_chunks_gives_the_chunks_overlapping_any_range(
        fresh: Fresh, layout: tuple[int, list[tuple[int, int]], int]) -> None:
    """``iter_chunks(start, end)`` gives exactly the chunks overlapping ``[start, end)`` in
    order of start, for every start and end around the layout (empty ranges included)."""
    offset, shape, seed = layout
    rows = _build(offset, shape)
    window = _window(rows)
    with fresh() as store:
        _store_rows(store, rows, seed)
        for start in window:
            for end in [None, *range(start - 1, window.stop)]:
                assert list(store.iter_chunks(start, end)) == _overlapping(rows, start, end)
