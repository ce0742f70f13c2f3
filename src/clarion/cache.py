"""A small time-bounded cache for the hot read path of every trigger.

Looking up the API key and the campaign costs two queries per request. Both change rarely, so
each answer is kept for ``ttl`` seconds (CLARION_CACHE_TTL_SECONDS, default 1). Changes made
through this process (revoking a key, pausing or editing a campaign) clear it at once; a change
made by another process (a CLI, another API node) is seen within ``ttl``.
"""

from __future__ import annotations

import time
from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")


class TTLCache(Generic[K, V]):
    def __init__(self, ttl: float, maxsize: int = 10_000) -> None:
        self.ttl = ttl
        self.maxsize = maxsize
        self._items: dict[K, tuple[float, V]] = {}

    def get(self, key: K) -> V | None:
        item = self._items.get(key)
        if item is None:
            return None
        expires, value = item
        if time.monotonic() >= expires:
            self._items.pop(key, None)
            return None
        return value

    def put(self, key: K, value: V) -> None:
        if self.ttl <= 0:
            return
        if len(self._items) >= self.maxsize:
            self._items.clear()  # crude, but bounded and rare: the working set is small
        self._items[key] = (time.monotonic() + self.ttl, value)

    def pop(self, key: K) -> None:
        self._items.pop(key, None)

    def clear(self) -> None:
        self._items.clear()


keys: TTLCache[str, object] = TTLCache(1.0)
campaigns: TTLCache[tuple[str, str], object] = TTLCache(1.0)
projects: TTLCache[str, object] = TTLCache(1.0)  # project settings (deep-link schemes)


def configure(ttl: float) -> None:
    keys.ttl = campaigns.ttl = projects.ttl = ttl
    keys.clear()
    campaigns.clear()
    projects.clear()
