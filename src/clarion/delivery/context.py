"""What templates see: ``trigger.*``, ``user.*`` and ``device.*`` for one recipient."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def template_context(
    trigger_properties: Mapping[str, Any],
    project_user_id: str | None,
    user_properties: dict[str, Any] | None,
    device: Any | None,
) -> dict[str, Any]:
    """``device``: anything with device_id, platform, locale_region, locale_language and
    timezone attributes (a message-log row joined with its device)."""
    user = dict(user_properties or {})
    user["id"] = project_user_id
    device_ctx: dict[str, Any] = {}
    if device is not None:
        device_ctx = {
            "id": device.device_id,
            "platform": (device.platform or "").upper(),
            "locale": device.locale_region,
            "language": device.locale_language,
            "timezone": device.timezone,
        }
    return {"trigger": trigger_properties, "user": user, "device": device_ctx}
