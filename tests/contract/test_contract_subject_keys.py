"""``SubjectKeys``: per-subject keys (unique per reference and per key id), erasure with
``purge_deleted``, and legal holds."""

from __future__ import annotations

import threading
import time

import pytest

from sealtrail.core.errors import StorageError
from sealtrail.store.protocol import Hold, Store, SubjectKey
from tests.contract.rows import KEYS

K1, K2, K3 = KEYS[1], KEYS[2], KEYS[3]
T1, T2, T3 = "2024-01-01T00:00:00Z", "2024-01-02T00:00:00Z", "2024-01-03T00:00:00Z"


def test_subject_keys_round_trip_by_reference_and_by_key_id(store: Store) -> None:
    """A key put is found by its subject reference and by its key id; others are absent."""
    with store.transaction():
        store.put_subject_keys([K1, K2])
    assert store.subject_keys_by_ref([K1.ref, K2.ref, K3.ref]) == {K1.ref: K1, K2.ref: K2}
    assert store.subject_keys_by_kid([K2.kid, K3.kid]) == {K2.kid: K2}
    assert store.subject_keys_by_ref([]) == {}
    assert all(type(k) is SubjectKey for k in store.subject_keys_by_kid([K1.kid]).values())


def test_many_keys_are_found_in_one_call(store: Store) -> None:
    """Lookups take any number of references or ids at once."""
    keys = [SubjectKey(b"kid %d" % n, b"ref %d" % n, b"w %d" % n) for n in range(1200)]
    with store.transaction():
        store.put_subject_keys(keys)
    assert store.subject_keys_by_ref(k.ref for k in keys) == {k.ref: k for k in keys}
    assert store.subject_keys_by_kid(k.kid for k in keys) == {k.kid: k for k in keys}


@pytest.mark.parametrize("clash", [
    SubjectKey(b"another kid", K1.ref, b"other wrapped"),
    SubjectKey(K1.kid, b"another ref", b"other wrapped"),
], ids=["same reference", "same key id"])
def test_a_second_key_for_a_reference_or_id_fails(store: Store, clash: SubjectKey) -> None:
    """A key whose reference or key id is already stored is refused (StorageError), whether
    stored before or in the same call; the stored key stays."""
    with store.transaction():
        store.put_subject_keys([K1])
    with pytest.raises(StorageError), store.transaction():
        store.put_subject_keys([clash])
    with pytest.raises(StorageError), store.transaction():
        store.put_subject_keys([K2, SubjectKey(b"x", K2.ref, b"y")])
    assert store.subject_keys_by_ref([K1.ref, K2.ref]) == {K1.ref: K1}
    assert store.subject_keys_by_kid([K1.kid, b"another kid", K2.kid]) == {K1.kid: K1}


def test_a_deleted_key_is_gone_and_purge_says_so(store: Store) -> None:
    """After ``delete_subject_key`` and ``purge_deleted`` (True: no reader kept a copy) the
    key is found neither by reference nor by id; other keys stay."""
    with store.transaction():
        store.put_subject_keys([K1, K2])
    with store.transaction():
        store.delete_subject_key(K1.kid)
    purged = store.purge_deleted(wait_s=5.0)
    assert purged is True
    assert store.subject_keys_by_kid([K1.kid, K2.kid]) == {K2.kid: K2}
    assert store.subject_keys_by_ref([K1.ref, K2.ref]) == {K2.ref: K2}
    with store.transaction():  # the reference may take a new key
        store.put_subject_keys([SubjectKey(b"new kid", K1.ref, b"new wrapped")])


def test_purge_is_false_while_a_reader_keeps_an_old_copy(store: Store) -> None:
    """A reader in a snapshot that still sees the deleted key makes ``purge_deleted`` return
    False after ``wait_s``; once it ends, the purge returns True."""
    with store.transaction():
        store.put_subject_keys([K1])
    reader = store.reader()
    try:
        with reader.snapshot():
            assert reader.subject_keys_by_kid([K1.kid]) == {K1.kid: K1}
            with store.transaction():
                store.delete_subject_key(K1.kid)
            began = time.monotonic()
            purged = store.purge_deleted(wait_s=0.2)
            assert purged is False
            assert time.monotonic() - began >= 0.15
            assert reader.subject_keys_by_kid([K1.kid]) == {K1.kid: K1}  # its snapshot
        assert store.purge_deleted(wait_s=5.0) is True
        assert reader.subject_keys_by_kid([K1.kid]) == {}
    finally:
        reader.close()


def test_purge_waits_for_a_reader_that_finishes_in_time(store: Store) -> None:
    """A reader that ends its snapshot within ``wait_s`` lets the purge return True."""
    with store.transaction():
        store.put_subject_keys([K1])
    reader = store.reader()
    started = threading.Event()

    def read_slowly() -> None:
        with reader.snapshot():
            reader.subject_keys_by_kid([K1.kid])
            started.set()
            time.sleep(0.3)

    thread = threading.Thread(target=read_slowly)
    thread.start()
    try:
        assert started.wait(5)
        with store.transaction():
            store.delete_subject_key(K1.kid)
        assert store.purge_deleted(wait_s=10.0) is True
    finally:
        thread.join(10)
        reader.close()
    assert store.subject_keys_by_kid([K1.kid]) == {}


def test_holds_are_numbered_from_one_in_order(store: Store) -> None:
    """``put_hold`` returns 1, 2, 3... in the order holds are recorded, and ``holds`` lists
    them oldest first with what was recorded."""
    with store.transaction():
        first = store.put_hold(b"ref a", "reason a", T1)
        second = store.put_hold(b"ref b", "reason b", T2)
    with store.transaction():
        third = store.put_hold(b"ref a", "reason c", T3)
    assert (first, second, third) == (1, 2, 3)
    assert store.holds() == [Hold(1, b"ref a", "reason a", T1, None),
                             Hold(2, b"ref b", "reason b", T2, None),
                             Hold(3, b"ref a", "reason c", T3, None)]


def test_holds_filter_by_subject_and_openness(store: Store) -> None:
    """``release_holds`` releases every open hold of one subject only; ``holds`` filters by
    subject and lists released holds only when asked, keeping each first release time."""
    with store.transaction():
        store.put_hold(b"ref a", "r1", T1)
        store.put_hold(b"ref b", "r2", T1)
    with store.transaction():
        store.release_holds(b"ref a", T2)
        store.put_hold(b"ref a", "r3", T2)
    with store.transaction():
        store.release_holds(b"ref a", T3)
    assert store.holds(b"ref a") == []
    assert store.holds(b"ref a", open_only=False) == [Hold(1, b"ref a", "r1", T1, T2),
                                                      Hold(3, b"ref a", "r3", T2, T3)]
    assert store.holds() == [Hold(2, b"ref b", "r2", T1, None)]
    assert [h.number for h in store.holds(open_only=False)] == [1, 2, 3]
    assert store.holds(b"ref c", open_only=False) == []
