"""SQL for the job table: enqueue, claim with a lease, finish, recover."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from clarion.storage.models import Job, utcnow


@dataclass(frozen=True, slots=True)
class Claimed:
    id: int
    kind: str
    trigger_id: str
    chunk_no: int
    attempts: int


def enqueue_resolve(session: Session, trigger_id: str) -> None:
    session.add(Job(kind="resolve", trigger_id=trigger_id, chunk_no=0, status="queued"))


def claim(session: Session, lease_seconds: int) -> Claimed | None:
    """Take the oldest ready job (or one whose holder's lease ran out) and lease it."""
    now = utcnow()
    stmt = (
        select(Job)
        .where(
            or_(
                (Job.status == "queued") & (Job.run_after <= now),
                (Job.status == "running") & (Job.locked_until < now),
            )
        )
        .order_by(Job.id)
        .limit(1)
        .with_for_update(skip_locked=True)
    )
    job = session.scalars(stmt).first()
    if job is None:
        return None
    job.status = "running"
    job.attempts += 1
    job.locked_until = now + timedelta(seconds=lease_seconds)
    session.flush()
    return Claimed(job.id, job.kind, job.trigger_id, job.chunk_no, job.attempts)


def finish(session: Session, job_id: int) -> None:
    session.execute(update(Job).where(Job.id == job_id).values(status="done", locked_until=None))


def retry(session: Session, job_id: int, delay: float, error: str) -> None:
    session.execute(
        update(Job)
        .where(Job.id == job_id)
        .values(
            status="queued",
            run_after=utcnow() + timedelta(seconds=delay),
            locked_until=None,
            last_error=error,
        )
    )


def fail(session: Session, job_id: int, error: str) -> None:
    session.execute(update(Job).where(Job.id == job_id).values(status="failed", last_error=error))


def release_all_running(session: Session) -> int:
    """At start-up of the single embedded process: whatever was running died with it."""
    result = session.execute(
        update(Job).where(Job.status == "running").values(status="queued", locked_until=None)
    )
    return int(getattr(result, "rowcount", 0) or 0)
