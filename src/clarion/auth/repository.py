"""SQL for projects and keys."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from clarion.storage.models import ApiKey, Project


def get_project(session: Session, project_id: str) -> Project | None:
    return session.get(Project, project_id)


def list_projects(session: Session) -> Sequence[Project]:
    return session.scalars(select(Project).order_by(Project.created_at)).all()


def key_by_hash(session: Session, key_hash: str) -> ApiKey | None:
    return session.scalars(select(ApiKey).where(ApiKey.key_hash == key_hash)).first()


def list_keys(session: Session, project_id: str) -> Sequence[ApiKey]:
    stmt = select(ApiKey).where(ApiKey.project_id == project_id).order_by(ApiKey.created_at)
    return session.scalars(stmt).all()
