"""POST /api/v1/events (SDK ingestion: public or secret key)."""

from __future__ import annotations

from fastapi import Request

from clarion.events import service
from clarion.events.schemas import EventsIn, EventsOut
from clarion.web import SdkKey, api_router, state

router = api_router("sdk")


@router.post("/events", response_model=EventsOut, summary="Record SDK events")
def record_events(body: EventsIn, principal: SdkKey, request: Request) -> EventsOut:
    with state(request).db.write() as session:
        return EventsOut(events=service.record(session, principal.project_id, body.events))
