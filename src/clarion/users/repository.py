"""SQL for users, their indexed properties, and devices."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import delete, insert, select, update
from sqlalchemy.orm import Session

from clarion.audience.rules import VALUE_TEXT_MAX, canonical_number, canonical_text
from clarion.storage.models import Device, Message, User, UserProperty


def by_project_user_id(session: Session, project_id: str, project_user_id: str) -> User | None:
    stmt = select(User).where(
        User.project_id == project_id, User.project_user_id == project_user_id
    )
    return session.scalars(stmt).first()


def device(session: Session, project_id: str, device_id: str) -> Device | None:
    return session.get(Device, (project_id, device_id))


def index_properties(
    session: Session, user: User, keys: Iterable[str], values: dict[str, Any]
) -> None:
    """Rewrite the index rows of ``keys``; scalar values are indexed, others live in JSON."""
    keys = list(keys)
    if not keys:
        return
    session.execute(
        delete(UserProperty).where(UserProperty.user_id == user.id, UserProperty.key.in_(keys))
    )
    rows = []
    for key in keys:
        if key not in values:
            continue
        text = canonical_text(values[key])
        if text is None:
            continue
        rows.append(
            {
                "user_id": user.id,
                "key": key,
                "project_id": user.project_id,
                "value_text": text[:VALUE_TEXT_MAX],
                "value_num": canonical_number(values[key]),
            }
        )
    if rows:
        session.execute(insert(UserProperty), rows)


def delete_user(session: Session, user: User) -> None:
    """The user, its devices and properties (cascade), and its message log rows."""
    session.execute(delete(Message).where(Message.user_id == user.id))
    session.execute(delete(Device).where(Device.user_id == user.id))
    session.execute(delete(UserProperty).where(UserProperty.user_id == user.id))
    session.delete(user)


def move_devices(session: Session, from_user: str, to_user: str) -> None:
    session.execute(update(Device).where(Device.user_id == from_user).values(user_id=to_user))
