"""Sigma wildcards are matched without backtracking (monitor/sigma.py ``_glob``): the same
answers as the regular expression they replace, on any pattern and value."""

from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st
from sigma.types import SpecialChars

from sealtrail.monitor.sigma import _glob

STAR, ONE = SpecialChars.WILDCARD_MULTI, SpecialChars.WILDCARD_SINGLE
PART = st.one_of(st.text(alphabet="abAB", min_size=1, max_size=3), st.just(STAR), st.just(ONE))


def _regex(parts: list[object], cased: bool, anchored: bool) -> re.Pattern[str]:
    body = "".join(re.escape(p) if isinstance(p, str) else ".*" if p == STAR else "."
                   for p in parts)
    return re.compile(body if anchored else f".*{body}.*",
                      re.DOTALL | (0 if cased else re.IGNORECASE))


@settings(max_examples=600, deadline=None)
@given(parts=st.lists(PART, min_size=1, max_size=6), value=st.text(alphabet="abAB", max_size=9),
       cased=st.booleans(), anchored=st.booleans())
def test_the_matcher_agrees_with_the_regular_expression(parts: list[object], value: str,
                                                        cased: bool, anchored: bool) -> None:
    expected = _regex(parts, cased, anchored).fullmatch(value) is not None
    assert _glob(parts, cased, anchored=anchored)(value) is expected  # type: ignore[arg-type]


def test_a_long_value_is_read_in_linear_passes() -> None:
    """The shape that took the regular expression cubic time (an auditd proctitle of 25 kB
    against ``*wget*http*|*sh*``): answered at once, and right."""
    parts = [STAR, "wget", STAR, "http", STAR, "|", STAR, "sh", STAR]
    value = ("wget " + "http " * 5000)[:25_600]
    assert _glob(parts, False)(value) is False  # type: ignore[arg-type]
    assert _glob(parts, False)(value + "|bash") is True  # type: ignore[arg-type]
