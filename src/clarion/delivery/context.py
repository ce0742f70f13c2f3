"""What templates see: ``trigger.*``, ``user.*`` and ``device.*`` for one recipient."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class DeviceView:
    """A device as templates read it."""

    device_id: str
    platform: str
    locale_region: str
    locale_language: str
    timezone: str

    @classmethod
    def of(cls, device: Any) -> DeviceView:
        """From a stored device (or anything with ``id`` and the same fields)."""
        return cls(device.id, device.platform, device.locale_region, device.locale_language,
                   device.timezone)  # fmt: skip


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
