"""The in-app channel: a message is delivered by putting it in its user's inbox, which the
app reads with ``GET /api/v1/devices/{id}/inbox``. The inbox entry takes the message's id, so
a retried delivery never makes a second entry."""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

from sqlalchemy import Table

from clarion.delivery.providers.base import OutboundMessage, SendResult
from clarion.storage.bulk import insert_ignore
from clarion.storage.db import Database
from clarion.storage.models import InboxMessage, utcnow

INBOX = cast(Table, InboxMessage.__table__)


class InAppProvider:
    name = "inbox"

    def __init__(self, db: Database) -> None:
        self.db = db

    def send(self, batch: Sequence[OutboundMessage]) -> list[SendResult]:
        now = utcnow()
        rows = [
            {
                "id": m.message_id, "project_id": m.project_id, "user_id": m.user_id,
                "title": m.fields.get("title", ""), "body": m.fields.get("body", ""),
                "image_url": m.fields.get("image_url", ""),
                "landing_url": m.fields.get("landing_url", ""), "created_at": now, "read_at": None,
            }
            for m in batch
        ]  # fmt: skip
        with self.db.write() as session:
            insert_ignore(session, INBOX, rows)
        return [
            SendResult(m.message_id, "sent", provider_message_id=m.message_id, provider=self.name)
            for m in batch
        ]
