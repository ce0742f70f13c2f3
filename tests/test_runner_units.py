"""Small parts of the runner and the cache, on their own."""

from __future__ import annotations

import threading
import time
import uuid

import pytest

from clarion import ids
from clarion.cache import TTLCache
from clarion.ids import uuid7, uuid7_batch
from clarion.runner.pacing import Pacer


def test_pacer_rests_only_while_the_intake_is_busy() -> None:
    busy = Pacer(idle_for=lambda: 0.0, share=0.25, quiet=0.001)
    assert busy.busy()
    started = time.monotonic()
    busy.rest(0.02, threading.Event())  # worked 20 ms at a 25% share: rests about 60 ms
    assert 0.05 <= time.monotonic() - started < 0.5
    idle = Pacer(idle_for=lambda: 10.0, share=0.25, quiet=0.001)
    assert not idle.busy()
    started = time.monotonic()
    idle.rest(1.0, threading.Event())
    assert time.monotonic() - started < 0.05
    assert not Pacer(idle_for=lambda: 0.0, share=1.0).busy()  # share 1: never paced


def test_ttl_cache_expires_and_clears() -> None:
    cache: TTLCache[str, int] = TTLCache(0.05)
    cache.put("a", 1)
    assert cache.get("a") == 1
    time.sleep(0.06)
    assert cache.get("a") is None
    cache.put("b", 2)
    cache.clear()
    assert cache.get("b") is None
    off: TTLCache[str, int] = TTLCache(0)
    off.put("c", 3)
    assert off.get("c") is None


def test_uuid7_is_version_7_and_ordered() -> None:
    ids = [uuid7() for _ in range(5000)]
    assert ids == sorted(ids) and len(set(ids)) == 5000
    assert all(i[14] == "7" and i[19] in "89ab" for i in ids)


def test_uuid7_batches_continue_the_sequence_across_milliseconds(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A batch gives what uuid7() would, one by one: interleaved with it the ids stay
    ordered and unique, also when a batch outruns the 12-bit counter of one millisecond."""
    frozen = 1_800_000_000_000 * 1_000_000
    monkeypatch.setattr(ids.time, "time_ns", lambda: frozen)  # the clock stands still
    monkeypatch.setattr(ids, "_last_ms", 0)
    out = [uuid7(), *uuid7_batch(10_000), uuid7(), *uuid7_batch(3), *uuid7_batch(0)]
    assert out == sorted(out) and len(set(out)) == len(out) == 10_005
    parsed = [uuid.UUID(i) for i in out]
    assert all(u.version == 7 and u.variant == uuid.RFC_4122 and str(u) == s
               for u, s in zip(parsed, out, strict=True))  # fmt: skip
    # 10,005 ids at one instant: the counter ran into the next two milliseconds.
    assert {u.int >> 80 for u in parsed} == {1_800_000_000_000 + k for k in range(3)}


def test_the_database_password_is_never_displayed() -> None:
    from pydantic import SecretStr

    from clarion.config import Settings

    settings = Settings(database_url=SecretStr("postgresql+psycopg://app:s3cret@db:5432/clarion"))
    assert "s3cret" not in settings.display_database_url()
    assert "s3cret" not in repr(settings)
    assert settings.resolved_database_url().endswith("app:s3cret@db:5432/clarion")
