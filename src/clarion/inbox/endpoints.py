"""The inbox over the API. Public keys may call it (the app reads its own inbox): the device
id names the user whose inbox it is, as everywhere in the SDK endpoints."""

from __future__ import annotations

from datetime import datetime

from fastapi import Query, Request
from pydantic import BaseModel, Field

from clarion.errors import NotFound
from clarion.inbox import repository
from clarion.storage.models import InboxMessage, utcnow
from clarion.users.service import device_user
from clarion.web import SdkKey, api_router, state

router = api_router("inbox")


class InboxItem(BaseModel):
    id: str = Field(description="The message id (as in the message log).")
    title: str
    body: str
    image_url: str | None
    landing_url: str | None
    created_at: datetime
    read_at: datetime | None


class InboxPage(BaseModel):
    messages: list[InboxItem] = Field(description="Newest first.")
    unread: int = Field(description="Unread messages in the whole inbox.")
    next_before: datetime | None = Field(
        description="Pass as `before` for the next page; null on the last page."
    )


class MarkedAll(BaseModel):
    marked: int


def _item(m: InboxMessage) -> InboxItem:
    return InboxItem(id=m.id, title=m.title, body=m.body, image_url=m.image_url or None,
                     landing_url=m.landing_url or None, created_at=m.created_at,
                     read_at=m.read_at)  # fmt: skip


@router.get("/devices/{device_id}/inbox", response_model=InboxPage,
            summary="The in-app inbox of the device's user")  # fmt: skip
def inbox(
    device_id: str,
    principal: SdkKey,
    request: Request,
    limit: int = Query(50, ge=1, le=200),
    before: datetime | None = Query(None, description="Only messages created before this."),
    unread_only: bool = Query(False),
) -> InboxPage:
    with state(request).db.read() as session:
        _, user = device_user(session, principal.project_id, device_id)
        found = repository.page(session, principal.project_id, user.id, limit, before,
                                unread_only)  # fmt: skip
        unread = repository.unread(session, principal.project_id, user.id)
    last = found[-1].created_at if len(found) == limit else None
    return InboxPage(messages=[_item(m) for m in found], unread=unread, next_before=last)


@router.post("/devices/{device_id}/inbox/{message_id}:read", response_model=InboxItem,
             summary="Mark one inbox message read")  # fmt: skip
def mark_read(device_id: str, message_id: str, principal: SdkKey, request: Request) -> InboxItem:
    with state(request).db.write() as session:
        _, user = device_user(session, principal.project_id, device_id)
        message = repository.get(session, principal.project_id, message_id)
        if message is None or message.user_id != user.id:
            raise NotFound(f"No message {message_id!r} in this device's inbox.",
                           code="inbox_message_not_found")  # fmt: skip
        if message.read_at is None:  # marking twice keeps the first time
            message.read_at = utcnow()
            session.flush()
        return _item(message)


@router.post("/devices/{device_id}/inbox:read-all", response_model=MarkedAll,
             summary="Mark the whole inbox read")  # fmt: skip
def mark_all_read(device_id: str, principal: SdkKey, request: Request) -> MarkedAll:
    with state(request).db.write() as session:
        _, user = device_user(session, principal.project_id, device_id)
        return MarkedAll(marked=repository.mark_all_read(session, principal.project_id, user.id))
