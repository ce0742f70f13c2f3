"""Provider credentials over the management API (secret key). Write-only: answers say
whether a provider is configured and its public settings, never the secret."""

from __future__ import annotations

from typing import Any

from fastapi import Request
from pydantic import BaseModel, Field

from clarion.credentials import service
from clarion.credentials.service import ProviderOut
from clarion.web import AdminKey, ReadKey, api_router, state

router = api_router("providers")


class FcmIn(BaseModel):
    service_account: dict[str, Any] = Field(
        description="The Firebase service-account JSON (Project settings > Service accounts)."
    )


class ApnsIn(BaseModel):
    key: str = Field(description="The APNs auth key: the text of the .p8 file.")
    key_id: str = Field(description="The key's 10-character id.")
    team_id: str = Field(description="The Apple developer team id.")
    topic: str = Field(description="The app's bundle id.")


class SmtpIn(BaseModel):
    host: str = Field(description="The relay's name or address.")
    port: Any = Field(description="587 for STARTTLS, 465 for TLS, 25 for none.")
    security: str = Field(default="starttls", description="starttls | tls | none")
    username: str = Field(default="", description="Empty: no login.")
    password: str = Field(default="", description="Write-only: never shown again.")
    from_address: str = Field(description="The sender's address.")
    from_name: str = Field(default="", description="The sender's display name.")


class WebhookSecretIn(BaseModel):
    secret: str | None = Field(
        default=None, description="whsec_<base64>; omit to have a new one made."
    )


class WebhookSecretOut(ProviderOut):
    secret: str = Field(description="The webhook channel's signing secret; shown this once.")


class ProviderList(BaseModel):
    providers: list[ProviderOut]


@router.get("/providers", response_model=ProviderList, summary="Configured providers")
def list_providers(principal: ReadKey, request: Request) -> ProviderList:
    with state(request).db.read() as session:
        return ProviderList(providers=service.describe(session, principal.project_id))


@router.put("/providers/fcm", response_model=ProviderOut, summary="Set FCM credentials")
def put_fcm(body: FcmIn, principal: AdminKey, request: Request) -> ProviderOut:
    app = state(request)
    with app.db.write() as session:
        return service.set_fcm(session, app.box, principal.project_id, body.service_account)


@router.put("/providers/apns", response_model=ProviderOut, summary="Set APNs credentials")
def put_apns(body: ApnsIn, principal: AdminKey, request: Request) -> ProviderOut:
    app = state(request)
    with app.db.write() as session:
        return service.set_apns(session, app.box, principal.project_id, body.key,
                                body.key_id, body.team_id, body.topic)  # fmt: skip


@router.put("/providers/smtp", response_model=ProviderOut, summary="Set the SMTP relay")
def put_smtp(body: SmtpIn, principal: AdminKey, request: Request) -> ProviderOut:
    app = state(request)
    with app.db.write() as session:
        return service.set_smtp(session, app.box, principal.project_id, body.model_dump())


@router.put("/providers/webhook", response_model=WebhookSecretOut,
            summary="Set or rotate the webhook channel's signing secret")  # fmt: skip
def put_webhook(body: WebhookSecretIn, principal: AdminKey, request: Request) -> WebhookSecretOut:
    app = state(request)
    with app.db.write() as session:
        out, secret = service.set_webhook_secret(session, app.box, principal.project_id,
                                                 body.secret)  # fmt: skip
    return WebhookSecretOut(**out.model_dump(), secret=secret)


@router.delete("/providers/{provider}", status_code=204, summary="Remove a provider's credentials")
def delete_provider(provider: str, principal: AdminKey, request: Request) -> None:
    with state(request).db.write() as session:
        service.remove(session, principal.project_id, provider)
