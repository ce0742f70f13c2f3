"""The pipeline steps. Each is an idempotent function over durable state: a crash at any
point and a rerun of the same step yields the same messages, never a second one."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import Row
from sqlalchemy.orm import Session

from clarion.campaigns.service import Version, load_version
from clarion.delivery import repository
from clarion.delivery.context import render_message, template_context
from clarion.delivery.providers.base import OutboundPush, clix_payload
from clarion.delivery.providers.registry import ProviderRegistry
from clarion.ids import uuid7
from clarion.storage.db import Database
from clarion.storage.models import utcnow
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
    lease_seconds: int = 60
    wake: Callable[[], None] = lambda: None

    # -- resolve ---------------------------------------------------------------------------
    def resolve(self, trigger_id: str) -> None:
        """Turn a trigger into message rows, chunk by chunk, each chunk with its deliver job,
        then deliver the last chunk on this thread (a small trigger is one job, no hand-off).
        The resolve job is marked done in the same commit as the trigger's final counts."""
        with self.db.read() as session:
            trigger = repository.get_trigger(session, trigger_id)
            if trigger is not None and trigger.status in ("accepted", "resolving"):
                version = load_version(session, trigger.campaign_id, trigger.campaign_version)
            else:
                trigger = None
        if trigger is None:
            with self.db.write() as session:
                repository.finish_job(session, trigger_id, "resolve", 0)
            return
        total = 0
        seen_users: set[str] = set()
        seen_devices: set[str] = set()
        inline_chunk: int | None = None
        with self.db.read() as reader:
            parts = repository.stream_recipients(reader, trigger, version.audience, self.chunk_size)
            for chunk_no, part, last in _numbered_with_last(parts):
                rows = [_message_row(trigger, version.channel, chunk_no, r) for r in part]
                total += len(rows)
                seen_users.update(r["project_user_id"] for r in rows)
                seen_devices.update(r["device_id"] for r in rows)
                excluded = _excluded(reader, trigger, seen_users, seen_devices) if last else []
                lease = utcnow() + timedelta(seconds=self.lease_seconds) if last else None
                with self.db.write() as session:
                    if repository.add_chunk(session, rows, trigger_id, chunk_no, lease) and last:
                        inline_chunk = chunk_no
                    if last:
                        repository.finalize_resolve(session, trigger_id, total, excluded)
                        repository.finish_job(session, trigger_id, "resolve", 0)
                        repository.complete_if_done(session, trigger_id)
                    else:
                        repository.set_status(session, trigger_id, "resolving")
                if not last:
                    self.wake()
        if inline_chunk is not None:
            self.deliver(trigger_id, inline_chunk)

    # -- deliver ---------------------------------------------------------------------------
    def deliver(self, trigger_id: str, chunk_no: int) -> None:
        """Render and send one chunk's pending messages, then record each outcome, finish the
        job and complete the trigger if this was the last work, all in one commit."""
        with self.db.write() as session:
            trigger = repository.get_trigger(session, trigger_id)
            if trigger is None:
                repository.finish_job(session, trigger_id, "deliver", chunk_no)
                return
            version = load_version(session, trigger.campaign_id, trigger.campaign_version)
            claimed: list[Row[Any]] = []
            marks: list[dict[str, Any]] = []
            given_up: list[dict[str, Any]] = []
            for row in repository.chunk_messages(session, trigger_id, chunk_no):
                if row.status == "sending" and row.attempts >= 2:
                    given_up.append({"mid": row.id, "status": "failed", "reason": FAIL_TWICE})
                    continue
                crashed_mid_send = row.status == "sending"
                marks.append(
                    {
                        "mid": row.id,
                        "n": row.attempts + 1,
                        "dup": row.possible_duplicate or crashed_mid_send,
                    }
                )
                claimed.append(row)
            repository.mark_sending(session, marks)
            repository.record_outcomes(session, given_up)
        outcomes, retry_after = self._send(claimed, version, trigger.properties)
        with self.db.write() as session:
            repository.record_outcomes(session, outcomes)
            if retry_after is None:
                repository.finish_job(session, trigger_id, "deliver", chunk_no)
            repository.complete_if_done(session, trigger_id)
        if retry_after is not None:
            raise RetryLater(retry_after)

    def _send(
        self, claimed: list[Row[Any]], version: Version, properties: dict[str, Any]
    ) -> tuple[list[dict[str, Any]], float | None]:
        """Render and hand over; returns the outcome of each message and an optional delay
        after which the retryable ones should be tried again."""
        outcomes: list[dict[str, Any]] = []
        batch: list[OutboundPush] = []
        rendered: dict[str, dict[str, str]] = {}
        for row in claimed:
            context = template_context(properties, row.project_user_id, row.user_properties, row)
            try:
                fields = render_message(version.message, context)
            except RenderError as exc:
                outcomes.append(
                    {"mid": row.id, "status": "failed", "reason": f"render_error: {exc}"}
                )
                continue
            rendered[row.id] = fields
            push = OutboundPush(
                message_id=row.id,
                device_id=row.device_id,
                platform=row.platform,
                push_token=row.push_token or "",
                title=fields["title"],
                body=fields["body"],
                image_url=fields["image_url"],
                landing_url=fields["landing_url"],
            )
            push.data.update(clix_payload(push))
            batch.append(push)
        if not batch:
            return outcomes, None
        retry_after: float | None = None
        provider = self.providers.for_channel(version.channel)
        for result in provider.send(batch):
            outcome: dict[str, Any] = {
                "mid": result.message_id,
                "provider": provider.name,
                "reason": result.reason,
                **rendered[result.message_id],
            }
            if result.outcome == "sent":
                outcome.update(
                    status="sent", provider_message_id=result.provider_message_id, sent_at=utcnow()
                )
            elif result.outcome == "retryable":
                outcome["status"] = "queued"
                retry_after = max(retry_after or 0.0, result.retry_after or 1.0)
            else:
                outcome["status"] = "failed"
            outcomes.append(outcome)
        return outcomes, retry_after


