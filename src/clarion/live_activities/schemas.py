"""Shapes of the Live Activity endpoints."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from clarion.messages.send_schemas import DeliveryResult, SendTarget


class StartTokenIn(BaseModel):
    model_config = ConfigDict(extra="allow")

    attributes_type: str = Field(min_length=1, max_length=255)
    push_to_start_token: str = Field(min_length=1, max_length=4096)


class StartTokenOut(BaseModel):
    device_id: str
    attributes_type: str
    stored: bool = True


class Alert(BaseModel):
    title: str = ""
    body: str = ""


class LiveActivity(BaseModel):
    model_config = ConfigDict(extra="allow")

    target: SendTarget
    attributes_type: str = Field(min_length=1, max_length=255)
    attributes: dict[str, Any] = Field(default_factory=dict)
    content_state: dict[str, Any] = Field(default_factory=dict)
    alert: Alert | None = None


class StartIn(BaseModel):
    live_activities: list[LiveActivity] = Field(min_length=1, max_length=500)


class StartOut(BaseModel):
    request_id: str = Field(description="Clarion's id for the stored request.")
    delivery_results: list[DeliveryResult]
