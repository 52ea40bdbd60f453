"""The id-index rows (log/idindex.py) against a dumb reference: one id at a time."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from sealtrail.core.uuid7 import uuid7_ms
from sealtrail.log.idindex import BUCKET_SHIFT, RowDigest, rows_of


def _v7(ms: int, rand: bytes) -> bytes:
    return ms.to_bytes(6, "big") + bytes([0x70 | rand[0] & 0x0F]) + rand[1:10]


ids_strategy = st.lists(
    st.one_of(st.binary(min_size=16, max_size=16),
              st.builds(_v7, st.integers(0, (1 << 48) - 1), st.binary(min_size=10,
                                                                      max_size=10))),
    max_size=40)


@given(ids_strategy, st.integers(0, 1 << 40))
def test_rows_match_the_reference(ids: list[bytes], start: int) -> None:
    buckets, others, latest = rows_of(start, b"".join(ids))
    want_b, want_o, want_latest = set(), [], -1
    for k, ident in enumerate(ids):
        ms = uuid7_ms(ident)
        if ms is None:
            want_o.append((ident, start + k))
        else:
            want_b.add((ms >> BUCKET_SHIFT, start))
            want_latest = max(want_latest, ms)
    assert buckets == want_b
    assert others == want_o
    assert latest == want_latest


@given(ids_strategy, st.randoms())
def test_digest_is_order_independent(ids: list[bytes], rnd: object) -> None:
    a, b = RowDigest(), RowDigest()
    rows = [(ident, k) for k, ident in enumerate(ids)]
    for ident, k in rows:
        a.add_other(ident, k)
    rnd.shuffle(rows)  # type: ignore[attr-defined]
    for ident, k in rows:
        b.add_other(ident, k)
    assert a == b
