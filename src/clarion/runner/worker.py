"""The background side of Clarion: the delivery pipeline's runner and the webhook
dispatcher. `clarion serve` runs one inside the API process (the embedded default);
`clarion worker` runs one alone, beside API-only nodes (`clarion serve --no-worker`). Both
are built here, so that they run the same pipeline with the same settings."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Protocol

from clarion.config import Settings
from clarion.credentials.crypto import Box
from clarion.delivery.pipeline import Pipeline
from clarion.delivery.providers.registry import ProviderRegistry
from clarion.delivery.ratelimit import build_send_rates
from clarion.runner.embedded import EmbeddedRunner
from clarion.runner.engine import TaskEngine, engine_named
from clarion.runner.pacing import Pacer
from clarion.storage.db import Database
from clarion.webhooks.dispatcher import WebhookDispatcher


class Runner(Protocol):
    threads: list[threading.Thread]
    pacer: Pacer | None

    def start(self) -> None: ...

    def notify(self) -> None: ...

    def stop(self, timeout: float = 10.0) -> None: ...

    def run_until_idle(self) -> None: ...


class EngineUnavailable(ValueError):
    """The configured task engine cannot run on this database."""


def task_engine(settings: Settings, db: Database) -> TaskEngine:
    if settings.task_engine == "procrastinate" and db.is_sqlite:
        raise EngineUnavailable(
            "CLARION_TASK_ENGINE=procrastinate needs PostgreSQL (Procrastinate keeps its jobs "
            "there); set CLARION_DATABASE_URL=postgresql+psycopg://... or use the builtin engine."
        )
    return engine_named(settings.task_engine)


@dataclass
class Worker:
    runner: Runner
    webhooks: WebhookDispatcher
    engine: TaskEngine

    def start(self) -> None:
        self.runner.start()
        self.webhooks.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Drain: stop claiming; each thread finishes the jobs it holds (a chunk is
        delivered and recorded), waiting up to ``timeout``. A job still running after that
        is taken over by another worker when its lease runs out."""
        self.runner.stop(timeout)
        self.webhooks.stop()


def build_worker(
    settings: Settings,
    db: Database,
    box: Box,
    providers: ProviderRegistry,
    threads: int,
    *,
    helper: bool = False,
    helped: bool = False,
) -> Worker:
    """``helper``: a worker process of a server (runner.helpers): on the builtin engine it
    resumes nothing at start and claims delivery chunks only (see EmbeddedRunner).
    ``helped``: a server with such worker processes: while it resolves, it leaves delivering
    to them (EmbeddedRunner's defer_delivery)."""
    engine = task_engine(settings, db)
    pipeline = Pipeline(
        db=db,
        providers=providers,
        chunk_size=settings.chunk_size,
        lease_seconds=settings.job_lease_seconds,
        engine=engine,
        rates=build_send_rates(
            settings.rate_limit_backend, db, settings.redis_url.get_secret_value()
        ),
    )
    runner: Runner
    if engine.name == "procrastinate":
        from clarion.runner.procrastinate import ProcrastinateRunner  # only where it is used

        runner = ProcrastinateRunner(
            db,
            pipeline,
            concurrency=threads,
            lease_seconds=settings.job_lease_seconds,
            poll_interval=settings.poll_interval_seconds,
        )
    else:
        runner = EmbeddedRunner(
            db,
            pipeline,
            threads=threads,
            lease_seconds=settings.job_lease_seconds,
            poll_interval=settings.poll_interval_seconds,
            batch_size=settings.worker_batch_size,
            resume=not helper,
            deliver_only=helper,
            defer_delivery=helped,
        )
    webhooks = WebhookDispatcher(
        db,
        box,
        allowed=settings.allowed_networks(),
        retry_hours=settings.webhook_retry_hours,
        poll_interval=settings.poll_interval_seconds,
    )
    return Worker(runner, webhooks, engine)
