"""The unit of work and sharing a store: ``Store.transaction`` (exclusive), ``in_transaction``,
``snapshot``, ``reader``, ``change_marker``, ``opener``, ``replaced``, ``location``."""

from __future__ import annotations

import pickle
import threading
import time
from pathlib import Path

import pytest

from sealtrail.core.errors import StorageError
from sealtrail.store.protocol import State, Store
from tests.contract.adapters import Adapter
from tests.contract.rows import AbandonedError, abandon_transaction, chunk


def test_location_names_the_store(store: Store) -> None:
    """``location`` is a non-empty name for messages."""
    assert isinstance(store.location, str)
    assert store.location


def test_in_transaction_is_true_only_inside_the_block(store: Store) -> None:
    """``in_transaction`` holds inside a transaction, not before, after, or after a raise."""
    assert not store.in_transaction
    with store.transaction():
        assert store.in_transaction
    assert not store.in_transaction
    with pytest.raises(AbandonedError):
        abandon_transaction(store, lambda: None)
    assert not store.in_transaction


def test_a_reader_is_not_in_the_writers_transaction(store: Store) -> None:
    """``in_transaction`` is per handle: a reader is not inside the writer's transaction."""
    reader = store.reader()
    try:
        with store.transaction():
            assert not reader.in_transaction
    finally:
        reader.close()


def test_a_transaction_inside_a_transaction_fails_and_spares_the_outer(store: Store) -> None:
    """A second transaction on a handle already in one raises StorageError; the outer one
    still commits what it wrote."""
    with store.transaction():
        store.set_meta({"outer": "1"})
        with pytest.raises(StorageError), store.transaction():
            store.set_meta({"inner": "1"})
        store.put_state(State(1, "one", 0))
    assert store.meta().get("outer") == "1"
    assert "inner" not in store.meta()
    assert store.state() == State(1, "one", 0)


def test_one_writer_at_a_time(store: Store) -> None:
    """A transaction started while another is open waits for it, then sees what it
    committed."""
    entered = threading.Event()
    seen: list[str | None] = []

    def second() -> None:
        with store.transaction():
            entered.set()
            seen.append(store.meta().get("k"))
            store.set_meta({"k": "second"})

    with store.transaction():
        store.set_meta({"k": "first"})
        thread = threading.Thread(target=second)
        thread.start()
        assert not entered.wait(0.3)
    thread.join(10)
    assert seen == ["first"]
    assert store.meta()["k"] == "second"


def test_another_thread_on_the_writing_handle_never_sees_uncommitted_rows(
        store: Store) -> None:
    """A thread reading through the handle a transaction is open on (another thread's) does
    not see that transaction's rows, which here are rolled back."""
    answers: list[State] = []
    asking = threading.Event()

    def ask() -> None:
        asking.set()
        answers.append(store.state())

    thread = threading.Thread(target=ask)

    def write_and_let_the_thread_ask() -> None:
        store.put_state(State(9, "nine", 0))
        thread.start()
        asking.wait(5)
        time.sleep(0.1)

    with pytest.raises(AbandonedError):
        abandon_transaction(store, write_and_let_the_thread_ask)
    thread.join(5)
    assert answers == [State(0, None, 0)]


def test_a_reader_sees_only_committed_data(store: Store) -> None:
    """A reader does not see a transaction's writes until it commits, nor a rolled-back one's
    ever."""
    reader = store.reader()
    try:
        with store.transaction():
            store.put_chunks([chunk(0, 2)])
            store.set_meta({"k": "v"})
            store.put_state(State(2, "two", 0))
            assert list(reader.iter_all_chunks()) == []
            assert "k" not in reader.meta()
            assert reader.state() == State(0, None, 0)
        with pytest.raises(AbandonedError):
            abandon_transaction(store, lambda: store.put_state(State(9, "nine", 0)))
        assert reader.state() == State(2, "two", 0)
        assert [c.start for c in reader.iter_all_chunks()] == [0]
        assert reader.meta()["k"] == "v"
    finally:
        reader.close()


def test_a_reader_is_not_held_up_by_an_open_transaction(store: Store) -> None:
    """Reads through a reader in another thread answer while a write transaction is open."""
    reader = store.reader()
    answers: list[State] = []
    try:
        with store.transaction():
            store.put_state(State(1, "one", 0))
            thread = threading.Thread(target=lambda: answers.append(reader.state()))
            thread.start()
            thread.join(5)
            assert answers == [State(0, None, 0)]
    finally:
        reader.close()


