"""The embedded runner: worker threads inside the server process, woken as triggers commit.

It calls the same pipeline steps a distributed runner would; the job table (durable, with
leases) decides what runs next, so a restart picks up exactly where the last process died.
"""

from __future__ import annotations

import logging
import random
import threading
import time

from clarion import metrics
from clarion.delivery import repository
from clarion.delivery.pipeline import Pipeline
from clarion.runner import jobs
from clarion.runner.pacing import Pacer
from clarion.storage.db import Database

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
        batch_size: int = 32,
        pacer: Pacer | None = None,
        resume: bool = True,
        deliver_only: bool = False,
        defer_delivery: bool = False,
    ) -> None:
        """``resume``: at start, on SQLite, requeue the jobs the last server left running.
        ``deliver_only``: claim no resolve jobs. Both are for the worker processes a server
        starts (runner.helpers). ``defer_delivery``: while one of this process's threads is
        resolving, the others claim no deliver jobs; for a server with worker processes,
        which deliver meanwhile. Resolving a broadcast is its one part that runs on one
        thread; delivering beside it, on the same GIL, slowed it down while the worker
        processes waited for chunks (200,000 devices, SQLite: resolving ended 8.3-9.6 s
        after the 200 with a thread delivering beside it, 4.7 s without)."""
        self.db = db
        self.resume = resume
        self.deliver_only = deliver_only
        self.defer_delivery = defer_delivery
        self._resolving = 0  # this process's threads now resolving
        self._resolving_lock = threading.Lock()
        self.pipeline = pipeline
        self.pipeline.wake = self.notify
        self.lease_seconds = lease_seconds
        self.poll_interval = poll_interval
        self.batch_size = batch_size
        self.pacer = pacer
        self._wake = threading.Event()
        self._stop = threading.Event()
        self.threads = [
            threading.Thread(target=self._loop, name=f"clarion-worker-{i}", daemon=True)
            for i in range(threads)
        ]

    def start(self) -> None:
        if self.db.is_sqlite and self.resume:
            # A SQLite file has one server process (with the worker processes it starts,
            # which die with it): whatever is "running" died with the last one, so resume it
            # now. On PostgreSQL other processes may hold jobs; theirs are resumed when their
            # lease runs out.
            with self.db.write() as session:
                released = jobs.release_all_running(session)
            if released:
                log.info("resuming %d job(s) left running by the previous process", released)
        for thread in self.threads:
            thread.start()

    def notify(self) -> None:
        self._wake.set()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._wake.set()
        for thread in self.threads:
            thread.join(timeout)

    def run_until_idle(self) -> None:
        """Run jobs on the calling thread until none is ready (for CLIs and tests)."""
        while self._run_one():
            pass

    def _loop(self) -> None:
        while not self._stop.is_set():
            pacer = self.pacer
            if pacer is not None and pacer.busy():
                # One thread at a time while requests are in flight. The others do not queue
                # for the turn: a step that holds it (a long resolve, begun while a request
                # was in flight) would keep them waiting long after the intake went quiet.
                if not pacer.turn.acquire(timeout=pacer.quiet):
                    continue  # look again: the intake may be quiet by now
                try:
                    started = time.monotonic()
                    worked = self._safely_run_one(pacer.small_batch)
                    if worked:
                        pacer.rest(time.monotonic() - started, self._stop)
                finally:
                    pacer.turn.release()
            else:
                worked = self._safely_run_one(None)
            if not worked:
                self._wake.wait(self.poll_interval)
                self._wake.clear()

    def _safely_run_one(self, limit: int | None) -> bool:
        try:
            return self._run_one(limit)
        except Exception:  # a bug in claiming itself: log, back off, keep the thread alive
            log.exception("worker loop error")
            return False

    def _run_one(self, limit: int | None = None) -> bool:
        """Lease a batch of ready jobs and run them. Returns whether there was any."""
        resolve_only = self.defer_delivery and self._resolving > 0
        with self.db.write() as session:
            batch = jobs.claim(session, self.lease_seconds, limit or self.batch_size,
                               self._deliver_group(), deliver_only=self.deliver_only,
                               resolve_only=resolve_only)  # fmt: skip
        if not batch:
            return False
        try:
            self._run(batch)
        except Exception:
            # Something in the batch failed: run its jobs one by one, so that only the
            # culprit is retried (each step is idempotent, so redoing the others is safe).
            for job in batch:
                try:
                    self._run([job])
                except Exception as exc:
                    log.exception("job %s (%s of %s) failed", job.id, job.kind, job.trigger_id)
                    self._failed(job, exc)
        return True  # each step marks its own jobs done (or rescheduled) in its last commit

    def _run(self, batch: list[jobs.Claimed]) -> None:
        resolves = [j.trigger_id for j in batch if j.kind == "resolve"]
        delivers = [(j.trigger_id, j.chunk_no) for j in batch if j.kind == "deliver"]
        if resolves:
            with self._resolving_lock:
                self._resolving += 1
            try:
                self.pipeline.resolve(resolves)
            finally:
                with self._resolving_lock:
                    self._resolving -= 1
        group = self._deliver_group()
        for start in range(0, len(delivers), group):
            self.pipeline.deliver(delivers[start : start + group])

    def _deliver_group(self) -> int:
        """Deliver jobs per step: about 2,000 messages, so that one commit never waits on the
        rendering and sending of a whole batch of full chunks (and one claim takes no more,
        so that every worker thread gets its share of a broadcast's chunks)."""
        return max(1, self.pipeline.group_rows // self.pipeline.chunk_size)

    def _failed(self, job: jobs.Claimed, exc: Exception) -> None:
        error = f"{type(exc).__name__}: {exc}"
        with self.db.write() as session:
            if job.attempts < MAX_ATTEMPTS:
                delay = random.uniform(0, min(60.0, 0.5 * 2**job.attempts))  # full jitter
                jobs.retry(session, job.id, delay, error)
                metrics.RETRIES.labels("job").inc()
                return
            jobs.fail(session, job.id, error)
            repository.fail_trigger(session, job.trigger_id, job.kind, job.attempts, error)
