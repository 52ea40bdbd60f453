"""RFC 3339 timestamps, normalised to UTC with microseconds: ``2026-11-28T08:21:16.123456Z``.

One text per instant, so the same event always encodes to the same leaf bytes. Every time
sealtrail reads (events, records, headers, settings) is parsed by :func:`parse_time`.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

_RFC3339 = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?"
    r"(?:([Zz])|([+-])(\d{2}):(\d{2}))\Z", re.ASCII)  # RFC 3339 digits are ASCII
# The canonical form (what format_time writes and every stored event carries), read by
# ``datetime.fromisoformat``: several times faster than the general path. Hours and minutes are
# held to their ranges here, so no Python's reading of ``24:00`` or a leap second can differ.
_CANONICAL = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}T(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]\.[0-9]{6}Z")


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# The text of the last whole second formatted, "YYYY-MM-DDTHH:MM:SS", by its Unix second: times
# formatted within one second share it. One tuple, replaced whole (thread-safe).
_last_second: tuple[int, str] = (0, "1970-01-01T00:00:00")


def format_time(dt: datetime) -> str:
    """Format an aware datetime as canonical UTC RFC 3339 with microseconds.

    A datetime already in UTC (what ``datetime.now(UTC)`` gives: every ``record()`` of the SDK)
    is formatted by its fields, the whole seconds kept from the last call; any other by
    :func:`_format_general` (the property tests hold the fast path to it).
    """
    global _last_second  # noqa: PLW0603 - a one-entry cache of a pure function
    if dt.tzinfo is not UTC:
        return _format_general(dt)
    delta = dt - _EPOCH
    unix_s = delta.days * 86400 + delta.seconds
    second, text = _last_second
    if second != unix_s:
        text = (f"{dt.year:04d}-{dt.month:02d}-{dt.day:02d}T{dt.hour:02d}:{dt.minute:02d}:"
                f"{dt.second:02d}")
        _last_second = (unix_s, text)
    return f"{text}.{dt.microsecond:06d}Z"


def _format_general(dt: datetime) -> str:
    """:func:`format_time` for an aware datetime in any zone."""
    if dt.tzinfo is None:
        raise ValueError("timestamp must be timezone-aware")
    # The year by hand: strftime's %Y does not pad years before 1000 to four digits.
    utc = dt.astimezone(UTC)
    return f"{utc.year:04d}-" + utc.strftime("%m-%dT%H:%M:%S.%fZ")


def parse_time(text: str) -> datetime:
    """Parse RFC 3339 (any offset, up to nanoseconds, truncated to microseconds) to aware UTC."""
    if _CANONICAL.fullmatch(text):
        try:
            return datetime.fromisoformat(text)
        except ValueError:
            pass  # a day or month out of range: the general path says so in its own words
    return _parse_general(text)


def _parse_general(text: str) -> datetime:
    """:func:`parse_time` for every RFC 3339 form (the property tests hold the fast path to it)."""
    m = _RFC3339.match(text)
    if not m:
        raise ValueError("not an RFC 3339 timestamp with a time zone (e.g. 2026-01-31T12:00:00Z)")
    year, month, day, hour, minute, second = (int(m.group(i)) for i in range(1, 7))
    frac = (m.group(7) or "").ljust(6, "0")[:6]
    try:
        dt = datetime(year, month, day, hour, minute, second, int(frac), tzinfo=UTC)
        if m.group(9):
            sign = 1 if m.group(9) == "+" else -1
            dt -= sign * timedelta(hours=int(m.group(10)), minutes=int(m.group(11)))
    except OverflowError as exc:  # an offset that moves it out of years 1-9999
        raise ValueError("timestamp is outside the years 1-9999 in UTC") from exc
    return dt


def normalize_time(text: str) -> str:
    """The canonical text of an RFC 3339 timestamp."""
    return format_time(parse_time(text))


def unix_micros(dt: datetime) -> int:
    """Microseconds since the Unix epoch."""
    delta = dt - _EPOCH
    return (delta.days * 86400 + delta.seconds) * 1_000_000 + delta.microseconds
