"""Sharing one interpreter between the API and the embedded worker.

In the embedded default the API's event loop and the worker threads take turns on the GIL.
Left alone, a worker chewing through a backlog makes every trigger request wait behind it.
Accepting is what callers block on, and delivery is asynchronous anyway, so while trigger
requests are in flight the worker runs small batches and rests after each for long enough
that it takes at most ``share`` of the time. With the intake idle it runs flat out.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class Pacer:
    idle_for: Callable[[], float]  # seconds since the intake last had a request in flight
    share: float = 0.25  # the worker's share of time while the intake is busy
    quiet: float = 0.005  # idle this long and the intake counts as quiet
    small_batch: int = 8  # jobs per claim while the intake is busy
    # While the intake is busy the worker threads take turns, so that together they stay
    # within ``share`` (each pacing only itself would let N threads take N times as much).
    turn: threading.Lock = field(default_factory=threading.Lock)

    def busy(self) -> bool:
        return self.share < 1 and self.idle_for() < self.quiet

    def rest(self, spent: float, stop: threading.Event) -> None:
        """After a batch that took ``spent`` seconds: wait while the intake stays busy, up to
        the time that keeps the worker within its share."""
        deadline = time.monotonic() + spent * (1 - self.share) / self.share
        while time.monotonic() < deadline and self.busy() and not stop.is_set():
            time.sleep(self.quiet)
