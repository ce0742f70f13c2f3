"""Audience test data written through the real ingestion services, and the two evaluators
(SQL and reference) run over it."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select

from clarion.audience import compiler, reference
from clarion.audience.rules import Audience
from clarion.auth import service as auth
from clarion.storage.db import Database
from clarion.storage.models import Device, User
from clarion.users import service as users
from clarion.users.schemas import DeviceIn

NOW = datetime(2026, 11, 1, 12, 0, 0).timestamp() // 1 * 1.0  # a fixed "now" for both sides


@dataclass
class Person:
    project_user_id: str
    properties: dict[str, Any] = field(default_factory=dict)
    devices: list[dict[str, Any]] = field(default_factory=list)
    last_session_at: datetime | None = None


def populate(db: Database, people: list[Person]) -> str:
    """A new project holding these people; returns its id."""
    with db.write() as session:
        project_id = auth.create_project(session, "audience").id
        for person in people:
            user = users.upsert_user(session, project_id, person.project_user_id, person.properties)
            user.last_session_at = person.last_session_at
            for device in person.devices:
                users.upsert_device(session, project_id, DeviceIn(**device))
                users.identify(session, project_id, device["id"], person.project_user_id)
    return project_id


Pair = tuple[str, str | None]


def by_sql(
    db: Database,
    project_id: str,
    audience: Audience,
    properties: dict[str, Any],
    targets: list[dict[str, str]] | None = None,
) -> set[Pair]:
    bound = audience.bind(properties)
    params = compiler.params(project_id, audience, bound, NOW, targets)
    with db.read() as session:
        rows = session.execute(compiler.recipients(audience, targets is not None), params).all()
        (count,) = session.execute(compiler.count(audience, targets is not None), params).one()
    assert count == len(rows), "the count statement and the stream disagree"
    return {(r[1], r[2]) for r in rows}


Facts = list[tuple[reference.UserFacts, list[reference.DeviceFacts]]]


def load_facts(db: Database, project_id: str) -> Facts:
    """Every identified user of the project with its devices, as the reference reads them."""
    out: Facts = []
    with db.read() as session:
        for user in session.scalars(
            select(User).where(User.project_id == project_id, User.project_user_id.is_not(None))
        ):
            devices = list(session.scalars(select(Device).where(Device.user_id == user.id)))
            out.append(reference.facts(user, devices))
    return out


def by_reference(
    db: Database,
    project_id: str,
    audience: Audience,
    properties: dict[str, Any],
    loaded: Facts | None = None,
) -> set[Pair]:
    bound = audience.bind(properties)
    out: set[Pair] = set()
    for user, devices in loaded if loaded is not None else load_facts(db, project_id):
        for device_id in reference.recipients(audience, bound, user, devices, NOW):
            out.add((user.project_user_id, device_id))
    return out
