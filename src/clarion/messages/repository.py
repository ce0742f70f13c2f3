"""SQL for message log queries."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from clarion.storage.models import Message


def page(
    session: Session, trigger_id: str, status: str | None, after: str | None, limit: int
) -> Sequence[Message]:
    """Keyset page in message-id order (UUIDv7 ids sort by creation)."""
    stmt = select(Message).where(Message.trigger_id == trigger_id)
    if status is not None:
        stmt = stmt.where(Message.status == status)
    if after is not None:
        stmt = stmt.where(Message.id > after)
    return session.scalars(stmt.order_by(Message.id).limit(limit)).all()
