"""Group commit for accepted triggers.

Each trigger must be durable before its 200, and a commit is the expensive part of accepting
one. Requests that arrive while a commit is in progress wait for the next one, which writes
them all at once: under load one commit carries many triggers; alone, a trigger is written at
once. Nobody gets a 200 before the commit that holds their trigger has succeeded.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from starlette.concurrency import run_in_threadpool

from clarion import metrics
from clarion.runner.engine import TaskEngine
from clarion.storage.db import Database
from clarion.triggers import service


class TriggerIntake:
    def __init__(
        self,
        db: Database,
        engine: TaskEngine,
        notify: Callable[[], None],
        max_batch: int = 500,
    ) -> None:
        self.db = db
        self.engine = engine
        self.notify = notify
        self.max_batch = max_batch
        self._pending: list[tuple[dict[str, Any], asyncio.Future[None]]] = []
        self._in_flight = 0
        self._last_seen = 0.0
        self._flusher: asyncio.Task[None] | None = None

    async def submit(self, row: dict[str, Any]) -> None:
        """Return once ``row`` (a checked trigger) and its first job are committed."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append((row, future))
        if self._flusher is None:
            self._flusher = asyncio.create_task(self._flush())
        await future

    @contextmanager
    def request(self) -> Iterator[None]:
        """Wrap a trigger request, so that the worker can tell when the intake is busy."""
        self._in_flight += 1
        try:
            yield
        finally:
            self._in_flight -= 1
            self._last_seen = time.monotonic()

    def idle_for(self) -> float:
        """Seconds since the intake last had a request in flight (0 while it has one)."""
        return 0.0 if self._in_flight else time.monotonic() - self._last_seen

    async def _flush(self) -> None:
        try:
            while self._pending:
                batch = self._pending[: self.max_batch]
                del self._pending[: self.max_batch]
                try:
                    await run_in_threadpool(self._write, [row for row, _ in batch])
                except BaseException as exc:
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(exc)
                    if not isinstance(exc, Exception):
                        raise
                    continue
                metrics.TRIGGERS.inc(len(batch))
                for _, future in batch:
                    if not future.done():
                        future.set_result(None)
                self.notify()
        finally:
            self._flusher = None

    def _write(self, rows: list[dict[str, Any]]) -> None:
        with self.db.write() as session:
            service.write(session, rows, self.engine)
