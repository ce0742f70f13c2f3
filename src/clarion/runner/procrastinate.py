"""The distributed runner on Procrastinate (CLARION_TASK_ENGINE=procrastinate, PostgreSQL).

Each `clarion worker` process (or `clarion serve` with its embedded worker) runs one
Procrastinate worker whose tasks call the same pipeline steps as the built-in runner. On top
of what Procrastinate does by itself (LISTEN/NOTIFY wake-ups, retries with exponential
backoff, delayed jobs, heartbeats), this runner:

- retries the jobs of workers whose heartbeat stopped (killed, frozen, cut off) once it is
  older than CLARION_JOB_LEASE_SECONDS: Procrastinate reports such jobs but leaves the
  retrying to the application;
- marks a trigger failed when its job fails for the last time;
- keeps working through a database restart: a worker loop that fails is started again.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import Any

import procrastinate
from procrastinate import RetryStrategy
from procrastinate.job_context import JobContext
from procrastinate.worker import Worker as ProcrastinateWorker
from sqlalchemy.engine import make_url

from clarion import metrics
from clarion.delivery import repository
from clarion.delivery.pipeline import Pipeline
from clarion.runner.engine import DELIVER_TASK, QUEUE, RESOLVE_TASK
from clarion.runner.pacing import Pacer
from clarion.storage.db import Database

log = logging.getLogger("clarion.runner")
MAX_ATTEMPTS = 5  # runs of a job that keeps failing, as in the built-in runner
RESTART_AFTER = 1.0  # seconds before a failed worker loop starts again


def conninfo(sqlalchemy_url: str) -> str:
    """The libpq URL of a SQLAlchemy PostgreSQL URL."""
    url = make_url(sqlalchemy_url).set(drivername="postgresql")
    return url.render_as_string(hide_password=False)


def build_app(db: Database, pipeline: Pipeline) -> procrastinate.App:
    app = procrastinate.App(connector=procrastinate.PsycopgConnector(conninfo=conninfo(db.url)))
    retry = RetryStrategy(max_attempts=MAX_ATTEMPTS - 1, exponential_wait=2)

    def failing(context: JobContext, kind: str, trigger_id: str, exc: Exception) -> None:
        job = context.job
        metrics.RETRIES.labels("job").inc()
        if job.attempts + 1 >= MAX_ATTEMPTS:  # Procrastinate will not run it again
            error = f"{type(exc).__name__}: {exc}"
            with db.write() as session:
                repository.fail_trigger(session, trigger_id, kind, job.attempts + 1, error)

    @app.task(name=RESOLVE_TASK, queue=QUEUE, pass_context=True, retry=retry)
    def resolve(context: JobContext, trigger_id: str) -> None:
        try:
            pipeline.resolve([trigger_id])
        except Exception as exc:
            failing(context, "resolve", trigger_id, exc)
            raise

    @app.task(name=DELIVER_TASK, queue=QUEUE, pass_context=True, retry=retry)
    def deliver(context: JobContext, trigger_id: str, chunk_no: int) -> None:
        try:
            pipeline.deliver([(trigger_id, chunk_no)])
        except Exception as exc:
            failing(context, "deliver", trigger_id, exc)
            raise

    return app


class ProcrastinateRunner:
    """Runs a Procrastinate worker on a thread of its own, with its own event loop."""

    def __init__(
        self,
        db: Database,
        pipeline: Pipeline,
        *,
        concurrency: int,
        lease_seconds: int,
        poll_interval: float,
    ) -> None:
        self.db = db
        self.pipeline = pipeline
        self.app = build_app(db, pipeline)
        self.concurrency = concurrency
        self.lease_seconds = lease_seconds
        self.poll_interval = poll_interval
        self.pacer: Pacer | None = None  # the built-in runner's; jobs here are paced by NOTIFY
        self.threads: list[threading.Thread] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._worker: ProcrastinateWorker | None = None
        self._stopping = False
        self._drain: float | None = None

    def _options(self, wait: bool) -> dict[str, Any]:
        return {
            "queues": [QUEUE],
            "concurrency": self.concurrency,
            "wait": wait,
            "install_signal_handlers": False,
            "delete_jobs": "successful",  # the table holds work still to do, and failures
            "fetch_job_polling_interval": max(self.poll_interval, 1.0),
            "update_heartbeat_interval": max(1.0, self.lease_seconds / 5),
            "stalled_worker_timeout": float(self.lease_seconds),
            "shutdown_graceful_timeout": self._drain,
        }

    def start(self) -> None:
        thread = threading.Thread(target=self._thread, name="clarion-procrastinate", daemon=True)
        self.threads = [thread]
        thread.start()

    def notify(self) -> None:
        """Nothing to do: Procrastinate's workers hear of new jobs through LISTEN/NOTIFY."""

    def stop(self, timeout: float = 10.0) -> None:
        """Fetch nothing more; let running jobs finish for up to ``timeout`` seconds."""
        self._stopping = True
        self._drain = timeout
        loop, worker = self._loop, self._worker
        if loop is not None and worker is not None:
            worker.shutdown_graceful_timeout = timeout
            loop.call_soon_threadsafe(worker.stop)
        for thread in self.threads:
            thread.join(timeout + 5)

    def run_until_idle(self) -> None:
        """Run jobs until none is ready (for CLIs and tests), on the calling thread."""

        async def once() -> None:
            async with self.app.open_async():
                await self._recover()
                worker = ProcrastinateWorker(self.app, **self._options(wait=False))
                await worker.run()  # type: ignore[no-untyped-call]

        asyncio.run(once())

    def _thread(self) -> None:
        asyncio.run(self._serve())

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        while not self._stopping:
            try:
                async with self.app.open_async():
                    recovery = asyncio.create_task(self._recover_forever())
                    try:
                        self._worker = ProcrastinateWorker(self.app, **self._options(wait=True))
                        if self._stopping:
                            return
                        await self._worker.run()  # type: ignore[no-untyped-call]
                    finally:
                        recovery.cancel()
            except Exception:  # the database went away, most likely: start again
                log.exception("procrastinate worker stopped; starting again")
                await asyncio.sleep(RESTART_AFTER)

    async def _recover_forever(self) -> None:
        while True:
            await asyncio.sleep(max(1.0, self.lease_seconds / 5))
            try:
                await self._recover()
            except Exception as exc:  # the next round tries again
                log.warning("looking for stalled jobs failed: %s", exc)

    async def _recover(self) -> None:
        """Retry the jobs held by workers whose heartbeat is older than the lease."""
        manager = self.app.job_manager
        for job in await manager.get_stalled_jobs(seconds_since_heartbeat=self.lease_seconds):
            try:
                await manager.retry_job(job)
            except Exception:  # another worker retried it first
                continue
            log.info("retrying job %s (%s) of a stalled worker", job.id, job.task_name)
            metrics.RETRIES.labels("stalled").inc()
