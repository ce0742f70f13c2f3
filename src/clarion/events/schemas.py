"""The events endpoint's shapes (the SDKs call the inner object ``properties``; Clix's
published spec calls it ``event_property``: both are accepted)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from clarion import limits

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

    @model_validator(mode="after")
    def _limits(self) -> EventsIn:
        for i, event in enumerate(self.events):
            for name in ("properties", "event_property"):
                value = getattr(event, name)
                if value is not None:
                    limits.check_properties(value, f"$.events[{i}].{name}")
        return self


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
