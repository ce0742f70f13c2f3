"""POST /api/v1/messages:send (secret key)."""

from __future__ import annotations

from fastapi import APIRouter, Request

from clarion.errors import InvalidRequest
from clarion.messages import send
from clarion.messages.send_schemas import SendIn, SendOut
from clarion.web import SecretKey, state

router = APIRouter(prefix="/api/v1", tags=["messages"])


class BatchTooLarge(InvalidRequest):
    code = "too_many_notifications"


@router.post("/messages:send", response_model=SendOut, summary="Send pushes directly")
def send_messages(body: SendIn, principal: SecretKey, request: Request) -> SendOut:
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
