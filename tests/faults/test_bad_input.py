"""Bad input and failing storage through the Python API: clear errors, nothing stored.

Every rejected request must name the field (``events[57].actor.id``) and leave the log exactly as
it was; every storage failure must leave nothing acknowledged, the next append working, the log
verifying and the checkpoint never moving backward.
"""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import pytest

from sealtrail.core.errors import StorageError, ValidationError
from sealtrail.core.event import MAX_EVENT_BYTES, Event, validate_event
from sealtrail.core.uuid7 import make_uuid7
from sealtrail.log.auditlog import AuditLog
from sealtrail.store import sqlite as sqlite_store
from sealtrail.store.protocol import Chunk, State, Store
from sealtrail.store.sqlite import SQLiteStore

FIXED = datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC)


def clock() -> datetime:
    """A fixed clock, so the only thing that varies between runs is the input."""
    return FIXED


def good(n: int = 0) -> dict[str, Any]:
    """A valid event."""
    return {"actor": {"id": f"user-{n}"}, "action": "doc.read", "outcome": "success",
            "metadata": {"n": n}}


def with_id(n: int) -> dict[str, Any]:
    """A valid event with a fresh client-supplied UUIDv7 id."""
    return {**good(n), "id": str(make_uuid7(1_700_000_000_000 + n, uuid.uuid4().bytes[:10]))}


def nested(depth: int) -> dict[str, Any]:
    """A metadata object nested ``depth`` levels deep (built without recursion)."""
    obj: dict[str, Any] = {"leaf": 1}
    for _ in range(depth - 1):
        obj = {"a": obj}
    return obj


@dataclass(frozen=True, slots=True)
class Head:
    """What must not change when a request is rejected."""

    size: int
    note: str


def head(log: AuditLog) -> Head:
    """The log's committed size and checkpoint note."""
    return Head(log.size, log.checkpoint().note)


@pytest.fixture
def log(tmp_path: Path) -> Iterator[AuditLog]:
    """A log holding a few events, with a fixed clock."""
    with AuditLog.open(tmp_path, clock=clock) as opened:
        opened.append_many([good(n) for n in range(5)])
        opened.append(good(5))
        yield opened


def rejected(log: AuditLog, events: list[Any]) -> ValidationError:
    """Append ``events``, expect a ValidationError, check nothing changed; return the error."""
    before = head(log)
    with pytest.raises(ValidationError) as info:
        log.append_many(events)
    assert head(log) == before
    assert log.verify().size == before.size
    err = info.value
    assert str(err).startswith(f"{err.field}: ")
    assert err.message
    return err


