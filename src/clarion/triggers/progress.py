"""A trigger's counts by message status, cheap enough to poll.

Counting a trigger's messages reads an index entry per message: a few milliseconds for a
small trigger, tens for a million-recipient one. A client polling a big broadcast's status
every 50 ms would spend most of a core counting, beside the workers that do the sending. So a
count is reused for ten times as long as it took to make, while the trigger's status stays the
same (a small trigger's counts are effectively always fresh; a million-recipient one's at most
about half a second old), which keeps polling within a tenth of a core. A change of status is
always counted afresh: the counts that come with ``completed`` are exact."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from typing import Any

from sqlalchemy.orm import Session

from clarion.delivery import repository

REUSE_FACTOR = 10.0  # a count is reused for this many times what it cost
KEPT = 4096  # triggers whose counts are remembered (least recently asked for leave first)


class CountCache:
    def __init__(self, kept: int = KEPT, reuse: float = REUSE_FACTOR) -> None:
        self._kept = kept
        self._reuse = reuse
        # trigger id: (its status when counted, reusable until, counts)
        self._entries: OrderedDict[str, tuple[str, float, dict[str, int]]] = OrderedDict()
        self._lock = threading.Lock()

    def counts(self, session: Session, trigger: Any) -> dict[str, int]:
        """{status: number of messages} of ``trigger`` (a row with id and status)."""
        now = time.monotonic()
        with self._lock:
            entry = self._entries.get(trigger.id)
            if entry is not None:
                status, fresh_until, counts = entry
                if status == trigger.status and now < fresh_until:
                    self._entries.move_to_end(trigger.id)
                    return counts
        counts = repository.counts(session, trigger.id)
        spent = time.monotonic() - now
        with self._lock:
            self._entries[trigger.id] = (trigger.status, now + spent * (1 + self._reuse), counts)
            self._entries.move_to_end(trigger.id)
            while len(self._entries) > self._kept:
                self._entries.popitem(last=False)
        return counts


COUNTS = CountCache()


def counts(session: Session, trigger: Any) -> dict[str, int]:
    return COUNTS.counts(session, trigger)
