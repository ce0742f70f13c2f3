"""The task engine: where the pipeline's jobs wait, and how they are finished or retried.

Two engines run the same pipeline steps (delivery.pipeline):

- ``builtin``: Clarion's own job table with leases, run by the embedded runner or by
  `clarion worker` processes (SQLite or PostgreSQL). A step finishes its job in the commit
  that records its outcomes.
- ``procrastinate``: Procrastinate's tables on the same PostgreSQL database, run by
  Procrastinate workers (runner.procrastinate). Jobs are deferred with Procrastinate's own
  SQL function inside Clarion's transaction, so a trigger and its first job still commit
  together; a job finishes when its task returns, and a job whose worker stopped sending
  heartbeats is retried. Every step is idempotent, so running one again is safe.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Literal, Protocol

import orjson
from sqlalchemy import text
from sqlalchemy.orm import Session

from clarion.runner import jobs
from clarion.storage.models import utcnow

EngineName = Literal["builtin", "procrastinate"]
QUEUE = "clarion"
RESOLVE_TASK = "clarion.resolve"
DELIVER_TASK = "clarion.deliver"


class TaskEngine(Protocol):
    name: EngineName
    # Whether the resolving thread delivers a trigger's last chunk itself, holding its job
    # under a lease (the built-in engine), or defers it like every other chunk.
    inline_delivery: bool

    def enqueue_resolve(
        self,
        session: Session,
        trigger_ids: Sequence[str],
        later: Mapping[str, datetime] | None = None,
    ) -> None:
        """``later``: triggers whose resolve job must wait until then (scheduled sends)."""
        ...

    def enqueue_deliver(
        self,
        session: Session,
        chunks: Sequence[tuple[str, int]],
        lease_until: datetime | None = None,
    ) -> None: ...

    def finish(self, session: Session, kind: str, chunks: Sequence[tuple[str, int]]) -> None:
        """In the commit that records the step's outcomes."""
        ...

    def retry_deliver(self, session: Session, delays: Sequence[tuple[str, int, float]]) -> None:
        """Deliver these chunks again after their delays (seconds), in the same commit."""
        ...

    def extend(
        self, session: Session, kind: str, chunks: Sequence[tuple[str, int]], until: datetime
    ) -> None:
        """A long step still making progress (each commit of a resolve): its job stays ours
        until ``until``, so no other worker runs it at the same time."""
        ...

    def check(self, session: Session) -> None:
        """Raise unless the engine's tables answer (for readiness)."""
        ...


class BuiltinEngine:
    name: EngineName = "builtin"
    inline_delivery = True

    def enqueue_resolve(
        self,
        session: Session,
        trigger_ids: Sequence[str],
        later: Mapping[str, datetime] | None = None,
    ) -> None:
        jobs.enqueue_resolve(session, trigger_ids, later or {})

    def enqueue_deliver(
        self,
        session: Session,
        chunks: Sequence[tuple[str, int]],
        lease_until: datetime | None = None,
    ) -> None:
        jobs.add_deliver_jobs(session, chunks, lease_until)

    def finish(self, session: Session, kind: str, chunks: Sequence[tuple[str, int]]) -> None:
        jobs.finish_jobs(session, kind, chunks)

    def retry_deliver(self, session: Session, delays: Sequence[tuple[str, int, float]]) -> None:
        jobs.retry_jobs(session, "deliver", delays)

    def extend(
        self, session: Session, kind: str, chunks: Sequence[tuple[str, int]], until: datetime
    ) -> None:
        jobs.extend_leases(session, kind, chunks, until)

    def check(self, session: Session) -> None:
        session.execute(text("SELECT 1 FROM jobs LIMIT 1"))


# Procrastinate's own deferral function (its schema, migration 0012), fed one row per job.
_DEFER = text(
    "SELECT procrastinate_defer_jobs_v1(ARRAY("
    " SELECT ROW(:queue, x.task, 0, NULL, NULL, x.args::jsonb, x.at)"
    "::procrastinate_job_to_defer_v1"
    " FROM unnest(CAST(:tasks AS text[]), CAST(:args AS text[]), CAST(:ats AS timestamptz[]))"
    " AS x(task, args, at)))"
)


class ProcrastinateEngine:
    name: EngineName = "procrastinate"
    inline_delivery = False

    def enqueue_resolve(
        self,
        session: Session,
        trigger_ids: Sequence[str],
        later: Mapping[str, datetime] | None = None,
    ) -> None:
        at = later or {}
        _defer(session, [(RESOLVE_TASK, {"trigger_id": t}, at.get(t)) for t in trigger_ids])

    def enqueue_deliver(
        self,
        session: Session,
        chunks: Sequence[tuple[str, int]],
        lease_until: datetime | None = None,
    ) -> None:
        _defer(session, [(DELIVER_TASK, {"trigger_id": t, "chunk_no": c}, None) for t, c in chunks])

    def finish(self, session: Session, kind: str, chunks: Sequence[tuple[str, int]]) -> None:
        """Nothing to write: Procrastinate marks a job done when its task returns."""

    def retry_deliver(self, session: Session, delays: Sequence[tuple[str, int, float]]) -> None:
        now = utcnow()
        _defer(session, [(DELIVER_TASK, {"trigger_id": t, "chunk_no": c},
                          now + timedelta(seconds=d)) for t, c, d in delays])  # fmt: skip

    def extend(
        self, session: Session, kind: str, chunks: Sequence[tuple[str, int]], until: datetime
    ) -> None:
        """Nothing to write: a Procrastinate worker's heartbeats keep its running jobs."""

    def check(self, session: Session) -> None:
        session.execute(text("SELECT 1 FROM procrastinate_jobs LIMIT 1"))


Deferred = tuple[str, dict[str, object], datetime | None]  # task, arguments, not before


def _defer(session: Session, rows: Sequence[Deferred]) -> None:
    if not rows:
        return
    session.execute(
        _DEFER,
        {
            "queue": QUEUE,
            "tasks": [task for task, _, _ in rows],
            "args": [orjson.dumps(args).decode() for _, args, _ in rows],
            "ats": [at for _, _, at in rows],
        },
    )


def engine_named(name: EngineName) -> TaskEngine:
    return ProcrastinateEngine() if name == "procrastinate" else BuiltinEngine()
