"""How long to wait before trying again: exponential backoff with jitter, and ``Retry-After``.

Shared by the SDK (delivering events) and the monitor (delivering alerts), so both treat a
server's or receiver's answers alike. Pure: the caller passes the clock's ``now`` and the
random ``jitter``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Final

MAX_RETRY_AFTER: Final = 300.0  # seconds: a hostile or broken header cannot park anyone forever


def backoff(attempt: int, *, base: float, cap: float, jitter: float) -> float:
    """The pause before retry number ``attempt`` (0-based): ``base * 2**attempt`` up to ``cap``,
    of which a random half (``jitter`` in [0, 1)) is taken off, so senders that failed together
    do not retry together ("equal jitter")."""
    delay = min(cap, base * float(2 ** min(max(attempt, 0), 32)))
    return delay / 2 + delay / 2 * jitter


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or an HTTP date), capped at
    :data:`MAX_RETRY_AFTER`; None when absent or unreadable."""
    if value is None:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():
        return min(float(value), MAX_RETRY_AFTER)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return min(max(0.0, (when - now).total_seconds()), MAX_RETRY_AFTER)
