"""messages:send: a synchronous direct push to users or devices, without a campaign.

Each notification resolves to devices; each device gets a message row (written as
``sending`` before the hand-over, so a crash leaves a trace), one provider call carries the
batch, and the outcomes are recorded. One result per resolved device, and one failed result
for a target that resolves to nothing, saying why.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from clarion.delivery import repository as delivery
from clarion.delivery.pipeline import skip_reason
from clarion.delivery.providers.base import OutboundPush, clix_payload
from clarion.delivery.providers.registry import ProviderRegistry
from clarion.ids import uuid7
from clarion.messages.send_schemas import (
    AdditionalParams,
    DeliveryResult,
    PushNotification,
    SendTarget,
)
from clarion.storage.db import Database
from clarion.storage.models import Device, User, utcnow

SUCCEED = "DELIVERY_RESULT_STATUS_SUCCEED"
FAILED = "DELIVERY_RESULT_STATUS_FAILED"


@dataclass(slots=True)
class _Resolved:
    notification: PushNotification
    user: User | None
    device: Device | None
    reason: str | None


def _users(session: Session, project_id: str, target: SendTarget) -> list[User]:
    if target.kind == "device_id":
        return []
    column = User.project_user_id if target.kind == "project_user_id" else User.id
    stmt = select(User).where(User.project_id == project_id, column == target.value)
    return list(session.scalars(stmt))


def _resolve(session: Session, project_id: str, note: PushNotification) -> list[_Resolved]:
    target = note.target
    if target.kind == "device_id":
        device = session.get(Device, (project_id, target.value))
        if device is None:
            return [_Resolved(note, None, None, f"unknown_device: no device {target.value!r}")]
        return [_Resolved(note, session.get(User, device.user_id), device, _skip(device))]
    users = _users(session, project_id, target)
    if not users:
        return [_Resolved(note, None, None, f"unknown_user: no user {target.value!r}")]
    user = users[0]
    devices = list(session.scalars(select(Device).where(Device.user_id == user.id)))
    if not devices:
        return [_Resolved(note, user, None, skip_reason(None, None, None))]
    return [_Resolved(note, user, d, _skip(d)) for d in devices]


def _skip(device: Device) -> str | None:
    return skip_reason(device.id, device.push_token, device.is_push_permission_granted)


def send(
    db: Database, providers: ProviderRegistry, project_id: str, notes: list[PushNotification]
) -> list[DeliveryResult]:
    with db.read() as session:
        resolved = [r for note in notes for r in _resolve(session, project_id, note)]
    now = utcnow()
    ids = [uuid7() for _ in resolved]
    rows: list[dict[str, Any]] = []
    batch: list[OutboundPush] = []
    for mid, item in zip(ids, resolved, strict=True):
        if item.user is None:
            continue
        note = item.notification
        fields = {
            "title": note.title,
            "body": note.body,
            "image_url": note.image_url,
            "landing_url": note.landing_url,
        }
        rows.append(
            {
                "id": mid, "project_id": project_id, "trigger_id": None, "chunk_no": 0,
                "user_id": item.user.id, "project_user_id": item.user.project_user_id,
                "device_id": item.device.id if item.device else "", "channel": "push",
                "status": "failed" if item.reason else "sending", "reason": item.reason,
                "attempts": 0 if item.reason else 1, "possible_duplicate": False,
                "created_at": now, **fields,
            }
        )  # fmt: skip
        if item.reason is None and item.device is not None:
            push = OutboundPush(
                project_id=project_id,
                message_id=mid,
                device_id=item.device.id,
                platform=item.device.platform,
                push_token=item.device.push_token or "",
                title=note.title,
                body=note.body,
                image_url=note.image_url,
                landing_url=note.landing_url,
                data=clix_payload(mid, note.title, note.body, note.image_url, note.landing_url),
            )
            batch.append(push)
    with db.write() as session:
        delivery.add_messages(session, rows)
    provider = providers.push
    outcomes = {r.message_id: r for r in provider.send(batch)} if batch else {}
    pushes = {p.message_id: p for p in batch}
    dead = [(project_id, pushes[m].device_id, pushes[m].push_token, r.reason or "invalid token")
            for m, r in outcomes.items() if r.outcome == "invalid_recipient"]  # fmt: skip
    answered = utcnow()
    with db.write() as session:
        delivery.invalidate_tokens(session, dead)
        delivery.record_outcomes(  # each with its hand-over, which settles it
            session,
            [
                {
                    "mid": mid,
                    "status": "sent" if r.outcome == "sent" else "failed",
                    "reason": r.reason,
                    "provider": r.provider or provider.name,
                    "provider_message_id": r.provider_message_id,
                    "sent_at": answered if r.outcome == "sent" else None,
                    "attempt_outcome": r.outcome,
                    "response_code": r.response_code,
                    "attempted_at": answered,
                    "title": pushes[mid].title,
                    "body": pushes[mid].body,
                    "image_url": pushes[mid].image_url,
                    "landing_url": pushes[mid].landing_url,
                }
                for mid, r in outcomes.items()
            ],
        )
    results = []
    for mid, item in zip(ids, resolved, strict=True):
        result = outcomes.get(mid)
        ok = result is not None and result.outcome == "sent"
        reason = item.reason or (
            None if ok else f"{result.outcome}: {result.reason}" if result else None
        )
        results.append(
            DeliveryResult(
                message_id=mid,
                status=SUCCEED if ok else FAILED,
                additional_params=AdditionalParams(
                    device_id=item.device.id if item.device else "",
                    fcm_message_id=result.provider_message_id if result and ok else None,
                    failure_reason=reason,
                ),
            )
        )
    return results
