"""SQL for the pipeline: recipients, message rows, outcomes, completion.

This is the hot path, so it speaks SQLAlchemy Core with statements built once and bound per
call: no per-call statement construction and no ORM unit of work.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Row, Table, and_, bindparam, delete, exists, func, or_, select, update
from sqlalchemy.orm import Session

from clarion.audience.compiler import matching_users
from clarion.audience.rules import Audience
from clarion.storage.bulk import insert_ignore
from clarion.storage.models import Device, Job, Message, Trigger, User, utcnow

PENDING = ("queued", "sending")
T = cast(Table, Trigger.__table__)
M = cast(Table, Message.__table__)
J = cast(Table, Job.__table__)
D = cast(Table, Device.__table__)
U = cast(Table, User.__table__)

_TRIGGER = select(
    T.c.id, T.c.project_id, T.c.campaign_id, T.c.campaign_version, T.c.audience_mode,
    T.c.targets, T.c.properties, T.c.status,
).where(T.c.id == bindparam("tid"))  # fmt: skip
_LOCK_TRIGGER = select(T.c.status).where(T.c.id == bindparam("tid")).with_for_update()
_SET_STATUS = update(T).where(T.c.id == bindparam("tid")).values(status=bindparam("new_status"))
_FINALIZE = (
    update(T)
    .where(T.c.id == bindparam("tid"))
    .values(status="sending", matched=bindparam("matched"), excluded_targets=bindparam("excl"))
)
_COMPLETE = (
    update(T)
    .where(
        T.c.id == bindparam("tid"),
        T.c.status == "sending",
        ~exists().where(M.c.trigger_id == T.c.id, M.c.status.in_(PENDING)),
    )
    .values(status="completed", completed_at=bindparam("now"))
)
_FINISH_JOB = delete(J).where(
    J.c.trigger_id == bindparam("tid"), J.c.kind == bindparam("kind"),
    J.c.chunk_no == bindparam("chunk"),
)  # fmt: skip
_CHUNK = (
    select(
        M.c.id,
        M.c.status,
        M.c.attempts,
        M.c.possible_duplicate,
        M.c.project_user_id,
        D.c.id.label("device_id"),
        D.c.platform,
        D.c.push_token,
        D.c.locale_region,
        D.c.locale_language,
        D.c.timezone,
        U.c.properties.label("user_properties"),
    )
    .join(U, U.c.id == M.c.user_id)
    .join(D, and_(D.c.project_id == M.c.project_id, D.c.id == M.c.device_id))
    .where(
        M.c.trigger_id == bindparam("tid"),
        M.c.chunk_no == bindparam("chunk"),
        M.c.status.in_(PENDING),
    )
    .order_by(M.c.id)
)
_MARK_SENDING = (
    update(M)
    .where(M.c.id == bindparam("mid"))
    .values(status="sending", attempts=bindparam("n"), possible_duplicate=bindparam("dup"))
)
OUTCOME_FIELDS = (
    "status", "reason", "provider", "provider_message_id", "title", "body", "image_url",
    "landing_url", "sent_at",
)  # fmt: skip
_OUTCOME = (
    update(M)
    .where(M.c.id == bindparam("mid"))
    .values({f: bindparam(f"o_{f}") for f in OUTCOME_FIELDS})
)
_COUNTS = (
    select(M.c.status, func.count()).where(M.c.trigger_id == bindparam("tid")).group_by(M.c.status)
)


def get_trigger(session: Session, trigger_id: str) -> Any:
    return session.execute(_TRIGGER, {"tid": trigger_id}).first()


def stream_recipients(
    session: Session, trigger: Row[Any], audience: Audience, batch: int
) -> Iterator[list[Any]]:
    """Yield (user_id, project_user_id, device_id, push_token, permission) in stable order,
    ``batch`` rows at a time, without loading the audience into memory."""
    matched = matching_users(trigger.project_id, audience, trigger.properties).subquery()
    stmt = (
        select(U.c.id, U.c.project_user_id, D.c.id, D.c.push_token, D.c.is_push_permission_granted)
        .join(matched, matched.c.id == U.c.id)
        .outerjoin(D, and_(D.c.user_id == U.c.id, D.c.project_id == U.c.project_id))
        .where(U.c.project_user_id.is_not(None))
    )
    if trigger.audience_mode == "targets":
        users = [t["project_user_id"] for t in trigger.targets if "project_user_id" in t]
        devices = [t["device_id"] for t in trigger.targets if "device_id" in t]
        stmt = stmt.where(or_(U.c.project_user_id.in_(users), D.c.id.in_(devices)))
    stmt = stmt.order_by(U.c.id, D.c.id).execution_options(yield_per=batch)
    for part in session.execute(stmt).partitions(batch):
        yield list(part)


def known_targets(
    session: Session, project_id: str, user_ids: Sequence[str], device_ids: Sequence[str]
) -> tuple[set[str], set[str]]:
    """Which of these project user ids and device ids exist in the project."""
    users: set[str] = set()
    devices: set[str] = set()
    if user_ids:
        stmt = select(U.c.project_user_id).where(
            U.c.project_id == project_id, U.c.project_user_id.in_(user_ids)
        )
        users = {u for u in session.scalars(stmt).all() if u}
    if device_ids:
        dstmt = select(D.c.id).where(D.c.project_id == project_id, D.c.id.in_(device_ids))
        devices = set(session.scalars(dstmt).all())
    return users, devices


def add_chunk(
    session: Session,
    rows: Sequence[dict[str, Any]],
    trigger_id: str,
    chunk: int,
    lease_until: datetime | None = None,
) -> bool:
    """Write a chunk's message rows and its deliver job; replays change nothing. With
    ``lease_until`` the job is written already claimed by the caller, who delivers it at once.
    Returns whether the chunk has anything to deliver."""
    insert_ignore(session, M, rows)
    if not any(r["status"] == "queued" for r in rows):
        return False
    job = {
        "kind": "deliver",
        "trigger_id": trigger_id,
        "chunk_no": chunk,
        "status": "running" if lease_until else "queued",
        "attempts": 1 if lease_until else 0,
        "run_after": utcnow(),
        "locked_until": lease_until,
    }
    insert_ignore(session, J, [job])
    return True


def finish_job(session: Session, trigger_id: str, kind: str, chunk: int) -> None:
    """A finished job is deleted: the job table holds only work still to do."""
    session.execute(_FINISH_JOB, {"tid": trigger_id, "kind": kind, "chunk": chunk})


def set_status(session: Session, trigger_id: str, status: str) -> None:
    session.execute(_SET_STATUS, {"tid": trigger_id, "new_status": status})


def finalize_resolve(
    session: Session, trigger_id: str, matched: int, excluded: list[dict[str, str]]
) -> None:
    session.execute(_FINALIZE, {"tid": trigger_id, "matched": matched, "excl": excluded})


def complete_if_done(session: Session, trigger_id: str) -> None:
    """Mark the trigger completed once it is past resolving and nothing is pending. The row
    lock first makes concurrent last chunks on PostgreSQL see each other's commits."""
    session.execute(_LOCK_TRIGGER, {"tid": trigger_id})
    session.execute(_COMPLETE, {"tid": trigger_id, "now": utcnow()})


def chunk_messages(session: Session, trigger_id: str, chunk: int) -> list[Any]:
    """The chunk's undelivered messages with what rendering and sending need."""
    return list(session.execute(_CHUNK, {"tid": trigger_id, "chunk": chunk}).all())


def mark_sending(session: Session, marks: Sequence[dict[str, Any]]) -> None:
    """``marks``: {"mid", "n" (attempt number), "dup" (possible duplicate)}."""
    if marks:
        session.execute(_MARK_SENDING, list(marks))


def record_outcomes(session: Session, outcomes: Sequence[dict[str, Any]]) -> None:
    """``outcomes``: {"mid", and every field of OUTCOME_FIELDS (None where not known)}."""
    if outcomes:
        session.execute(
            _OUTCOME,
            [{"mid": o["mid"], **{f"o_{f}": o.get(f) for f in OUTCOME_FIELDS}} for o in outcomes],
        )


def counts(session: Session, trigger_id: str) -> dict[str, int]:
    return {status: int(n) for status, n in session.execute(_COUNTS, {"tid": trigger_id}).all()}