def _message_row(trigger: Row[Any], channel: str, chunk_no: int, r: Any) -> dict[str, Any]:
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
        "channel": channel,
        "status": "skipped" if reason else "queued",
        "reason": reason,
        "attempts": 0,
        "possible_duplicate": False,
        "created_at": utcnow(),
    }


def _excluded(
    session: Session, trigger: Row[Any], seen_users: set[str], seen_devices: set[str]
) -> list[dict[str, str]]:
    """Why each explicit target that got no message was left out. Only targets that the
    resolved recipients do not already cover cost a lookup."""
    if trigger.audience_mode != "targets":
        return []
    targets = trigger.targets
    missing_users = [
        t["project_user_id"]
        for t in targets
        if "project_user_id" in t and t["project_user_id"] not in seen_users
    ]
    missing_devices = [
        t["device_id"] for t in targets if "device_id" in t and t["device_id"] not in seen_devices
    ]
    if not missing_users and not missing_devices:
        return []
    known_users, known_devices = repository.known_targets(
        session, trigger.project_id, missing_users, missing_devices
    )
    out: list[dict[str, str]] = []
    for uid in missing_users:
        reason = "segment_mismatch" if uid in known_users else "unknown_user"
        out.append({"project_user_id": uid, "reason": reason})
    for did in missing_devices:
        reason = "segment_mismatch" if did in known_devices else "unknown_device"
        out.append({"device_id": did, "reason": reason})
    return out


def _numbered_with_last(parts: Iterator[list[Any]]) -> Iterator[tuple[int, list[Any], bool]]:
    """(chunk number, rows, is it the last chunk); an empty stream is one empty last chunk."""
    current = next(parts, [])
    number = 0
    for following in parts:
        yield number, current, False
        current, number = following, number + 1
    yield number, current, True
