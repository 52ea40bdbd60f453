"""``BlindRows``: the blind index's (segment, token, index) rows and its pending rows.

Rows are filed under the segment of their entry, ``index >> 12`` (log/blindindex.py), as the
engine writes them.
"""

from __future__ import annotations

from sealtrail.store.protocol import Store

SEG = 4096


def _filed(token: int, *indexes: int) -> list[tuple[int, int, int]]:
    return [(i // SEG, token, i) for i in indexes]


def test_lookup_goes_segment_by_segment_in_the_order_given(store: Store) -> None:
    """``blind_lookup`` answers the segments in the order asked, ascending within each, and
    only rows of that token."""
    with store.transaction():
        store.put_blind(_filed(7, 5, 1, 3, SEG + 2, SEG, 2 * SEG + 1) + _filed(8, 4, SEG + 1))
    with store.transaction():
        store.put_blind(_filed(7, 8, 4000, 16))
    assert store.blind_lookup(7, [0, 1, 2]) == [1, 3, 5, 8, 16, 4000, SEG, SEG + 2,
                                                2 * SEG + 1]
    assert store.blind_lookup(7, [2, 0]) == [2 * SEG + 1, 1, 3, 5, 8, 16, 4000]
    assert store.blind_lookup(7, [1]) == [SEG, SEG + 2]
    assert store.blind_lookup(8, [0, 1, 5]) == [4, SEG + 1]
    assert store.blind_lookup(9, [0, 1]) == []
    assert store.blind_lookup(7, []) == []


def test_repeated_rows_are_ignored(store: Store) -> None:
    """A row put twice, in one call or two, is stored once."""
    with store.transaction():
        store.put_blind(_filed(7, 1, 1, 2))
    with store.transaction():
        store.put_blind(_filed(7, 2, 3))
    assert store.blind_lookup(7, [0]) == [1, 2, 3]
    assert sorted(store.blind_segment(0)) == [(7, 1), (7, 2), (7, 3)]


def test_delete_blind_removes_exactly_those_rows(store: Store) -> None:
    """``delete_blind`` removes the rows named (absent ones change nothing) and no other."""
    with store.transaction():
        store.put_blind(_filed(7, 1, 2, 3) + _filed(8, 2))
    with store.transaction():
        store.delete_blind([(0, 7, 2), (0, 8, 99), (1, 7, 1)])
    assert store.blind_lookup(7, [0]) == [1, 3]
    assert store.blind_lookup(8, [0]) == [2]


def test_delete_blind_range_removes_the_rows_of_those_entries(store: Store) -> None:
    """``delete_blind_range(start, end)`` removes the rows of entries ``start <= idx < end``
    of every token, across segments, and keeps the rest."""
    indexes = [0, 9, 10, SEG - 1, SEG, SEG + 5, 2 * SEG, 2 * SEG + 7, 3 * SEG]
    with store.transaction():
        store.put_blind(_filed(7, *indexes) + _filed(8, *indexes))
    with store.transaction():
        store.delete_blind_range(10, 2 * SEG + 1)
    kept = [0, 9, 2 * SEG + 7, 3 * SEG]
    assert store.blind_lookup(7, [0, 1, 2, 3]) == kept
    assert store.blind_lookup(8, [0, 1, 2, 3]) == kept
    with store.transaction():
        store.delete_blind_range(9, 9)  # an empty range
    assert store.blind_lookup(7, [0, 1, 2, 3]) == kept


def test_blind_segment_lists_every_row_of_one_segment(store: Store) -> None:
    """``blind_segment`` gives (token, index) of each row filed under that segment only."""
    with store.transaction():
        store.put_blind(_filed(7, 1, SEG + 1) + _filed(3, 2, SEG) + [(5, 9, 4)])
    assert sorted(store.blind_segment(0)) == [(3, 2), (7, 1)]
    assert sorted(store.blind_segment(1)) == [(3, SEG), (7, SEG + 1)]
    assert store.blind_segment(5) == [(9, 4)]
    assert store.blind_segment(2) == []


def test_blind_outside_finds_rows_filed_outside_the_segments(store: Store) -> None:
    """``blind_outside(last)`` gives some rows filed under a segment below 0 or past
    ``last``, only such rows, at least one when there is one."""
    with store.transaction():
        store.put_blind(_filed(7, 1, SEG + 1))
    assert store.blind_outside(1) == []
    with store.transaction():
        store.put_blind([(-1, 7, 3), (2, 8, 9)] + [(9, 6, n) for n in range(20)])
    outside = store.blind_outside(1)
    assert outside
    assert set(outside) <= {(-1, 7, 3), (2, 8, 9)} | {(9, 6, n) for n in range(20)}
    assert len(outside) == len(set(outside))
    assert set(store.blind_outside(9)) == {(-1, 7, 3)}


def test_pending_rows_insert_replace_list_and_delete(store: Store) -> None:
    """Pending rows are listed by start; a start put again is replaced; the smallest start is
    ``blind_pending_start`` (None when there are none); deleted rows are gone."""
    assert store.blind_pending() == []
    assert store.blind_pending_start() is None
    with store.transaction():
        store.put_blind_pending([(40, b"forty"), (3, b"three")])
    with store.transaction():
        store.put_blind_pending([(40, b"forty again"), (17, b"seventeen")])
    assert store.blind_pending() == [(3, b"three"), (17, b"seventeen"), (40, b"forty again")]
    assert store.blind_pending_start() == 3
    with store.transaction():
        store.delete_blind_pending([3, 40, 99])
    assert store.blind_pending() == [(17, b"seventeen")]
    assert store.blind_pending_start() == 17
    with store.transaction():
        store.delete_blind_pending([17])
    assert store.blind_pending_start() is None