BAD_EVENTS: list[tuple[str, Any, str]] = [
    ("not a mapping", "actor=alice action=login", "events[0].event"),
    ("a list", [good()], "events[0].event"),
    ("None", None, "events[0].event"),
    ("actor is a string", {**good(), "actor": "alice"}, "events[0].actor"),
    ("actor.id is a number", {**good(), "actor": {"id": 7}}, "events[0].actor.id"),
    ("action is a number", {**good(), "action": 42}, "events[0].action"),
    ("action has spaces", {**good(), "action": "drop table"}, "events[0].action"),
    ("unknown outcome", {**good(), "outcome": "maybe"}, "events[0].outcome"),
    ("unknown category", {**good(), "category": "misc"}, "events[0].category"),
    ("missing actor", {"action": "a.b", "outcome": "success"}, "events[0].actor"),
    ("missing actor.id", {**good(), "actor": {"name": "Al"}}, "events[0].actor.id"),
    ("missing action", {"actor": {"id": "u"}, "outcome": "success"}, "events[0].action"),
    ("missing outcome", {"actor": {"id": "u"}, "action": "a.b"}, "events[0].outcome"),
    ("empty actor.id", {**good(), "actor": {"id": ""}}, "events[0].actor.id"),
    ("unknown field", {**good(), "severity": "high"}, "events[0].severity"),
    ("unknown nested field", {**good(), "actor": {"id": "u", "role": "x"}},
     "events[0].actor.role"),
    ("id not a UUID", {**good(), "id": "not-a-uuid"}, "events[0].id"),
    ("bad time", {**good(), "time": "yesterday"}, "events[0].time"),
    ("received_at given", {**good(), "received_at": "2024-01-01T00:00:00Z"},
     "events[0].received_at"),
    ("bad actor ip", {**good(), "actor": {"id": "u", "ip": "999.1.1.1"}}, "events[0].actor.ip"),
    ("metadata not an object", {**good(), "metadata": [1, 2]}, "events[0].metadata"),
    ("integer too large", {**good(), "metadata": {"big": 2**60}}, "events[0].metadata.big"),
    ("NaN", {**good(), "metadata": {"x": float("nan")}}, "events[0].metadata.x"),
    ("infinity", {**good(), "changes": {"after": {"x": float("inf")}}},
     "events[0].changes.after.x"),
    ("bytes value", {**good(), "metadata": {"raw": b"\x00\x01"}}, "events[0].metadata.raw"),
    ("set value", {**good(), "metadata": {"s": {1, 2}}}, "events[0].metadata.s"),
    ("long key", {**good(), "metadata": {"k" * 200: 1}}, "events[0].metadata."),
    ("identifier too long", {**good(), "actor": {"id": "u" * 257}}, "events[0].actor.id"),
    ("reason too long", {**good(), "reason": "r" * 5000}, "events[0].reason"),
    ("lone surrogate in metadata", {**good(), "metadata": {"note": "ok \ud800 no"}},
     "events[0].metadata.note"),
    ("lone surrogate deep in metadata", {**good(), "metadata": {"a": [1, {"b": "\udfff"}]}},
     "events[0].metadata.a[1].b"),
    ("lone surrogate in a metadata key", {**good(), "metadata": {"k\ud800": 1}},
     "events[0].metadata.k\ud800"),
    ("lone surrogate in actor.id", {**good(), "actor": {"id": "\udc00"}}, "events[0].actor.id"),
    ("lone surrogate in changes", {**good(), "changes": {"before": "\ud83d"}},
     "events[0].changes.before"),
]


@pytest.mark.parametrize(("raw", "field"), [(raw, field) for _, raw, field in BAD_EVENTS],
                         ids=[name for name, _, _ in BAD_EVENTS])
def test_bad_event_is_rejected_naming_the_field(log: AuditLog, raw: Any, field: str) -> None:
    """A malformed event is rejected with its field named, and nothing is stored."""
    err = rejected(log, [raw])
    assert err.field.startswith(field)


@pytest.mark.parametrize(("raw", "field"), [(raw, field) for _, raw, field in BAD_EVENTS],
                         ids=[name for name, _, _ in BAD_EVENTS])
def test_one_bad_event_in_a_batch_of_100_rejects_the_batch(log: AuditLog, raw: Any,
                                                           field: str) -> None:
    """One bad event among 100 rejects all of them, naming its position and field."""
    events: list[Any] = [good(100 + n) for n in range(100)]
    events[57] = raw
    err = rejected(log, events)
    assert err.field.startswith(field.replace("events[0]", "events[57]"))


def test_single_append_reports_position_zero(log: AuditLog) -> None:
    """``append`` of one bad event names ``events[0]`` and the field."""
    before = head(log)
    with pytest.raises(ValidationError) as info:
        log.append({"actor": {}, "action": "a.b", "outcome": "success"})
    assert info.value.field == "events[0].actor.id"
    assert head(log) == before


@pytest.mark.parametrize("size", [MAX_EVENT_BYTES + 2048, 4 * MAX_EVENT_BYTES, 1_000_000])
def test_oversized_event_is_rejected(log: AuditLog, size: int) -> None:
    """An event larger than the limit is rejected at its position, and nothing is stored."""
    events = [good(1), {**good(2), "metadata": {"blob": "x" * size}}, good(3)]
    err = rejected(log, events)
    assert err.field.startswith("events[1]")
    assert "larger" in err.message


def test_many_fields_each_under_the_limits_can_still_be_oversized(log: AuditLog) -> None:
    """Fields each within their limit but together over the event limit are rejected."""
    big = {**good(), "metadata": {f"k{i}": "v" * 1000 for i in range(40)}}
    err = rejected(log, [good(1), good(2), big])
    assert err.field.startswith("events[2]")


