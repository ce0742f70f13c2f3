"""The events endpoint's shapes (the SDKs call the inner object ``properties``; Clix's
published spec calls it ``event_property``: both are accepted)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

MAX_EVENTS = 100


class EventIn(BaseModel):
    model_config = ConfigDict(extra="allow")

    device_id: str = Field(min_length=1, max_length=255)
    name: str = Field(min_length=1, max_length=255)
    source_type: str = Field(default="", max_length=64)
    properties: dict[str, Any] | None = None
    event_property: dict[str, Any] | None = None


class EventsIn(BaseModel):
    events: list[EventIn] = Field(min_length=1, max_length=MAX_EVENTS)


class EventOut(BaseModel):
    id: str
    user_id: str
    device_id: str
    name: str
    source_type: str
    properties: dict[str, Any] = Field(
        description="custom_properties, and message_id / user_journey_id / "
        "user_journey_node_id when the event concerns a message."
    )
    created_at: datetime


class EventsOut(BaseModel):
    events: list[EventOut]
