"""SQL for projects and keys."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

from sqlalchemy import Table, bindparam, select
from sqlalchemy.orm import Session

from clarion.storage.models import ApiKey, Project


def get_project(session: Session, project_id: str) -> Project | None:
    return session.get(Project, project_id)


def list_projects(session: Session) -> Sequence[Project]:
    return session.scalars(select(Project).order_by(Project.created_at)).all()


_K = cast(Table, ApiKey.__table__)
_BY_HASH = select(_K.c.id, _K.c.project_id, _K.c.kind, _K.c.key_hash, _K.c.revoked_at).where(
    _K.c.key_hash == bindparam("h")
)


def key_by_hash(session: Session, key_hash: str) -> Any:
    """The key's (id, project_id, kind, key_hash, revoked_at), or None. Every request runs
    this, so it is one prebuilt Core statement."""
    return session.execute(_BY_HASH, {"h": key_hash}).first()


def list_keys(session: Session, project_id: str) -> Sequence[ApiKey]:
    stmt = select(ApiKey).where(ApiKey.project_id == project_id).order_by(ApiKey.created_at)
    return session.scalars(stmt).all()
