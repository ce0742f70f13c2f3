"""The pipeline steps. Each is an idempotent function over durable state: a crash at any
point and a rerun of the same step yields the same messages, never a second one."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from clarion.campaigns.service import Version, load_version
from clarion.delivery import repository
from clarion.delivery.context import render_message, template_context
from clarion.delivery.providers.base import OutboundPush, clix_payload
from clarion.delivery.providers.registry import ProviderRegistry
from clarion.ids import uuid7
from clarion.storage.db import Database
from clarion.storage.models import Trigger, utcnow
from clarion.templating.engine import RenderError

SKIP_NO_DEVICE = "no_device: the user has no registered device"
SKIP_NO_TOKEN = "no_push_token: the device has no push token"
SKIP_PERMISSION = "push_permission_off: the device has not granted push permission"
FAIL_TWICE = "interrupted twice while sending; not retried again to avoid a third duplicate"


class RetryLater(Exception):
    """The step made progress but must run again after ``delay`` seconds."""

    def __init__(self, delay: float) -> None:
        super().__init__(f"retry in {delay:.1f}s")
        self.delay = delay


@dataclass
class Pipeline:
    db: Database
    providers: ProviderRegistry
    chunk_size: int
    wake: Callable[[], None] = lambda: None

    # -- resolve ---------------------------------------------------------------------------
    def resolve(self, trigger_id: str) -> None:
        """Turn a trigger into message rows, chunk by chunk, each chunk with its deliver job."""
        with self.db.write() as session:
            trigger = repository.lock_trigger(session, trigger_id)
            if trigger is None or trigger.status not in ("accepted", "resolving"):
                return
            trigger.status = "resolving"
            version = load_version(session, trigger.campaign_id, trigger.campaign_version)
            excluded = self._excluded_targets(session, trigger, version)
        total = 0
        with self.db.read() as reader:
            for chunk_no, part in enumerate(
                repository.stream_recipients(reader, trigger, version.audience, self.chunk_size)
            ):
                rows = [self._message_row(trigger, version, chunk_no, r) for r in part]
                with self.db.write() as session:
                    repository.add_chunk(session, rows, trigger.id, chunk_no)
                total += len(rows)
                self.wake()
        with self.db.write() as session:
            locked = repository.lock_trigger(session, trigger_id)
            assert locked is not None
            locked.matched = total
            locked.excluded_targets = excluded
            if locked.status == "resolving":
                locked.status = "sending"
            _maybe_complete(session, locked)

    @staticmethod
    def _message_row(trigger: Trigger, version: Version, chunk_no: int, r: Any) -> dict[str, Any]:
        user_id, project_user_id, device_id, token, permission = r
        reason = None
        if device_id is None:
            reason = SKIP_NO_DEVICE
        elif not token:
            reason = SKIP_NO_TOKEN
        elif not permission:
            reason = SKIP_PERMISSION
        return {
            "id": uuid7(),
            "project_id": trigger.project_id,
            "trigger_id": trigger.id,
            "chunk_no": chunk_no,
            "user_id": user_id,
            "project_user_id": project_user_id,
            "device_id": device_id or "",
            "channel": version.channel,
            "status": "skipped" if reason else "queued",
            "reason": reason,
            "attempts": 0,
            "possible_duplicate": False,
            "created_at": utcnow(),
        }

    @staticmethod
    def _excluded_targets(
        session: Session, trigger: Trigger, version: Version
    ) -> list[dict[str, str]]:
        """Why each explicit target that will get no message was left out."""
        if trigger.audience_mode != "targets":
            return []
        known_u, match_u, known_d, match_d = repository.matched_target_keys(
            session, trigger, version.audience
        )
        out: list[dict[str, str]] = []
        for target in trigger.targets:
            if "project_user_id" in target:
                uid = target["project_user_id"]
                if uid not in known_u:
                    out.append({"project_user_id": uid, "reason": "unknown_user"})
                elif uid not in match_u:
                    out.append({"project_user_id": uid, "reason": "segment_mismatch"})
            else:
                did = target["device_id"]
                if did not in known_d:
                    out.append({"device_id": did, "reason": "unknown_device"})
                elif did not in match_d:
                    out.append({"device_id": did, "reason": "segment_mismatch"})
        return out

    # -- deliver ---------------------------------------------------------------------------
    def deliver(self, trigger_id: str, chunk_no: int) -> None:
        """Render and send one chunk's queued messages, then record each outcome."""
        with self.db.write() as session:
            rows = repository.chunk_messages(session, trigger_id, chunk_no)
            trigger = session.get(Trigger, trigger_id)
            if trigger is None:
                return
            version = load_version(session, trigger.campaign_id, trigger.campaign_version)
            claimed: list[tuple[Any, Any, Any]] = []
            marks: list[dict[str, Any]] = []
            for message, device, user_props in rows:
                if message.status == "sending" and message.attempts >= 2:
                    marks.append({"id": message.id, "status": "failed", "reason": FAIL_TWICE})
                    continue
                duplicate = message.status == "sending"  # a crash left it mid-send
                marks.append(
                    {
                        "id": message.id,
                        "status": "sending",
                        "attempts": message.attempts + 1,
                        "possible_duplicate": message.possible_duplicate or duplicate,
                    }
                )
                claimed.append((message, device, user_props))
            repository.update_messages(session, marks)
            properties = trigger.properties
        if claimed:
            self._send(claimed, version, properties)
        with self.db.write() as session:
            locked = repository.lock_trigger(session, trigger_id)
            if locked is not None:
                _maybe_complete(session, locked)

    def _send(self, claimed: list[tuple[Any, Any, Any]], version: Version, props: Any) -> None:
        outcomes: list[dict[str, Any]] = []
        batch: list[OutboundPush] = []
        rendered: dict[str, dict[str, str]] = {}
        for message, device, user_props in claimed:
            ctx = template_context(props, message.project_user_id, user_props, device)
            try:
                fields = render_message(version.message, ctx)
            except RenderError as exc:
                outcomes.append(
                    {"id": message.id, "status": "failed", "reason": f"render_error: {exc}"}
                )
                continue
            rendered[message.id] = fields
            push = OutboundPush(
                message_id=message.id,
                device_id=device.id,
                platform=device.platform,
                push_token=device.push_token or "",
                data={},
                **fields,
            )
            push.data.update(clix_payload(push))
            batch.append(push)
        retry_after: float | None = None
        if batch:
            provider = self.providers.for_channel(version.channel)
            for result in provider.send(batch):
                change: dict[str, Any] = {"id": result.message_id, "provider": provider.name}
                change.update(rendered[result.message_id])
                if result.outcome == "sent":
                    change.update(
                        status="sent",
                        provider_message_id=result.provider_message_id,
                        reason=result.reason,
                        sent_at=utcnow(),
                    )
                elif result.outcome == "retryable":
                    change.update(status="queued", reason=result.reason)
                    retry_after = max(retry_after or 0.0, result.retry_after or 1.0)
                else:
                    change.update(status="failed", reason=result.reason)
                outcomes.append(change)
        with self.db.write() as session:
            repository.update_messages(session, outcomes)
        if retry_after is not None:
            raise RetryLater(retry_after)


def _maybe_complete(session: Session, trigger: Trigger) -> None:
    if trigger.status == "sending" and not repository.has_pending(session, trigger.id):
        trigger.status = "completed"
        trigger.completed_at = utcnow()
