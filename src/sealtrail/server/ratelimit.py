"""Per-key rate limits: a token bucket per API key (429 with Retry-After when empty)."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class RateLimiter:
    """``rate`` requests per second per key, bursts up to ``burst``."""

    rate: float
    burst: float
    now: Callable[[], float] = time.monotonic
    _buckets: dict[str, tuple[float, float]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    max_keys: int = 100_000  # past this many buckets, the full ones (idle keys) are dropped

    def take(self, key: str) -> float:
        """Spend one token for ``key``: 0 when allowed, else seconds until one is free."""
        t = self.now()
        with self._lock:
            if len(self._buckets) >= self.max_keys and key not in self._buckets:
                self._sweep(t)
            tokens, last = self._buckets.get(key, (self.burst, t))
            tokens = min(self.burst, tokens + (t - last) * self.rate)
            if tokens >= 1:
                self._buckets[key] = (tokens - 1, t)
                return 0.0
            self._buckets[key] = (tokens, t)
            return (1 - tokens) / self.rate

    def _sweep(self, t: float) -> None:
        """Forget the buckets that have refilled (an idle key starts full again anyway), so
        keys that come and go (client addresses) cannot grow the table without end."""
        full = [k for k, (tokens, last) in self._buckets.items()
                if tokens + (t - last) * self.rate >= self.burst]
        for k in full:
            del self._buckets[k]
        if len(self._buckets) >= self.max_keys:  # a flood of new keys: drop the oldest half
            for k, _ in sorted(self._buckets.items(), key=lambda kv: kv[1][1])[
                    : len(self._buckets) // 2]:
                del self._buckets[k]

    @staticmethod
    def retry_after(wait: float) -> str:
        """The Retry-After header value (whole seconds, at least 1)."""
        return str(max(1, math.ceil(wait)))
