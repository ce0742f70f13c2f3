"""Webhook endpoints over the management API (secret key): create (the signing secret is
shown once), list, remove, and each endpoint's deliveries with every attempt."""

from __future__ import annotations

from datetime import datetime

from fastapi import Query, Request
from pydantic import BaseModel, Field

from clarion.web import AdminKey, ReadKey, api_router, state
from clarion.webhooks import repository, service
from clarion.webhooks.service import EndpointCreated, EndpointOut

router = api_router("webhooks")


class EndpointIn(BaseModel):
    url: str = Field(max_length=2048, description="Where events are POSTed (https://...).")
    event_types: list[str] = Field(
        default_factory=list,
        max_length=len(service.EVENT_TYPES),
        description="Which events: " + ", ".join(service.EVENT_TYPES) + ". Empty: all.",
    )
    headers: dict[str, str] = Field(
        default_factory=dict, max_length=20, description="Static headers for every delivery."
    )
    description: str = Field(default="", max_length=200)


class EndpointList(BaseModel):
    endpoints: list[EndpointOut]


class AttemptOut(BaseModel):
    attempt: int
    at: datetime
    status_code: int | None = Field(description="The receiver's answer; null: none (see error).")
    error: str | None
    duration_ms: int


class DeliveryOut(BaseModel):
    id: str = Field(description="The webhook-id header: the same on every retry.")
    event_type: str
    status: str = Field(description="pending | delivered | failed (retries given up).")
    attempts: list[AttemptOut]
    next_attempt_at: datetime | None
    created_at: datetime
    delivered_at: datetime | None
    payload: str = Field(description="The exact body that was signed and sent.")


class DeliveryList(BaseModel):
    deliveries: list[DeliveryOut]


@router.post("/webhooks", response_model=EndpointCreated, status_code=201,
             summary="Add a webhook endpoint")  # fmt: skip
def create(body: EndpointIn, principal: AdminKey, request: Request) -> EndpointCreated:
    app = state(request)
    with app.db.write() as session:
        return service.create(
            session,
            app.box,
            principal.project_id,
            url=body.url,
            event_types=body.event_types,
            headers=body.headers,
            description=body.description,
            allowed=app.settings.allowed_networks(),
        )


@router.get("/webhooks", response_model=EndpointList, summary="Webhook endpoints")
def list_endpoints(principal: ReadKey, request: Request) -> EndpointList:
    with state(request).db.read() as session:
        return EndpointList(endpoints=service.list_endpoints(session, principal.project_id))


@router.delete("/webhooks/{endpoint_id}", status_code=204, summary="Remove a webhook endpoint")
def remove(endpoint_id: str, principal: AdminKey, request: Request) -> None:
    with state(request).db.write() as session:
        service.remove(session, principal.project_id, endpoint_id)


@router.get("/webhooks/{endpoint_id}/deliveries", response_model=DeliveryList,
            summary="An endpoint's deliveries, newest first, with every attempt")  # fmt: skip
def deliveries(
    endpoint_id: str,
    principal: ReadKey,
    request: Request,
    limit: int = Query(50, ge=1, le=500),
    before: datetime | None = Query(None, description="Only deliveries created before this."),
) -> DeliveryList:
    with state(request).db.read() as session:
        service.get(session, principal.project_id, endpoint_id)
        found = repository.deliveries(session, endpoint_id, limit, before)
        attempts = repository.attempts_of(session, [d.id for d in found])
        return DeliveryList(
            deliveries=[
                DeliveryOut(
                    id=d.id,
                    event_type=d.event_type,
                    status=d.status,
                    attempts=[
                        AttemptOut(
                            attempt=a.attempt,
                            at=a.at,
                            status_code=a.status_code,
                            error=a.error,
                            duration_ms=a.duration_ms,
                        )
                        for a in attempts[d.id]
                    ],
                    next_attempt_at=d.next_attempt_at if d.status == "pending" else None,
                    created_at=d.created_at,
                    delivered_at=d.delivered_at,
                    payload=d.payload,
                )
                for d in found
            ]
        )
