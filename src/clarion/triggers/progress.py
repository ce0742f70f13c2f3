"""A trigger's counts by status, cheap enough to poll.

Counting a trigger's messages reads each of them: tens of milliseconds for a big trigger,
hundreds for a million-recipient one, and a client polling a broadcast's status every 50 ms
would keep a core counting beside the workers that do the sending. So, while a trigger's
status stays the same:
- the counts of its settled chunks (none of their messages changes any more) are kept, and
  only the others are counted again;
- of those, a pending chunk that no step has taken yet is counted from its counts as
  written (pending_chunks.queued and skipped), not from its messages;
- and a count is reused for ten times as long as it took to make.

A change of status is always counted afresh, whole: the counts that come with ``completed``
are exact. (Until then, a user deleted meanwhile may still be counted in a settled chunk.)
A cancelled trigger's counts are never reused: the messages that were being handed over when
it was cancelled settle after the change of status."""

from __future__ import annotations

import threading
import time
from collections import Counter, OrderedDict
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.orm import Session

from clarion.delivery import repository

REUSE_FACTOR = 10.0  # a count is reused for this many times what it cost
KEPT = 4096  # triggers whose counts are remembered (least recently asked for leave first)


@dataclass(frozen=True, slots=True)
class _Entry:
    status: str  # the trigger's status when counted
    fresh_until: float  # reusable until (monotonic seconds)
    counts: dict[str, int]
    upto: int = 0  # chunks before this one are settled, their counts in ``settled``
    known: frozenset[int] = frozenset()  # and these after it
    settled: dict[str, int] = field(default_factory=dict)


class CountCache:
    def __init__(self, kept: int = KEPT, reuse: float = REUSE_FACTOR) -> None:
        self._kept = kept
        self._reuse = reuse
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self._lock = threading.Lock()

    def counts(self, session: Session, trigger: Any) -> dict[str, int]:
        """{status: number of messages} of ``trigger`` (a row with id and status)."""
        now = time.monotonic()
        with self._lock:
            entry = self._entries.get(trigger.id)
            if entry is not None and entry.status != trigger.status:
                entry = None  # counted afresh, whole
            # A cancelled trigger's messages in flight settle after its status changed (no
            # change of status tells): its counts are not reused.
            if entry is not None and now < entry.fresh_until and trigger.status != "cancelled":
                self._entries.move_to_end(trigger.id)
                return entry.counts
        upto, known, settled = (0, frozenset[int](), {}) if entry is None else (
            entry.upto, entry.known, entry.settled)  # fmt: skip
        newly, others, found = repository.counts_from(session, trigger.id, upto, known)
        settled = dict(Counter(settled) + Counter(newly))
        counts = dict(Counter(settled) + Counter(others))
        now_known = set(known) | found
        while upto in now_known:  # kept as a number, where the settled chunks run unbroken
            now_known.remove(upto)
            upto += 1
        spent = time.monotonic() - now
        fresh_until = now + spent * (1 + self._reuse)
        with self._lock:
            self._entries[trigger.id] = _Entry(trigger.status, fresh_until, counts, upto,
                                               frozenset(now_known), settled)  # fmt: skip
            self._entries.move_to_end(trigger.id)
            while len(self._entries) > self._kept:
                self._entries.popitem(last=False)
        return counts


COUNTS = CountCache()


def counts(session: Session, trigger: Any) -> dict[str, int]:
    return COUNTS.counts(session, trigger)
