"""SQL for the pipeline: recipients, message rows, completion."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.orm import Session

from clarion.audience.compiler import matching_users
from clarion.audience.rules import Audience
from clarion.storage.bulk import insert_ignore
from clarion.storage.models import Device, Job, Message, Trigger, User, utcnow

PENDING = ("queued", "sending")


def stream_recipients(
    session: Session,
    trigger: Trigger,
    audience: Audience,
    batch: int,
) -> Iterator[list[Any]]:
    """Yield (user_id, project_user_id, device_id, push_token, permission) in stable order,
    ``batch`` rows at a time, without loading the audience into memory."""
    matched = matching_users(trigger.project_id, audience, trigger.properties).subquery()
    stmt = (
        select(
            User.id,
            User.project_user_id,
            Device.id,
            Device.push_token,
            Device.is_push_permission_granted,
        )
        .join(matched, matched.c.id == User.id)
        .outerjoin(Device, and_(Device.user_id == User.id, Device.project_id == User.project_id))
        .where(User.project_user_id.is_not(None))
    )
    if trigger.audience_mode == "targets":
        users = [t["project_user_id"] for t in trigger.targets if "project_user_id" in t]
        devices = [t["device_id"] for t in trigger.targets if "device_id" in t]
        stmt = stmt.where(or_(User.project_user_id.in_(users), Device.id.in_(devices)))
    stmt = stmt.order_by(User.id, Device.id).execution_options(yield_per=batch)
    for part in session.execute(stmt).partitions(batch):
        yield list(part)


def matched_target_keys(
    session: Session, trigger: Trigger, audience: Audience
) -> tuple[set[str], set[str], set[str], set[str]]:
    """For explicit targets: which user / device ids exist, and which of those match."""
    users = [t["project_user_id"] for t in trigger.targets if "project_user_id" in t]
    devices = [t["device_id"] for t in trigger.targets if "device_id" in t]
    matched = matching_users(trigger.project_id, audience, trigger.properties).subquery()
    known_users = set(
        session.scalars(
            select(User.project_user_id).where(
                User.project_id == trigger.project_id, User.project_user_id.in_(users)
            )
        ).all()
    )
    matching_user_ids = set(
        session.scalars(
            select(User.project_user_id)
            .join(matched, matched.c.id == User.id)
            .where(User.project_user_id.in_(users))
        ).all()
    )
    known_devices = set(
        session.scalars(
            select(Device.id).where(Device.project_id == trigger.project_id, Device.id.in_(devices))
        ).all()
    )
    matching_devices = set(
        session.scalars(
            select(Device.id)
            .join(User, User.id == Device.user_id)
            .join(matched, matched.c.id == User.id)
            .where(
                Device.project_id == trigger.project_id,
                Device.id.in_(devices),
                User.project_user_id.is_not(None),
            )
        ).all()
    )
    return (
        {u for u in known_users if u},
        {u for u in matching_user_ids if u},
        known_devices,
        matching_devices,
    )


def add_chunk(
    session: Session, rows: Sequence[dict[str, Any]], trigger_id: str, chunk: int
) -> None:
    """Write a chunk's message rows and its deliver job; replays change nothing."""
    insert_ignore(session, Message.__table__, rows)  # type: ignore[arg-type]
    if any(r["status"] == "queued" for r in rows):
        insert_ignore(
            session,
            Job.__table__,  # type: ignore[arg-type]
            [
                {
                    "kind": "deliver",
                    "trigger_id": trigger_id,
                    "chunk_no": chunk,
                    "status": "queued",
                    "attempts": 0,
                    "run_after": utcnow(),
                }
            ],
        )


def chunk_messages(session: Session, trigger_id: str, chunk: int) -> list[Any]:
    """The chunk's undelivered messages with what rendering and sending need."""
    stmt = (
        select(Message, Device, User.properties)
        .join(User, User.id == Message.user_id)
        .outerjoin(
            Device,
            and_(Device.project_id == Message.project_id, Device.id == Message.device_id),
        )
        .where(
            Message.trigger_id == trigger_id,
            Message.chunk_no == chunk,
            Message.status.in_(PENDING),
        )
        .order_by(Message.id)
    )
    return list(session.execute(stmt).all())


def update_messages(session: Session, changes: Sequence[dict[str, Any]]) -> None:
    if changes:
        session.execute(update(Message), list(changes))


def counts(session: Session, trigger_id: str) -> dict[str, int]:
    stmt = (
        select(Message.status, func.count())
        .where(Message.trigger_id == trigger_id)
        .group_by(Message.status)
    )
    return {status: int(n) for status, n in session.execute(stmt).all()}


def has_pending(session: Session, trigger_id: str) -> bool:
    stmt = (
        select(Message.id)
        .where(Message.trigger_id == trigger_id, Message.status.in_(PENDING))
        .limit(1)
    )
    return session.execute(stmt).first() is not None


def lock_trigger(session: Session, trigger_id: str) -> Trigger | None:
    stmt = select(Trigger).where(Trigger.id == trigger_id).with_for_update()
    return session.scalars(stmt).first()
