"""Attack: a malformed ``Sealtrail-Signature`` header crashes the receiver's check.

``verify_signature`` is what a webhook receiver runs on untrusted input before anything else.
A ``t=`` with thousands of digits used to raise (``int()`` refuses more than 4300 digits, and
a long one overflows when subtracted from a float clock), which turns a forged request into a
500 or a crashed worker instead of a clean 401. Every malformed header must be False.
"""

from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from sealtrail.monitor.sinks import signature_header, verify_signature

SECRET = "receiver-secret"
NOW = 1_800_000_000
BODY = b'{"id":"a"}'
MAC = signature_header(SECRET, BODY, NOW).split("v1=")[1]


def test_huge_timestamps_are_false_not_errors() -> None:
    """The reported crash: a ``t`` of thousands of digits (and other oversized stamps)."""
    for digits in (16, 400, 4301, 20_000):
        for header in (f"t={'9' * digits},v1={MAC}", f"t={'1' + '0' * (digits - 1)},v1={MAC}"):
            assert verify_signature(SECRET, header, BODY, now=NOW) is False


def test_malformed_headers_are_false() -> None:
    """Missing parts, duplicated keys, non-ASCII, oversized, too many ``v1``: all False."""
    good = f"t={NOW},v1={MAC}"
    assert verify_signature(SECRET, good, BODY, now=NOW) is True
    bad = [
        "", ",", "=", "t", "t=", "v1=", f"t={NOW}", f"v1={MAC}", f"t={NOW},v1=",
        f"t={NOW},t={NOW},v1={MAC}", f"t={NOW},v1={MAC},t={NOW}",
        f"t={NOW},v1={MAC}é", f"t=\u0661\u0662\u0663,v1={MAC}", f"t={NOW}\u00a0,v1={MAC}",
        f"t={NOW},v1={MAC}\x00", f"t={NOW},,v1={MAC}", f"t={NOW};v1={MAC}",
        f"t={NOW},v1={MAC[:-1]}", f"t={NOW},v1={MAC}0", f"t={NOW},v1={MAC.upper()}",
        f"t=+{NOW},v1={MAC}", f"t= {NOW},v1={MAC}", f"t=0x{NOW:x},v1={MAC}",
        f"t={NOW},v1={MAC}" + ",x=" + "a" * 5000,
        f"t={NOW}," + ",".join([f"v1={'0' * 64}"] * 16) + f",v1={MAC}",
    ]
    for header in bad:
        assert verify_signature(SECRET, header, BODY, now=NOW) is False, header[:80]


def test_non_text_headers_and_clocks_are_false() -> None:
    """A header that is not text (``headers.get`` gave None) or a clock that is not a
    finite number (a NaN ``now`` would otherwise pass every time check) is False."""
    good = f"t={NOW},v1={MAC}"
    for header in (None, b"t=1,v1=00", 12):
        assert verify_signature(SECRET, header, BODY, now=NOW) is False  # type: ignore[arg-type]
    for now in (math.nan, math.inf, -math.inf):
        assert verify_signature(SECRET, good, BODY, now=now) is False
    assert verify_signature(SECRET, good, BODY, now=NOW, tolerance=math.nan) is False


_PART = st.one_of(
    st.text(max_size=40),
    st.builds(lambda d: f"t={d}", st.text(alphabet="0123456789", min_size=0, max_size=6000)),
    st.builds(lambda d: f"t={d}", st.integers(min_value=-(10**30), max_value=10**30)),
    st.builds(lambda h: f"v1={h}", st.text(alphabet="0123456789abcdefABCDEF", max_size=70)),
    st.just(f"v1={MAC}"), st.just(f"t={NOW}"),
)


@settings(max_examples=400, deadline=None)
@given(st.text(max_size=300))
def test_random_text_never_raises(header: str) -> None:
    """Any text at all: a bool, never an exception."""
    assert verify_signature(SECRET, header, BODY, now=NOW) in (True, False)


@settings(max_examples=400, deadline=None)
@given(st.lists(_PART, max_size=8), st.sampled_from([",", ", ", " ,", ";"]),
       st.floats(allow_nan=True, allow_infinity=True))
def test_random_header_shapes_never_raise(parts: list[str], sep: str, now: float) -> None:
    """Headers built from plausible and hostile parts, under any clock: never an exception,
    and True only when the header holds exactly one ``t`` within the tolerance and the
    genuine MAC."""
    header = sep.join(parts)
    result = verify_signature(SECRET, header, BODY, now=now)
    assert result in (True, False)
    if result:
        assert f"v1={MAC}" in header
        assert math.isfinite(now)
        assert abs(now - NOW) <= 300
