"""SQL for the built-in engine's job table: enqueue, claim with a lease, retry, fail,
recover.

A finished job is deleted in the commit of the step that finished it (finish_jobs), so the
table only ever holds work still to do.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import cast

from sqlalchemy import Table, and_, bindparam, delete, insert, or_, select, update
from sqlalchemy.orm import Session

from clarion.storage.bulk import insert_ignore
from clarion.storage.models import Job, utcnow

J = cast(Table, Job.__table__)

_READY = (
    select(J.c.id, J.c.kind, J.c.trigger_id, J.c.chunk_no, J.c.attempts)
    .where(
        or_(
            and_(J.c.status == "queued", J.c.run_after <= bindparam("now")),
            and_(J.c.status == "running", J.c.locked_until < bindparam("now")),
        )
    )
    .order_by(J.c.id)
    .limit(bindparam("n"))
    .with_for_update(skip_locked=True)
)
_READY_DELIVERS = _READY.where(J.c.kind == "deliver")  # for a server's worker processes
_READY_RESOLVES = _READY.where(J.c.kind == "resolve")  # for a server resolving beside them
_LEASE = (
    update(J)
    .where(J.c.id == bindparam("jid"))
    .values(status="running", attempts=bindparam("n"), locked_until=bindparam("until"))
)
_ENQUEUE = insert(J).values(kind="resolve", chunk_no=0, status="queued", attempts=0)
_RETRY_JOB = (
    update(J)
    .where(
        J.c.trigger_id == bindparam("tid"), J.c.kind == bindparam("job_kind"),
        J.c.chunk_no == bindparam("chunk"),
    )
    .values(status="queued", run_after=bindparam("at"), locked_until=None)
)  # fmt: skip
_EXTEND = (
    update(J)
    .where(
        J.c.trigger_id == bindparam("tid"), J.c.kind == bindparam("job_kind"),
        J.c.chunk_no == bindparam("chunk"), J.c.status == "running",
    )
    .values(locked_until=bindparam("until"))
)  # fmt: skip
_FINISH_JOB = delete(J).where(
    J.c.trigger_id == bindparam("tid"), J.c.kind == bindparam("kind"),
    J.c.chunk_no == bindparam("chunk"),
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Claimed:
    id: int
    kind: str
    trigger_id: str
    chunk_no: int
    attempts: int


def enqueue_resolve(
    session: Session, trigger_ids: Sequence[str], later: Mapping[str, datetime]
) -> None:
    now = utcnow()
    session.execute(_ENQUEUE, [{"trigger_id": t, "run_after": later.get(t, now)}
                               for t in trigger_ids])  # fmt: skip


def add_deliver_jobs(
    session: Session, chunks: Sequence[tuple[str, int]], lease_until: datetime | None = None
) -> None:
    """Queue a deliver job per (trigger, chunk). With ``lease_until`` the jobs are written
    already claimed by the caller, who delivers them at once."""
    now = utcnow()
    jobs = [
        {
            "kind": "deliver",
            "trigger_id": trigger_id,
            "chunk_no": chunk,
            "status": "running" if lease_until else "queued",
            "attempts": 1 if lease_until else 0,
            "run_after": now,
            "locked_until": lease_until,
        }
        for trigger_id, chunk in chunks
    ]
    insert_ignore(session, J, jobs)


def finish_jobs(session: Session, kind: str, chunks: Sequence[tuple[str, int]]) -> None:
    """A finished job is deleted: the job table holds only work still to do."""
    if chunks:
        session.execute(_FINISH_JOB, [{"tid": t, "kind": kind, "chunk": c} for t, c in chunks])


def retry_jobs(session: Session, kind: str, delays: Sequence[tuple[str, int, float]]) -> None:
    now = utcnow()
    if delays:
        session.execute(
            _RETRY_JOB,
            [
                {"tid": t, "job_kind": kind, "chunk": c, "at": now + timedelta(seconds=d)}
                for t, c, d in delays
            ],
        )


def claim(
    session: Session,
    lease_seconds: int,
    limit: int,
    deliver_limit: int | None = None,
    *,
    deliver_only: bool = False,
    resolve_only: bool = False,
) -> list[Claimed]:
    """Lease up to ``limit`` ready jobs (or jobs whose holder's lease ran out), oldest first,
    of which at most ``deliver_limit`` deliver jobs: a worker that took every ready chunk of
    a broadcast would leave the others idle while it works through them alone.
    ``deliver_only``: no resolve jobs (a server's worker processes: runner.helpers);
    ``resolve_only``: no deliver jobs (a server resolving beside them: runner.embedded)."""
    now = utcnow()
    ready = _READY_DELIVERS if deliver_only else _READY_RESOLVES if resolve_only else _READY
    rows = session.execute(ready, {"now": now, "n": limit}).all()
    if deliver_limit is not None:
        delivers = [r for r in rows if r.kind == "deliver"][deliver_limit:]
        rows = [r for r in rows if r not in delivers]
    if not rows:
        return []
    until = now + timedelta(seconds=lease_seconds)
    session.execute(_LEASE, [{"jid": r.id, "n": r.attempts + 1, "until": until} for r in rows])
    return [Claimed(r.id, r.kind, r.trigger_id, r.chunk_no, r.attempts + 1) for r in rows]


def extend_leases(
    session: Session, kind: str, chunks: Sequence[tuple[str, int]], until: datetime
) -> None:
    """Running jobs whose holder is making progress keep their lease: a step that outlasts
    it (a million-recipient resolve) is not claimed again and run twice at once."""
    if chunks:
        session.execute(_EXTEND, [{"tid": t, "job_kind": kind, "chunk": c, "until": until}
                                  for t, c in chunks])  # fmt: skip


def retry(session: Session, job_id: int, delay: float, error: str) -> None:
    session.execute(
        update(J)
        .where(J.c.id == job_id)
        .values(
            status="queued",
            run_after=utcnow() + timedelta(seconds=delay),
            locked_until=None,
            last_error=error,
        )
    )


def fail(session: Session, job_id: int, error: str) -> None:
    session.execute(update(J).where(J.c.id == job_id).values(status="failed", last_error=error))


def release_all_running(session: Session) -> int:
    """At start-up of the single embedded process: whatever was running died with it."""
    result = session.execute(
        update(J).where(J.c.status == "running").values(status="queued", locked_until=None)
    )
    return int(getattr(result, "rowcount", 0) or 0)
