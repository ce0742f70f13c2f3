"""Store SDK events against the device's current user."""

from __future__ import annotations

from typing import Any, cast

from sqlalchemy import Table, insert, update
from sqlalchemy.orm import Session

from clarion.events.schemas import EventIn, EventOut
from clarion.ids import uuid7
from clarion.storage.models import Event, User, utcnow
from clarion.users import service as users

SESSION_START = "SESSION_START"
MESSAGE_KEYS = ("message_id", "user_journey_id", "user_journey_node_id")
E = cast(Table, Event.__table__)


def normalize(event: EventIn) -> dict[str, Any]:
    """``{"custom_properties": {...}, "message_id"?, ...}`` from any SDK's shape. An inner
    object without ``custom_properties`` is taken to be the custom properties themselves."""
    inner = event.properties if event.properties is not None else event.event_property or {}
    if "custom_properties" in inner:
        custom = inner.get("custom_properties") or {}
        rest = {k: v for k, v in inner.items() if k != "custom_properties"}
    else:
        custom = {k: v for k, v in inner.items() if k not in MESSAGE_KEYS}
        rest = {k: v for k, v in inner.items() if k in MESSAGE_KEYS}
    if not isinstance(custom, dict):
        custom = {"value": custom}
    return {"custom_properties": custom, **rest}


def record(session: Session, project_id: str, events: list[EventIn]) -> list[EventOut]:
    """All or nothing: an unknown device refuses the whole batch."""
    now = utcnow()
    rows: list[dict[str, Any]] = []
    sessions: set[str] = set()
    for event in events:
        _device, user = users.device_user(session, project_id, event.device_id)
        rows.append(
            {
                "id": uuid7(),
                "project_id": project_id,
                "user_id": user.id,
                "device_id": event.device_id,
                "name": event.name,
                "source_type": event.source_type,
                "properties": normalize(event),
                "created_at": now,
            }
        )
        if event.name == SESSION_START:
            sessions.add(user.id)
    session.execute(insert(E), rows)
    if sessions:
        session.execute(update(User).where(User.id.in_(sessions)).values(last_session_at=now))
    session.flush()
    return [EventOut(**{k: r[k] for k in EventOut.model_fields}) for r in rows]
