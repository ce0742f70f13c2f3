"""The reference evaluator: the audience rules in plain Python, the definition the SQL
compiler must agree with (a property-based test checks that it does, on both databases).

It also explains a miss: the dry run asks it which conditions a targeted user fails.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from clarion.audience.compiler import effective_operands
from clarion.audience.rules import NEGATIONS, Audience, Condition
from clarion.audience.values import canonical_number, canonical_text, version_key
from clarion.storage.models import Device, User


@dataclass(frozen=True, slots=True)
class UserFacts:
    project_user_id: str
    properties: dict[str, Any] = field(default_factory=dict)
    last_session_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class DeviceFacts:
    id: str
    platform: str = ""  # stored upper-case: IOS, ANDROID
    app_version: str = ""
    locale_region: str = ""
    locale_language: str = ""
    timezone: str = ""
    is_push_permission_granted: bool = False
    sdk_type: str = ""


def _stored(condition: Condition, user: UserFacts, device: DeviceFacts | None) -> Any:
    """The attribute's value as the condition's type reads it; None when absent."""
    type_ = condition.type
    if condition.scope == "property":
        raw = user.properties.get(condition.property_key)
        text = canonical_text(raw)
        if text is None:  # absent, null, or an object/array (stored, not indexed)
            return None
        if type_ in ("string", "boolean"):
            return text
        number = canonical_number(raw)
        return number if number is not None else _PRESENT_UNREADABLE
    if condition.attribute == "user_id":
        return user.project_user_id
    if condition.attribute == "last_session_at":
        return user.last_session_at.timestamp() if user.last_session_at else None
    if device is None:
        return None
    if condition.attribute == "app_version":
        return version_key(device.app_version)
    value = getattr(device, condition.attribute)
    if isinstance(value, bool):
        return value
    return value or None


class _Unreadable:
    """A property that exists but has no numeric form: it exists, yet compares false."""


_PRESENT_UNREADABLE = _Unreadable()


def _positive(op: str, stored: Any, operands: list[Any], condition: Condition) -> bool:
    if stored is None:
        return False
    if op == "exists":
        return True
    if op in ("is_true", "is_false"):
        wanted = op == "is_true"
        if condition.scope == "property":
            return bool(stored == ("true" if wanted else "false"))
        return bool(stored is wanted)
    if isinstance(stored, _Unreadable):
        return False
    if op == "in":
        return stored in operands
    a = operands[0] if operands else None
    if op == "contains":
        return bool(a in stored)
    if op == "starts_with":
        return bool(stored.startswith(a))
    if op in ("between", "within_last_days"):
        return bool(operands[0] <= stored <= operands[1])
    compare = {
        "eq": lambda: stored == a, "gt": lambda: stored > a, "gte": lambda: stored >= a,
        "lt": lambda: stored < a, "lte": lambda: stored <= a, "before": lambda: stored < a,
        "after": lambda: stored > a, "more_than_days_ago": lambda: stored < a,
    }  # fmt: skip
    return bool(compare[op]())


def holds(
    condition: Condition,
    operands: list[Any],
    user: UserFacts,
    device: DeviceFacts | None,
    now: float,
) -> bool:
    """Does one condition hold for this user and device (device None: the user has none)?"""
    effective = effective_operands(condition, operands, now)
    stored = _stored(condition, user, device)
    positive = NEGATIONS.get(condition.operator)
    if positive is not None:
        return not _positive(positive, stored, effective, condition)
    return _positive(condition.operator, stored, effective, condition)


def matches(
    audience: Audience,
    bound: Sequence[list[Any]],
    user: UserFacts,
    device: DeviceFacts | None,
    now: float,
) -> bool:
    if not audience.groups:
        return True
    results: list[bool] = []
    index = 0
    for group in audience.groups:
        inner = []
        for condition in group.conditions:
            inner.append(holds(condition, bound[index], user, device, now))
            index += 1
        results.append(all(inner) if group.match == "all" else any(inner))
    return all(results) if audience.match == "all" else any(results)


def recipients(
    audience: Audience,
    bound: Sequence[list[Any]],
    user: UserFacts,
    devices: Sequence[DeviceFacts],
    now: float,
) -> list[str | None]:
    """The device ids of this user that receive the message (None: the user, deviceless)."""
    if not devices:
        return [None] if matches(audience, bound, user, None, now) else []
    return [d.id for d in devices if matches(audience, bound, user, d, now)]


def failing(
    audience: Audience,
    bound: Sequence[list[Any]],
    user: UserFacts,
    devices: Sequence[DeviceFacts],
    now: float,
) -> list[str]:
    """The conditions a user fails, as ``path: description``, for every device (or none)."""
    out: list[str] = []
    for located in audience.located():
        candidates: Sequence[DeviceFacts | None] = list(devices) or [None]
        if not any(
            holds(located.condition, bound[located.index], user, d, now) for d in candidates
        ):
            out.append(f"{located.path}: {located.condition.describe()}")
    return out


def facts(user: User, devices: list[Device]) -> tuple[UserFacts, list[DeviceFacts]]:
    """What the reference evaluator reads, from stored rows."""
    return (
        UserFacts(
            project_user_id=user.project_user_id or "",
            properties=user.properties or {},
            last_session_at=user.last_session_at,
        ),
        [
            DeviceFacts(
                id=d.id,
                platform=d.platform,
                app_version=d.app_version,
                locale_region=d.locale_region,
                locale_language=d.locale_language,
                timezone=d.timezone,
                is_push_permission_granted=d.is_push_permission_granted,
                sdk_type=d.sdk_type,
            )
            for d in devices
        ],
    )
