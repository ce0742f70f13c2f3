"""Per-campaign send rates: a token bucket per campaign, in this process.

A message over the rate is not sent and not slept on: it stays queued, untouched (not
counted as an attempt), and its chunk comes back through the runner half a second later. The
bucket holds two seconds' worth of tokens, more than the runner's wait between visits, so
none is lost while it waits, and it starts nearly empty, so a send does not begin with a
burst. (Across several worker processes each holds its own bucket; sharing one is the
scale-out issue's work.)
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

RETRY_IN = 0.5  # seconds until a waiting chunk is looked at again


class _Bucket:
    def __init__(self, rate: float, now: float) -> None:
        self.rate = rate
        self.capacity = max(1.0, rate * 2)
        self.tokens = min(1.0, self.capacity)
        self.at = now

    def take(self, now: float) -> bool:
        self.tokens = min(self.capacity, self.tokens + (now - self.at) * self.rate)
        self.at = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False


class SendRates:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._buckets: dict[str, _Bucket] = {}
        self._lock = threading.Lock()

    def take(self, campaign_id: str, rate: float) -> bool:
        """May one more message of this campaign go now?"""
        with self._lock:
            now = self.clock()
            bucket = self._buckets.get(campaign_id)
            if bucket is None or bucket.rate != rate:
                bucket = self._buckets[campaign_id] = _Bucket(rate, now)
            return bucket.take(now)
