"""The push channel: each message goes to the provider its project has credentials for
(FCM for now), or to the development sink when it has none."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from clarion.delivery.providers.base import OutboundPush, Provider, SendResult


class PushRouter:
    name = "push"

    def __init__(self, sink: Provider, fcm: Provider, configured: Callable[[str], set[str]]):
        self.sink = sink
        self.fcm = fcm
        self.configured = configured  # project id -> the providers it has credentials for

    def send(self, batch: Sequence[OutboundPush]) -> list[SendResult]:
        routes: dict[str, list[OutboundPush]] = {}
        for message in batch:
            has = self.configured(message.project_id)
            routes.setdefault("fcm" if "fcm" in has else "sink", []).append(message)
        results: dict[str, SendResult] = {}
        for route, messages in routes.items():
            provider = self.fcm if route == "fcm" else self.sink
            for result in provider.send(messages):
                results[result.message_id] = result
        return [results[m.message_id] for m in batch]

    def close(self) -> None:
        for provider in (self.sink, self.fcm):
            close = getattr(provider, "close", None)
            if close is not None:
                close()
