"""SQL for projects and keys."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, bindparam, select, update
from sqlalchemy.orm import Session

from clarion.storage.models import ApiKey, Project


def get_project(session: Session, project_id: str) -> Project | None:
    return session.get(Project, project_id)


def list_projects(session: Session) -> Sequence[Project]:
    return session.scalars(select(Project).order_by(Project.created_at)).all()


_K = cast(Table, ApiKey.__table__)
_BY_HASH = select(
    _K.c.id, _K.c.project_id, _K.c.kind, _K.c.key_hash, _K.c.revoked_at, _K.c.expires_at,
    _K.c.scopes,
).where(_K.c.key_hash == bindparam("h"))  # fmt: skip
_TOUCH = update(_K).where(_K.c.id == bindparam("i")).values(last_used_at=bindparam("at"))


def key_by_hash(session: Session, key_hash: str) -> Any:
    """The key's (id, project_id, kind, key_hash, revoked_at, expires_at, scopes), or None.
    Requests that miss the key cache run this, so it is one prebuilt Core statement."""
    return session.execute(_BY_HASH, {"h": key_hash}).first()


def touch_keys(session: Session, used: dict[str, datetime]) -> None:
    """Record when keys were last used (key id: time)."""
    if used:
        session.execute(_TOUCH, [{"i": k, "at": at} for k, at in used.items()])


def list_keys(session: Session, project_id: str) -> Sequence[ApiKey]:
    stmt = select(ApiKey).where(ApiKey.project_id == project_id).order_by(ApiKey.created_at)
    return session.scalars(stmt).all()


def rate_limit(session: Session, project_id: str) -> int | None:
    return session.scalar(select(Project.rate_limit).where(Project.id == project_id))
