"""``EntryLog``: chunks of entries and tree node blocks (random layouts in
test_contract_chunk_layouts.py, the id index in test_contract_id_index.py)."""

from __future__ import annotations

from collections.abc import Iterable

import pytest

from sealtrail.core.errors import StorageError
from sealtrail.store.protocol import Chunk, State, Store
from tests.contract.rows import chunk, ident, retired_framing


def _starts(chunks: Iterable[Chunk]) -> list[int]:
    return [c.start for c in chunks]


def test_a_chunk_round_trips_field_for_field(store: Store) -> None:
    """A chunk comes back with its start, count, batch end, ids and framing unchanged."""
    put = Chunk.pack(0, 9, [ident(1), ident(2), ident(3)], [b"first", b"", b"\x00third"])
    with store.transaction():
        store.put_chunks([put])
    for got in (list(store.iter_chunks(0)), list(store.iter_all_chunks()),
                store.chunks_at([0]), list(store.iter_chunks_desc(1))):
        assert got == [put]
        assert type(got[0].ids) is bytes
        assert type(got[0].data) is bytes
    assert store.chunks_at([0])[0].leaves() == [b"first", b"", b"\x00third"]
    assert store.chunks_at([0])[0].id_list() == [ident(1), ident(2), ident(3)]


def test_a_chunk_start_taken_twice_fails(store: Store) -> None:
    """A chunk whose start is stored already is refused (StorageError), in a later call or
    the same one; the stored chunk stays."""
    with store.transaction():
        store.put_chunks([chunk(0, 2)])
    with pytest.raises(StorageError), store.transaction():
        store.put_chunks([chunk(0, 1, tag="other")])
    with pytest.raises(StorageError), store.transaction():
        store.put_chunks([chunk(2, 1), chunk(2, 2, tag="other")])
    assert list(store.iter_all_chunks()) == [chunk(0, 2)]


def test_iter_chunks_from_inside_a_chunk_starts_with_that_chunk(store: Store) -> None:
    """``iter_chunks(start, end)`` begins with the chunk holding ``start`` and ends before
    ``end``, in order of start."""
    with store.transaction():
        store.put_chunks([chunk(4, 3), chunk(0, 4), chunk(7, 5)])
    assert _starts(store.iter_chunks(0)) == [0, 4, 7]
    assert _starts(store.iter_chunks(5)) == [4, 7]
    assert _starts(store.iter_chunks(5, 7)) == [4]
    assert _starts(store.iter_chunks(5, 8)) == [4, 7]
    assert _starts(store.iter_chunks(11, 12)) == [7]
    assert _starts(store.iter_chunks(0, 4)) == [0]


def test_iterators_page_through_many_chunks(store: Store) -> None:
    """Every iterator gives every chunk once, in order, across a few hundred of them."""
    chunks = [chunk(3 * n, 3) for n in range(300)]
    with store.transaction():
        store.put_chunks(chunks[::2])
    with store.transaction():
        store.put_chunks(chunks[1::2])
    assert list(store.iter_chunks(0)) == chunks
    assert list(store.iter_all_chunks()) == chunks
    assert list(store.iter_chunks(301, 601)) == chunks[100:201]
    assert list(store.iter_chunks_desc(900)) == chunks[::-1]
    assert list(store.iter_chunks_desc(450)) == chunks[149::-1]


def test_iter_all_chunks_includes_rows_outside_the_log(store: Store) -> None:
    """``iter_all_chunks`` gives every row, starts below 0 and past the size included;
    ``iter_chunks_desc`` only those starting in ``[0, before)``."""
    with store.transaction():
        store.put_chunks([chunk(0, 2), chunk(-5, 1), chunk(2, 2), chunk(100, 1)])
        store.put_state(State(4, None, 0))
    assert _starts(store.iter_all_chunks()) == [-5, 0, 2, 100]
    assert _starts(store.iter_chunks_desc(4)) == [2, 0]
    assert _starts(store.iter_chunks_desc(101)) == [100, 2, 0]
    assert _starts(store.iter_chunks_desc(0)) == []


def test_stray_chunk_names_a_row_outside_the_size(store: Store) -> None:
    """``stray_chunk(size)`` is None while every row starts in ``[0, size)``, and names a
    row starting outside it once there is one."""
    with store.transaction():
        store.put_chunks([chunk(0, 2), chunk(2, 2)])
    assert store.stray_chunk(4) is None
    assert store.stray_chunk(3) is None
    assert store.stray_chunk(2) == 2
    with store.transaction():
        store.put_chunks([chunk(-3, 1)])
    assert store.stray_chunk(4) == -3
    with store.transaction():
        store.put_chunks([chunk(9, 1)])
    assert store.stray_chunk(4) in (-3, 9)
    assert store.stray_chunk(0) in (-3, 0, 2, 9)


def test_chunks_at_gives_the_stored_chunks_with_those_starts(store: Store) -> None:
    """``chunks_at`` gives each stored chunk asked for once; other starts give nothing."""
    with store.transaction():
        store.put_chunks([chunk(0, 2), chunk(2, 3), chunk(5, 1)])
    got = store.chunks_at([5, 0, 1, 5, 77])
    assert sorted(got, key=lambda c: c.start) == [chunk(0, 2), chunk(5, 1)]
    assert len(got) == 2
    assert store.chunks_at([]) == []
    assert len(store.chunks_at(range(0, 1000))) == 3


