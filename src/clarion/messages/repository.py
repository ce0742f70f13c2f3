"""SQL for message log queries."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from clarion.storage.models import Message


def page(
    session: Session,
    trigger_id: str,
    status: str | None,
    after: str | None,
    limit: int,
    project_user_id: str | None = None,
    device_id: str | None = None,
) -> Sequence[Message]:
    """Keyset page in message-id order (UUIDv7 ids sort by creation)."""
    stmt = select(Message).where(Message.trigger_id == trigger_id)
    if status is not None:
        stmt = stmt.where(Message.status == status)
    if project_user_id:
        stmt = stmt.where(Message.project_user_id == project_user_id)
    if device_id:
        stmt = stmt.where(Message.device_id == device_id)
    if after is not None:
        stmt = stmt.where(Message.id > after)
    return session.scalars(stmt.order_by(Message.id).limit(limit)).all()
