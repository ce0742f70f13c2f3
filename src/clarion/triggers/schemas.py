"""Response shapes for triggers."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field


class Target(BaseModel):
    """Exactly one of the two ids."""

    project_user_id: str | None = None
    device_id: str | None = None


class TargetIn(Target):
    properties: dict[str, Any] | None = Field(
        default=None,
        description="Clarion: this recipient's own properties, merged over the top-level ones "
        "for its templates (audience rules still compare the top-level values).",
    )


class TriggerAudience(BaseModel):
    broadcast: bool | None = Field(
        default=None, description="true: everyone the campaign's rules admit; targets ignored."
    )
    targets: list[TargetIn] | None = Field(
        default=None, description="Only these users or devices, still filtered by the rules."
    )


class TriggerBody(BaseModel):
    """The ``:trigger`` body, for the API document. The endpoint checks the raw JSON itself,
    so that every refusal names its JSON path; an empty body means the campaign's audience."""

    audience: TriggerAudience | None = None
    properties: dict[str, Any] = Field(
        default_factory=dict, description="Each key is trigger.<key> in rules and templates."
    )
    send_at: datetime | None = Field(
        default=None,
        description="Clarion: deliver at this instant (ISO-8601 with an offset), up to 30 "
        "days ahead; the trigger is 'scheduled' until then.",
    )
    in_local_time: bool | None = Field(
        default=None,
        description="Clarion: send at send_at's wall-clock time in each device's timezone.",
    )


class TriggerAccepted(BaseModel):
    trigger_id: str


class Counts(BaseModel):
    matched: int
    sent: int
    failed: int
    skipped: int
    pending: int
    cancelled: int = Field(default=0, description="Not handed over: the trigger was cancelled.")


class TriggerOut(BaseModel):
    trigger_id: str
    campaign_id: str
    campaign_version: int
    status: Literal[
        "scheduled", "accepted", "resolving", "sending", "completed", "failed", "cancelled"
    ]
    audience_mode: Literal["broadcast", "targets", "default"]
    properties: dict[str, Any]
    counts: Counts
    excluded_targets: list[dict[str, str]]
    error: str | None
    created_at: datetime
    completed_at: datetime | None
    send_at: datetime | None = Field(
        default=None, description="Clarion: when it was scheduled to go (the request's send_at)."
    )
    in_local_time: bool = Field(
        default=False, description="send_at's wall-clock time in each device's timezone."
    )
    eta: datetime | None = Field(
        default=None,
        description="Clarion: for a throttled campaign (throttle_per_minute or send_rate) "
        "with messages still queued, when the last of them should go at that rate.",
    )


class ExplainStep(BaseModel):
    title: str
    ok: bool | None = Field(description="true passed, false failed, null informational.")
    detail: str


class ExplainOut(BaseModel):
    """``GET /triggers/{id}/explain``: why one user or device was (not) reached."""

    trigger_id: str
    campaign_id: str
    target: Target
    reached: bool = Field(description="A message of this trigger was sent to the target.")
    first_failure: str | None = Field(
        description="The first failed step, title and detail: where to look first."
    )
    steps: list[ExplainStep]
