"""When a scheduled trigger's messages go: ``send_at`` is an instant; with ``in_local_time``
its wall-clock date and time are read in each device's timezone instead.

- A device whose timezone is missing or unknown gets the instant ``send_at`` names (its own
  UTC offset).
- A wall-clock time that a DST change skips (02:30 on a spring-forward day) is read with the
  offset before the change: it goes when the clock reads 03:30. One that occurs twice (01:30
  on a fall-back day) goes at its first occurrence.
- Channels that reach users, not devices (in-app, e-mail, webhook), use the instant.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from clarion import clock

EARLIEST = timedelta(hours=14)  # UTC+14 (Kiribati): the first clocks to reach a wall time


def status_for(send_at: datetime | None) -> str:
    return "scheduled" if send_at is not None and send_at > clock.now() else "accepted"


def resolve_at(send_at: datetime | None, in_local_time: bool) -> datetime | None:
    """When the trigger's resolve job may run: the instant, or for local time the moment the
    first timezone reaches the wall-clock time (each message then waits for its own)."""
    if send_at is None:
        return None
    if not in_local_time:
        return send_at
    return send_at.replace(tzinfo=UTC) - EARLIEST


@lru_cache(maxsize=1024)
def zone(name: str) -> ZoneInfo | None:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None


def due(send_at: datetime, timezone: str | None) -> datetime:
    """When a device's message goes, for a local-time trigger."""
    where = zone(timezone) if timezone else None
    if where is None:
        return send_at.astimezone(UTC)
    return send_at.replace(tzinfo=where, fold=0).astimezone(UTC)
