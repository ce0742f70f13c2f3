"""A campaign's Android and APNs settings (``push:`` in the campaign), as FCM v1's
``android`` and ``apns`` blocks and as APNs headers and ``aps`` keys."""

from __future__ import annotations

import time
from typing import Any

from clarion.campaigns.schemas import AndroidOverrides, ApnsOverrides, PushOverrides


def _android(o: AndroidOverrides) -> dict[str, Any]:
    block: dict[str, Any] = {}
    if o.priority:
        block["priority"] = o.priority.upper()  # NORMAL | HIGH
    if o.ttl_seconds is not None:
        block["ttl"] = f"{o.ttl_seconds}s"
    if o.collapse_key:
        block["collapse_key"] = o.collapse_key
    note = {k: v for k, v in (("channel_id", o.channel_id), ("sound", o.sound),
                              ("color", o.color)) if v}  # fmt: skip
    if note:
        block["notification"] = note
    return block


def apns_headers(o: ApnsOverrides | None) -> dict[str, str]:
    """Headers that replace Clarion's defaults (priority 10, expiration 0, collapse id)."""
    if o is None:
        return {}
    headers: dict[str, str] = {}
    if o.priority is not None:
        headers["apns-priority"] = str(o.priority)
    if o.expiration_seconds is not None:
        headers["apns-expiration"] = str(int(time.time()) + o.expiration_seconds)
    if o.collapse_id:
        headers["apns-collapse-id"] = o.collapse_id
    return headers


def aps_extra(o: ApnsOverrides | None) -> dict[str, Any]:
    """Keys added to ``aps``: sound, badge, thread-id, interruption-level."""
    if o is None:
        return {}
    pairs = (("sound", o.sound), ("badge", o.badge), ("thread-id", o.thread_id),
             ("interruption-level", o.interruption_level))  # fmt: skip
    return {k: v for k, v in pairs if v is not None}


def fcm_blocks(overrides: PushOverrides | None) -> dict[str, Any]:
    """``android`` and ``apns`` for an FCM v1 message (FCM passes ``apns`` on to Apple)."""
    if overrides is None:
        return {}
    blocks: dict[str, Any] = {}
    if android := _android(overrides.android):
        blocks["android"] = android
    headers, aps = apns_headers(overrides.apns), aps_extra(overrides.apns)
    apns: dict[str, Any] = {}
    if headers:
        apns["headers"] = headers
    if aps:
        apns["payload"] = {"aps": aps}
    if apns:
        blocks["apns"] = apns
    return blocks
