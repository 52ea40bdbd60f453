"""The rate limiter's table of buckets stays bounded when keys come and go (client addresses
of the console's sign-in)."""

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