def test_a_snapshot_sees_one_committed_state(store: Store) -> None:
    """Inside a reader's snapshot every read sees the state it started from, while the writer
    commits; after it the reader sees the new one."""
    with store.transaction():
        store.put_chunks([chunk(0, 2)])
        store.put_state(State(2, "two", 0))
    reader = store.reader()
    try:
        with reader.snapshot():
            assert reader.state() == State(2, "two", 0)
            with store.transaction():  # a snapshot never holds up the writer
                store.put_chunks([chunk(2, 2)])
                store.put_state(State(4, "four", 0))
                store.set_meta({"k": "v"})
            assert reader.state() == State(2, "two", 0)
            assert [c.start for c in reader.iter_chunks(0)] == [0]
            assert reader.entry_at(3) is None
            assert "k" not in reader.meta()
        assert reader.state() == State(4, "four", 0)
        assert [c.start for c in reader.iter_chunks(0)] == [0, 2]
        assert reader.entry_at(3) == b"e3"
    finally:
        reader.close()


def test_a_snapshot_on_the_writers_handle_reads_committed_data(store: Store) -> None:
    """A snapshot on the handle that writes reads what is committed."""
    with store.transaction():
        store.put_state(State(1, "one", 0))
    with store.snapshot():
        assert store.state() == State(1, "one", 0)
        assert list(store.iter_chunks(0)) == []


def test_change_marker_moves_when_another_handle_commits(store: Store) -> None:
    """A reader's ``change_marker`` changes after the writer commits, not while its
    transaction is open or rolled back."""
    reader = store.reader()
    try:
        first = reader.change_marker()
        assert reader.change_marker() == first
        with store.transaction():
            store.set_meta({"k": "v"})
            assert reader.change_marker() == first
        second = reader.change_marker()
        assert second != first
        with store.transaction():
            store.set_meta({"k": "w"})
        assert reader.change_marker() not in (first, second)
    finally:
        reader.close()


def test_a_reader_outlives_the_handle_it_came_from(adapter: Adapter, tmp_path: Path) -> None:
    """A reader is independent: closing the handle it came from leaves it answering."""
    store = adapter.make(tmp_path)
    with store.transaction():
        store.put_state(State(3, "three", 1))
    reader = store.reader()
    store.close()
    try:
        assert reader.state() == State(3, "three", 1)
    finally:
        reader.close()


def test_opener_reaches_the_data_from_another_process_or_is_none(adapter: Adapter,
                                                                 store: Store) -> None:
    """``opener`` is None when no other process can reach the data; otherwise it survives
    pickling and opens a read-only handle on the committed data."""
    with store.transaction():
        store.put_chunks([chunk(0, 3)])
        store.put_state(State(3, "three", 0))
    opener = store.opener()
    if not adapter.processes:
        assert opener is None
        return
    assert opener is not None
    handle = pickle.loads(pickle.dumps(opener))()
    try:
        with handle.snapshot():
            assert handle.state() == State(3, "three", 0)
            assert [c.start for c in handle.iter_chunks(0, 3)] == [0]
        with pytest.raises(StorageError), handle.transaction():
            handle.set_meta({"k": "v"})
    finally:
        handle.close()


def test_replaced_says_whether_the_location_still_holds_what_was_opened(
        adapter: Adapter, tmp_path: Path) -> None:
    """``replaced`` is False for the store as opened (after commits, with readers); where
    something else can be put at its location, True after that."""
    store = adapter.make(tmp_path)
    try:
        assert not store.replaced()
        with store.transaction():
            store.put_state(State(1, "one", 0))
        reader = store.reader()
        reader.close()
        assert not store.replaced()
        if adapter.replace is None:
            return
        adapter.replace(tmp_path)
        assert store.replaced()
    finally:
        store.close()


def test_a_snapshot_inside_a_transaction_is_a_storage_error(store: Store) -> None:
    """A read snapshot cannot nest in a write transaction: StorageError (never a driver
    error), and the transaction goes on."""
    with store.transaction():
        with pytest.raises(StorageError), store.snapshot():
            pass
        store.set_meta({"after": "1"})
    assert store.meta()["after"] == "1"
