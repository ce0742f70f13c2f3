"""Compile audience rules to SQL over the indexed ``user_properties`` table.

A compiled statement depends only on the rules' shape, never on values: values (literals and
``trigger.*`` alike) are bound at execution. So each campaign version compiles once, and
SQLAlchemy's statement cache does the rest.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import Any, cast

from sqlalchemy import Select, Table, bindparam, or_, select

from clarion.audience.rules import VALUE_TEXT_MAX, Audience, canonical_text
from clarion.storage.models import Device, User, UserProperty

U = cast(Table, User.__table__)
D = cast(Table, Device.__table__)
P = cast(Table, UserProperty.__table__)


def _conditions(attributes: Sequence[str]) -> list[Any]:
    """One ``users.id IN (index range scan)`` per condition; condition i binds v{i}."""
    return [
        U.c.id.in_(
            select(P.c.user_id).where(
                P.c.project_id == bindparam("pid"),
                P.c.key == attribute,
                P.c.value_text == bindparam(f"v{i}"),
            )
        )
        for i, attribute in enumerate(attributes)
    ]


@lru_cache(maxsize=1024)
def _recipients(attributes: tuple[str, ...], targeted: bool) -> Select[Any]:
    stmt = (
        select(U.c.id, U.c.project_user_id, D.c.id, D.c.push_token, D.c.is_push_permission_granted)
        .outerjoin(D, D.c.user_id == U.c.id)  # user ids are unique across projects
        .where(
            U.c.project_id == bindparam("pid"),
            U.c.project_user_id.is_not(None),
            *_conditions(attributes),
        )
    )
    if targeted:
        stmt = stmt.where(
            or_(
                U.c.project_user_id.in_(bindparam("target_users", expanding=True)),
                D.c.id.in_(bindparam("target_devices", expanding=True)),
            )
        )
    return stmt.order_by(U.c.id, D.c.id)


def condition_values(audience: Audience, properties: dict[str, Any]) -> dict[str, Any]:
    """The bound value of each condition: its literal, or the trigger property it names, in
    the text form used for equality (None, which matches nothing, for objects and lists)."""
    values: dict[str, Any] = {}
    for i, condition in enumerate(audience.conditions):
        key = condition.trigger_key
        value = properties.get(key) if key is not None else condition.value
        text = canonical_text(value)
        values[f"v{i}"] = text[:VALUE_TEXT_MAX] if text is not None else None
    return values


def recipients(
    project_id: str,
    audience: Audience,
    properties: dict[str, Any],
    targets: Sequence[dict[str, str]] | None = None,
) -> tuple[Select[Any], dict[str, Any]]:
    """The statement yielding (user id, project user id, device id, push token, permission)
    for every recipient in stable order, and its parameters. ``targets`` narrows to those
    users or devices (still only the ones the rules admit)."""
    attributes = tuple(c.attribute for c in audience.conditions)
    params = {"pid": project_id, **condition_values(audience, properties)}
    if targets is not None:
        params["target_users"] = [t["project_user_id"] for t in targets if "project_user_id" in t]
        params["target_devices"] = [t["device_id"] for t in targets if "device_id" in t]
    return _recipients(attributes, targets is not None), params
