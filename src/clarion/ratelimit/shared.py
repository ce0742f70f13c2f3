"""Token buckets every API process shares: in Redis (a Lua script, atomic, on Redis's clock)
or in PostgreSQL (one upsert, on the database's clock), chosen by CLARION_RATE_LIMIT_BACKEND.
A project's limit then holds across all API processes, as does the failed-authentication
limit of a source address. Each request costs one round trip."""

from __future__ import annotations

from typing import Any

import redis.asyncio as aioredis
from sqlalchemy import text
from starlette.concurrency import run_in_threadpool

from clarion.ratelimit.bucket import Buckets, Decision, MemoryBuckets, decide
from clarion.storage.db import Database

# KEYS[1]: the bucket; ARGV: rate, burst, 1 to take a token (0 to look). Returns allowed,
# the tokens left and Redis's time (as strings: Lua numbers would be cut to integers).
_TAKE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local rate, burst = tonumber(ARGV[1]), tonumber(ARGV[2])
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(state[1]) or burst
local at = tonumber(state[2]) or now
tokens = math.min(burst, tokens + math.max(0, now - at) * rate)
local allowed = 0
if tokens >= 1 then allowed = 1 end
if ARGV[3] == '1' then
  if allowed == 1 then tokens = tokens - 1 end
  redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(now))
  redis.call('PEXPIRE', KEYS[1], math.ceil(burst / rate * 1000) + 1000)
end
return {allowed, tostring(tokens), tostring(now)}
"""


class RedisBuckets:
    def __init__(self, url: str, prefix: str = "clarion:rate:") -> None:
        self.client: Any = aioredis.Redis.from_url(url)
        self.prefix = prefix
        self._script = self.client.register_script(_TAKE)

    async def _run(self, key: str, rate: float, burst: float | None, take: bool) -> Decision:
        burst = rate if burst is None else burst
        allowed, tokens, now = await self._script(keys=[self.prefix + key],
                                                  args=[rate, burst, 1 if take else 0])  # fmt: skip
        return decide(bool(allowed), rate, burst, float(tokens), float(now))

    async def take(self, key: str, rate: float, burst: float | None = None) -> Decision:
        return await self._run(key, rate, burst, True)

    async def peek(self, key: str, rate: float, burst: float | None = None) -> Decision:
        return await self._run(key, rate, burst, False)

    async def blocked(self, key: str, rate: float, burst: float) -> Decision | None:
        decision = await self.peek(key, rate, burst)
        return None if decision.allowed else decision

    async def close(self) -> None:
        await self.client.aclose()


# One statement: SET expressions read the row as it was, so ``allowed`` and ``tokens`` are
# computed from the same refill. The database's clock serves every API node.
_PG_TAKE = text("""
INSERT INTO rate_buckets AS b (key, tokens, at, allowed)
VALUES (:key, :burst - 1, extract(epoch FROM clock_timestamp()), true)
ON CONFLICT (key) DO UPDATE SET
  allowed = LEAST(:burst, b.tokens + GREATEST(0, EXCLUDED.at - b.at) * :rate) >= 1,
  tokens = LEAST(:burst, b.tokens + GREATEST(0, EXCLUDED.at - b.at) * :rate)
    - CASE WHEN LEAST(:burst, b.tokens + GREATEST(0, EXCLUDED.at - b.at) * :rate) >= 1
      THEN 1 ELSE 0 END,
  at = EXCLUDED.at
RETURNING allowed, tokens, at
""")
_PG_PEEK = text("""
SELECT tokens, at, extract(epoch FROM clock_timestamp()) AS now
FROM rate_buckets WHERE key = :key
""")


class PostgresBuckets:
    def __init__(self, db: Database) -> None:
        if db.is_sqlite:
            raise ValueError(
                "CLARION_RATE_LIMIT_BACKEND=postgres needs CLARION_DATABASE_URL to be "
                "PostgreSQL; with SQLite there is one API process: use memory"
            )
        self.db = db

    def _take(self, key: str, rate: float, burst: float) -> Decision:
        with self.db.engine.begin() as conn:
            allowed, tokens, now = conn.execute(
                _PG_TAKE, {"key": key, "rate": rate, "burst": burst}
            ).one()
        return decide(bool(allowed), rate, burst, float(tokens), float(now))

    def _peek(self, key: str, rate: float, burst: float) -> Decision:
        with self.db.engine.connect() as conn:
            row = conn.execute(_PG_PEEK, {"key": key}).first()
        if row is None:
            return decide(True, rate, burst, burst, 0.0)
        tokens = min(burst, float(row.tokens) + max(0.0, float(row.now) - float(row.at)) * rate)
        return decide(tokens >= 1, rate, burst, tokens, float(row.now))

    async def take(self, key: str, rate: float, burst: float | None = None) -> Decision:
        return await run_in_threadpool(self._take, key, rate, rate if burst is None else burst)

    async def peek(self, key: str, rate: float, burst: float | None = None) -> Decision:
        return await run_in_threadpool(self._peek, key, rate, rate if burst is None else burst)

    async def blocked(self, key: str, rate: float, burst: float) -> Decision | None:
        decision = await self.peek(key, rate, burst)
        return None if decision.allowed else decision

    async def close(self) -> None:
        pass


def build_buckets(backend: str, db: Database, redis_url: str) -> Buckets:
    if backend == "redis":
        return RedisBuckets(redis_url)
    if backend == "postgres":
        return PostgresBuckets(db)
    return MemoryBuckets()
