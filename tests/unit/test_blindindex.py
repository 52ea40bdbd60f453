"""The blind index's two-step storage: pending pairs, folded into sorted rows per segment."""

from __future__ import annotations

import random
import sqlite3
from pathlib import Path

from sealtrail.log.blindindex import SEG_SHIFT, BlindIndex
from sealtrail.store.sqlite import SQLiteStore


def test_lookups_and_deletes_agree_with_a_dict_across_folds(tmp_path: Path) -> None:
    """Rows added commit by commit across several segment boundaries are found exactly, newest
    first, whether still pending or folded; deleted rows are gone from both places."""
    store = SQLiteStore(tmp_path / "t.db")
    index = BlindIndex(store)
    rng = random.Random(7)
    truth: dict[int, set[int]] = {}
    size = 0
    while size < 3 * (1 << SEG_SHIFT) + 500:
        n = rng.randint(1, 900)
        rows = []
        for i in range(size, size + n):
            tok = rng.randint(-5, 5)
            rows.append((i >> SEG_SHIFT, tok, i))
            truth.setdefault(tok, set()).add(i)
        size += n
        with store.transaction():
            index.add(rows, size)
    con = sqlite3.connect(tmp_path / "t.db")
    folded = con.execute("SELECT count(*) FROM blind").fetchone()[0]
    con.close()
    assert folded == 3 << SEG_SHIFT  # every finished segment, nothing else
    for tok, idxs in truth.items():
        assert index.lookup(tok, size) == sorted(idxs, reverse=True)
        assert index.lookup(tok, size, limit=3) == sorted(idxs, reverse=True)[:3]
    gone = [(i >> SEG_SHIFT, 2, i) for i in sorted(truth[2])[::2]]
    with store.transaction():
        index.delete(gone)
    assert index.lookup(2, size) == sorted(truth[2] - {i for _, _, i in gone}, reverse=True)
    store.close()
