"""Record and read audit entries. Recording joins the caller's transaction: an entry exists
exactly when the change it describes was committed."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from clarion.ids import uuid7
from clarion.storage.models import AuditEntry, utcnow

CLI = "cli"
SYSTEM = "system"


def key_actor(key_id: str) -> str:
    return f"key:{key_id}"


def admin_actor(email: str) -> str:
    return f"admin:{email}"


def record(
    session: Session,
    project_id: str,
    actor: str,
    action: str,
    target_type: str,
    target_id: str,
    **details: Any,
) -> None:
    session.add(
        AuditEntry(
            id=uuid7(),
            project_id=project_id,
            at=utcnow(),
            actor=actor,
            action=action,
            target_type=target_type,
            target_id=target_id,
            details=details,
        )
    )


def page(
    session: Session, project_id: str, limit: int, before: str | None = None
) -> Sequence[AuditEntry]:
    """Newest first; ``before`` is the id of the last entry of the previous page."""
    stmt = select(AuditEntry).where(AuditEntry.project_id == project_id)
    if before:
        stmt = stmt.where(AuditEntry.id < before)
    return session.scalars(stmt.order_by(AuditEntry.id.desc()).limit(limit)).all()
