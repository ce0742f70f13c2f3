"""Compile audience rules to SQL over the indexed ``user_properties`` table."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Select, false, select

from clarion.audience.rules import Audience, canonical_text
from clarion.storage.models import User, UserProperty


def matching_users(project_id: str, audience: Audience, properties: dict[str, Any]) -> Select[Any]:
    """A SELECT of the ids of the project's identified users who match ``audience``.

    Each condition becomes ``users.id IN (index range scan on user_properties)``.
    """
    stmt = select(User.id).where(User.project_id == project_id)
    for condition in audience.conditions:
        key = condition.trigger_key
        value = properties.get(key) if key is not None else condition.value
        text = canonical_text(value)
        if text is None:  # an object, a list or null can equal no stored property
            return stmt.where(false())
        sub = select(UserProperty.user_id).where(
            UserProperty.project_id == project_id,
            UserProperty.key == condition.attribute,
            UserProperty.value_text == text,
        )
        stmt = stmt.where(User.id.in_(sub))
    return stmt
