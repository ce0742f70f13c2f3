"""The embedded runner: worker threads inside the server process, woken as triggers commit.

It calls the same pipeline steps a distributed runner would; the job table (durable, with
leases) decides what runs next, so a restart picks up exactly where the last process died.
"""

from __future__ import annotations

import logging
import random
import threading

from clarion.delivery.pipeline import Pipeline, RetryLater
from clarion.runner import jobs
from clarion.storage.db import Database
from clarion.storage.models import Trigger, utcnow

log = logging.getLogger("clarion.runner")
MAX_ATTEMPTS = 5


class EmbeddedRunner:
    def __init__(
        self,
        db: Database,
        pipeline: Pipeline,
        *,
        threads: int,
        lease_seconds: int,
        poll_interval: float,
    ) -> None:
        self.db = db
        self.pipeline = pipeline
        self.pipeline.wake = self.notify
        self.lease_seconds = lease_seconds
        self.poll_interval = poll_interval
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._loop, name=f"clarion-worker-{i}", daemon=True)
            for i in range(threads)
        ]

    def start(self) -> None:
        with self.db.write() as session:
            released = jobs.release_all_running(session)
        if released:
            log.info("resuming %d job(s) left running by the previous process", released)
        for thread in self._threads:
            thread.start()

    def notify(self) -> None:
        self._wake.set()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._wake.set()
        for thread in self._threads:
            thread.join(timeout)

    def run_until_idle(self) -> None:
        """Run jobs on the calling thread until none is ready (for CLIs and tests)."""
        while self._run_one():
            pass

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                worked = self._run_one()
            except Exception:  # a bug in claiming itself: log, back off, keep the thread alive
                log.exception("worker loop error")
                worked = False
            if not worked:
                self._wake.wait(self.poll_interval)
                self._wake.clear()

    def _run_one(self) -> bool:
        with self.db.write() as session:
            job = jobs.claim(session, self.lease_seconds)
        if job is None:
            return False
        try:
            if job.kind == "resolve":
                self.pipeline.resolve(job.trigger_id)
            else:
                self.pipeline.deliver(job.trigger_id, job.chunk_no)
        except RetryLater as later:
            with self.db.write() as session:
                jobs.retry(session, job.id, later.delay, str(later))
            return True
        except Exception as exc:
            log.exception("job %s (%s of trigger %s) failed", job.id, job.kind, job.trigger_id)
            self._failed(job, exc)
        return True  # each step marks its own job done in its last commit

    def _failed(self, job: jobs.Claimed, exc: Exception) -> None:
        error = f"{type(exc).__name__}: {exc}"
        with self.db.write() as session:
            if job.attempts < MAX_ATTEMPTS:
                delay = random.uniform(0, min(60.0, 0.5 * 2**job.attempts))  # full jitter
                jobs.retry(session, job.id, delay, error)
                return
            jobs.fail(session, job.id, error)
            trigger = session.get(Trigger, job.trigger_id)
            if trigger is not None and trigger.status not in ("completed", "failed"):
                trigger.status = "failed"
                trigger.error = f"{job.kind} step failed {job.attempts} times: {error}"
                trigger.completed_at = utcnow()
