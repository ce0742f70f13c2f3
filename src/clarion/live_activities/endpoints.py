"""live-activities:start (secret key) and live-activity-start-tokens (SDK)."""

from __future__ import annotations

from fastapi import Request

from clarion.live_activities import service
from clarion.live_activities.schemas import StartIn, StartOut, StartTokenIn, StartTokenOut
from clarion.web import SdkKey, TriggerKey, api_router, state

router = api_router("live activities")


@router.post(
    "/devices/{device_id}/live-activity-start-tokens",
    response_model=StartTokenOut,
    summary="Store a Live Activity push-to-start token (SDK)",
)
def store_token(
    device_id: str, body: StartTokenIn, principal: SdkKey, request: Request
) -> StartTokenOut:
    with state(request).db.write() as session:
        service.store_token(session, principal.project_id, device_id, body)
    return StartTokenOut(device_id=device_id, attributes_type=body.attributes_type)


@router.post(
    "/live-activities:start",
    response_model=StartOut,
    summary="Start Live Activities (stored; delivery is not implemented yet)",
)
def start(body: StartIn, principal: TriggerKey, request: Request) -> StartOut:
    with state(request).db.write() as session:
        rid, results = service.start(session, principal.project_id, body.live_activities)
    return StartOut(request_id=rid, delivery_results=results)
