"""Campaign definitions as accepted from files, the CLI and the management API."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from clarion.audience.rules import Audience
from clarion.campaigns.payload import TriggerProperty, check_keys
from clarion.delivery.controls import CampaignDelivery

Status = Literal["draft", "active", "paused", "archived"]
Channel = Literal["push", "in_app", "email", "webhook"]


class MessageTemplate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    title: str = Field(min_length=1, max_length=4096)
    body: str = Field(default="", max_length=16384)
    image_url: str = Field(default="", max_length=4096)
    landing_url: str = Field(default="", max_length=4096)


class EmailTemplate(BaseModel):
    """The e-mail channel: every part is a template; values in ``html`` are HTML-escaped."""

    model_config = ConfigDict(extra="forbid")

    to_property: str = Field(
        default="email",
        min_length=1,
        max_length=100,
        description="The user property that holds the recipient's address.",
    )
    subject: str = Field(min_length=1, max_length=998)
    text: str = Field(default="", max_length=100_000, description="The plain-text part.")
    html: str = Field(default="", max_length=200_000, description="The HTML part.")

    @model_validator(mode="after")
    def _a_body(self) -> EmailTemplate:
        if not self.text and not self.html:
            raise ValueError("an e-mail needs a text or an html body (or both)")
        return self


class WebhookTemplate(BaseModel):
    """The webhook channel: POST ``body`` (JSON; every string in it is a template) to ``url``,
    once per recipient, signed like every Clarion webhook."""

    model_config = ConfigDict(extra="forbid")

    url: str = Field(max_length=2048, description="https://... (checked by the SSRF guard).")
    headers: dict[str, str] = Field(default_factory=dict, max_length=20,
                                    description="Static headers.")  # fmt: skip
    body: dict[str, Any] = Field(description="The JSON to send; strings are templates.")


class AndroidOverrides(BaseModel):
    """FCM ``android`` settings for this campaign's pushes."""

    model_config = ConfigDict(extra="forbid")

    priority: Literal["normal", "high"] | None = None
    ttl_seconds: int | None = Field(default=None, ge=0, le=2_419_200)
    collapse_key: str | None = Field(default=None, max_length=100)
    channel_id: str | None = Field(default=None, max_length=100)
    sound: str | None = Field(default=None, max_length=100)
    color: str | None = Field(default=None, pattern=r"^#[0-9a-fA-F]{6}$")


class ApnsOverrides(BaseModel):
    """APNs settings for this campaign's pushes (direct, and through FCM's ``apns`` block)."""

    model_config = ConfigDict(extra="forbid")

    priority: Literal[5, 10] | None = None
    expiration_seconds: int | None = Field(default=None, ge=0, le=2_419_200)
    collapse_id: str | None = Field(default=None, max_length=64)
    sound: str | None = Field(default=None, max_length=100)
    badge: int | None = Field(default=None, ge=0)
    thread_id: str | None = Field(default=None, max_length=100)
    interruption_level: Literal["passive", "active", "time-sensitive", "critical"] | None = None


class PushOverrides(BaseModel):
    model_config = ConfigDict(extra="forbid")

    android: AndroidOverrides = Field(default_factory=AndroidOverrides)
    apns: ApnsOverrides = Field(default_factory=ApnsOverrides)


_SECTION = {"push": "message", "in_app": "message", "email": "email", "webhook": "webhook"}


class CampaignSpec(BaseModel):
    """What a campaign file (YAML/JSON) or a create/update request contains."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    channel: Channel = "push"
    type: Literal["api_triggered"] = "api_triggered"
    status: Status | None = Field(
        default=None, description="Omit to keep the current status (new campaigns: draft)."
    )
    message: MessageTemplate | None = Field(
        default=None, description="The push or in-app message (channels push and in_app)."
    )
    email: EmailTemplate | None = Field(default=None, description="Channel email.")
    webhook: WebhookTemplate | None = Field(default=None, description="Channel webhook.")
    push: PushOverrides | None = Field(
        default=None, description="Android and APNs settings (channel push)."
    )
    audience: Audience = Field(default_factory=Audience)
    send_rate: float | None = Field(
        default=None,
        gt=0,
        le=100_000,
        description="At most this many messages per second (a Clarion addition; omit: no limit).",
    )
    delivery: CampaignDelivery | None = Field(
        default=None,
        description="Delivery controls (a Clarion addition): kind, re-eligibility, frequency "
        "cap, quiet hours, urgent, throttle. Omit: transactional, every time, no throttle.",
    )
    trigger_schema: dict[str, TriggerProperty] | None = Field(
        default=None,
        max_length=100,
        description="The trigger properties this campaign takes, with their types; a trigger "
        "that breaks it is refused with 400 invalid_trigger_payload naming each bad key. Keys "
        "it does not declare are still accepted. Omit: no check.",
    )

    @model_validator(mode="after")
    def _schema_covers_the_rules(self) -> CampaignSpec:
        if self.trigger_schema is not None:
            check_keys(self.trigger_schema, self.audience.trigger_keys())
        return self

    @model_validator(mode="after")
    def _sections_match_the_channel(self) -> CampaignSpec:
        wanted = _SECTION[self.channel]
        if getattr(self, wanted) is None:
            raise ValueError(f"a {self.channel} campaign needs a `{wanted}` section")
        for section in ("message", "email", "webhook"):
            if section != wanted and getattr(self, section) is not None:
                raise ValueError(f"`{section}` does not apply to a {self.channel} campaign")
        if self.push is not None and self.channel != "push":
            raise ValueError(f"`push` overrides do not apply to a {self.channel} campaign")
        return self

    def definition(self) -> dict[str, object]:
        """The versioned part: everything but the lifecycle status, without the keys that are
        not set (so that versions saved before they existed compare equal)."""
        definition = self.model_dump(mode="json", exclude={"status"})
        for key in (
            "send_rate",
            "message",
            "email",
            "webhook",
            "push",
            "trigger_schema",
            "delivery",
        ):
            if definition.get(key) is None:
                definition.pop(key, None)
        return definition


class CampaignOut(BaseModel):
    id: str
    name: str
    channel: str
    type: str
    status: Status
    version: int
    message: MessageTemplate | None
    email: EmailTemplate | None = None
    webhook: WebhookTemplate | None = None
    push: PushOverrides | None = None
    audience: Audience
    trigger_schema: dict[str, TriggerProperty] | None = None
    delivery: CampaignDelivery | None = None
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
