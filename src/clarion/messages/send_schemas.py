"""POST /api/v1/messages:send shapes (Clix's direct push, no campaign)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

TARGET_KEYS = ("project_user_id", "device_id", "user_id")


class SendTarget(BaseModel):
    model_config = ConfigDict(extra="forbid")

    project_user_id: str | None = Field(default=None, min_length=1, max_length=255)
    device_id: str | None = Field(default=None, min_length=1, max_length=255)
    user_id: str | None = Field(
        default=None, min_length=1, max_length=36, description="Clarion's user id."
    )

    @model_validator(mode="after")
    def _exactly_one(self) -> SendTarget:
        given = [k for k in TARGET_KEYS if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(
                "a target names exactly one of project_user_id, device_id or user_id "
                f"({len(given)} given)"
            )
        return self

    @property
    def kind(self) -> str:
        return next(k for k in TARGET_KEYS if getattr(self, k) is not None)

    @property
    def value(self) -> str:
        return str(getattr(self, self.kind))


class PushNotification(BaseModel):
    model_config = ConfigDict(extra="forbid")

    target: SendTarget
    title: str = Field(min_length=1, max_length=4096)
    body: str = Field(default="", max_length=16384)
    image_url: str = Field(default="", max_length=4096)
    landing_url: str = Field(default="", max_length=4096)


class SendIn(BaseModel):
    push_notifications: list[PushNotification] = Field(min_length=1)


class AdditionalParams(BaseModel):
    device_id: str
    fcm_message_id: str | None = None
    failure_reason: str | None = None


class DeliveryResult(BaseModel):
    message_id: str
    status: Literal["DELIVERY_RESULT_STATUS_SUCCEED", "DELIVERY_RESULT_STATUS_FAILED"]
    additional_params: AdditionalParams


class SendOut(BaseModel):
    delivery_results: list[DeliveryResult]
