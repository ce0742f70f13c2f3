"""Per-campaign send rates: a token bucket per campaign.

A message over the rate is not sent and not slept on: it stays queued, untouched (not
counted as an attempt), and its chunk comes back through the runner half a second later. The
bucket holds two seconds' worth of tokens, more than the runner's wait between visits, so
none is lost while it waits, and it starts nearly empty, so a send does not begin with a
burst.

Where the buckets live follows CLARION_RATE_LIMIT_BACKEND: ``memory`` keeps one per process
(with N worker processes a campaign may send N times its rate); ``redis`` and ``postgres``
keep one per campaign for every worker, so the rate holds across them. A shared bucket is
asked for a tenth of a second's worth of tokens at a time (one round trip per batch, not per
message); tokens a process took and did not use within a second are dropped, never sent late.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

from sqlalchemy import text

from clarion import clock
from clarion.storage.db import Database

RETRY_IN = 0.5  # seconds until a waiting chunk is looked at again
GRANT_SECONDS = 0.1  # a shared bucket hands out this many seconds' worth of tokens at once
ALLOWANCE_SECONDS = 1.0  # tokens taken and not used within this time are dropped


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


def _wall_seconds() -> float:
    return clock.now().timestamp()


class SendRates:
    """Per-campaign token buckets in this process, on the wall clock (clarion.clock), which
    is also what schedules a waiting chunk's next look."""

    def __init__(self, clock: Callable[[], float] = _wall_seconds) -> None:
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


class Rates(Protocol):
    def take(self, campaign_id: str, rate: float) -> bool:
        """May one more message of this campaign go now?"""
        ...


# A store hands out up to ``wanted`` tokens of a bucket (rate, capacity) and says how many.
Grant = Callable[[str, float, float, int], int]


class SharedSendRates:
    """Buckets in a store every worker shares, taken from in small batches."""

    def __init__(self, grant: Grant, clock: Callable[[], float] = time.monotonic) -> None:
        self.grant = grant
        self.clock = clock
        self._allowance: dict[str, tuple[int, float]] = {}  # campaign: (tokens, taken at)
        self._lock = threading.Lock()

    def take(self, campaign_id: str, rate: float) -> bool:
        with self._lock:
            now = self.clock()
            tokens, at = self._allowance.get(campaign_id, (0, now))
            if tokens <= 0 or now - at > ALLOWANCE_SECONDS:
                wanted = max(1, math.ceil(rate * GRANT_SECONDS))
                tokens = self.grant(f"send:{campaign_id}", rate, max(1.0, rate * 2), wanted)
                at = now
            if tokens <= 0:
                self._allowance.pop(campaign_id, None)
                return False
            self._allowance[campaign_id] = (tokens - 1, at)
            return True


_PG_SEED = text("""
INSERT INTO rate_buckets (key, tokens, at, allowed)
VALUES (:key, 1, extract(epoch FROM clock_timestamp()), true) ON CONFLICT (key) DO NOTHING
""")
_PG_LOCK = text("""
SELECT tokens, at, extract(epoch FROM clock_timestamp()) AS now
FROM rate_buckets WHERE key = :key FOR UPDATE
""")
_PG_SPEND = text("UPDATE rate_buckets SET tokens = :tokens, at = :now WHERE key = :key")


def postgres_grant(db: Database) -> Grant:
    """Grants from the ``rate_buckets`` table, on the database's clock: the row is locked
    while its tokens are counted, so concurrent workers never hand out the same token."""
    if db.is_sqlite:
        raise ValueError(
            "CLARION_RATE_LIMIT_BACKEND=postgres needs CLARION_DATABASE_URL to be PostgreSQL; "
            "with SQLite there is one worker process: use memory"
        )

    def grant(key: str, rate: float, capacity: float, wanted: int) -> int:
        with db.engine.begin() as conn:
            conn.execute(_PG_SEED, {"key": key})
            tokens, at, now = conn.execute(_PG_LOCK, {"key": key}).one()
            tokens = min(capacity, float(tokens) + max(0.0, float(now) - float(at)) * rate)
            granted = min(wanted, math.floor(tokens))
            conn.execute(_PG_SPEND, {"key": key, "tokens": tokens - granted, "now": now})
        return int(granted)

    return grant


# KEYS[1]: the bucket; ARGV: rate, capacity, wanted. Returns the tokens granted (on Redis's
# clock; a new bucket starts with one token).
_REDIS_GRANT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local rate, capacity, wanted = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(state[1]) or 1
local at = tonumber(state[2]) or now
tokens = math.min(capacity, tokens + math.max(0, now - at) * rate)
local granted = math.min(wanted, math.floor(tokens))
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens - granted), 'at', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil(capacity / rate * 1000) + 1000)
return granted
"""


def redis_grant(url: str, prefix: str = "clarion:rate:") -> Grant:
    import redis

    client: Any = redis.Redis.from_url(url)
    script = client.register_script(_REDIS_GRANT)

    def grant(key: str, rate: float, capacity: float, wanted: int) -> int:
        return int(script(keys=[prefix + key], args=[rate, capacity, wanted]))

    return grant


def build_send_rates(backend: str, db: Database, redis_url: str) -> Rates:
    if backend == "redis":
        return SharedSendRates(redis_grant(redis_url))
    if backend == "postgres":
        return SharedSendRates(postgres_grant(db))
    return SendRates()
