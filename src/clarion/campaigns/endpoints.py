"""Management API for campaigns: reading needs the ``read`` scope, changing ``admin``."""

from __future__ import annotations

from typing import Any

from fastapi import Request

from clarion.campaigns import preview, repository, service, trigger_plan
from clarion.campaigns.preview import PreviewIn, PreviewOut
from clarion.campaigns.schemas import (
    CampaignList,
    CampaignOut,
    CampaignSpec,
    Status,
    VersionList,
    VersionOut,
)
from clarion.web import AdminKey, ReadKey, api_router, state

router = api_router("campaigns")


@router.get("/campaigns", response_model=CampaignList, summary="List campaigns")
def list_campaigns(principal: ReadKey, request: Request) -> CampaignList:
    with state(request).db.read() as session:
        rows = service.list_campaigns(session, principal.project_id)
        return CampaignList(campaigns=[service.to_out(session, c) for c in rows])


@router.post("/campaigns", response_model=CampaignOut, status_code=201, summary="Create")
def create_campaign(spec: CampaignSpec, principal: AdminKey, request: Request) -> CampaignOut:
    with state(request).db.write() as session:
        campaign = service.create(session, principal.project_id, spec, principal.actor)
        return service.to_out(session, campaign)


@router.post(
    "/campaigns:apply", response_model=CampaignOut, summary="Create or update a campaign by name"
)
def apply_campaign(spec: CampaignSpec, principal: AdminKey, request: Request) -> CampaignOut:
    with state(request).db.write() as session:
        campaign, _created = service.apply(session, principal.project_id, spec, principal.actor)
        return service.to_out(session, campaign)


@router.get("/campaigns/{campaign_id}", response_model=CampaignOut, summary="Show a campaign")
def get_campaign(campaign_id: str, principal: ReadKey, request: Request) -> CampaignOut:
    with state(request).db.read() as session:
        return service.to_out(session, service.get(session, principal.project_id, campaign_id))


@router.put("/campaigns/{campaign_id}", response_model=CampaignOut, summary="Update (new version)")
def update_campaign(
    campaign_id: str, spec: CampaignSpec, principal: AdminKey, request: Request
) -> CampaignOut:
    with state(request).db.write() as session:
        campaign = service.get(session, principal.project_id, campaign_id)
        return service.to_out(session, service.update(session, campaign, spec, principal.actor))


@router.post(
    "/campaigns/{campaign_id}:preview",
    response_model=PreviewOut,
    summary="Preview one message: rendered fields, the push and its size, variables, warnings",
)
def preview_campaign(
    campaign_id: str, body: PreviewIn, principal: ReadKey, request: Request
) -> PreviewOut:
    """Sends nothing and writes nothing. Sample ``properties`` as a trigger sends them, and
    a real ``project_user_id``/``device_id`` or inline ``user``/``device`` data; ``message``
    previews unsaved templates (checked as a save checks them)."""
    with state(request).db.read() as session:
        return preview.preview(session, principal.project_id, campaign_id, body)


@router.get(
    "/campaigns/{campaign_id}/plan",
    summary="The campaign's trigger plan (.clix/api-trigger-plan.json)",
    response_model=dict[str, Any],
)
def campaign_plan(campaign_id: str, principal: ReadKey, request: Request) -> dict[str, Any]:
    """Every trigger.* key the rules and templates use and the trigger_schema declares, typed
    and with an example; ``clarion plan validate`` accepts it as is, and ``clarion plan init
    --from-campaign`` writes it."""
    with state(request).db.read() as session:
        out = service.to_out(session, service.get(session, principal.project_id, campaign_id))
    return trigger_plan.plan(out)


@router.get(
    "/campaigns/{campaign_id}/versions", response_model=VersionList, summary="Version history"
)
def campaign_versions(campaign_id: str, principal: ReadKey, request: Request) -> VersionList:
    with state(request).db.read() as session:
        campaign = service.get(session, principal.project_id, campaign_id)
        rows = repository.versions(session, campaign.id)
        return VersionList(
            versions=[
                VersionOut(version=v.version, definition=v.definition, created_at=v.created_at)
                for v in rows
            ]
        )


def _lifecycle(status: Status, summary: str) -> None:
    def change(campaign_id: str, principal: AdminKey, request: Request) -> CampaignOut:
        with state(request).db.write() as session:
            campaign = service.get(session, principal.project_id, campaign_id)
            changed = service.set_status(session, campaign, status, principal.actor)
            return service.to_out(session, changed)

    verb = {"active": "activate", "paused": "pause", "archived": "archive"}[status]
    router.add_api_route(
        f"/campaigns/{{campaign_id}}:{verb}",
        change,
        methods=["POST"],
        response_model=CampaignOut,
        summary=summary,
        name=f"{verb}_campaign",
    )


_lifecycle("active", "Activate a campaign")
_lifecycle("paused", "Pause a campaign")
_lifecycle("archived", "Archive a campaign")
