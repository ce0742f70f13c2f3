"""What a dry run answers."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field


class Reach(BaseModel):
    users: int = Field(description="Matching users.")
    devices: int = Field(description="Their matching devices.")
    messages: int = Field(description="Message rows a trigger would write (a user without a "
                          "device counts once, skipped).")  # fmt: skip
    reachable: int = Field(description="Messages that would be handed to a provider.")
    no_device: int
    no_push_token: int
    push_permission_off: int


class ConditionReach(BaseModel):
    path: str
    condition: str
    users: int = Field(description="Users this condition admits on its own.")
    devices: int


class RenderedMessage(BaseModel):
    title: str
    body: str
    image_url: str
    landing_url: str


class SampleRecipient(BaseModel):
    project_user_id: str | None
    device_id: str | None
    status: Literal["would_send", "skipped", "render_error", "invalid_url", "payload_too_large"]
    reason: str | None = None
    message: RenderedMessage | None = None


class ExcludedTarget(BaseModel):
    project_user_id: str | None = None
    device_id: str | None = None
    reason: Literal[
        "unknown_user", "unknown_device", "segment_mismatch", "no_device", "no_push_token",
        "push_permission_off",
    ]  # fmt: skip
    detail: str
    failing_conditions: list[str] = Field(default_factory=list)


class DryRunOut(BaseModel):
    campaign_id: str
    campaign_version: int
    campaign_status: str
    audience_mode: Literal["broadcast", "targets", "default"]
    audience: str = Field(description="The rules in readable form.")
    reach: Reach
    conditions: list[ConditionReach]
    sample: list[SampleRecipient]
    excluded_targets: list[ExcludedTarget]
    warnings: list[str]
