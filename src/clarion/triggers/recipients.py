"""Per-recipient properties: ``audience.targets[i].properties`` merged over the trigger's
top-level ``properties`` for that recipient's templates, the way Braze's per-recipient
``trigger_properties`` work. Audience rules (dynamic filters) compare the top-level values
only: one trigger, one audience.

Precedence: top level, then the properties of the target naming the user, then those of the
target naming the device. Channels that message users rather than devices (in-app, e-mail,
webhook) fold a device target's properties into its user's."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from clarion.storage.models import Device, User

Properties = Mapping[str, Any]
Key = tuple[str | None, str | None]  # (user target, device target) whose properties apply


@dataclass(frozen=True)
class RecipientProperties:
    by_user: Mapping[str, Properties] = field(default_factory=dict)
    by_device: Mapping[str, Properties] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.by_user or self.by_device)

    def key(self, project_user_id: str | None, device_id: str | None) -> Key:
        """Which targets' properties a recipient gets: recipients with the same key render
        alike, so one renderer serves them all."""
        user = project_user_id if project_user_id in self.by_user else None
        device = device_id if device_id and device_id in self.by_device else None
        return user, device

    def merged(self, base: Properties, key: Key) -> dict[str, Any]:
        user, device = key
        out = dict(base)
        if user is not None:
            out.update(self.by_user[user])
        if device is not None:
            out.update(self.by_device[device])
        return out


NONE = RecipientProperties()


def of(
    session: Session, project_id: str, targets: Sequence[Mapping[str, Any]], per_user: bool
) -> RecipientProperties:
    """The targets' own properties, keyed by the ids they name. ``per_user``: the channel
    messages users, so a device target's properties go to its user."""
    by_user: dict[str, dict[str, Any]] = {}
    by_device: dict[str, dict[str, Any]] = {}
    for target in targets:
        props = target.get("properties")
        if not props:
            continue
        if "project_user_id" in target:
            by_user.setdefault(target["project_user_id"], {}).update(props)
        else:
            by_device.setdefault(target["device_id"], {}).update(props)
    if per_user and by_device:
        owners = session.execute(
            select(Device.id, User.project_user_id)
            .join(User, User.id == Device.user_id)
            .where(Device.project_id == project_id, Device.id.in_(list(by_device)))
        ).all()
        for device_id, project_user_id in owners:
            if project_user_id is not None:
                by_user.setdefault(project_user_id, {}).update(by_device[device_id])
        by_device = {}
    if not by_user and not by_device:
        return NONE
    return RecipientProperties(by_user, by_device)
