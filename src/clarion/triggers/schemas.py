"""Response shapes for triggers."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel


class TriggerAccepted(BaseModel):
    trigger_id: str


class Counts(BaseModel):
    matched: int
    sent: int
    failed: int
    skipped: int
    pending: int


class TriggerOut(BaseModel):
    trigger_id: str
    campaign_id: str
    campaign_version: int
    status: Literal["accepted", "resolving", "sending", "completed", "failed"]
    audience_mode: Literal["broadcast", "targets", "default"]
    properties: dict[str, Any]
    counts: Counts
    excluded_targets: list[dict[str, str]]
    error: str | None
    created_at: datetime
    completed_at: datetime | None
