"""SQL the console's pages need beyond the API's services."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from clarion.storage.models import Message, Trigger, utcnow


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
