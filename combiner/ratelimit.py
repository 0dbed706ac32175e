"""Per-client rate limits on the combiner's client services: one token bucket per client credential.

A call costs one token; a bucket holds at most ``burst`` and refills at ``rate`` per second. The check
is a dict lookup and a few float operations, so thousands of clients cost nothing measurable. An edge
client makes a handful of calls per round and a heartbeat every ~10 s: the defaults are far above that
and stop only a client that floods the combiner.
"""

from __future__ import annotations

import time


class RateLimiter:
    """Token buckets by key; ``allow`` takes one token or says no."""

    def __init__(self, rate: float, burst: int) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError(f"rate must be > 0 and burst >= 1, got rate={rate}, burst={burst}")
        self.rate = rate
        self.burst = float(burst)
        self._buckets: dict[str, list[float]] = {}  # key -> [tokens, monotonic time of last refill]

    def allow(self, key: str) -> bool:
        now = time.monotonic()
        bucket = self._buckets.get(key)
        if bucket is None:
            self._buckets[key] = [self.burst - 1.0, now]
            return True
        tokens = min(self.burst, bucket[0] + (now - bucket[1]) * self.rate)
        bucket[1] = now
        if tokens < 1.0:
            bucket[0] = tokens
            return False
        bucket[0] = tokens - 1.0
        return True
