"""Campaign definitions as accepted from files, the CLI and the management API."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from clarion.audience.rules import Audience

Status = Literal["draft", "active", "paused", "archived"]


class MessageTemplate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    title: str = Field(min_length=1, max_length=4096)
    body: str = Field(default="", max_length=16384)
    image_url: str = Field(default="", max_length=4096)
    landing_url: str = Field(default="", max_length=4096)


class CampaignSpec(BaseModel):
    """What a campaign file (YAML/JSON) or a create/update request contains."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    channel: Literal["push"] = "push"
    type: Literal["api_triggered"] = "api_triggered"
    status: Status | None = Field(
        default=None, description="Omit to keep the current status (new campaigns: draft)."
    )
    message: MessageTemplate
    audience: Audience = Field(default_factory=Audience)
    send_rate: float | None = Field(
        default=None,
        gt=0,
        le=100_000,
        description="At most this many messages per second (a Clarion addition; omit: no limit).",
    )

    def definition(self) -> dict[str, object]:
        """The versioned part: everything but the lifecycle status (and no ``send_rate`` key
        when it is not set, so that versions saved before it existed compare equal)."""
        definition = self.model_dump(mode="json", exclude={"status"})
        if definition.get("send_rate") is None:
            definition.pop("send_rate", None)
        return definition


class CampaignOut(BaseModel):
    id: str
    name: str
    channel: str
    type: str
    status: Status
    version: int
    message: MessageTemplate
    audience: Audience
    trigger_keys: list[str] = Field(description="trigger.* keys the audience rules need.")
    template_keys: list[str] = Field(
        default_factory=list, description="trigger.* keys the message templates use."
    )
    warnings: list[str] = Field(
        default_factory=list,
        description="What may surprise at send time: a trigger.* output without a default "
        "(renders empty when absent), a title that can render empty.",
    )
    created_at: datetime
    updated_at: datetime


class CampaignList(BaseModel):
    campaigns: list[CampaignOut]


class VersionOut(BaseModel):
    version: int
    definition: dict[str, object]
    created_at: datetime


class VersionList(BaseModel):
    versions: list[VersionOut]
