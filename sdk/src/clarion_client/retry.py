"""When to retry and how long to wait: the seed's rules, made exact.

Retried: network errors, timeouts, 5xx, and 429 (waiting at least its Retry-After). Never
retried: any other 4xx. Waits grow exponentially with full jitter (a random wait between 0
and the exponential step), with a cap on attempts and on the whole call's time. Replace the
policy by passing your own object with the same two methods.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Protocol

from clarion_client.errors import TRANSIENT, ClixError, RateLimitError


class Policy(Protocol):
    def delay(self, error: ClixError, attempt: int, elapsed: float) -> float | None:
        """Seconds to wait before attempt ``attempt + 1``, or None to give up."""
        ...


@dataclass
class RetryPolicy:
    max_attempts: int = 4  # the first try included
    max_elapsed: float = 30.0  # seconds for the whole call, waits included
    base: float = 0.25  # the first step of the exponential
    cap: float = 8.0  # no single wait longer than this (except a longer Retry-After)
    rng: random.Random = field(default_factory=random.Random, repr=False)

    def delay(self, error: ClixError, attempt: int, elapsed: float) -> float | None:
        if not isinstance(error, TRANSIENT) or attempt >= self.max_attempts:
            return None
        wait = self.rng.uniform(0, min(self.cap, self.base * 2 ** (attempt - 1)))
        if isinstance(error, RateLimitError) and error.retry_after is not None:
            wait = max(wait, error.retry_after)
        if elapsed + wait >= self.max_elapsed:
            return None
        return wait


NO_RETRY = RetryPolicy(max_attempts=1)
