"""Token buckets, one per key (a project, a source address), in this process's memory.

A bucket holds up to ``burst`` tokens and refills at ``rate`` per second; a request takes
one. The state of one bucket is two floats, and the table is bounded: past ``maxsize`` keys
the buckets that are full again (indistinguishable from new ones) are dropped first.

``TokenBuckets`` keeps them in this process's memory (the default: with N API processes
behind a balancer a project gets up to N times its limit). ``ratelimit.shared`` keeps them in
Redis or PostgreSQL, so that the limit holds across every API process; all three answer the
same ``Decision`` through the ``Buckets`` protocol.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    limit: int  # requests per second
    remaining: int  # whole tokens left after this request
    reset: int  # unix seconds at which the bucket is full again
    retry_after: int  # seconds until a token is there (0 when allowed)

    def headers(self) -> list[tuple[bytes, bytes]]:
        return [
            (b"x-ratelimit-limit", str(self.limit).encode()),
            (b"x-ratelimit-remaining", str(self.remaining).encode()),
            (b"x-ratelimit-reset", str(self.reset).encode()),
        ]


def decide(allowed: bool, rate: float, burst: float, tokens: float, wall: float) -> Decision:
    """The answer for a bucket holding ``tokens`` (after this request's) at unix time
    ``wall``."""
    return Decision(
        allowed=allowed,
        limit=max(1, round(rate)),
        remaining=max(0, math.floor(tokens)),
        reset=math.ceil(wall + (burst - tokens) / rate),
        retry_after=0 if allowed else max(1, math.ceil((1 - tokens) / rate)),
    )


class Buckets(Protocol):
    async def take(self, key: str, rate: float, burst: float | None = None) -> Decision: ...

    async def peek(self, key: str, rate: float, burst: float | None = None) -> Decision: ...

    async def blocked(self, key: str, rate: float, burst: float) -> Decision | None:
        """The refusal if the bucket is empty, None if a token is there (taking none)."""

    async def close(self) -> None: ...


class MemoryBuckets:
    """``TokenBuckets`` behind the ``Buckets`` protocol (no I/O: nothing is awaited)."""

    def __init__(self) -> None:
        self.buckets = TokenBuckets()

    async def take(self, key: str, rate: float, burst: float | None = None) -> Decision:
        return self.buckets.take(key, rate, burst)

    async def peek(self, key: str, rate: float, burst: float | None = None) -> Decision:
        return self.buckets.peek(key, rate, burst)

    async def blocked(self, key: str, rate: float, burst: float) -> Decision | None:
        return self.buckets.blocked(key, rate, burst)

    async def close(self) -> None:
        pass


class TokenBuckets:
    def __init__(
        self,
        maxsize: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.maxsize = maxsize
        self._clock = clock
        self._wall = wall
        self._buckets: dict[str, tuple[float, float]] = {}  # key: (tokens, at)

    def _tokens(self, key: str, rate: float, burst: float, now: float) -> float:
        tokens, at = self._buckets.get(key, (burst, now))
        return min(burst, tokens + (now - at) * rate)

    def take(self, key: str, rate: float, burst: float | None = None) -> Decision:
        """Take a token if there is one."""
        burst = rate if burst is None else burst
        now = self._clock()
        tokens = self._tokens(key, rate, burst, now)
        allowed = tokens >= 1
        if allowed:
            tokens -= 1
        self._store(key, tokens, now, burst)
        return self._decision(allowed, rate, burst, tokens)

    def peek(self, key: str, rate: float, burst: float | None = None) -> Decision:
        """Whether a token is there, taking none."""
        burst = rate if burst is None else burst
        tokens = self._tokens(key, rate, burst, self._clock())
        return self._decision(tokens >= 1, rate, burst, tokens)

    def blocked(self, key: str, rate: float, burst: float) -> Decision | None:
        """None when a token is there (the common case: answered without building a
        Decision), else the refusal."""
        if key not in self._buckets:
            return None
        tokens = self._tokens(key, rate, burst, self._clock())
        return None if tokens >= 1 else self._decision(False, rate, burst, tokens)

    def _decision(self, allowed: bool, rate: float, burst: float, tokens: float) -> Decision:
        return decide(allowed, rate, burst, tokens, self._wall())

    def _store(self, key: str, tokens: float, now: float, burst: float) -> None:
        if key not in self._buckets and len(self._buckets) >= self.maxsize:
            self._prune(now)
        self._buckets[key] = (tokens, now)

    def _prune(self, now: float) -> None:
        # Without the rates at hand, drop the least recently touched half: those are the
        # buckets most likely to be full again.
        oldest = sorted(self._buckets.items(), key=lambda kv: kv[1][1])
        for key, _ in oldest[: len(oldest) // 2]:
            del self._buckets[key]
