"""Which provider serves which channel. Explicit, built once from settings."""

from __future__ import annotations

from clarion.config import Settings
from clarion.delivery.providers.base import Provider
from clarion.delivery.providers.sink import SinkProvider


class ProviderRegistry:
    def __init__(self, providers: dict[str, Provider]) -> None:
        self._providers = providers

    def for_channel(self, channel: str) -> Provider:
        try:
            return self._providers[channel]
        except KeyError:
            raise LookupError(f"no provider is configured for channel {channel!r}") from None


def build_registry(settings: Settings) -> ProviderRegistry:
    return ProviderRegistry(
        {"push": SinkProvider(settings.resolved_outbox_path(), settings.sink_latency_ms)}
    )
