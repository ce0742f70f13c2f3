"""A trigger's counts by message status, cheap enough to poll.

Counting a trigger's messages reads an index entry per message: a few milliseconds for a
small trigger, tens for a million-recipient one. A client polling a big broadcast's status
every 50 ms would spend most of a core counting, beside the workers that do the sending. So
while a trigger runs, a count is reused for ten times as long as it took to make (a small
trigger's counts are effectively always fresh; a million-recipient one's are at most about
half a second old), which keeps polling within a tenth of a core. A completed trigger's counts
no longer change: they are counted once and kept.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from typing import Any

from sqlalchemy.orm import Session

from clarion.delivery import repository

REUSE_FACTOR = 10.0  # a running trigger's count is reused for this many times its cost
KEPT = 4096  # triggers whose counts are remembered (least recently asked for leave first)


class CountCache:
    def __init__(self, kept: int = KEPT, reuse: float = REUSE_FACTOR) -> None:
        self._kept = kept
        self._reuse = reuse
        self._entries: OrderedDict[str, tuple[bool, float, dict[str, int]]] = OrderedDict()
        self._lock = threading.Lock()

    def counts(self, session: Session, trigger: Any) -> dict[str, int]:
        """{status: number of messages} of ``trigger`` (a row with id and status)."""
        final = trigger.status == "completed"  # read before counting: nothing changes after
        now = time.monotonic()
        with self._lock:
            entry = self._entries.get(trigger.id)
            if entry is not None:
                was_final, fresh_until, counts = entry
                if was_final or (not final and now < fresh_until):
                    self._entries.move_to_end(trigger.id)
                    return counts
        counts = repository.counts(session, trigger.id)
        spent = time.monotonic() - now
        with self._lock:
            self._entries[trigger.id] = (final, now + spent * (1 + self._reuse), counts)
            self._entries.move_to_end(trigger.id)
            while len(self._entries) > self._kept:
                self._entries.popitem(last=False)
        return counts


COUNTS = CountCache()


def counts(session: Session, trigger: Any) -> dict[str, int]:
    return COUNTS.counts(session, trigger)
