"""SQL for message log queries."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import ColumnElement, and_, case, func, select
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from clarion.delivery import handovers
from clarion.delivery.repository import PENDING
from clarion.storage.models import Message, PendingChunk


def shown_status(dialect: Dialect) -> ColumnElement[str]:
    """A message's status as the log shows it: a queued message that a delivery step is
    handing over (delivery.handovers) reads as ``sending``."""
    covered = handovers.covered(dialect)
    return case((and_(Message.status == "queued", covered), "sending"), else_=Message.status)


def being_sent(session: Session) -> int:
    """How many messages are being handed over (marked sending, or under an open hand-over):
    a trigger's, in its pending chunks, and direct sends (no trigger) marked sending."""
    shown = shown_status(session.get_bind().dialect)
    in_chunks = (
        select(func.count())
        .select_from(PendingChunk)
        .join(Message, and_(Message.trigger_id == PendingChunk.trigger_id,
                            Message.chunk_no == PendingChunk.chunk_no))
        .where(Message.status.in_(PENDING), shown == "sending")
    )  # fmt: skip
    direct = select(func.count()).where(Message.trigger_id.is_(None), Message.status == "sending")
    return int(session.scalar(in_chunks) or 0) + int(session.scalar(direct) or 0)


def page(
    session: Session,
    trigger_id: str,
    status: str | None,
    after: str | None,
    limit: int,
    project_user_id: str | None = None,
    device_id: str | None = None,
) -> Sequence[Message]:
    """Keyset page in message-id order (UUIDv7 ids sort by creation), statuses as the log
    shows them (shown_status)."""
    shown = shown_status(session.get_bind().dialect).label("shown")
    stmt = select(Message, shown).where(Message.trigger_id == trigger_id)
    if status in PENDING:  # the stored status narrows it first
        stmt = stmt.where(Message.status.in_(PENDING), shown == status)
    elif status is not None:  # the same stored as shown
        stmt = stmt.where(Message.status == status)
    if project_user_id:
        stmt = stmt.where(Message.project_user_id == project_user_id)
    if device_id:
        stmt = stmt.where(Message.device_id == device_id)
    if after is not None:
        stmt = stmt.where(Message.id > after)
    messages = []
    for message, status_shown in session.execute(stmt.order_by(Message.id).limit(limit)):
        if status_shown != message.status:  # as the log shows it, never written back
            set_committed_value(message, "status", status_shown)
        messages.append(message)
    return messages
