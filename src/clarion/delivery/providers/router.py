"""The push channel: each message goes to the provider its project has credentials for —
APNs for an iOS device when the project has APNs credentials, otherwise FCM (which reaches
iOS through Apple too) — or to the development sink when it has none."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from clarion.delivery.providers.base import OutboundPush, Provider, SendResult


class PushRouter:
    name = "push"

    def __init__(
        self,
        sink: Provider,
        fcm: Provider,
        apns: Provider,
        configured: Callable[[str], set[str]],
    ) -> None:
        self.providers = {"sink": sink, "fcm": fcm, "apns": apns}
        self.configured = configured  # project id -> the providers it has credentials for

    def send(self, batch: Sequence[OutboundPush]) -> list[SendResult]:
        routes: dict[str, list[OutboundPush]] = {}
        # Per project and platform: a broadcast's batch is one project's, on two platforms.
        chosen: dict[tuple[str, str], str] = {}
        for message in batch:
            key = (message.project_id, message.platform)
            route = chosen.get(key)
            if route is None:
                route = chosen[key] = self.route(message)
            routes.setdefault(route, []).append(message)
        results: dict[str, SendResult] = {}
        for route, messages in routes.items():
            for result in self.providers[route].send(messages):
                results[result.message_id] = result
        return [results[m.message_id] for m in batch]

    def route(self, message: OutboundPush) -> str:
        has = self.configured(message.project_id)
        if message.platform.upper() == "IOS" and "apns" in has:
            return "apns"
        return "fcm" if "fcm" in has else "sink"

    def close(self) -> None:
        for provider in self.providers.values():
            close = getattr(provider, "close", None)
            if close is not None:
                close()
