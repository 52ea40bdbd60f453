"""``Head``: the committed head with compare-and-swap, the checkpoint history, the settings."""

from __future__ import annotations

import pytest

from sealtrail.core.errors import StorageError
from sealtrail.store.protocol import HeadConflictError, KeptCheckpoint, State, Store
from tests.contract.rows import chunk


def test_a_new_store_has_the_empty_head(store: Store) -> None:
    """A new store's head is size 0, no checkpoint, id high-water mark 0 (the engine reads
    that as a log whose creation has not finished)."""
    assert store.state() == State(0, None, 0)


def test_put_state_replaces_the_head(store: Store) -> None:
    """The head written is the head read back, field for field."""
    with store.transaction():
        store.put_state(State(7, "checkpoint 7", 1_700_000_000_000))
    assert store.state() == State(7, "checkpoint 7", 1_700_000_000_000)
    with store.transaction():
        store.put_state(State(8, None, 3))
    assert store.state() == State(8, None, 3)


def test_put_state_expecting_the_stored_head_replaces_it(store: Store) -> None:
    """With ``expect`` equal to the stored head the write goes through."""
    with store.transaction():
        store.put_state(State(1, "one", 0))
    with store.transaction():
        current = store.state()
        store.put_state(State(2, "two", 0), expect=current)
    assert store.state() == State(2, "two", 0)


def test_a_compare_and_swap_conflict_leaves_the_head_as_it_was(store: Store) -> None:
    """``expect`` naming a head that is no longer stored raises HeadConflictError (a
    StorageError), and the transaction it ends stores nothing: head, rows, settings."""
    with store.transaction():
        store.put_state(State(1, "one", 0))
    stale = store.state()
    with store.transaction():  # another writer publishes first
        store.put_state(State(2, "two", 0))

    def publish_on_the_stale_head() -> None:
        with store.transaction():
            store.put_chunks([chunk(2, 1)])
            store.set_meta({"k": "v"})
            store.put_state(State(3, "three", 0), expect=stale)

    with pytest.raises(HeadConflictError):
        publish_on_the_stale_head()
    assert issubclass(HeadConflictError, StorageError)
    assert store.state() == State(2, "two", 0)
    assert list(store.iter_all_chunks()) == []
    assert "k" not in store.meta()


@pytest.mark.parametrize("field", ["size", "checkpoint", "id_hwm"])
def test_a_head_differing_in_any_field_conflicts(store: Store, field: str) -> None:
    """The compare is on the whole head: size, checkpoint and id high-water mark."""
    with store.transaction():
        store.put_state(State(4, "four", 9))
    other = {"size": State(5, "four", 9), "checkpoint": State(4, "other", 9),
             "id_hwm": State(4, "four", 10)}[field]
    with pytest.raises(HeadConflictError), store.transaction():
        store.put_state(State(6, "six", 9), expect=other)
    assert store.state() == State(4, "four", 9)


def test_checkpoints_come_back_in_order_of_size(store: Store) -> None:
    """The history holds each kept checkpoint, in order of size whatever the order kept."""
    with store.transaction():
        store.put_checkpoint(1024, "at 1024")
        store.put_checkpoint(0, "at 0")
    with store.transaction():
        store.put_checkpoint(2048, "at 2048")
        store.put_checkpoint(1, "at 1")
    assert list(store.iter_checkpoints()) == [
        KeptCheckpoint(0, "at 0"), KeptCheckpoint(1, "at 1"), KeptCheckpoint(1024, "at 1024"),
        KeptCheckpoint(2048, "at 2048")]


def test_meta_sets_overwrites_and_deletes(store: Store) -> None:
    """``set_meta`` adds and overwrites keys, ``delete_meta`` removes one, others stay."""
    base = store.meta()
    with store.transaction():
        store.set_meta({"origin": "o", "a": "1", "b": "2"})
    with store.transaction():
        store.set_meta({"a": "one"})
        store.delete_meta("b")
    assert store.meta() == {**base, "origin": "o", "a": "one"}


def test_meta_returns_the_callers_own_dict(store: Store) -> None:
    """Changing the dict ``meta`` returned changes nothing stored."""
    with store.transaction():
        store.set_meta({"a": "1"})
    got = store.meta()
    got["a"] = "changed"
    got["b"] = "added"
    assert store.meta()["a"] == "1"
    assert "b" not in store.meta()
