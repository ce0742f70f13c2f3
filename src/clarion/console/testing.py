"""Test sends from the console: the campaign's current message rendered for chosen devices
(with each device's user and the sample trigger), ready for messages:send."""

from __future__ import annotations

from typing import Any

import orjson
from sqlalchemy.orm import Session

from clarion.auth import service as auth
from clarion.campaigns import service as campaigns
from clarion.delivery.context import DeviceView, template_context
from clarion.errors import InvalidRequest
from clarion.messages.send_schemas import PushNotification, SendTarget
from clarion.storage.models import Device, User
from clarion.templating.message import MessageRejected


def render_for_devices(
    session: Session, project_id: str, campaign_id: str, device_ids: list[str], sample: str
) -> list[PushNotification]:
    """Raises InvalidRequest saying what to fix."""
    campaign = campaigns.get(session, project_id, campaign_id)
    version = campaigns.load_version(session, campaign.id, campaign.version)
    if version.channel != "push":
        raise InvalidRequest("Test sends go to devices: they are for push campaigns.",
                             code="test_send_push_only")  # fmt: skip
    try:
        properties: Any = orjson.loads(sample or "{}")
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest(f"sample trigger JSON: {exc}", code="invalid_json") from None
    if not isinstance(properties, dict):
        raise InvalidRequest("The sample trigger must be a JSON object.", code="invalid_json")
    renderer = version.plan.for_trigger(properties, auth.url_schemes(session, project_id))
    notes = []
    for device_id in device_ids:
        device = session.get(Device, (project_id, device_id))
        user = session.get(User, device.user_id) if device is not None else None
        context = template_context(properties, user.project_user_id if user else None,
                                   user.properties if user else {},
                                   DeviceView.of(device) if device else None)  # fmt: skip
        try:
            fields = renderer.render(context)
        except MessageRejected as exc:
            raise InvalidRequest(f"device {device_id}: {exc.reason}", code=exc.code) from None
        notes.append(PushNotification(target=SendTarget(device_id=device_id), **fields))
    return notes
