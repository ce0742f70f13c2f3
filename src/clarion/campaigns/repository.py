"""SQL for campaigns and their versions."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from clarion.storage.models import Campaign, CampaignVersion


def get(session: Session, project_id: str, campaign_id: str) -> Campaign | None:
    campaign = session.get(Campaign, campaign_id)
    if campaign is None or campaign.project_id != project_id:
        return None
    return campaign


def by_name(session: Session, project_id: str, name: str) -> Campaign | None:
    stmt = select(Campaign).where(Campaign.project_id == project_id, Campaign.name == name)
    return session.scalars(stmt).first()


def list_for_project(session: Session, project_id: str) -> Sequence[Campaign]:
    stmt = select(Campaign).where(Campaign.project_id == project_id).order_by(Campaign.id)
    return session.scalars(stmt).all()


def version(session: Session, campaign_id: str, number: int) -> CampaignVersion | None:
    return session.get(CampaignVersion, (campaign_id, number))


def versions(session: Session, campaign_id: str) -> Sequence[CampaignVersion]:
    stmt = (
        select(CampaignVersion)
        .where(CampaignVersion.campaign_id == campaign_id)
        .order_by(CampaignVersion.version)
    )
    return session.scalars(stmt).all()
