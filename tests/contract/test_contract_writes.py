"""Every kind of write, in and out of the unit of work: ``Store.transaction`` (durable when the
block exits normally, nothing kept when it raises), ``Store.savepoint`` (undone alone) and
writes outside a transaction or through a reader (refused)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from sealtrail.core.errors import StorageError
from sealtrail.store.protocol import Store
from tests.contract.rows import (
    WRITES,
    AbandonedError,
    abandon_savepoint,
    abandon_transaction,
    chunk,
    dump,
    seed,
)

write_kinds = pytest.mark.parametrize("write", list(WRITES.values()), ids=list(WRITES))


@write_kinds
def test_a_write_changes_what_the_store_answers(store: Store,
                                                write: Callable[[Store], None]) -> None:
    """Each sample write is visible inside its transaction (so the tests below can fail)."""
    seed(store)
    before = dump(store)
    with store.transaction():
        write(store)
        assert dump(store) != before


@write_kinds
def test_a_write_outside_a_transaction_fails(store: Store,
                                             write: Callable[[Store], None]) -> None:
    """A write outside a transaction raises StorageError and changes nothing."""
    seed(store)
    before = dump(store)
    with pytest.raises(StorageError):
        write(store)
    assert dump(store) == before


@write_kinds
def test_a_transaction_that_raises_keeps_nothing(store: Store,
                                                 write: Callable[[Store], None]) -> None:
    """A transaction whose block raises leaves the store as it was, and the next one works."""
    seed(store)
    before = dump(store)
    with pytest.raises(AbandonedError):
        abandon_transaction(store, lambda: write(store))
    assert dump(store) == before
    assert not store.in_transaction
    with store.transaction():
        write(store)
    assert dump(store) != before


@write_kinds
def test_a_committed_write_is_kept_and_a_new_reader_sees_it(
        store: Store, write: Callable[[Store], None]) -> None:
    """What a transaction answered inside its block is what stays, for every handle."""
    seed(store)
    with store.transaction():
        write(store)
        inside = dump(store)
    assert dump(store) == inside
    reader = store.reader()
    try:
        assert dump(reader) == inside
    finally:
        reader.close()


@write_kinds
def test_a_savepoint_that_raises_undoes_only_its_part(store: Store,
                                                      write: Callable[[Store], None]) -> None:
    """Writes inside a failed savepoint are undone; the transaction's others are kept."""
    seed(store)
    with store.transaction():
        store.set_meta({"before the savepoint": "1"})
        expected = dump(store)

        def changed() -> None:
            write(store)
            assert dump(store) != expected

        with pytest.raises(AbandonedError):
            abandon_savepoint(store, changed)
        assert dump(store) == expected
        store.set_meta({"after the savepoint": "1"})
    after = dump(store)
    assert after["meta"] == {**expected["meta"], "after the savepoint": "1"}
    assert {**after, "meta": None} == {**expected, "meta": None}


@write_kinds
def test_a_savepoint_that_exits_normally_keeps_its_part(store: Store,
                                                        write: Callable[[Store], None]) -> None:
    """Writes of a savepoint whose block ends normally commit with the transaction."""
    seed(store)
    before = dump(store)
    with store.transaction():
        with store.savepoint():
            write(store)
        inside = dump(store)
    assert inside != before
    assert dump(store) == inside


@write_kinds
def test_a_write_through_a_reader_fails(store: Store, write: Callable[[Store], None]) -> None:
    """A reader is read-only: a write through it raises StorageError and changes nothing."""
    seed(store)
    before = dump(store)
    reader = store.reader()
    try:
        with pytest.raises(StorageError), reader.transaction():
            write(reader)
    finally:
        reader.close()
    assert dump(store) == before


def test_a_write_failing_inside_a_transaction_keeps_nothing_of_it(store: Store) -> None:
    """A refused write (a chunk start already taken) raised out of the block undoes the
    transaction's other writes too."""
    seed(store)
    before = dump(store)

    def clashing() -> None:
        with store.transaction():
            store.set_meta({"note": "changed"})
            store.put_chunks([chunk(5, 1), chunk(2, 1)])

    with pytest.raises(StorageError):
        clashing()
    assert dump(store) == before


def test_savepoints_nest(store: Store) -> None:
    """An inner savepoint that raises is undone alone; its outer savepoint's writes stay."""

    def inner() -> None:
        store.set_meta({"inner": "1"})
        store.put_chunks([chunk(0, 1)])

    def outer_of_a_kept_inner() -> None:
        store.put_chunks([chunk(0, 2)])
        with store.savepoint():
            store.set_meta({"inner kept by its savepoint, undone by the outer": "1"})

    with store.transaction():
        with store.savepoint():
            store.set_meta({"outer": "1"})
            with pytest.raises(AbandonedError):
                abandon_savepoint(store, inner)
            store.set_meta({"outer again": "1"})
        with pytest.raises(AbandonedError):
            abandon_savepoint(store, outer_of_a_kept_inner)
    meta = {k: v for k, v in store.meta().items() if k != "schema"}
    assert meta == {"outer": "1", "outer again": "1"}
    assert list(store.iter_all_chunks()) == []


def test_a_savepoint_outside_a_transaction_fails(store: Store) -> None:
    """A savepoint needs a transaction: outside one it raises StorageError."""
    with pytest.raises(StorageError), store.savepoint():
        pass
