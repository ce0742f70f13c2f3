"""A scripted HTTP server on a real port, for fault injection against the client SDK.

Each test gives a list of steps; each request takes the next step (the last one repeats).
A step is (status, headers, body) or a callable for anything richer. Every request is
recorded. Trigger calls are stored by Idempotency-Key, the way a server that honours the key
does: the same key always names the same trigger.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from tests.fakes import http1

Answer = tuple[int, dict[str, str], Any]  # status, headers, JSON body
Step = Answer | Callable[["Fake", dict[str, Any]], Answer]


@dataclass
class Fake:
    steps: list[Step]
    requests: list[dict[str, Any]] = field(default_factory=list)
    triggers: dict[str, str] = field(default_factory=dict)  # idempotency key -> trigger id
    url: str = ""

    def trigger_for(self, request: dict[str, Any]) -> str:
        key = request["headers"].get("idempotency-key") or str(uuid.uuid4())
        return self.triggers.setdefault(key, str(uuid.uuid4()))


def accepted(fake: Fake, request: dict[str, Any]) -> tuple[int, dict[str, str], Any]:
    return 200, {"X-Request-ID": "req-ok"}, {"trigger_id": fake.trigger_for(request)}


def fails_after_creating(fake: Fake, request: dict[str, Any]) -> tuple[int, dict[str, str], Any]:
    """The trigger is created, then the answer is lost as a 500."""
    fake.trigger_for(request)
    return 500, {"X-Request-ID": "req-500"}, {"error": {"code": "internal", "message": "boom"}}


def slow(seconds: float, then: Step) -> Step:
    def step(fake: Fake, request: dict[str, Any]) -> tuple[int, dict[str, str], Any]:
        time.sleep(seconds)
        return then(fake, request) if callable(then) else then

    return step


@contextmanager
def serve(steps: list[Step]) -> Iterator[Fake]:
    fake = Fake(list(steps))
    lock = threading.Lock()

    def respond(method: str, path: str, headers: dict[str, str], raw: bytes) -> Answer:
        request = {"method": method, "path": path, "headers": headers,
                   "body": json.loads(raw) if raw else None, "at": time.monotonic()}  # fmt: skip
        with lock:
            fake.requests.append(request)
            step = fake.steps.pop(0) if len(fake.steps) > 1 else fake.steps[0]
        return step(fake, request) if callable(step) else step

    with http1.serve_json(respond) as url:
        fake.url = url
        yield fake
