"""What the HTTP/2 providers share: a provider-owned event loop on its own thread and one
long-lived HTTP/2 client (``h2client.H2Client``) on it. Workers are threads; ``send`` hands a
batch to the loop, where its requests run concurrently, and waits for the results."""

from __future__ import annotations

import asyncio
import threading
from abc import ABC, abstractmethod
from collections.abc import Sequence
from concurrent.futures import Future

from clarion.delivery.providers.base import OutboundPush, SendResult
from clarion.delivery.providers.h2client import H2Client


def new_loop() -> asyncio.AbstractEventLoop:
    """uvloop where it is installed (with uvicorn[standard]; its transports cost less per
    request), else asyncio's own loop."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - Windows, or a trimmed install
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


class Http2Provider(ABC):
    name = "http2"

    def __init__(self, concurrency: int) -> None:
        self.concurrency = concurrency  # requests in flight per project, across batches
        self._loop: asyncio.AbstractEventLoop | None = None
        self._client: H2Client | None = None
        self._loop_lock = threading.Lock()
        self._gates: dict[str, asyncio.Semaphore] = {}

    def gate(self, project_id: str) -> asyncio.Semaphore:
        """The project's concurrency limit for this provider (used on the loop only)."""
        gate = self._gates.get(project_id)
        if gate is None:
            gate = self._gates[project_id] = asyncio.Semaphore(self.concurrency)
        return gate

    def send(self, batch: Sequence[OutboundPush]) -> list[SendResult]:
        """One result per message, in order; never raises for a per-message problem."""
        with self._loop_lock:
            if self._loop is None:
                self._loop = new_loop()
                threading.Thread(target=self._loop.run_forever, name=f"clarion-{self.name}",
                                 daemon=True).start()  # fmt: skip
            loop = self._loop
        future: Future[list[SendResult]] = asyncio.run_coroutine_threadsafe(
            self._send_all(batch), loop
        )
        return future.result()

    def close(self) -> None:
        loop, client = self._loop, self._client
        if loop is None:
            return
        if client is not None:
            asyncio.run_coroutine_threadsafe(client.aclose(), loop).result(5)
        loop.call_soon_threadsafe(loop.stop)
        self._loop = self._client = None

    def client(self) -> H2Client:
        """The long-lived client (made on the loop, at first use)."""
        if self._client is None:
            self._client = self.make_client()
        return self._client

    @abstractmethod
    def make_client(self) -> H2Client:
        """How this provider connects (its origin, TLS trust, timeouts)."""

    @abstractmethod
    async def _send_all(self, batch: Sequence[OutboundPush]) -> list[SendResult]:
        """Send a batch on the loop, concurrently; one result per message, in order."""
