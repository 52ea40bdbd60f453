"""Small guards of the console's service side: the rate limiter's table of buckets stays
bounded when keys come and go (client addresses of the sign-in), and exported CSV cannot run
as a spreadsheet formula."""

from __future__ import annotations

from sealtrail.server.ratelimit import RateLimiter


def test_idle_buckets_are_swept_at_the_cap() -> None:
    t = [0.0]
    limiter = RateLimiter(1.0, 2.0, now=lambda: t[0], max_keys=10)
    for i in range(10):
        assert limiter.take(f"ip:{i}") == 0.0
    t[0] = 5.0  # every bucket has refilled: idle
    assert limiter.take("ip:new") == 0.0
    assert len(limiter._buckets) == 1


def test_a_flood_of_new_keys_keeps_the_table_bounded() -> None:
    t = [0.0]
    limiter = RateLimiter(1.0, 2.0, now=lambda: t[0], max_keys=100)
    for i in range(1000):
        limiter.take(f"ip:{i}")
        t[0] += 0.0001
    assert len(limiter._buckets) <= 100



def test_csv_cells_that_a_spreadsheet_would_run_are_quoted() -> None:
    """The export's CSV quotes formula starts, also behind spaces or line breaks."""
    from sealtrail.server.tail_api import _csv_safe

    for risky in ("=1+1", " =1+1", "\n=HYPERLINK(1)", "+1", "-1", "@SUM(A1)", "\t=1"):
        assert _csv_safe(risky).startswith("'"), risky
    for plain in ("ok", " hi", "user.login", "", None):
        assert not _csv_safe(plain).startswith("'"), plain
