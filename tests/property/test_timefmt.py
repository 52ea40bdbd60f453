"""parse_time's fast path for the canonical form against its general RFC 3339 path.

Every stored time is read by ``timefmt.parse_time``; the canonical text (what ``format_time``
writes) goes through ``datetime.fromisoformat``. On any text of that shape, digits anything,
the two paths must give the same instant or the same error.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone

from hypothesis import given
from hypothesis import strategies as st

from sealtrail.core import timefmt
from sealtrail.core.timefmt import format_time, parse_time


def _outcome(fn: Callable[[str], datetime], text: str) -> datetime | tuple[str, str]:
    try:
        return fn(text)
    except ValueError as exc:
        return ("ValueError", str(exc))


@given(st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30),
                    timezones=st.just(UTC)))
def test_canonical_text_reads_back_to_the_same_instant(dt: datetime) -> None:
    """format_time then parse_time is the identity, in UTC."""
    got = parse_time(format_time(dt))
    assert got == dt
    assert got.utcoffset() == timedelta(0)


@given(st.integers(0, 9999), st.integers(0, 13), st.integers(0, 32), st.integers(0, 25),
       st.integers(0, 61), st.integers(0, 61), st.integers(0, 999_999))
def test_fast_path_agrees_with_the_general_path(
        year: int, month: int, day: int, hour: int, minute: int, second: int,
        micro: int) -> None:
    """A canonical-shaped text with any numbers (day 31 of February, hour 24, year 0) gives
    what the general parser gives: the same datetime, or ValueError with the same words."""
    text = f"{year:04d}-{month:02d}-{day:02d}T{hour:02d}:{minute:02d}:{second:02d}.{micro:06d}Z"
    assert _outcome(parse_time, text) == _outcome(timefmt._parse_general, text)


@given(st.datetimes(min_value=datetime(2, 1, 1), max_value=datetime(9998, 12, 31),
                    timezones=st.builds(lambda m: timezone(timedelta(minutes=m)),
                                        st.integers(-23 * 60 - 59, 23 * 60 + 59))))
def test_offsets_are_read_by_the_general_path(dt: datetime) -> None:
    """Texts with an offset are not canonical; they still read as their instant in UTC."""
    text = dt.isoformat()
    assert parse_time(text) == dt.astimezone(UTC)


def test_forms_fromisoformat_takes_but_rfc_3339_does_not_are_refused() -> None:
    """The fast path never widens what parse_time accepts."""
    for text in ("2026-01-01", "2026-01-01T00:00:00", "2026-01-01 00:00:00.000000Z",
                 "2026-W01-1T00:00:00.000000Z", "20260101T000000.000000Z",
                 "2026-01-01T00:00:00.000000+0000", "2026-01-01T24:00:00.000000Z"):
        assert isinstance(_outcome(parse_time, text), tuple), text


@given(st.sampled_from(["\u0660\u0661\u0662\u0663\u0664\u0665\u0666\u0667\u0668\u0669",
                        "\uff10\uff11\uff12\uff13\uff14\uff15\uff16\uff17\uff18\uff19",
                        "\u0966\u0967\u0968\u0969\u096a\u096b\u096c\u096d\u096e\u096f"]),
       st.integers(0, 18), st.booleans())
def test_digits_of_other_scripts_are_refused_by_both_paths(
        digits: str, position: int, canonical: bool) -> None:
    """RFC 3339 digits are ASCII: a text with one digit of another script (which ``int()``
    would read) is refused by the general path, as by the fast path's pattern."""
    base = "2026-01-31T12:00:00.000000Z" if canonical else "2026-01-31T12:00:00+01:00"
    places = [i for i, c in enumerate(base) if c.isdigit()]
    i = places[position % len(places)]
    text = base[:i] + digits[int(base[i])] + base[i + 1:]
    assert isinstance(_outcome(parse_time, text), tuple), text
    assert isinstance(_outcome(timefmt._parse_general, text), tuple), text
