"""A circuit breaker per provider and project: a provider that keeps failing is left alone
for a while instead of being hammered, and its messages wait, visibly, instead of failing.

Closed: messages go through; ``threshold`` consecutive outages (5xx, network errors,
timeouts: the retryable answers that are not a quota) open it. Open: nothing is sent; every
message is answered retryable with the reason ``waiting: provider unavailable`` and the time
left, so the runner brings it back then (the message log shows it queued with that reason).
When the cool-down ends, one batch goes through (half-open): a delivery closes the breaker, an
outage opens it again for twice as long, up to ``max_cooldown``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from clarion.delivery.providers.base import OutboundPush, Provider, SendResult

WAITING = "waiting: provider unavailable"


@dataclass
class _State:
    failures: int = 0
    open_until: float = 0.0
    cooldown: float = 0.0


class Breaker:
    def __init__(
        self,
        provider: Provider,
        *,
        threshold: int = 20,
        cooldown: float = 30.0,
        max_cooldown: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.provider = provider
        self.name = provider.name
        self.threshold = threshold
        self.base_cooldown = cooldown
        self.max_cooldown = max_cooldown
        self.clock = clock
        self._states: dict[str, _State] = {}
        self._lock = threading.Lock()

    def send(self, batch: Sequence[OutboundPush]) -> list[SendResult]:
        now = self.clock()
        passing: list[OutboundPush] = []
        waiting: dict[str, SendResult] = {}
        with self._lock:
            for message in batch:
                state = self._states.setdefault(message.project_id, _State())
                if state.open_until > now:
                    waiting[message.message_id] = SendResult(
                        message.message_id, "retryable", reason=WAITING, provider=self.name,
                        retry_after=state.open_until - now,
                    )  # fmt: skip
                else:
                    passing.append(message)
        results = {r.message_id: r for r in self.provider.send(passing)} if passing else {}
        self._observe(passing, results)
        return [waiting.get(m.message_id) or results[m.message_id] for m in batch]

    def _observe(self, sent: Sequence[OutboundPush], results: dict[str, SendResult]) -> None:
        now = self.clock()
        by_project: dict[str, list[SendResult]] = {}
        for message in sent:
            by_project.setdefault(message.project_id, []).append(results[message.message_id])
        with self._lock:
            for project_id, answers in by_project.items():
                state = self._states.setdefault(project_id, _State())
                for answer in answers:
                    if _outage(answer):
                        state.failures += 1
                    else:
                        state.failures, state.cooldown = 0, 0.0
                if state.failures >= self.threshold or (
                    state.cooldown and any(_outage(a) for a in answers)  # half-open, failed
                ):
                    state.cooldown = min(
                        self.max_cooldown, state.cooldown * 2 or self.base_cooldown
                    )
                    state.open_until = now + state.cooldown
                    state.failures = 0

    def is_open(self, project_id: str) -> bool:
        with self._lock:
            state = self._states.get(project_id)
            return state is not None and state.open_until > self.clock()

    def close(self) -> None:
        close = getattr(self.provider, "close", None)
        if close is not None:
            close()


def _outage(result: SendResult) -> bool:
    """A retryable answer that says the provider is down, not that we send too fast."""
    if result.outcome != "retryable":
        return False
    code = result.response_code or ""
    return not code.startswith("429") and "QUOTA" not in code
