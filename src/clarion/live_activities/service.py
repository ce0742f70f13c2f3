"""Store push-to-start tokens and start requests. Delivering a Live Activity needs APNs
(the real-delivery issue); until then each start request is stored and every result says
plainly that nothing was delivered."""

from __future__ import annotations

from sqlalchemy.orm import Session

from clarion.ids import uuid7
from clarion.live_activities.schemas import LiveActivity, StartTokenIn
from clarion.messages.send_schemas import AdditionalParams, DeliveryResult
from clarion.storage.models import LiveActivityRequest, LiveActivityToken, utcnow
from clarion.users import service as users

NOT_DELIVERED = (
    "not_delivered: Clarion stores Live Activity start requests (request {rid}) but does not "
    "deliver them yet; nothing was sent"
)


def store_token(session: Session, project_id: str, device_id: str, body: StartTokenIn) -> None:
    users.device_user(session, project_id, device_id)  # 404 for an unknown device
    row = session.get(LiveActivityToken, (project_id, device_id, body.attributes_type))
    if row is None:
        row = LiveActivityToken(
            project_id=project_id, device_id=device_id, attributes_type=body.attributes_type
        )
        session.add(row)
    row.token = body.push_to_start_token
    row.updated_at = utcnow()
    session.flush()


def start(
    session: Session, project_id: str, activities: list[LiveActivity]
) -> tuple[str, list[DeliveryResult]]:
    rid = uuid7()
    session.add(
        LiveActivityRequest(
            id=rid,
            project_id=project_id,
            request={"live_activities": [a.model_dump(mode="json") for a in activities]},
            status="stored",
        )
    )
    session.flush()
    results = [
        DeliveryResult(
            message_id=uuid7(),
            status="DELIVERY_RESULT_STATUS_FAILED",
            additional_params=AdditionalParams(
                device_id=a.target.device_id or "",
                failure_reason=NOT_DELIVERED.format(rid=rid),
            ),
        )
        for a in activities
    ]
    return rid, results
