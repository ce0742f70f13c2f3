"""A small keep-alive HTTP/1.1 load generator on asyncio streams.

It is deliberately lean (no httpx) so that on a 2-core machine the client costs the server as
little CPU as possible; the same client measures every endpoint, so ratios stay fair.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field


@dataclass
class Result:
    latencies: list[float] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)
    elapsed: float = 0.0

    @property
    def rate(self) -> float:
        return len(self.latencies) / self.elapsed if self.elapsed else 0.0

    def pct(self, p: float) -> float:
        ordered = sorted(self.latencies)
        if not ordered:
            return float("nan")
        return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


def build_request(method: str, path: str, headers: dict[str, str], body: bytes = b"") -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: bench", f"Content-Length: {len(body)}"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = 0
    for line in head.split(b"\r\n")[1:]:
        if line[:15].lower() == b"content-length:":
            length = int(line[15:])
    body = await reader.readexactly(length) if length else b""
    return status, body


async def request_once(host: str, port: int, raw: bytes) -> tuple[int, bytes]:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(raw)
        return await _read_response(reader)
    finally:
        writer.close()


async def run_load(
    host: str, port: int, raw: bytes, *, concurrency: int, duration: float, warmup: float = 1.0
) -> Result:
    """``concurrency`` connections send ``raw`` back to back; requests that start during the
    warm-up are not counted."""
    result = Result()
    start = time.perf_counter()
    measure_from = start + warmup
    stop_at = measure_from + duration

    async def worker() -> None:
        reader, writer = await asyncio.open_connection(host, port)
        try:
            while True:
                t0 = time.perf_counter()
                if t0 >= stop_at:
                    return
                writer.write(raw)
                status, _ = await _read_response(reader)
                t1 = time.perf_counter()
                if t0 >= measure_from:
                    result.latencies.append(t1 - t0)
                    result.statuses[status] = result.statuses.get(status, 0) + 1
        finally:
            writer.close()

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    result.elapsed = duration
    return result


@dataclass
class PacedResult:
    """An open-loop run: latencies per status, each measured from its scheduled start (so a
    slow answer that delays the next request is counted, not hidden)."""

    latencies: dict[int, list[float]] = field(default_factory=dict)
    elapsed: float = 0.0
    late: int = 0  # requests sent more than 10 ms after their slot (the client fell behind)

    def rate(self, status: int) -> float:
        return len(self.latencies.get(status, [])) / self.elapsed if self.elapsed else 0.0

    def pct(self, status: int, p: float) -> float:
        ordered = sorted(self.latencies.get(status, []))
        if not ordered:
            return float("nan")
        return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


async def run_paced(
    host: str, port: int, raw: bytes, *, rate: float, duration: float, connections: int = 64
) -> PacedResult:
    """Send ``raw`` at ``rate`` requests/s for ``duration`` seconds, whatever the answers
    (open loop), over up to ``connections`` keep-alive connections."""
    result = PacedResult()
    total = int(rate * duration)
    start = time.perf_counter() + 0.2
    next_slot = 0

    async def worker() -> None:
        nonlocal next_slot
        reader, writer = await asyncio.open_connection(host, port)
        try:
            while next_slot < total:
                slot = start + next_slot / rate
                next_slot += 1
                wait = slot - time.perf_counter()
                if wait > 0:
                    await asyncio.sleep(wait)
                elif wait < -0.01:
                    result.late += 1
                writer.write(raw)
                status, _ = await _read_response(reader)
                result.latencies.setdefault(status, []).append(time.perf_counter() - slot)
        finally:
            writer.close()

    await asyncio.gather(*(worker() for _ in range(connections)))
    result.elapsed = duration
    return result
