"""SQL the console's pages need beyond the API's services."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from clarion.storage.models import Device, Event, Message, Trigger, User, utcnow


@dataclass(frozen=True)
class CampaignActivity:
    last_trigger: datetime | None = None
    triggers_24h: int = 0
    sent_24h: int = 0
    failed_24h: int = 0


def activity(session: Session, project_id: str) -> dict[str, CampaignActivity]:
    """Per campaign: the last trigger, and the last 24 hours' triggers and outcomes."""
    since = utcnow() - timedelta(hours=24)
    triggers = session.execute(
        select(
            Trigger.campaign_id,
            func.max(Trigger.created_at),
            func.sum(case((Trigger.created_at > since, 1), else_=0)),
        )
        .where(Trigger.project_id == project_id)
        .group_by(Trigger.campaign_id)
    ).all()
    outcomes = session.execute(
        select(Trigger.campaign_id, Message.status, func.count())
        .join(Trigger, Trigger.id == Message.trigger_id)
        .where(
            Message.project_id == project_id,
            Message.created_at > since,
            Message.status.in_(("sent", "failed")),
        )
        .group_by(Trigger.campaign_id, Message.status)
    ).all()
    counts: dict[tuple[str, str], int] = {(c, s): int(n) for c, s, n in outcomes}
    return {
        campaign_id: CampaignActivity(
            last_trigger=last,
            triggers_24h=int(recent or 0),
            sent_24h=counts.get((campaign_id, "sent"), 0),
            failed_24h=counts.get((campaign_id, "failed"), 0),
        )
        for campaign_id, last, recent in triggers
    }


def triggers(session: Session, campaign_id: str, before: str | None, limit: int) -> list[Trigger]:
    """A campaign's triggers, newest first."""
    query = select(Trigger).where(Trigger.campaign_id == campaign_id)
    if before:
        query = query.where(Trigger.created_at < datetime.fromisoformat(before))
    return list(session.scalars(query.order_by(Trigger.created_at.desc()).limit(limit)))


def trigger_counts(session: Session, trigger_ids: list[str]) -> dict[str, dict[str, int]]:
    """Message counts by status, per trigger."""
    found: dict[str, dict[str, int]] = {t: {} for t in trigger_ids}
    if trigger_ids:
        rows = session.execute(
            select(Message.trigger_id, Message.status, func.count())
            .where(Message.trigger_id.in_(trigger_ids))
            .group_by(Message.trigger_id, Message.status)
        ).all()
        for trigger_id, status, n in rows:
            found.setdefault(str(trigger_id), {})[status] = int(n)
    return found


def users(
    session: Session, project_id: str, search: str, after: str | None, limit: int
) -> list[tuple[User, int]]:
    """Identified users by project user id (prefix search), with their device counts; keyset
    pages by project user id."""
    devices = select(Device.user_id, func.count().label("n")).group_by(Device.user_id).subquery()
    query = (
        select(User, func.coalesce(devices.c.n, 0))
        .outerjoin(devices, devices.c.user_id == User.id)
        .where(User.project_id == project_id, User.project_user_id.is_not(None))
    )
    if search:
        query = query.where(User.project_user_id.startswith(search, autoescape=True))
    if after:
        query = query.where(User.project_user_id > after)
    query = query.order_by(User.project_user_id).limit(limit)
    return [(user, int(n)) for user, n in session.execute(query).all()]


def user_detail(
    session: Session, project_id: str, project_user_id: str
) -> tuple[User, list[Device], list[Event]] | None:
    user = session.scalars(
        select(User).where(User.project_id == project_id, User.project_user_id == project_user_id)
    ).first()
    if user is None:
        return None
    found = list(session.scalars(select(Device).where(Device.user_id == user.id)))
    events = list(session.scalars(
        select(Event).where(Event.user_id == user.id).order_by(Event.created_at.desc()).limit(20)
    ))  # fmt: skip
    return user, found, events
