"""Which provider serves which channel. Explicit, built once from settings."""

from __future__ import annotations

import ssl
from collections.abc import Callable, Mapping
from typing import Any

from clarion import cache
from clarion.config import Settings
from clarion.credentials import repository as credentials_repo
from clarion.credentials import service as credentials
from clarion.credentials.crypto import Box, load_key
from clarion.delivery.providers.apns import ApnsProvider
from clarion.delivery.providers.base import MessageProvider, Provider
from clarion.delivery.providers.breaker import Breaker
from clarion.delivery.providers.email import EmailProvider
from clarion.delivery.providers.fcm import FcmProvider
from clarion.delivery.providers.inapp import InAppProvider
from clarion.delivery.providers.router import PushRouter
from clarion.delivery.providers.sink import SinkProvider
from clarion.delivery.providers.webhook import WebhookChannelProvider
from clarion.storage.db import Database


class ProviderRegistry:
    """The push provider, and one provider per per-user channel (in_app, email, webhook)."""

    def __init__(self, push: Provider, channels: dict[str, MessageProvider] | None = None) -> None:
        self.push = push
        self._channels = channels or {}

    def for_channel(self, channel: str) -> MessageProvider:
        try:
            return self._channels[channel]
        except KeyError:
            raise LookupError(f"no provider is configured for channel {channel!r}") from None

    def close(self) -> None:
        for provider in [self.push, *self._channels.values()]:
            close = getattr(provider, "close", None)
            if close is not None:
                close()


def build_registry(settings: Settings, db: Database, box: Box | None = None) -> ProviderRegistry:
    box = box or Box(load_key(settings))

    def configured(project_id: str) -> set[str]:
        key = f"providers:{project_id}"
        cached = cache.projects.get(key)
        if isinstance(cached, set):
            return cached
        with db.read() as session:
            names = {r.provider for r in credentials_repo.list_for_project(session, project_id)}
        cache.projects.put(key, names)
        return names

    def secrets(provider: str) -> Callable[[str], Mapping[str, Any] | None]:
        def read(project_id: str) -> Mapping[str, Any] | None:
            with db.read() as session:
                return credentials.secret(session, box, project_id, provider)

        return read

    sink = SinkProvider(settings.resolved_outbox_path(), settings.sink_latency_ms)
    fcm = FcmProvider(settings.fcm_base_url, secrets("fcm"))
    verify: Any = True
    if settings.apns_ca_file is not None:
        verify = ssl.create_default_context(cafile=str(settings.apns_ca_file))
    apns = ApnsProvider(settings.apns_base_url, secrets("apns"), verify=verify)
    router = PushRouter(sink, Breaker(fcm), Breaker(apns), configured)

    def webhook_secret(project_id: str) -> str:
        with db.write() as session:
            return credentials.webhook_secret(session, box, project_id)

    channels: dict[str, MessageProvider] = {
        "in_app": InAppProvider(db),
        "email": EmailProvider(secrets("smtp"), settings.smtp_ca_file),
        "webhook": WebhookChannelProvider(webhook_secret, settings.allowed_networks()),
    }
    return ProviderRegistry(router, channels)
