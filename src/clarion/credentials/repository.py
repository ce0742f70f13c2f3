"""SQL for provider credentials."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from clarion.storage.models import ProviderCredential, utcnow


def get(session: Session, project_id: str, provider: str) -> ProviderCredential | None:
    return session.get(ProviderCredential, (project_id, provider))


def list_for_project(session: Session, project_id: str) -> Sequence[ProviderCredential]:
    stmt = select(ProviderCredential).where(ProviderCredential.project_id == project_id)
    return session.scalars(stmt.order_by(ProviderCredential.provider)).all()


def put(
    session: Session, project_id: str, provider: str, sealed: str, settings: dict[str, Any]
) -> ProviderCredential:
    row = get(session, project_id, provider)
    if row is None:
        row = ProviderCredential(project_id=project_id, provider=provider)
        session.add(row)
    row.sealed, row.settings, row.updated_at = sealed, settings, utcnow()
    session.flush()
    return row


def remove(session: Session, project_id: str, provider: str) -> bool:
    stmt = delete(ProviderCredential).where(
        ProviderCredential.project_id == project_id, ProviderCredential.provider == provider
    )
    return bool(session.execute(stmt).rowcount)  # type: ignore[attr-defined]
