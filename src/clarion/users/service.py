"""Users and devices: upsert, merge properties, identify (link a device to a user)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy.orm import Session

from clarion.audience.values import version_key
from clarion.errors import NotFound
from clarion.ids import uuid7
from clarion.storage.models import Device, User, utcnow
from clarion.users import repository
from clarion.users.schemas import DeviceIn, DeviceOut

DEVICE_COLUMNS = (
    "locale_region",
    "locale_language",
    "timezone",
    "is_push_permission_granted",
    "push_token_type",
    "app_version",
    "sdk_type",
)


def set_properties(session: Session, user: User, changes: dict[str, Any]) -> dict[str, Any]:
    """Merge ``changes`` into the user's properties; a null value removes the property."""
    merged = dict(user.properties or {})
    for key, value in changes.items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = value
    user.properties = merged
    user.updated_at = utcnow()
    repository.index_properties(session, user, changes.keys(), merged)
    return merged


def upsert_user(
    session: Session, project_id: str, project_user_id: str, properties: dict[str, Any]
) -> User:
    user = repository.by_project_user_id(session, project_id, project_user_id)
    if user is None:
        user = User(
            id=uuid7(), project_id=project_id, project_user_id=project_user_id, properties={}
        )
        session.add(user)
        session.flush()
    set_properties(session, user, properties)
    session.flush()
    return user


def patch_user(
    session: Session, project_id: str, project_user_id: str, properties: dict[str, Any]
) -> User:
    user = repository.by_project_user_id(session, project_id, project_user_id)
    if user is None:
        raise NotFound(
            f"No user with project_user_id {project_user_id!r}; create it with POST /api/v1/users.",
            code="user_not_found",
        )
    set_properties(session, user, properties)
    session.flush()
    return user


def delete_user(session: Session, project_id: str, project_user_id: str) -> None:
    user = repository.by_project_user_id(session, project_id, project_user_id)
    if user is not None:
        repository.delete_user(session, user)
        session.flush()


def upsert_device(session: Session, project_id: str, data: DeviceIn) -> DeviceOut:
    """Create or update a device; a new device belongs to a new anonymous user until identified."""
    device = repository.device(session, project_id, data.id)
    if device is None:
        user = User(id=uuid7(), project_id=project_id, project_user_id=None, properties={})
        session.add(user)
        session.flush()
        device = Device(project_id=project_id, id=data.id, user_id=user.id)
        session.add(device)
    attributes = data.model_dump(mode="json")
    device.attributes = attributes
    for column, value in device_columns(attributes).items():
        setattr(device, column, value)
    device.updated_at = utcnow()
    session.flush()
    return DeviceOut(**attributes, user_id=device.user_id)


def device_columns(attributes: Mapping[str, Any]) -> dict[str, Any]:
    """The device fields rules read, from a device's attributes (``DeviceIn``'s dump), as
    stored: platform upper-case (IOS, ANDROID), the app version also in its sortable form,
    no token as NULL."""
    columns: dict[str, Any] = {c: attributes[c] for c in DEVICE_COLUMNS}
    columns["platform"] = attributes["platform"].upper()
    columns["app_version_key"] = version_key(attributes["app_version"])
    columns["push_token"] = attributes["push_token"] or None
    return columns


def device_user(session: Session, project_id: str, device_id: str) -> tuple[Device, User]:
    device = repository.device(session, project_id, device_id)
    user = session.get(User, device.user_id) if device is not None else None
    if device is None or user is None:
        raise NotFound(
            f"No device {device_id!r} in this project; register it with POST /api/v1/devices "
            "first.",
            code="device_not_found",
        )
    return device, user


def unidentify(session: Session, project_id: str, device_id: str) -> User:
    """Log the device out: it gets a fresh anonymous user; the identified user keeps its
    properties and history."""
    device, current = device_user(session, project_id, device_id)
    if current.project_user_id is None:
        return current
    anonymous = User(id=uuid7(), project_id=project_id, project_user_id=None, properties={})
    session.add(anonymous)
    session.flush()
    device.user_id = anonymous.id
    device.updated_at = utcnow()
    session.flush()
    return anonymous


def identify(session: Session, project_id: str, device_id: str, project_user_id: str) -> User:
    """Link a device to a project user. An anonymous user's properties merge into the
    identified user (the identified user's own values win) and the anonymous user goes."""
    device, current = device_user(session, project_id, device_id)
    target = repository.by_project_user_id(session, project_id, project_user_id)
    if target is None and current.project_user_id is None:
        current.project_user_id = project_user_id  # the anonymous user becomes identified
        current.updated_at = utcnow()
        session.flush()
        return current
    if target is None:
        target = upsert_user(session, project_id, project_user_id, {})
    if current.id != target.id:
        if current.project_user_id is None:
            inherited = {
                k: v for k, v in (current.properties or {}).items() if k not in target.properties
            }
            set_properties(session, target, inherited)
            repository.move_history(session, current.id, target.id)
            sessions = [t for t in (target.last_session_at, current.last_session_at) if t]
            target.last_session_at = max(sessions) if sessions else None
            session.flush()
            session.delete(current)
        else:
            device.user_id = target.id
    session.flush()
    return target
