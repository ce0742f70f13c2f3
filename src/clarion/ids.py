"""Identifiers: UUIDv7 strings (time-ordered, like the ids Clix hands out)."""

from __future__ import annotations

import os
import threading
import time
import uuid

_lock = threading.Lock()
_last_ms = 0
_counter = 0


def uuid7() -> str:
    """Return a RFC 9562 UUIDv7 string, monotonic within this process."""
    global _last_ms, _counter
    with _lock:
        ms = time.time_ns() // 1_000_000
        if ms <= _last_ms:
            _counter += 1
            if _counter > 0xFFF:  # 12-bit counter exhausted: borrow the next millisecond
                _last_ms += 1
                _counter = 0
            ms = _last_ms
        else:
            _last_ms = ms
            _counter = 0
        counter = _counter
    rand = int.from_bytes(os.urandom(8), "big") & ((1 << 62) - 1)
    value = (ms & ((1 << 48) - 1)) << 80
    value |= 0x7 << 76
    value |= counter << 64
    value |= 0b10 << 62
    value |= rand
    return str(uuid.UUID(int=value))


def uuid7_batch(n: int) -> list[str]:
    """``n`` UUIDv7 strings in one go, as uuid7() would give them one by one (the bulk
    importer's ids: a fifth of the cost)."""
    global _last_ms, _counter
    if n <= 0:
        return []
    with _lock:
        ms = time.time_ns() // 1_000_000
        if ms > _last_ms:
            _last_ms, _counter = ms, -1
        start = _counter + 1
        # The 12-bit counter runs on into following milliseconds, as in uuid7().
        _last_ms += (start + n - 1) >> 12
        _counter = (start + n - 1) & 0xFFF
        first_ms = _last_ms - ((start + n - 1) >> 12)
    noise = os.urandom(8 * n)
    out = []
    for i in range(n):
        step = start + i
        ms_i = first_ms + (step >> 12)
        rand = int.from_bytes(noise[8 * i : 8 * i + 8], "big") & ((1 << 62) - 1)
        value = (
            (ms_i & ((1 << 48) - 1)) << 80 | 0x7 << 76 | (step & 0xFFF) << 64 | 0b10 << 62 | rand
        )
        h = f"{value:032x}"
        out.append(f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}")
    return out
