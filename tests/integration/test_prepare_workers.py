"""Prepare outside the write lock, in worker processes, and what the commit settles.

``AuditLog.open(..., workers=N)`` prepares large ``append_many`` calls in N spawned processes;
the commit then claims new subject keys insert-or-get and seals again what was sealed stale:
a subject two parts (or two processes) met first gets one key, and an event prepared before
an erasure of its subject is not sealed under the destroyed key.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import sqlite3
import time
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
from tests.capture import capture

from sealtrail import AuditLog
from sealtrail.core.errors import ConfigError, ValidationError
from sealtrail.log.derived import verify_derived
from sealtrail.log.keyring import FileHome
from sealtrail.log.workers import GIVE_UP, PART


def _events(n: int, start: int = 0, subjects: int = 50) -> list[dict[str, Any]]:
    return [{"actor": {"id": f"user-{i % 17}", "ip": f"198.51.100.{i % 60}"},
             "action": "chart.read", "outcome": "success",
             "target": {"type": "chart", "id": f"chart-{i}"},
             "subjects": [f"patient-{i % subjects}"], "metadata": {"n": i}}
            for i in range(start, start + n)]


def _key_rows(data: Path) -> int:
    with closing(sqlite3.connect(next(data.rglob("log.db")))) as con:
        return int(con.execute("SELECT count(*) FROM subject_keys").fetchone()[0])


@pytest.fixture
def pooled(tmp_path: Path) -> Iterator[AuditLog]:
    with AuditLog.open(tmp_path, workers=2) as log:
        yield log


@pytest.mark.slow
def test_workers_prepare_a_large_batch_that_verifies_and_opens(pooled: AuditLog,
                                                               tmp_path: Path) -> None:
    events = _events(3 * PART + 17)
    receipts = pooled.append_many(events)
    assert [r.index for r in receipts] == list(range(len(events)))
    assert pooled.workers is not None
    assert len(pooled.workers.pids()) == 2
    # Every subject met first in several parts got one key, under which all its events open.
    assert _key_rows(tmp_path) == 50
    for k in (0, PART - 1, PART, 2 * PART + 5, len(events) - 1):
        opened = pooled.read(pooled.entry(k))
        assert opened["metadata"] == {"n": k}
        assert opened["subjects"] == [f"patient-{k % 50}"]
    assert pooled.find("subject", "patient-7") == sorted(
        (i for i in range(len(events)) if i % 50 == 7), reverse=True)
    assert pooled.verify().size == len(events)
    assert verify_derived(pooled).entries == len(events)
    # Retried, the same ids answer with their original receipts.
    again = pooled.append_many([{**e, "id": r.id} for e, r in zip(events, receipts, strict=True)])
    assert all(a.duplicate and a.index == r.index for a, r in zip(again, receipts, strict=True))


@pytest.mark.slow
def test_a_refusal_in_a_worker_names_the_event_by_its_place_in_the_call(
        pooled: AuditLog) -> None:
    events = _events(2 * PART + 10)
    events[PART + 34]["outcome"] = "maybe"
    with pytest.raises(ValidationError) as err:
        pooled.append_many(events)
    assert err.value.field == f"events[{PART + 34}].outcome"
    assert err.value.position == PART + 34
    assert pooled.size == 0


@pytest.mark.slow
def test_a_killed_worker_loses_nothing_and_the_pool_starts_again(pooled: AuditLog) -> None:
    pooled.append_many(_events(2 * PART))
    assert pooled.workers is not None
    before = pooled.workers.pids()
    os.kill(before[0], signal.SIGKILL)
    time.sleep(0.2)
    receipts = pooled.append_many(_events(2 * PART, 2 * PART))  # prepared in this process
    assert [r.index for r in receipts] == list(range(2 * PART, 4 * PART))
    pooled.append_many(_events(2 * PART, 4 * PART))             # a new pool
    after = pooled.workers.pids()
    assert len(after) == 2
    assert not set(after) & set(before)
    assert pooled.verify().size == 6 * PART
    assert verify_derived(pooled).entries == 6 * PART


def test_workers_setting_is_checked(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="workers"):
        AuditLog.open(tmp_path, workers=-1)
    with AuditLog.open(tmp_path, workers=1) as log:
        assert log.workers is None


def test_a_subject_another_handle_keyed_first_keeps_that_key(tmp_path: Path) -> None:
    """Insert or get: two writers meet the same new subject; the one that commits second
    seals its event again under the first one's key."""
    with AuditLog.open(tmp_path) as first, AuditLog.open(tmp_path) as second:
        late = capture(first, lambda: first.append(_events(1, 0)[0]))
        assert late.sealing is not None
        assert late.sealing.new_keys  # it proposed a key for patient-0
        second.append(_events(1, 1, subjects=1)[0])  # patient-0 too, committed first
        first._commit([late])
        assert late.error is None
        assert _key_rows(tmp_path) == 1
        assert first.read(first.entry(late.receipts[0].index))["metadata"] == {"n": 0}
        assert first.find("subject", "patient-0") == [1, 0]
        assert verify_derived(first).subject_keys == 1


