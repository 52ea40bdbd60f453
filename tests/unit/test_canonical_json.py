"""canonical.compact_json and canonical.encode_json: the two JSON encodings written once.

``compact_json`` replaced ``json.dumps`` calls spelled out in report hashing, alert queues,
webhook bodies, rule digests, import ids and the log's settings: on any value it must give the
bytes those calls gave (they are hashed, signed or stored), in each of its modes.
"""

from __future__ import annotations

import json
import math
from typing import Any

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from sealtrail.core.canonical import compact_json, encode_json

# Any text but lone surrogates (they raise in both), keys of any characters.
_text = st.text(st.characters(exclude_categories=["Cs"]), max_size=12)
_scalars = (st.none() | st.booleans() | st.integers() | _text
            | st.floats(allow_nan=False, allow_infinity=False))
_values = st.recursive(_scalars, lambda inner: st.lists(inner, max_size=4)
                       | st.dictionaries(_text, inner, max_size=4), max_leaves=20)
_lenient = st.recursive(_scalars | st.sampled_from([math.nan, math.inf, -math.inf]),
                        lambda inner: st.lists(inner, max_size=4)
                        | st.dictionaries(_text, inner, max_size=4), max_leaves=20)


@given(_values)
def test_strict_text_is_the_report_and_webhook_encoding(value: Any) -> None:
    """The form report hashes, webhook bodies and the alert queue were defined with."""
    want = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False).encode("utf-8")
    assert compact_json(value).encode() == want


@given(_lenient)
def test_lenient_ascii_text_is_the_rule_digest_encoding(value: Any) -> None:
    """The form rule digests were defined with (ASCII, NaN written, objects as str())."""
    want = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    assert compact_json(value, ascii=True, lenient=True) == want


@given(_lenient)
def test_lenient_text_is_the_import_record_encoding(value: Any) -> None:
    """The form import record digests and over-deep metadata text were defined with."""
    want = json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"),
                      default=str)
    assert compact_json(value, lenient=True) == want


@given(st.dictionaries(_text, _text, max_size=6))
def test_ascii_text_is_the_settings_statement_encoding(value: dict[str, str]) -> None:
    """The form the log's signed settings and stored retention policy were defined with."""
    want = json.dumps(value, sort_keys=True, separators=(",", ":"))
    assert compact_json(value, ascii=True) == want


def test_strict_refuses_what_json_cannot_hold() -> None:
    """NaN and foreign objects raise unless lenient, where they become text."""
    with pytest.raises(ValueError, match="JSON compliant"):
        compact_json({"x": math.nan})
    with pytest.raises(TypeError):
        compact_json({"x": object})
    assert compact_json({"b": math.inf, "a": b"x"}, lenient=True) == '{"a":"b\'x\'","b":Infinity}'


def test_the_two_encodings_differ_on_floats() -> None:
    """Why neither stands in for the other: 1e16 and NaN are written differently."""
    assert compact_json([1e16]) == "[1e+16]"
    assert encode_json([1e16]) == b"[1e16]"
    assert encode_json(math.nan) == b"null"


def test_encode_json_sorts_keys_at_every_depth() -> None:
    """Keys sorted by code point, compact, UTF-8 unescaped."""
    assert encode_json({"b": {"z": 1, "é": [2]}, "a": None}) == \
        '{"a":null,"b":{"z":1,"é":[2]}}'.encode()


@given(st.recursive(st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | _text,
                    lambda inner: st.lists(inner, max_size=4)
                    | st.dictionaries(_text, inner, max_size=4), max_leaves=20))
def test_encode_json_is_the_sorted_encoding_exports_used(value: Any) -> None:
    """SIEM exports and evidence bundles used msgspec's ``order="sorted"``: same bytes."""
    assert encode_json(value) == msgspec.json.Encoder(order="sorted").encode(value)

