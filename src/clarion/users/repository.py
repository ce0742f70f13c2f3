"""SQL for users, their indexed properties, and devices."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import delete, insert, select, update
from sqlalchemy.orm import Session

from clarion.audience.values import canonical_number, canonical_text
from clarion.delivery import repository as delivery
from clarion.storage.models import Device, Event, InboxMessage, Message, User, UserProperty


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
    rows = property_rows(user.project_id, user.id, {k: values[k] for k in keys if k in values})
    if rows:
        session.execute(insert(UserProperty), rows)


def property_rows(project_id: str, user_id: str, values: dict[str, Any]) -> list[dict[str, Any]]:
    """The index rows of a user's properties: scalars only (objects and arrays live in the
    user's JSON, where templates read them, but no rule does)."""
    rows = []
    for key, value in values.items():
        text = canonical_text(value)
        if text is not None:
            rows.append(
                {
                    "user_id": user_id,
                    "key": key,
                    "project_id": project_id,
                    "value_text": text,
                    "value_num": canonical_number(value),
                }
            )
    return rows


def delete_user(session: Session, user: User) -> None:
    """The user, its devices and properties (cascade), and its message log rows."""
    delivery.forget_recipients_of(session, user.id)  # none of them is delivered from here
    session.execute(delete(Message).where(Message.user_id == user.id))
    session.execute(delete(Device).where(Device.user_id == user.id))
    session.execute(delete(Event).where(Event.user_id == user.id))
    session.execute(delete(UserProperty).where(UserProperty.user_id == user.id))
    session.delete(user)


def move_history(session: Session, from_user: str, to_user: str) -> None:
    """Give an anonymous user's devices, events, messages and inbox to the identified user."""
    delivery.forget_recipients_of(session, from_user)  # messages pending go as the new user's
    for model in (Device, Event, Message, InboxMessage):
        session.execute(update(model).where(model.user_id == from_user).values(user_id=to_user))