def test_entry_at_reads_one_leaf(store: Store) -> None:
    """``entry_at`` gives the leaf at an index, None before, between and after the rows."""
    with store.transaction():
        store.put_chunks([chunk(0, 3), chunk(3, 2), chunk(8, 2)])
    assert [store.entry_at(i) for i in range(-1, 11)] == [
        None, b"e0", b"e1", b"e2", b"e3", b"e4", None, None, None, b"e8", b"e9", None]


def test_retired_leaves_read_empty(store: Store) -> None:
    """After ``replace_chunk_data`` empties a chunk's leaves, ``entry_at`` reads them empty;
    the chunk's count, ids and batch end stay, other chunks are untouched."""
    with store.transaction():
        store.put_chunks([chunk(0, 3, 5), chunk(3, 2)])
    with store.transaction():
        store.replace_chunk_data([(0, retired_framing(3))])
    assert [store.entry_at(i) for i in range(5)] == [b"", b"", b"", b"e3", b"e4"]
    emptied = store.chunks_at([0])[0]
    assert (emptied.count, emptied.batch_end, emptied.ids) == (3, 5, chunk(0, 3).ids)
    assert emptied.leaves() == [b"", b"", b""]
    assert store.chunks_at([3]) == [chunk(3, 2)]


def test_replace_chunk_data_for_a_missing_start_adds_nothing(store: Store) -> None:
    """Rewriting the framing of a start that holds no chunk creates no chunk."""
    with store.transaction():
        store.put_chunks([chunk(0, 1)])
        store.replace_chunk_data([(7, retired_framing(1))])
    assert list(store.iter_all_chunks()) == [chunk(0, 1)]


def test_node_blocks_round_trip_and_replace(store: Store) -> None:
    """``node_blocks`` gives the stored blocks among the keys asked; a block put again is
    replaced."""
    with store.transaction():
        store.put_node_blocks({(0, 0): b"a" * 63 * 32, (0, 1): b"b" * 32, (2, 0): b"c" * 64})
    with store.transaction():
        store.put_node_blocks({(0, 1): b"B" * 64})
    assert store.node_blocks([(0, 0), (0, 1), (1, 0), (2, 0), (0, 9)]) == {
        (0, 0): b"a" * 63 * 32, (0, 1): b"B" * 64, (2, 0): b"c" * 64}
    assert store.node_blocks([]) == {}


def test_node_blocks_iterate_by_level_in_block_order(store: Store) -> None:
    """``iter_node_blocks(level)`` gives that level's blocks only, in block order, across
    more blocks than one page."""
    blocks = {(0, b): bytes([b % 256]) * 32 for b in range(150)}
    blocks.update({(1, b): b"x" * 32 for b in (3, 1, 2)})
    with store.transaction():
        store.put_node_blocks(dict(reversed(blocks.items())))
    assert list(store.iter_node_blocks(0)) == [(b, bytes([b % 256]) * 32) for b in range(150)]
    assert list(store.iter_node_blocks(1)) == [(1, b"x" * 32), (2, b"x" * 32), (3, b"x" * 32)]
    assert list(store.iter_node_blocks(2)) == []


def test_node_extent_names_each_levels_last_block_and_its_length(store: Store) -> None:
    """``node_extent`` gives (level, last block, its length) for each level with blocks."""
    assert store.node_extent() == []
    with store.transaction():
        store.put_node_blocks({(0, 0): b"a" * 2016, (0, 2): b"b" * 96, (0, 1): b"c" * 2016,
                               (3, 0): b"d" * 32})
    assert sorted(store.node_extent()) == [(0, 2, 96), (3, 0, 32)]


# -- what the protocol says where a row does not reach ``start`` ---------------------------


@pytest.mark.deviation("iter_chunks_overlap")
@pytest.mark.parametrize(("layout", "start", "end", "expected"), [
    ([(0, 2), (5, 2)], 3, None, [5]),
    ([(0, 2), (5, 2)], 3, 5, []),
    ([(0, 3)], 3, None, []),
    ([(0, 10)], 5, 5, []),
    ([(0, 10), (5, 2)], 8, None, [0]),
], ids=["gap before start", "range inside a gap", "start at the end", "empty range",
        "a row reaching over a later one"])
def test_iter_chunks_gives_only_chunks_overlapping_the_range(
        store: Store, layout: list[tuple[int, int]], start: int, end: int | None,
        expected: list[int]) -> None:
    """``iter_chunks`` gives exactly the chunks overlapping ``[start, end)``."""
    with store.transaction():
        store.put_chunks([chunk(s, n) for s, n in layout])
    assert _starts(store.iter_chunks(start, end)) == expected


@pytest.mark.deviation("entry_at_overlap")
def test_entry_at_reads_a_row_holding_the_index_behind_a_later_one(store: Store) -> None:
    """``entry_at`` is None only when no row holds the index, even when a row starting later
    (but not holding it) lies in between."""
    with store.transaction():
        store.put_chunks([chunk(0, 10), chunk(5, 2, tag="x")])
    assert store.entry_at(8) == b"e8"
