"""POST /api/v1/messages:send (secret key)."""

from __future__ import annotations

from datetime import datetime

from fastapi import Request
from pydantic import BaseModel

from clarion.delivery import repository as delivery
from clarion.errors import InvalidRequest, NotFound
from clarion.messages import send
from clarion.messages.send_schemas import SendIn, SendOut
from clarion.storage.models import Message
from clarion.web import ReadKey, TriggerKey, api_router, state

router = api_router("messages")


class BatchTooLarge(InvalidRequest):
    code = "too_many_notifications"


class AttemptOut(BaseModel):
    attempt: int
    at: datetime
    provider: str
    outcome: str
    response_code: str | None
    reason: str | None


class AttemptList(BaseModel):
    message_id: str
    attempts: list[AttemptOut]


@router.get(
    "/messages/{message_id}/attempts",
    response_model=AttemptList,
    summary="Every hand-over of one message to a provider",
)
def message_attempts(message_id: str, principal: ReadKey, request: Request) -> AttemptList:
    with state(request).db.read() as session:
        message = session.get(Message, message_id)
        if message is None or message.project_id != principal.project_id:
            raise NotFound(f"No message {message_id!r} in this project.",
                           code="message_not_found")  # fmt: skip
        rows = delivery.attempts(session, message_id)
    return AttemptList(
        message_id=message_id,
        attempts=[AttemptOut.model_validate(r, from_attributes=True) for r in rows],
    )  # fmt: skip


@router.post("/messages:send", response_model=SendOut, summary="Send pushes directly")
def send_messages(body: SendIn, principal: TriggerKey, request: Request) -> SendOut:
    app = state(request)
    limit = app.settings.max_send_batch
    if len(body.push_notifications) > limit:
        raise BatchTooLarge(
            f"$.push_notifications has {len(body.push_notifications)} entries; at most {limit} "
            "are allowed per call (CLARION_MAX_SEND_BATCH). Split the call.",
            path="$.push_notifications",
            limit=limit,
        )
    results = send.send(app.db, app.providers, principal.project_id, body.push_notifications)
    return SendOut(delivery_results=results)
