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


class ApnsIn(BaseModel):
    key: str = Field(description="The APNs auth key: the text of the .p8 file.")
    key_id: str = Field(description="The key's 10-character id.")
    team_id: str = Field(description="The Apple developer team id.")
    topic: str = Field(description="The app's bundle id.")


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


@router.put("/providers/apns", response_model=ProviderOut, summary="Set APNs credentials")
def put_apns(body: ApnsIn, principal: SecretKey, request: Request) -> ProviderOut:
    app = state(request)
    with app.db.write() as session:
        return service.set_apns(session, app.box, principal.project_id, body.key,
                                body.key_id, body.team_id, body.topic)  # fmt: skip


@router.delete("/providers/{provider}", status_code=204, summary="Remove a provider's credentials")
def delete_provider(provider: str, principal: SecretKey, request: Request) -> None:
    with state(request).db.write() as session:
        service.remove(session, principal.project_id, provider)