@pytest.mark.parametrize("depth", [9, 50, 5000, 200_000])
def test_deep_nesting_is_rejected(log: AuditLog, depth: int) -> None:
    """Metadata nested beyond the limit (even absurdly deep) is rejected, not a crash."""
    err = rejected(log, [good(1), {**good(2), "metadata": nested(depth)}])
    assert err.field.startswith("events[1].metadata")


def test_nesting_at_the_limit_is_accepted(log: AuditLog) -> None:
    """Metadata nested exactly to the limit is stored and reads back."""
    receipt = log.append({**good(), "metadata": nested(8)})
    entry = next(log.entries(receipt.index, receipt.index + 1))
    assert log.read(entry)["metadata"] == nested(8)


def test_valid_unicode_is_kept_exactly(log: AuditLog) -> None:
    """Valid non-ASCII text (astral characters, RTL marks, NUL, CR LF) is stored exactly."""
    text = "caf\u00e9 \U0001f600 \u202e\u0000\r\nend"
    receipt = log.append({**good(), "metadata": {"text": text, text: "key"}})
    assert log.read(next(log.entries(receipt.index)))["metadata"] == {"text": text, text: "key"}
    log.verify()


def test_event_object_input_is_accepted(log: AuditLog) -> None:
    """An ``Event`` built in Python is accepted like a mapping."""
    receipt = log.append(Event(actor=validate_event(good()).actor, action="doc.read",
                               outcome="success"))
    assert receipt.index == 6


def test_bad_request_does_not_poison_a_concurrent_good_one(log: AuditLog) -> None:
    """A rejected request leaves the next request, with the same ids, fully stored."""
    events = [with_id(n) for n in range(10)]
    bad = [*events[:9], {**events[9], "metadata": {"x": "\ud800"}}]
    before = head(log)
    with pytest.raises(ValidationError) as info:
        log.append_many(bad)
    assert info.value.field == "events[9].metadata.x"
    assert head(log) == before
    receipts = log.append_many(events)
    assert [r.index for r in receipts] == list(range(before.size, before.size + 10))
    assert not any(r.duplicate for r in receipts)
    log.verify()


# -- failing storage --------------------------------------------------------------------------


class Faults:
    """Which write to fail: the ``fail_at``-th put (before it is written) or commit (after)."""

    def __init__(self, mode: str, fail_at: int) -> None:
        self.mode = mode
        self.fail_at = fail_at
        self.writes = 0
        self.commits = 0
        self.fired = False

    def write(self, what: str) -> None:
        """Count a write; fail it (nothing persisted) when it is the chosen one."""
        self.writes += 1
        if self.mode == "write" and self.writes == self.fail_at:
            self.fired = True
            raise StorageError(f"injected: {what} failed (disk full)")

    def committed(self) -> None:
        """Count a commit; fail it after it persisted when it is the chosen one."""
        self.commits += 1
        if self.mode == "commit" and self.commits == self.fail_at:
            self.fired = True
            raise StorageError("injected: committed, but the answer was lost")


class FaultyStore:
    """Wraps a store (any adapter) with one injected failure, before a write or after a
    commit; every other call goes to the wrapped store."""

    def __init__(self, inner: Store, faults: Faults) -> None:
        self._inner = inner
        self.faults = faults

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    @contextmanager
    def transaction(self) -> Iterator[None]:
        with self._inner.transaction():
            yield
        self.faults.committed()

    def put_chunks(self, chunks: list[Chunk]) -> None:
        self.faults.write("chunks")
        self._inner.put_chunks(chunks)

    def put_node_blocks(self, blocks: dict[tuple[int, int], bytes]) -> None:
        self.faults.write("node blocks")
        self._inner.put_node_blocks(blocks)

    def put_buckets(self, rows: list[tuple[int, int]]) -> None:
        self.faults.write("id buckets")
        self._inner.put_buckets(rows)

    def put_checkpoint(self, size: int, note: str) -> None:
        self.faults.write("checkpoint")
        self._inner.put_checkpoint(size, note)

    def put_state(self, state: State, *, expect: State | None = None) -> None:
        self.faults.write("state")
        self._inner.put_state(state, expect=expect)


