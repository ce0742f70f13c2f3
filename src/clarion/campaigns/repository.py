"""SQL for campaigns and their versions."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

from sqlalchemy import Table, bindparam, select
from sqlalchemy.orm import Session

from clarion import cache
from clarion.storage.models import Campaign, CampaignVersion


def get(session: Session, project_id: str, campaign_id: str) -> Campaign | None:
    campaign = session.get(Campaign, campaign_id)
    if campaign is None or campaign.project_id != project_id:
        return None
    return campaign


_C = cast(Table, Campaign.__table__)
_TRIGGERABLE = select(
    _C.c.id, _C.c.project_id, _C.c.name, _C.c.type, _C.c.status, _C.c.version
).where(_C.c.id == bindparam("cid"))


def summary(session: Session, project_id: str, campaign_id: str) -> Any:
    """(id, project_id, name, type, status, version) of the project's campaign, or None:
    what the trigger endpoint needs, in one prebuilt statement."""
    row = cache.campaigns.get((project_id, campaign_id))
    if row is None:
        row = session.execute(_TRIGGERABLE, {"cid": campaign_id}).first()
        if row is None or row.project_id != project_id:
            return None
        cache.campaigns.put((project_id, campaign_id), row)
    return row


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
