"""Identifiers: UUIDv7 strings (time-ordered, like the ids Clix hands out)."""

from __future__ import annotations

import os
import threading
import time
import uuid

_lock = threading.Lock()
# A random hex digit's low two bits under the RFC 9562 variant bits (10).
_VARIANT = {d: "89ab"[int(d, 16) & 3] for d in "0123456789abcdef"}
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
    importer's ids and a broadcast's messages: a quarter of the cost)."""
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
    # The random 62 bits as hex: the first digit of each 16 carries the variant (10xx).
    noise = os.urandom(8 * n).hex()
    out = []
    prefix_ms, prefix = -1, ""
    for i in range(n):
        step = start + i
        ms_i = first_ms + (step >> 12)
        if ms_i != prefix_ms:  # once per millisecond of the batch: its first 15 digits
            h = f"{ms_i & ((1 << 48) - 1):012x}"
            prefix_ms, prefix = ms_i, f"{h[:8]}-{h[8:]}-7"
        r = noise[16 * i : 16 * i + 16]
        out.append(f"{prefix}{step & 0xFFF:03x}-{_VARIANT[r[0]]}{r[1:4]}-{r[4:]}")
    return out
