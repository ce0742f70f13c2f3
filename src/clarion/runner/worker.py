"""The background side of Clarion: the delivery pipeline's runner and the webhook
dispatcher. `clarion serve` runs one inside the API process (the embedded default);
`clarion worker` runs one alone, beside API-only nodes (`clarion serve --no-worker`). Both
are built here, so that they run the same pipeline with the same settings."""

from __future__ import annotations

from dataclasses import dataclass

from clarion.config import Settings
from clarion.credentials.crypto import Box
from clarion.delivery.pipeline import Pipeline
from clarion.delivery.providers.registry import ProviderRegistry
from clarion.runner.embedded import EmbeddedRunner
from clarion.storage.db import Database
from clarion.webhooks.dispatcher import WebhookDispatcher


@dataclass
class Worker:
    runner: EmbeddedRunner
    webhooks: WebhookDispatcher

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
    settings: Settings, db: Database, box: Box, providers: ProviderRegistry, threads: int
) -> Worker:
    pipeline = Pipeline(
        db=db,
        providers=providers,
        chunk_size=settings.chunk_size,
        lease_seconds=settings.job_lease_seconds,
    )
    runner = EmbeddedRunner(
        db,
        pipeline,
        threads=threads,
        lease_seconds=settings.job_lease_seconds,
        poll_interval=settings.poll_interval_seconds,
        batch_size=settings.worker_batch_size,
    )
    webhooks = WebhookDispatcher(
        db,
        box,
        allowed=settings.allowed_networks(),
        retry_hours=settings.webhook_retry_hours,
        poll_interval=settings.poll_interval_seconds,
    )
    return Worker(runner, webhooks)
