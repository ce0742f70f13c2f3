"""Wall-clock time for everything that stores or schedules: one place, so that a test can
set it (``frozen``) instead of sleeping. Waits and timeouts keep using the real clock."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

_fixed: datetime | None = None


def now() -> datetime:
    """The current time, aware and in UTC."""
    return _fixed if _fixed is not None else datetime.now(UTC)


class Frozen:
    def set(self, at: datetime) -> None:
        global _fixed
        if at.tzinfo is None:
            raise ValueError("a clock time needs a timezone")
        _fixed = at.astimezone(UTC)

    def advance(self, by: timedelta) -> None:
        self.set(now() + by)


@contextmanager
def frozen(at: datetime) -> Iterator[Frozen]:
    """Hold the clock at ``at`` (move it with set/advance) until the block ends."""
    global _fixed
    before = _fixed
    control = Frozen()
    control.set(at)
    try:
        yield control
    finally:
        _fixed = before
