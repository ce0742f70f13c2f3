"""Accepting a trigger: the checks, then the trigger row and its first job in one commit."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

from sqlalchemy import Table, insert
from sqlalchemy.orm import Session

from clarion import idempotency
from clarion.auth.service import Principal
from clarion.campaigns import payload
from clarion.campaigns import repository as campaign_repository
from clarion.campaigns import service as campaigns
from clarion.campaigns.service import Version
from clarion.delivery import repository
from clarion.delivery.pipeline import CANCELLED
from clarion.errors import ClarionError, NotFound
from clarion.ids import uuid7
from clarion.runner.engine import TaskEngine
from clarion.storage.models import Trigger, utcnow
from clarion.triggers import amplification, schedule
from clarion.triggers.body import TriggerRequest
from clarion.webhooks import service as webhooks
from clarion.webhooks.repository import subscribed

_INSERT = insert(cast(Table, Trigger.__table__)).values(excluded_targets=[])


class CampaignNotTriggerable(ClarionError):
    status_code = 400
    code = "campaign_not_triggerable"


class MissingTriggerProperty(ClarionError):
    status_code = 400
    code = "missing_trigger_property"


def campaign_version(
    session: Session,
    principal: Principal,
    campaign_id: str,
    request: TriggerRequest,
    *,
    require_active: bool = True,
) -> tuple[Any, Version]:
    """The campaign summary and its current version, once the campaign can take this
    request: API-triggered, active (unless a dry run), and every ``trigger.*`` value the
    rules need present and comparable."""
    principal.require("trigger")
    campaign = campaign_repository.summary(session, principal.project_id, campaign_id)
    if campaign is None:
        raise campaigns.CampaignNotFound(campaigns.NOT_FOUND.format(id=campaign_id))
    if campaign.type != "api_triggered":
        raise CampaignNotTriggerable(
            f"Campaign {campaign.name!r} is a {campaign.type} campaign; only API-triggered "
            "campaigns can be triggered over the API."
        )
    if require_active and campaign.status != "active":
        raise CampaignNotTriggerable(
            f"Campaign {campaign.name!r} is {campaign.status}; activate it first "
            f"(clarion campaigns activate {campaign.id}).",
            state=campaign.status,
        )
    version = campaigns.load_version(session, campaign.id, campaign.version)
    needed = version.audience.trigger_keys()
    missing = [k for k in needed if k not in request.properties]
    if missing:
        raise MissingTriggerProperty(
            f"properties lacks {', '.join(missing)}: the campaign's audience rules use "
            f"{', '.join('trigger.' + k for k in needed)}, so properties must carry "
            f"{', '.join(repr(k) for k in needed)} (keys are case-sensitive; "
            f"got {sorted(request.properties) or 'none'}).",
            missing=missing,
            expected=needed,
        )
    _check_payload(version, request)
    version.audience.bind(request.properties)  # refuses values the rules cannot compare
    return campaign, version


def _check_payload(version: Version, request: TriggerRequest) -> None:
    """The campaign's trigger_schema, over what each recipient's templates will see."""
    schema = version.trigger_schema
    own = [(i, t["properties"]) for i, t in enumerate(request.targets) if "properties" in t]
    if not schema or not own:
        payload.check(schema, request.properties)
        return
    if len(own) < len(request.targets):  # some targets get the top level alone
        payload.check(schema, request.properties)
    for i, props in own:
        payload.check(schema, {**request.properties, **props}, f"audience.targets[{i}]")


def check(
    session: Session,
    principal: Principal,
    campaign_id: str,
    request: TriggerRequest,
    broadcast_multiplier: float,
) -> tuple[dict[str, Any], list[str]]:
    """Every check a trigger must pass, read-only. Returns the trigger row to write, and the
    ``trigger.*`` keys the templates use that this request lacks (they render empty). A
    broadcast past the amplification guard raises BroadcastLimitExceeded."""
    campaign, version = campaign_version(session, principal, campaign_id, request)
    if request.mode == "broadcast":
        amplification.check(session, principal.project_id, broadcast_multiplier)
    absent = [k for k in version.plan.trigger_keys if k not in request.properties]
    return {
        "id": uuid7(),
        "project_id": principal.project_id,
        "campaign_id": campaign.id,
        "campaign_version": campaign.version,
        "audience_mode": request.mode,
        "targets": request.targets,
        "properties": request.properties,
        "created_at": utcnow(),
        "status": schedule.status_for(request.send_at),
        "send_at": request.send_at,
        "in_local_time": request.in_local_time,
    }, absent


def write(session: Session, rows: Sequence[dict[str, Any]], engine: TaskEngine) -> None:
    """Write checked triggers and their first jobs. The caller's one commit makes each
    trigger and its job durable together."""
    keyed = [r for r in rows if "idempotency" in r]
    if keyed:  # the answer to an Idempotency-Key is stored in the trigger's own commit
        rows = [{k: v for k, v in r.items() if k != "idempotency"} for r in rows]
    session.execute(_INSERT, list(rows))
    later = {}
    for r in rows:
        at = schedule.resolve_at(r["send_at"], r["in_local_time"])
        if at is not None:
            later[r["id"]] = at
    engine.enqueue_resolve(session, [r["id"] for r in rows], later)
    for r in keyed:
        claimed, body, headers = r["idempotency"]
        idempotency.complete(session, claimed, 200, body, headers, r["id"])
    for project_id in {r["project_id"] for r in rows}:
        if subscribed(session, project_id):
            webhooks.emit(session, project_id, [
                webhooks.trigger_event("trigger.accepted", r, audience_mode=r["audience_mode"])
                for r in rows if r["project_id"] == project_id
            ])  # fmt: skip


class TriggerFinished(ClarionError):
    status_code = 409
    code = "trigger_finished"


def cancel(session: Session, principal: Principal, trigger_id: str) -> Trigger:
    """Stop a trigger: every message not yet handed over ends as cancelled, and no step
    writes or sends more for it. Cancelling a cancelled trigger changes nothing; a completed
    or failed one answers 409 (nothing is left to stop)."""
    principal.require("trigger")
    trigger = get(session, principal, trigger_id)
    status = repository.locked_statuses(session, [trigger.id])[trigger.id]
    session.refresh(trigger)
    if status == "cancelled":
        return trigger
    if status in ("completed", "failed"):
        raise TriggerFinished(
            f"Trigger {trigger.id} {status} at {trigger.completed_at:%Y-%m-%d %H:%M:%S} UTC; "
            "there is nothing left to cancel.",
            status=status,
        )
    trigger.status = "cancelled"
    trigger.completed_at = utcnow()
    repository.cancel_queued(session, trigger.id, CANCELLED)
    if subscribed(session, trigger.project_id):
        row = {"id": trigger.id, "project_id": trigger.project_id,
               "campaign_id": trigger.campaign_id}  # fmt: skip
        webhooks.emit(session, trigger.project_id, [
            webhooks.trigger_event("trigger.cancelled", row, previous_status=status)])  # fmt: skip
    return trigger


def get(session: Session, principal: Principal, trigger_id: str) -> Trigger:
    trigger = session.get(Trigger, trigger_id)
    if trigger is None or trigger.project_id != principal.project_id:
        raise NotFound(f"No trigger {trigger_id!r} in this project.", code="trigger_not_found")
    return trigger
