"""Provider credentials over the management API (secret key). Write-only: answers say
whether a provider is configured and its public settings, never the secret."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from clarion.credentials import service
from clarion.credentials.service import ProviderOut
from clarion.web import SecretKey, state

router = APIRouter(prefix="/api/v1", tags=["providers"])


class FcmIn(BaseModel):
    service_account: dict[str, Any] = Field(
        description="The Firebase service-account JSON (Project settings > Service accounts)."
    )


class ProviderList(BaseModel):
    providers: list[ProviderOut]


@router.get("/providers", response_model=ProviderList, summary="Configured providers")
def list_providers(principal: SecretKey, request: Request) -> ProviderList:
    with state(request).db.read() as session:
        return ProviderList(providers=service.describe(session, principal.project_id))


@router.put("/providers/fcm", response_model=ProviderOut, summary="Set FCM credentials")
def put_fcm(body: FcmIn, principal: SecretKey, request: Request) -> ProviderOut:
    app = state(request)
    with app.db.write() as session:
        return service.set_fcm(session, app.box, principal.project_id, body.service_account)


@router.delete("/providers/{provider}", status_code=204, summary="Remove a provider's credentials")
def delete_provider(provider: str, principal: SecretKey, request: Request) -> None:
    with state(request).db.write() as session:
        service.remove(session, principal.project_id, provider)
