"""Message log response shapes."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from clarion.storage.models import Message


class MessageOut(BaseModel):
    message_id: str
    project_user_id: str | None
    user_id: str
    device_id: str | None
    channel: str
    status: str
    reason: str | None
    title: str | None
    body: str | None
    image_url: str | None
    landing_url: str | None
    provider: str | None
    provider_message_id: str | None
    attempts: int
    possible_duplicate: bool
    created_at: datetime
    sent_at: datetime | None
    not_before: datetime | None = Field(
        default=None, description="Clarion: held until then (its device's local send time)."
    )

    @classmethod
    def from_row(cls, m: Message) -> MessageOut:
        return cls(
            message_id=m.id,
            project_user_id=m.project_user_id,
            user_id=m.user_id,
            device_id=m.device_id or None,
            channel=m.channel,
            status=m.status,
            reason=m.reason,
            title=m.title,
            body=m.body,
            image_url=m.image_url,
            landing_url=m.landing_url,
            provider=m.provider,
            provider_message_id=m.provider_message_id,
            attempts=m.attempts,
            possible_duplicate=m.possible_duplicate,
            created_at=m.created_at,
            sent_at=m.sent_at,
            not_before=m.not_before,
        )


class MessageList(BaseModel):
    messages: list[MessageOut]
    next_cursor: str | None
