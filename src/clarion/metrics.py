"""Prometheus metrics, one registry per process (`GET /metrics` on API nodes, `clarion worker
--metrics-port` on workers; Prometheus adds them up across processes).

- ``clarion_triggers_accepted_total``: triggers answered 200 (committed).
- ``clarion_messages_total{channel,status}``: message outcomes recorded by the pipeline
  (sent, failed, skipped, and ``queued`` for a retry scheduled).
- ``clarion_retries_total{what}``: retries scheduled, of a message (the provider said try
  again) or of a job (a step failed).
- ``clarion_provider_batch_seconds{provider}``: how long one hand-over of a batch of messages
  took (one or many requests on the provider's connection); ``push`` is the push router,
  which sends to FCM, APNs or the sink, the other channels are named by their provider.
- ``clarion_queue_jobs{kind,status}``: jobs waiting (queued) and held (running), read from
  the database at each scrape, so every process reports the same, shared queue.
- ``clarion_pipeline_stage_seconds_total{stage}``: where the pipeline's threads spend their
  time (resolve, load, render, dispatch, persist), summed over threads.
"""

from __future__ import annotations

import collections
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import func, select, text

from clarion.storage.db import Database
from clarion.storage.models import Job

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
REGISTRY = CollectorRegistry()
TRIGGERS = Counter("clarion_triggers_accepted", "Triggers accepted (committed, answered 200).",
                   registry=REGISTRY)  # fmt: skip
MESSAGES = Counter("clarion_messages", "Message outcomes recorded by the pipeline.",
                   ["channel", "status"], registry=REGISTRY)  # fmt: skip
RETRIES = Counter("clarion_retries", "Retries scheduled (of a message or a job).", ["what"],
                  registry=REGISTRY)  # fmt: skip
PROVIDER_SECONDS = Histogram(
    "clarion_provider_batch_seconds",
    "Time to hand one batch of messages to a provider.",
    ["provider"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
    registry=REGISTRY,
)

STAGE_SECONDS = Counter(
    "clarion_pipeline_stage_seconds",
    "Time the pipeline's threads spent per stage: resolve (streaming recipients into message "
    "rows), load (reading chunks to deliver), render, dispatch (provider hand-over) and "
    "persist (every write).",
    ["stage"],
    registry=REGISTRY,
)
_STAGES = {name: STAGE_SECONDS.labels(name) for name in
           ("resolve", "load", "render", "dispatch", "persist")}  # fmt: skip


@contextmanager
def stage(name: str) -> Iterator[None]:
    """Add the time spent in the block to the stage's counter."""
    started = time.perf_counter()
    try:
        yield
    finally:
        _STAGES[name].inc(time.perf_counter() - started)


def timed(items: Iterator[Any], name: str) -> Iterator[Any]:
    """``items``, with the time spent producing each added to the stage's counter."""
    counter = _STAGES[name]
    while True:
        started = time.perf_counter()
        try:
            item = next(items)
        except StopIteration:
            counter.inc(time.perf_counter() - started)
            return
        counter.inc(time.perf_counter() - started)
        yield item


def count_outcomes(
    outcomes: Sequence[dict[str, Any]], channel_of: dict[str, str], channel: str = "push"
) -> None:
    """Count recorded outcomes (``{"mid", "status"}``); ``channel_of`` maps message ids,
    ``channel`` is that of the others."""
    tally = collections.Counter((channel_of.get(o["mid"], channel), o["status"]) for o in outcomes)
    for (channel, status), n in tally.items():
        MESSAGES.labels(channel, status).inc(n)
    retries = sum(n for (_, status), n in tally.items() if status == "queued")
    if retries:
        RETRIES.labels("message").inc(retries)


_BUILTIN_QUEUE = (
    select(Job.kind, Job.status, func.count())
    .where(Job.status.in_(("queued", "running")))
    .group_by(Job.kind, Job.status)
)
_PROCRASTINATE_QUEUE = text(
    "SELECT substr(task_name, length('clarion.') + 1), CAST(status AS text), count(*)"
    " FROM procrastinate_jobs WHERE status IN ('todo', 'doing') GROUP BY 1, 2"
)
_PROCRASTINATE_STATUS = {"todo": "queued", "doing": "running"}


class _Queue(Collector):
    def __init__(self, db: Database, engine: str) -> None:
        self.db = db
        self.engine = engine

    def collect(self) -> Iterator[GaugeMetricFamily]:
        gauge = GaugeMetricFamily("clarion_queue_jobs", "Jobs queued and running, shared by "
                                  "every process.", labels=["kind", "status"])  # fmt: skip
        with self.db.read() as session:
            if self.engine == "procrastinate":
                for kind, status, n in session.execute(_PROCRASTINATE_QUEUE):
                    gauge.add_metric([kind, _PROCRASTINATE_STATUS[status]], n)
            else:
                for kind, status, n in session.execute(_BUILTIN_QUEUE):
                    gauge.add_metric([kind, status], n)
        yield gauge


_watched: dict[int, _Queue] = {}


def watch_queue(db: Database, engine: str = "builtin") -> None:
    """Report ``db``'s job queue (in the task engine's tables) at each scrape (one database
    per process)."""
    for old in _watched.values():
        REGISTRY.unregister(old)
    _watched.clear()
    collector = _Queue(db, engine)
    REGISTRY.register(collector)
    _watched[id(db)] = collector


def exposition() -> bytes:
    return generate_latest(REGISTRY)
