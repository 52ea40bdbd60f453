"""monitor.rules.value_text: the one text of a grouped value (group keys and pseudonyms)."""

from __future__ import annotations

from sealtrail.monitor.privacy import Pseudonyms
from sealtrail.monitor.rules import field_getter, group_key, value_text


def test_texts_stay_and_other_values_are_sorted_json() -> None:
    """A text is itself; anything else is its JSON with sorted keys (spaces kept, as stored
    group keys were written)."""
    assert value_text("alice") == "alice"
    assert value_text({"b": 1, "a": [True, None]}) == '{"a": [true, null], "b": 1}'
    assert value_text(7) == "7"


def test_single_field_group_keys_use_it() -> None:
    """A one-field group key of a non-text value is that value's text."""
    key = group_key([field_getter("metadata.x")])
    assert key({"metadata": {"x": {"b": 1, "a": 2}}}) == value_text({"a": 2, "b": 1})
    assert key({"metadata": {}}) == ""


def test_pseudonyms_are_keyed_over_it() -> None:
    """Equal values in any key order get one pseudonym."""
    p = Pseudonyms(["metadata.x"], b"k" * 32)
    assert p.value("metadata.x", {"b": 1, "a": 2}) == p.value("metadata.x", {"a": 2, "b": 1})
