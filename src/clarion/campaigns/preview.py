"""Preview: what one message of a campaign looks like, before anything is sent.

Takes sample ``properties`` (as a trigger would send them) and either a real user/device of
the project or inline sample data; optionally the unsaved ``message`` being edited (it is
checked as a save would check it). Returns every rendered field, the assembled push and its
size, the variables each field uses and how often it renders, and the warnings.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from sqlalchemy import select
from sqlalchemy.orm import Session

from clarion.auth import service as auth
from clarion.campaigns import service
from clarion.campaigns.schemas import MessageTemplate
from clarion.delivery.context import DeviceView, template_context
from clarion.errors import InvalidRequest
from clarion.storage.models import Device, User
from clarion.templating.message import (
    PAYLOAD_LIMIT,
    MessageRejected,
    payload,
    payload_size,
)


class SampleUser(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str = Field(default="sample-user", description="Rendered as user.id.")
    properties: dict[str, Any] = Field(default_factory=dict)


class SampleDevice(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str = "sample-device"
    platform: str = "IOS"
    locale_region: str = ""
    locale_language: str = ""
    timezone: str = ""


class PreviewIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    properties: dict[str, Any] = Field(
        default_factory=dict, description="What a trigger would send: trigger.*"
    )
    project_user_id: str | None = Field(default=None, description="A real user of the project.")
    device_id: str | None = Field(default=None, description="A real device of the project.")
    user: SampleUser | None = Field(default=None, description="Inline sample user data.")
    device: SampleDevice | None = Field(default=None, description="Inline sample device data.")
    message: MessageTemplate | None = Field(
        default=None, description="Unsaved templates to preview instead of the saved ones."
    )

    @model_validator(mode="after")
    def _one_source_each(self) -> PreviewIn:
        if self.project_user_id is not None and self.user is not None:
            raise ValueError("give project_user_id (a real user) or user (sample data), not both")
        if self.device_id is not None and self.device is not None:
            raise ValueError("give device_id (a real device) or device (sample data), not both")
        return self


class FieldVariables(BaseModel):
    trigger_keys: list[str]
    namespaces: list[str]
    renders: Literal["once per trigger", "per recipient"]


class PreviewOut(BaseModel):
    campaign_id: str
    campaign_version: int | None = Field(description="None when previewing unsaved templates.")
    status: Literal["ok", "render_error", "invalid_url", "payload_too_large"]
    reason: str | None = None
    fields: dict[str, str] | None = Field(description="None when a template failed.")
    payload: dict[str, Any] | None
    payload_bytes: int | None
    payload_limit: int = PAYLOAD_LIMIT
    variables: dict[str, FieldVariables]
    warnings: list[str]


def preview(session: Session, project_id: str, campaign_id: str, body: PreviewIn) -> PreviewOut:
    campaign = service.get(session, project_id, campaign_id)
    if body.message is not None:
        plan = service.check_message(session, project_id, body.message)
        version: int | None = None
    else:
        plan = service.load_version(session, campaign.id, campaign.version).plan
        version = campaign.version
    renderer = plan.for_trigger(body.properties, auth.url_schemes(session, project_id))
    context = _context(session, project_id, body)
    variables = {
        a.name.removeprefix("message."): FieldVariables(
            trigger_keys=a.trigger_keys,
            namespaces=a.namespaces,
            renders="once per trigger" if a.trigger_only else "per recipient",
        )
        for a in plan.analyses
    }
    out = PreviewOut(
        campaign_id=campaign.id,
        campaign_version=version,
        status="ok",
        fields=None,
        payload=None,
        payload_bytes=None,
        variables=variables,
        warnings=plan.warnings,
    )
    try:
        out.fields = renderer.render_fields(context)
        out.payload = payload(out.fields)
        out.payload_bytes = payload_size(out.fields)
        renderer.check(out.fields)
    except MessageRejected as exc:
        out.status = exc.code  # type: ignore[assignment]
        out.reason = exc.reason
    return out


def _context(session: Session, project_id: str, body: PreviewIn) -> dict[str, Any]:
    user_id = body.user.id if body.user else "sample-user"
    properties = body.user.properties if body.user else {}
    if body.project_user_id is not None:
        user = session.scalars(
            select(User).where(
                User.project_id == project_id, User.project_user_id == body.project_user_id
            )
        ).first()
        if user is None:
            raise InvalidRequest(
                f"No user {body.project_user_id!r} in this project.", code="user_not_found"
            )
        user_id, properties = body.project_user_id, user.properties or {}
    device: Any = body.device or SampleDevice()
    if body.device_id is not None:
        device = session.get(Device, (project_id, body.device_id))
        if device is None:
            raise InvalidRequest(f"No device {body.device_id!r} in this project.",
                                 code="device_not_found")  # fmt: skip
    return template_context(body.properties, user_id, properties, DeviceView.of(device))
