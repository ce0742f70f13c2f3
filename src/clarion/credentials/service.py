"""Set, describe and read provider credentials. What is returned or logged is only the
public part (the FCM project id, the service account's e-mail); the secret part is sealed
before it is stored and opened only by the provider that sends."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

import orjson
from google.oauth2 import service_account
from pydantic import BaseModel
from sqlalchemy.orm import Session

from clarion import cache
from clarion.credentials import repository
from clarion.credentials.crypto import Box
from clarion.emails import EMAIL
from clarion.errors import InvalidRequest, NotFound

PROVIDERS = ("fcm", "apns", "smtp", "webhook")
SMTP_SECURITY = ("starttls", "tls", "none")
FCM_SCOPE = "https://www.googleapis.com/auth/firebase.messaging"


class ProviderOut(BaseModel):
    provider: str
    configured: bool
    settings: dict[str, Any]
    updated_at: datetime | None


def set_fcm(session: Session, box: Box, project_id: str, account: Any) -> ProviderOut:
    """``account``: the service-account JSON Firebase gives (an object, or its text)."""
    if isinstance(account, str | bytes):
        try:
            account = orjson.loads(account)
        except orjson.JSONDecodeError:
            raise _bad("the service account file is not JSON") from None
    if not isinstance(account, dict) or account.get("type") != "service_account":
        raise _bad('a Firebase service-account JSON has "type": "service_account"')
    for field in ("project_id", "private_key", "client_email"):
        if not isinstance(account.get(field), str) or not account[field]:
            raise _bad(f"the service account lacks {field!r}")
    try:
        service_account.Credentials.from_service_account_info(account, scopes=[FCM_SCOPE])  # type: ignore[no-untyped-call]
    except (ValueError, KeyError) as exc:
        raise _bad(f"the service account does not load: {type(exc).__name__}") from None
    public = {"fcm_project_id": account["project_id"], "client_email": account["client_email"]}
    row = repository.put(session, project_id, "fcm", box.seal(orjson.dumps(account)), public)
    cache.projects.clear()
    return _out(row.provider, row.settings, row.updated_at)


def set_apns(
    session: Session, box: Box, project_id: str, key: str, key_id: str, team_id: str, topic: str
) -> ProviderOut:
    """An APNs auth key (the .p8 text), its key id, the team id and the app's bundle id."""
    from clarion.delivery.providers.apns import provider_token

    for name, value in (("key_id", key_id), ("team_id", team_id)):
        if not (len(value) == 10 and value.isalnum() and value.isascii()):
            raise _bad(f"{name} is the 10-character id Apple shows (e.g. ABC123DEFG)")
    if not topic or " " in topic:
        raise _bad("topic is the app's bundle id (e.g. com.example.shop)")
    try:
        provider_token(key, key_id, team_id)
    except (ValueError, TypeError) as exc:
        raise _bad(f"the key does not load: {str(exc).splitlines()[0][:120]}") from None
    secret_part = orjson.dumps({"key": key, "key_id": key_id, "team_id": team_id, "topic": topic})
    public = {"key_id": key_id, "team_id": team_id, "topic": topic}
    row = repository.put(session, project_id, "apns", box.seal(secret_part), public)
    cache.projects.clear()
    return _out(row.provider, row.settings, row.updated_at)


def set_smtp(session: Session, box: Box, project_id: str, smtp: Mapping[str, Any]) -> ProviderOut:
    """An SMTP relay: host, port, security (starttls | tls | none), username and password
    (optional), from_address and from_name. The password is sealed; the rest is shown."""
    host, port, security = smtp.get("host"), smtp.get("port"), smtp.get("security", "starttls")
    if not isinstance(host, str) or not host or " " in host:
        raise _bad("host is the SMTP server's name or address")
    if not isinstance(port, int) or not 0 < port < 65536:
        raise _bad("port is a number from 1 to 65535 (587 for STARTTLS, 465 for TLS)")
    if security not in SMTP_SECURITY:
        raise _bad(f"security is one of {', '.join(SMTP_SECURITY)}")
    sender = smtp.get("from_address")
    if not isinstance(sender, str) or not EMAIL.fullmatch(sender):
        raise _bad("from_address is the sender's e-mail address")
    public = {
        "host": host, "port": port, "security": security,
        "username": smtp.get("username") or "", "from_address": sender,
        "from_name": smtp.get("from_name") or "",
    }  # fmt: skip
    secret_part = orjson.dumps({**public, "password": smtp.get("password") or ""})
    row = repository.put(session, project_id, "smtp", box.seal(secret_part), public)
    cache.projects.clear()
    return _out(row.provider, row.settings, row.updated_at)


def set_webhook_secret(
    session: Session, box: Box, project_id: str, secret: str | None = None
) -> tuple[ProviderOut, str]:
    """The secret that signs the webhook channel's requests: the one given (whsec_...), or a
    new one. Returned to the caller this once."""
    from clarion.webhooks import signing

    if secret is None:
        secret = signing.new_secret()
    elif not signing.valid_secret(secret):
        raise _bad("secret is whsec_ followed by base64 of 24 to 64 random bytes")
    row = repository.put(session, project_id, "webhook", box.seal(secret.encode()), {})
    cache.projects.clear()
    return _out(row.provider, row.settings, row.updated_at), secret


def webhook_secret(session: Session, box: Box, project_id: str) -> str:
    """The webhook channel's signing secret, made on first use."""
    row = repository.get(session, project_id, "webhook")
    if row is None:
        return set_webhook_secret(session, box, project_id)[1]
    return box.open(row.sealed).decode()


def describe(session: Session, project_id: str) -> list[ProviderOut]:
    rows = {r.provider: r for r in repository.list_for_project(session, project_id)}
    return [
        _out(name, rows[name].settings, rows[name].updated_at)
        if name in rows
        else ProviderOut(provider=name, configured=False, settings={}, updated_at=None)
        for name in PROVIDERS
    ]


def remove(session: Session, project_id: str, provider: str) -> None:
    if provider not in PROVIDERS:
        raise NotFound(f"No provider {provider!r}; known: {', '.join(PROVIDERS)}.",
                       code="provider_not_found")  # fmt: skip
    repository.remove(session, project_id, provider)
    cache.projects.clear()


def secret(session: Session, box: Box, project_id: str, provider: str) -> dict[str, Any] | None:
    """The opened credentials, for the provider that sends; None when not configured."""
    row = repository.get(session, project_id, provider)
    if row is None:
        return None
    opened: dict[str, Any] = orjson.loads(box.open(row.sealed))
    return opened


def _out(provider: str, settings: dict[str, Any], updated_at: datetime | None) -> ProviderOut:
    return ProviderOut(provider=provider, configured=True, settings=settings,
                       updated_at=updated_at)  # fmt: skip


def _bad(message: str) -> InvalidRequest:
    return InvalidRequest(message, code="invalid_provider_credentials")
