"""Webhook endpoints (create, list, remove) and the events they receive.

Events are written to the outbox (``webhook_deliveries``) in the same commit as the change
they report, so none is lost and none reports a change that did not happen; the dispatcher
sends them afterwards.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

import orjson
from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from clarion.credentials.crypto import Box
from clarion.errors import InvalidRequest, NotFound
from clarion.ids import uuid7
from clarion.storage.models import WebhookEndpoint, utcnow
from clarion.webhooks import netguard, repository, signing

EVENT_TYPES = (
    "PUSH_SENT",  # Clix-compatible payloads, for push messages
    "PUSH_FAILED",
    "MESSAGE_SENT",  # the same for the email, in-app and webhook channels
    "MESSAGE_FAILED",
    "trigger.accepted",
    "trigger.completed",
    "trigger.cancelled",
)
RESERVED_HEADERS = {"host", "content-type", "content-length", "user-agent"}


class EndpointOut(BaseModel):
    id: str
    url: str
    event_types: list[str] = Field(description="The events it receives; empty: every event.")
    headers: dict[str, str] = Field(description="Static headers sent with every delivery.")
    description: str
    created_at: datetime


class EndpointCreated(EndpointOut):
    secret: str = Field(
        description="The signing secret (whsec_...). Shown once: store it with the receiver."
    )


def _out(endpoint: WebhookEndpoint) -> EndpointOut:
    return EndpointOut(
        id=endpoint.id,
        url=endpoint.url,
        event_types=list(endpoint.event_types),
        headers=dict(endpoint.headers),
        description=endpoint.description,
        created_at=endpoint.created_at,
    )


def check_destination(url: str, allowed: Sequence[netguard.Network]) -> None:
    """Refuse a URL that is malformed or resolves to a non-public address (400)."""
    try:
        netguard.resolve(url, allowed)
    except netguard.UnsafeDestination as exc:
        raise InvalidRequest(f"url: {exc}", code="unsafe_webhook_url") from None


def create(
    session: Session,
    box: Box,
    project_id: str,
    *,
    url: str,
    event_types: Sequence[str],
    headers: Mapping[str, str],
    description: str,
    allowed: Sequence[netguard.Network],
) -> EndpointCreated:
    unknown = [e for e in event_types if e not in EVENT_TYPES]
    if unknown:
        raise InvalidRequest(
            f"event_types: unknown {', '.join(map(repr, unknown))}; "
            f"choose from {', '.join(EVENT_TYPES)} (or none for every event)",
            code="unknown_event_type",
        )
    reserved = sorted(h for h in headers if h.lower() in RESERVED_HEADERS
                      or h.lower().startswith("webhook-"))  # fmt: skip
    if reserved:
        raise InvalidRequest(
            f"headers: {', '.join(reserved)} are set by Clarion; remove them",
            code="reserved_header",
        )
    check_destination(url, allowed)
    secret = signing.new_secret()
    endpoint = WebhookEndpoint(
        id=uuid7(),
        project_id=project_id,
        url=url,
        event_types=list(dict.fromkeys(event_types)),
        headers=dict(headers),
        description=description,
        sealed_secret=box.seal(secret.encode()),
        created_at=utcnow(),
    )
    session.add(endpoint)
    session.flush()
    repository.forget(project_id)
    return EndpointCreated(**_out(endpoint).model_dump(), secret=secret)


def list_endpoints(session: Session, project_id: str) -> list[EndpointOut]:
    query = select(WebhookEndpoint).where(WebhookEndpoint.project_id == project_id)
    return [_out(e) for e in session.scalars(query.order_by(WebhookEndpoint.created_at))]


def get(session: Session, project_id: str, endpoint_id: str) -> WebhookEndpoint:
    endpoint = session.get(WebhookEndpoint, endpoint_id)
    if endpoint is None or endpoint.project_id != project_id:
        raise NotFound(f"No webhook endpoint {endpoint_id!r} in this project.",
                       code="webhook_not_found")  # fmt: skip
    return endpoint


def remove(session: Session, project_id: str, endpoint_id: str) -> None:
    session.delete(get(session, project_id, endpoint_id))
    session.flush()
    repository.forget(project_id)


# -- events ------------------------------------------------------------------------------
def emit(session: Session, project_id: str, events: Iterable[dict[str, Any]]) -> int:
    """Queue each event (a payload with ``event_type``) for every endpoint of the project
    that wants it; nothing when the project has none. Returns how many were queued."""
    endpoints = repository.subscribed(session, project_id)
    if not endpoints:
        return 0
    now = utcnow()
    rows: list[dict[str, Any]] = []
    for event in events:
        body = orjson.dumps(event).decode()
        kind = event["event_type"]
        for endpoint_id, wanted in endpoints:
            if not wanted or kind in wanted:
                rows.append({
                    "id": "msg_" + uuid7().replace("-", ""), "endpoint_id": endpoint_id,
                    "project_id": project_id, "event_type": kind, "payload": body,
                    "status": "pending", "attempts": 0, "next_attempt_at": now, "created_at": now,
                })  # fmt: skip
    repository.add_deliveries(session, rows)
    return len(rows)


def _stamp() -> str:
    return utcnow().isoformat().replace("+00:00", "Z")


def message_event(message: Mapping[str, Any], outcome: Mapping[str, Any]) -> dict[str, Any]:
    """PUSH_SENT / PUSH_FAILED in the Clix shape (other channels: MESSAGE_*), with Clarion's
    additions (trigger, campaign, user, provider, reason) alongside."""
    sent = outcome["status"] == "sent"
    channel = message.get("channel", "push")
    prefix = "PUSH" if channel == "push" else "MESSAGE"
    event: dict[str, Any] = {
        "project_id": message["project_id"],
        "event_type": f"{prefix}_{'SENT' if sent else 'FAILED'}",
        "timestamp": _stamp(),
        "message_id": message["message_id"],
        "device_id": message.get("device_id") or None,
        "platform": message.get("platform") or None,
        "notification": {
            "title": outcome.get("title") or "",
            "body": outcome.get("body") or "",
            "image_url": outcome.get("image_url") or None,
            "landing_url": outcome.get("landing_url") or None,
        },
        "channel": channel,
        "trigger_id": message.get("trigger_id"),
        "campaign_id": message.get("campaign_id"),
        "project_user_id": message.get("project_user_id"),
        "provider": outcome.get("provider"),
    }
    if not sent:
        event["reason"] = outcome.get("reason")
    return event


def trigger_event(kind: str, trigger: Mapping[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "project_id": trigger["project_id"],
        "event_type": kind,
        "timestamp": _stamp(),
        "trigger_id": trigger["id"],
        "campaign_id": trigger["campaign_id"],
        **extra,
    }
