"""Verification split across worker processes agrees with one pass on untouched logs."""

from __future__ import annotations

from pathlib import Path

import pytest

from sealtrail.log import verify as verify_module
from sealtrail.log.auditlog import AuditLog


@pytest.mark.parametrize("size", [256, 257, 258, 511, 512, 513, 700, 770, 1025, 1028])
def test_parallel_verify_matches_one_pass(tmp_path: Path, size: int,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """Sizes on, just past and between 256-leaf range boundaries give the same report.

    (A last range of 1, 2 or 4 entries once passed for a whole subtree and raised a false alarm.)
    """
    with AuditLog.open(tmp_path) as log:
        done = 0
        step = 1
        while done < size:  # mixed batch sizes: many checkpoints at odd sizes
            n = min(step, size - done)
            log.append_many([{"actor": {"id": f"u{done + k}"}, "action": "x.y",
                              "outcome": "success"} for k in range(n)])
            done += n
            step = step * 3 % 97 + 1
        kept = log.checkpoint().note
        one = log.verify(trusted_checkpoint=kept)
        monkeypatch.setattr(verify_module, "RANGE_LEVEL", 8)
        monkeypatch.setattr(verify_module, "PARALLEL_MIN", 0)
        many = log.verify(trusted_checkpoint=kept, workers=2)
    assert many == one
    assert many.size == size