def test_two_requests_of_one_commit_share_a_new_subject_key(tmp_path: Path) -> None:
    with AuditLog.open(tmp_path) as log:
        a = capture(log, lambda: log.append(_events(1, 0, subjects=1)[0]))
        b = capture(log, lambda: log.append(_events(1, 1, subjects=1)[0]))
        assert a.sealing is not None
        assert b.sealing is not None
        assert a.sealing.new_keys.keys() == b.sealing.new_keys.keys()
        assert a.sealing.new_keys != b.sealing.new_keys  # two proposals for patient-0
        log._commit([a, b])
        assert a.error is None
        assert b.error is None
        assert _key_rows(tmp_path) == 1
        assert [log.read(log.entry(k))["metadata"] for k in (0, 1)] == [{"n": 0}, {"n": 1}]
        assert verify_derived(log).subject_keys == 1


def test_an_event_prepared_before_an_erasure_is_not_sealed_under_the_erased_key(
        tmp_path: Path) -> None:
    with AuditLog.open(tmp_path) as log:
        log.append(_events(1, 0, subjects=1)[0])                   # patient-0 has a key
        stale = capture(log, lambda: log.append(_events(1, 1, subjects=1)[0]))
        log.erase_subject("patient-0", reason="GDPR request", actor={"id": "dpo"})
        log._commit([stale])
        assert stale.error is None
        index = stale.receipts[0].index
        opened = log.read(log.entry(index))
        assert "erased" not in opened
        assert opened["metadata"] == {"n": 1}
        assert log.read(log.entry(0))["erased"]
        assert log.find("subject", "patient-0") == [index]
        verify_derived(log)


@pytest.mark.slow
def test_workers_that_cannot_start_are_given_up_and_nothing_fails(pooled: AuditLog,
                                                                   tmp_path: Path) -> None:
    """A pool whose workers die at start (here: a keyring they cannot find) costs each call a
    fallback to this process, then is given up after GIVE_UP tries."""
    pool = pooled.workers
    assert pool is not None
    pool._spec = dataclasses.replace(pool._spec,
                                     keyring_home=FileHome(tmp_path / "nowhere" / "k.json"))
    for k in range(GIVE_UP + 1):
        receipts = pooled.append_many(_events(2 * PART, 2 * PART * k))
        assert receipts[-1].index == 2 * PART * (k + 1) - 1
    assert pool.disabled
    assert pooled.verify().size == 2 * PART * (GIVE_UP + 1)


def test_a_replayed_duplicate_after_an_erasure_leaves_no_key_unstored(tmp_path: Path) -> None:
    """A request of duplicates places nothing: the key it proposed for a subject erased
    since must not be cached as stored, or later events of that subject would be sealed
    under a key no row holds (unreadable: crypto-shredded by accident)."""
    with AuditLog.open(tmp_path) as log:
        first = log.append({**_events(1, 0, subjects=1)[0]})
        log.erase_subject("patient-0", reason="request 9", actor={"id": "dpo"})
        again = log.append({**_events(1, 0, subjects=1)[0], "id": first.id})
        assert again.duplicate
        later = log.append(_events(1, 5, subjects=1)[0])
        assert log.read(log.entry(later.index))["metadata"] == {"n": 5}
        verify_derived(log)
    with AuditLog.open(tmp_path) as log:
        assert log.read(log.entry(later.index))["metadata"] == {"n": 5}


def test_a_key_read_while_an_erasure_forgets_is_not_cached(tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch
                                                           ) -> None:
    """A thread that read a subject key just before an erasure's forget() must not put it
    back in the caches reads use afterwards."""
    with AuditLog.open(tmp_path) as log:
        log.append(_events(1, 0, subjects=1)[0])
        protector = log._protector
        assert protector is not None
        protector.forget()
        real = type(protector).unwrap_row

        def racing(self: Any, row: Any) -> bytes:
            raw = real(self, row)
            self.forget()  # the erasure's forget() lands between the read and the caching
            return raw
        monkeypatch.setattr(type(protector), "unwrap_row", racing)
        capture(log, lambda: log.append(_events(1, 1, subjects=1)[0]))
        monkeypatch.undo()
        assert not protector._by_ref
        assert not [k for k in protector._aead if k.startswith("s")]
