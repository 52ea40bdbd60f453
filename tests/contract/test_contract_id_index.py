"""``EntryLog``'s id index: (bucket, chunk start) rows for UUIDv7 ids and exact (id, index)
rows for the others."""

from __future__ import annotations

import random

from sealtrail.store.protocol import Store


def test_bucket_rows_find_chunk_starts_and_ignore_repeats(store: Store) -> None:
    """``chunk_starts_for_buckets`` gives the starts recorded under any bucket asked, each
    once; a pair recorded twice is one row."""
    with store.transaction():
        store.put_buckets([(5, 0), (5, 256), (6, 256), (9, 512), (5, 0)])
    with store.transaction():
        store.put_buckets([(5, 256), (7, 768)])
    got = store.chunk_starts_for_buckets([5, 6, 8])
    assert sorted(got) == [0, 256]
    assert len(got) == 2
    assert store.chunk_starts_for_buckets([8]) == []
    assert sorted(store.chunk_starts_for_buckets(range(1000))) == [0, 256, 512, 768]
    assert list(store.iter_id_buckets()) == [(5, 0), (5, 256), (6, 256), (7, 768), (9, 512)]


def test_exact_rows_answer_only_for_ids_stored(store: Store) -> None:
    """``find_other_ids`` gives the index of each id with an exact row and nothing for the
    others; ``iter_other_ids`` gives every row."""
    a, b, c = b"\x01" * 16, b"\x02" * 16, b"\x03" * 16
    with store.transaction():
        store.put_other_ids([(b, 7), (a, 3)])
    assert store.find_other_ids([a, b, c]) == {a: 3, b: 7}
    assert store.find_other_ids([c]) == {}
    assert store.find_other_ids([]) == {}
    assert sorted(store.iter_other_ids()) == [(a, 3), (b, 7)]


def test_the_exact_index_answers_the_same_across_more_than_10000_rows(store: Store) -> None:
    """Lookups and the full listing stay exact while the exact index grows past 10,000 rows
    in many commits (the SQLite store moves rows between levels past 8,192: no answer may
    change), for the writer and a reader."""
    rng = random.Random(20240506)
    stored: dict[bytes, int] = {}
    absent = [rng.randbytes(16) for _ in range(100)]
    index = 0
    for batch in range(13):
        rows = [(rng.randbytes(16), index + k) for k in range(500 if batch % 2 else 1500)]
        index += len(rows)
        with store.transaction():
            store.put_other_ids(rows)
        stored.update(rows)
        sample = rng.sample(sorted(stored), 400)
        assert store.find_other_ids(sample + absent) == {i: stored[i] for i in sample}
    assert len(stored) > 10_000
    listed = list(store.iter_other_ids())
    assert len(listed) == len(stored)
    assert dict(listed) == stored
    assert store.find_other_ids(list(stored) + absent) == stored
    reader = store.reader()
    try:
        assert reader.find_other_ids(list(stored)) == stored
        assert dict(reader.iter_other_ids()) == stored
    finally:
        reader.close()