def stored_ids(log: AuditLog) -> list[str]:
    """The event ids of every entry, in order."""
    return [str(e.event()["id"]) for e in log.entries(0)]


FAULTS = [("write", n) for n in range(1, 21)] + [("commit", n) for n in range(1, 13)]


@pytest.mark.parametrize(("mode", "fail_at"), FAULTS)
def test_failing_store_loses_nothing_acknowledged(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch,
                                                  mode: str, fail_at: int) -> None:
    """A store failing its N-th write or commit: nothing acknowledged lost, log verifies."""
    with AuditLog.open(tmp_path, clock=clock) as created:
        created.append_many([with_id(n) for n in range(300)])  # past the first bundle
    faults = Faults(mode, fail_at)

    def faulty(store: Store) -> Store:
        return cast(Store, FaultyStore(store, faults))

    acked: list[str] = []
    failed: list[list[str]] = []
    errors: list[str] = []
    sizes: list[int] = []
    n = 1000
    with AuditLog.open(tmp_path, create=False, clock=clock, wrap_store=faulty) as log:
        for step in range(12):
            batch = [with_id(n + k) for k in range(1 if step % 3 else 40)]
            n += len(batch)
            try:
                receipts = log.append_many(batch)
            except StorageError as exc:
                errors.append(str(exc))
                failed.append([e["id"] for e in batch])
            else:
                assert [r.id for r in receipts] == [e["id"] for e in batch]
                acked.extend(r.id for r in receipts)
            sizes.append(log.checkpoint().checkpoint.size)
    assert faults.fired
    assert len(failed) == 1
    assert "injected" in errors[0]
    assert sizes == sorted(sizes)  # the checkpoint never moves backward
    with AuditLog.open(tmp_path, create=False, clock=clock) as log:
        assert log.verify().size == log.size
        ids = stored_ids(log)
        assert len(ids) == len(set(ids))
        assert set(acked) <= set(ids)
        for lost in failed:
            # Failed before commit: nothing stored. Failed after: all stored, none acknowledged.
            present = [i in ids for i in lost]
            assert present == [mode == "commit"] * len(lost)
            # A retry stores the events exactly once either way.
            size = log.size
            retry = log.append_many([{**good(), "id": i} for i in lost])
            assert all(r.duplicate for r in retry) == (mode == "commit")
            assert log.size == size + (0 if mode == "commit" else len(lost))
        assert len(stored_ids(log)) == len(set(stored_ids(log)))
        log.verify()


def test_locked_database_fails_the_append_then_recovers(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """A database locked by another writer fails the append (StorageError); then it works."""
    monkeypatch.setattr(sqlite_store, "_BUSY_TIMEOUT_S", 0.2)
    with AuditLog.open(tmp_path, clock=clock) as log:
        log.append(good(1))
        before = head(log)
        with closing(sqlite3.connect(log.directory / "log.db", isolation_level=None)) as other:
            other.execute("BEGIN EXCLUSIVE")
            with pytest.raises(StorageError, match="locked"):
                log.append(good(2))
            other.execute("ROLLBACK")
        assert head(log) == before
        receipt = log.append(good(3))
        assert receipt.index == before.size
        log.verify()


def test_disk_full_fails_the_append_then_recovers(tmp_path: Path) -> None:
    """SQLite reporting a full disk mid-commit fails the append; after space frees up it works."""
    with AuditLog.open(tmp_path, clock=clock) as log:
        log.append_many([good(n) for n in range(10)])
        before = head(log)
        db = cast(SQLiteStore, log.store)._db  # its own connection: only it sees the limit
        (pages,) = db.execute("PRAGMA page_count").fetchone()
        db.execute(f"PRAGMA max_page_count = {pages}")
        with pytest.raises(StorageError, match="full"):
            log.append_many([{**good(n), "reason": "r" * 4000} for n in range(200)])
        assert head(log) == before
        db.execute("PRAGMA max_page_count = 1073741823")
        receipts = log.append_many([good(n) for n in range(3)])
        assert receipts[0].index == before.size
        assert log.verify().size == before.size + 3
