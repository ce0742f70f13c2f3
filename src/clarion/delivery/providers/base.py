"""The provider interface: ``send(batch) -> results``, one typed result per message."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

Outcome = Literal["sent", "retryable", "failed", "invalid_recipient"]

# HTTP/2 header compression logs every header it encodes at DEBUG, bearer tokens included:
# never below INFO, whatever the application's logging says.
for _name in ("hpack", "hpack.hpack", "hpack.table"):
    logging.getLogger(_name).setLevel(logging.INFO)


# One OutboundPush and one SendResult per message: not frozen, as a frozen dataclass sets
# each field through object.__setattr__ (3.0 against 1.2 us for an OutboundPush, about 3% of
# a broadcast's CPU for the two). Nothing changes them once made.
@dataclass(slots=True)
class OutboundPush:
    """A rendered push, ready for a provider. ``data`` is the exact Clix ``clix`` entry."""

    message_id: str
    device_id: str
    platform: str
    push_token: str
    title: str
    body: str
    image_url: str
    landing_url: str
    data: dict[str, Any] = field(default_factory=dict)
    project_id: str = ""
    overrides: Any = None  # the campaign's PushOverrides (android, apns), if any


@dataclass(slots=True)
class SendResult:
    message_id: str
    outcome: Outcome
    provider_message_id: str | None = None
    reason: str | None = None
    retry_after: float | None = None
    provider: str | None = None  # which provider answered (a router sends through several)
    response_code: str | None = None  # the provider's own answer: "404 UNREGISTERED", ...


@dataclass(frozen=True, slots=True)
class OutboundMessage:
    """A rendered message for a per-user channel (in-app, e-mail, webhook)."""

    message_id: str
    project_id: str
    user_id: str  # Clarion's own user id
    project_user_id: str | None
    fields: dict[str, str]  # the channel's rendered fields
    to: str = ""  # the e-mail address
    section: Any = None  # the campaign's channel section (EmailTemplate, WebhookTemplate)


class Provider(Protocol):
    """A push provider. ``send`` never raises for a per-message problem: it says so."""

    name: str

    def send(self, batch: Sequence[OutboundPush]) -> list[SendResult]: ...


class MessageProvider(Protocol):
    """A per-user channel's provider; the same contract over OutboundMessage."""

    name: str

    def send(self, batch: Sequence[OutboundMessage]) -> list[SendResult]: ...


def clix_payload(
    message_id: str, title: str, body: str, image_url: str, landing_url: str
) -> dict[str, Any]:
    """The ``clix`` data entry the official SDKs look for in a push."""
    return {
        "message_id": message_id,
        "title": title,
        "body": body,
        "image_url": image_url or None,
        "landing_url": landing_url or None,
        "user_journey_id": None,
        "user_journey_node_id": None,
    }
