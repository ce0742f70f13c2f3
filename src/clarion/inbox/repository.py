"""SQL for the in-app inbox."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from clarion.storage.models import InboxMessage, utcnow


def page(
    session: Session, project_id: str, user_id: str, limit: int, before: datetime | None,
    unread_only: bool,
) -> Sequence[InboxMessage]:  # fmt: skip
    query = select(InboxMessage).where(
        InboxMessage.project_id == project_id, InboxMessage.user_id == user_id
    )
    if before is not None:
        query = query.where(InboxMessage.created_at < before)
    if unread_only:
        query = query.where(InboxMessage.read_at.is_(None))
    query = query.order_by(InboxMessage.created_at.desc(), InboxMessage.id.desc())
    return session.scalars(query.limit(limit)).all()


def unread(session: Session, project_id: str, user_id: str) -> int:
    query = select(func.count()).where(
        InboxMessage.project_id == project_id,
        InboxMessage.user_id == user_id,
        InboxMessage.read_at.is_(None),
    )
    return int(session.execute(query).scalar_one())


def get(session: Session, project_id: str, message_id: str) -> InboxMessage | None:
    found = session.get(InboxMessage, message_id)
    return found if found is not None and found.project_id == project_id else None


def mark_all_read(session: Session, project_id: str, user_id: str) -> int:
    stmt = (
        update(InboxMessage)
        .where(
            InboxMessage.project_id == project_id,
            InboxMessage.user_id == user_id,
            InboxMessage.read_at.is_(None),
        )
        .values(read_at=utcnow())
    )
    return int(session.execute(stmt).rowcount)  # type: ignore[attr-defined]
