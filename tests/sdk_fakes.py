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
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Step = (
    tuple[int, dict[str, str], Any]
    | Callable[["Fake", dict[str, Any]], tuple[int, dict[str, str], Any]]
)


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

    class Handler(BaseHTTPRequestHandler):
        def _handle(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            request = {
                "method": self.command,
                "path": self.path,
                "headers": {k.lower(): v for k, v in self.headers.items()},
                "body": json.loads(raw) if raw else None,
                "at": time.monotonic(),
            }
            with lock:
                fake.requests.append(request)
                step = fake.steps.pop(0) if len(fake.steps) > 1 else fake.steps[0]
            status, headers, body = step(fake, request) if callable(step) else step
            data = json.dumps(body).encode()
            try:
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (a timeout test)

        do_GET = do_POST = do_PATCH = do_DELETE = _handle

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    fake.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()
