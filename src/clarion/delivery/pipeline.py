"""The pipeline steps. Each is an idempotent function over durable state: a crash at any
point and a rerun of the same step yields the same messages, never a second one."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import orjson
from sqlalchemy.orm import Session

from clarion import metrics
from clarion.auth import service as auth
from clarion.campaigns.schemas import CampaignSpec
from clarion.campaigns.service import Version, load_version
from clarion.delivery import controls, handovers, repository, snapshots
from clarion.delivery.context import template_context
from clarion.delivery.providers.base import (
    OutboundMessage,
    OutboundPush,
    SendResult,
    clix_payload,
)
from clarion.delivery.providers.registry import ProviderRegistry
from clarion.delivery.ratelimit import RETRY_IN, Rates, SendRates
from clarion.emails import EMAIL, one_line
from clarion.ids import uuid7_batch
from clarion.runner.engine import BuiltinEngine, TaskEngine
from clarion.storage.db import Database
from clarion.storage.models import utcnow
from clarion.templating import jsonbody
from clarion.templating.message import MessageRejected, TriggerMessages
from clarion.triggers import recipients, schedule
from clarion.webhooks import service as webhooks
from clarion.webhooks.repository import subscribed

log = logging.getLogger("clarion.pipeline")

SKIP_NO_DEVICE = "no_device: the user has no registered device"
SKIP_NO_TOKEN = "no_push_token: the device has no push token"
SKIP_NO_EMAIL = "no_email_address: the user property {prop!r} holds no e-mail address"
SKIP_PERMISSION = "push_permission_off: the device has not granted push permission"
# A message found 'sending' was being handed over when its worker died: it is handed over
# again, flagged possible_duplicate, up to this many times in all. Past that it fails with
# FAIL_INTERRUPTED: a message that keeps taking its worker down must not do so forever.
MAX_HANDOVERS = 5
# Messages per commit: resolving writes about this many at a time, delivering takes about as
# many chunks per step (one commit never waits on a whole batch of full chunks).
GROUP_ROWS = 2000
# Recipients in a trigger's first chunk (when CLARION_CHUNK_SIZE is larger): it is written and
# delivered on its own while resolving goes on, and its messages are recorded as handed over
# when the provider has answered for all of them. A small first chunk is what makes the first
# message go out, and be on record, soon after the 200: at 1,000 devices to the fake FCM,
# 0.22-0.24 s with 50 against 0.59-0.61 s with the whole 500 of a chunk.
FIRST_CHUNK = 50
CANCELLED = "cancelled: the trigger was cancelled before this message was handed over"
# A message whose hand-over a crash cut off (left sending, or under its chunk's open
# hand-over) may have reached the provider before the trigger was cancelled.
CANCELLED_IN_FLIGHT = (
    "cancelled: the trigger was cancelled after this message was handed over by a worker "
    "that stopped before recording the outcome; the provider may have received it"
)
FAIL_INTERRUPTED = (
    f"interrupted {MAX_HANDOVERS} times while sending (each time its worker stopped "
    "mid-send); not handed over again"
)


@dataclass
class Pipeline:
    """The steps, over batches: one call resolves or delivers many triggers' work with a few
    shared commits, which is where throughput comes from. A batch of one is the same code."""

    db: Database
    providers: ProviderRegistry
    chunk_size: int
    lease_seconds: int = 60
    engine: TaskEngine = field(default_factory=BuiltinEngine)
    wake: Callable[[], None] = lambda: None
    rates: Rates = field(default_factory=SendRates)  # per-campaign send rates
    group_rows: int = GROUP_ROWS  # messages per resolve commit, and per deliver step

    # -- resolve ---------------------------------------------------------------------------
    def resolve(self, trigger_ids: Sequence[str]) -> None:
        """Turn triggers into message rows, chunk by chunk, each chunk with its deliver job.
        Each trigger's last chunk is written with the others' in one commit that also records
        the final counts and finishes the resolve jobs; those chunks are then delivered on this
        thread, so a small trigger never waits for a second job."""
        with self.db.read() as session:
            triggers = repository.get_triggers(session, trigger_ids)
            work = [
                (t, load_version(session, t.campaign_id, t.campaign_version))
                for t in triggers.values()
                if t.status in ("scheduled", "accepted", "resolving")
            ]
        last_rows: list[dict[str, Any]] = []
        finals: list[tuple[str, int, list[Any]]] = []
        inline: list[tuple[str, int]] = []
        kept: dict[tuple[str, int], bytes] = {}  # the last chunks' snapshots
        written: dict[tuple[str, int], tuple[int, int]] = {}  # and their counts
        with self.db.read() as reader:
            for trigger, version in work:
                last, total, excluded = self._resolve_one(reader, trigger, version)
                last_rows += last.rows
                finals.append((trigger.id, total, excluded))
                if last.queued:
                    inline.append((trigger.id, last.no))
                    written[trigger.id, last.no] = last.counts()
                    if last.snapshot is not None:
                        kept[trigger.id, last.no] = last.snapshot
        engine = self.engine
        lease = utcnow() + timedelta(seconds=self.lease_seconds)
        dialect = self.db.engine.dialect
        batch = repository.messages_batch(dialect, last_rows)  # encoded outside the lock
        with metrics.stage("persist"), self.db.write() as session:
            stopped = _stopped(session, trigger_ids)
            if stopped:
                last_rows = [r for r in last_rows if r["trigger_id"] not in stopped]
                inline = [c for c in inline if c[0] not in stopped]
                batch = repository.messages_batch(dialect, last_rows)
            if batch.run(session) != len(last_rows):  # some were there already
                kept, written = {}, {}
            engine.enqueue_deliver(session, inline, lease if engine.inline_delivery else None)
            repository.chunks_pending(session, inline, kept, written)
            repository.finalize_resolve(session, finals)
            engine.finish(session, "resolve", [(t, 0) for t in trigger_ids])
            _completed(session, repository.complete_if_done(session, [t for t, _, _ in finals]))
        if inline and engine.inline_delivery:
            self.deliver(inline)
        elif inline:
            self.wake()

    def _resolve_one(
        self, reader: Session, trigger: Any, version: Version
    ) -> tuple[_Chunk, int, list[Any]]:
        """Stream one trigger's recipients. Every chunk but the last is written and handed to
        the other workers: the first at once, on its own, and delivered on this thread (the
        first message goes out while resolving goes on), then about a delivery group's worth
        per commit, each written on a writer thread while this one reads and builds the
        next; the last is returned."""
        with _Writer(self._write_chunks, trigger.id) as writer:
            return self._resolve_into(reader, trigger, version, writer)

    def _resolve_into(
        self, reader: Session, trigger: Any, version: Version, writer: _Writer
    ) -> tuple[_Chunk, int, list[Any]]:
        total = 0
        unwritten: list[_Chunk] = []
        seen_users: set[str] = set()
        seen_devices: set[str] = set()
        # Each chunk keeps its recipients for its first delivery step (delivery.snapshots),
        # but when resuming (rows written before are skipped), when the channel reaches
        # users (one row per user) and when each message waits for its device's local time.
        keep = (trigger.status == "accepted" and not version.per_user
                and not trigger.in_local_time)  # fmt: skip
        parts = metrics.timed(repository.stream_recipients(
            reader, trigger, version.audience, self.chunk_size, per_user=version.per_user,
            first=min(FIRST_CHUNK, self.chunk_size), snapshot=keep,
        ), "resolve")  # fmt: skip
        # Resuming after a crash: recipients come in no fixed order (and the data may have
        # changed), so new rows go to new chunk numbers, never into a chunk whose job may
        # already be done; rows written before the crash are skipped by their identity.
        first = 0 if trigger.status == "accepted" else repository.next_chunk(reader, trigger.id)
        for chunk_no, part, last in _numbered_with_last(parts, first):
            with metrics.stage("resolve"):
                chunk = _Chunk.of(trigger, version, chunk_no, part, keep)
                if trigger.in_local_time and not version.per_user:
                    _due_in_local_time(reader, trigger, chunk.rows)
            rows = chunk.rows
            total += len(rows)
            if trigger.audience_mode == "targets":  # bounded by max_targets
                seen_users.update(r["project_user_id"] for r in rows)
                seen_devices.update(r["device_id"] for r in rows)
            if not last:
                unwritten.append(chunk)
            if unwritten and (last or chunk_no == first or
                              sum(len(c.rows) for c in unwritten) >= self.group_rows):  # fmt: skip
                # The first chunk this thread delivers itself: its first message goes out
                # at once, whoever else is busy (or waiting for a poll).
                if chunk_no == first:
                    going = self._write_chunks(trigger.id, unwritten, deliver=True)
                else:
                    going = writer.write(unwritten)
                if not going:
                    return _Chunk(chunk_no, []), total, []  # cancelled: resolve no further
                unwritten = []
            if last:
                if not writer.done():  # every chunk before the last is written first
                    return _Chunk(chunk_no, []), total, []
                devices = None if version.per_user else seen_devices  # per user: no devices
                return chunk, total, _excluded(reader, trigger, seen_users, devices)
        raise AssertionError("unreachable: the stream always ends with a last chunk")

    def _write_chunks(self, trigger_id: str, chunks: list[_Chunk], deliver: bool = False) -> bool:
        """Write resolved chunks with their deliver jobs, in one commit, and wake the workers
        (``deliver``: deliver them on this thread, where the engine allows); False (nothing
        written) when the trigger has been cancelled."""
        deliver = deliver and self.engine.inline_delivery
        lease = utcnow() + timedelta(seconds=self.lease_seconds)
        rows = [row for chunk in chunks for row in chunk.rows]
        written = repository.messages_batch(self.db.engine.dialect, rows)  # outside the lock
        with metrics.stage("persist"), self.db.write() as session:
            if _stopped(session, [trigger_id]):
                return False
            whole = written.run(session) == len(rows)  # else some were there already
            queued = [(trigger_id, chunk.no) for chunk in chunks if chunk.queued]
            kept = {(trigger_id, chunk.no): chunk.snapshot for chunk in chunks
                    if whole and chunk.snapshot is not None}  # fmt: skip
            counts = {(trigger_id, chunk.no): chunk.counts() for chunk in chunks
                      if whole and chunk.queued}  # fmt: skip
            self.engine.enqueue_deliver(session, queued, lease if deliver else None)
            repository.chunks_pending(session, queued, kept, counts)
            repository.set_status(session, trigger_id, "resolving")
            self.engine.extend(session, "resolve", [(trigger_id, 0)], lease)
        self.wake()
        if deliver and queued:
            try:
                self.deliver(queued)
            except Exception:  # resolving goes on; the chunk's job is taken over (its lease)
                log.exception("delivering the first chunk of %s failed", trigger_id)
        return True

    # -- deliver ---------------------------------------------------------------------------
    def deliver(self, chunks: Sequence[tuple[str, int]]) -> None:
        """Render and send the pending messages of these (trigger, chunk) pairs, then record
        every outcome, finish or reschedule the jobs and complete the triggers that are done,
        all in one commit."""
        # Read outside the write lock: the jobs' leases make these chunks ours alone.
        claimed: list[tuple[Any, Version, TriggerMessages]] = []
        marks: list[dict[str, Any]] = []  # every claimed message: {"mid", "n", "dup"}
        own_marks: list[dict[str, Any]] = []  # those marked "sending" one by one (see below)
        given_up: list[dict[str, Any]] = []
        pending: dict[tuple[str, int], list[str]] = {}  # each chunk's pending messages
        repairs: list[dict[str, Any]] = []
        waiting: set[tuple[str, int]] = set()  # chunks with messages held back by a send rate
        due_in: dict[tuple[str, int], float] = {}  # chunks with messages not due yet: seconds
        now = utcnow()
        plans: dict[str, _Plan] = {}  # per trigger, once per step
        quiet_clock = controls.QuietClock(now)

        def hold(row: Any, until: datetime) -> None:
            """Not yet: the row stays queued, its chunk comes back when the first is due."""
            wait = (until - now).total_seconds()
            chunk = (row.trigger_id, row.chunk_no)
            due_in[chunk] = min(due_in.get(chunk, wait), wait)

        # Per trigger and per set of recipient properties: shared fields render once.
        renderers: dict[tuple[str, recipients.Key], TriggerMessages] = {}
        with metrics.stage("load"), self.db.read() as session:
            triggers = repository.get_triggers(session, {t for t, _ in chunks})
            left_open = handovers.left_open(session, chunks)
            rows = snapshots.chunk_messages(session, chunks)
            for row in rows:
                trigger = triggers.get(row.trigger_id)
                if trigger is None:  # gone since (its messages with it)
                    continue
                chunk = (row.trigger_id, row.chunk_no)
                pending.setdefault(chunk, []).append(row.id)
                others = left_open.get(chunk)
                if others is not None and row.status == "queued" and row.id not in others:
                    # Handed over by a step that died before recording it: from here on, as
                    # if it had been marked sending (written with this step's marks).
                    row = row._replace(status="sending", attempts=row.attempts + 1)
                    repairs.append({"mid": row.id, "n": row.attempts,
                                    "dup": row.possible_duplicate})  # fmt: skip
                if row.status == "sending" and row.attempts >= MAX_HANDOVERS:
                    given_up.append(_unsent(row, "failed", FAIL_INTERRUPTED))
                    continue
                if row.not_before is not None and row.not_before > now:  # scheduled for later
                    hold(row, row.not_before)
                    continue
                plan = plans.get(trigger.id)
                if plan is None:
                    plan = plans[trigger.id] = _Plan.of(session, trigger)
                quiet = plan.quiet
                if quiet is not None and (until := quiet_clock.until(quiet, row.timezone)):
                    if quiet.action == "drop":
                        reason = controls.quiet_reason(quiet, row.timezone, now)
                        given_up.append(_unsent(row, "skipped", reason))
                    else:
                        hold(row, until)  # until the window ends
                    continue
                if plan.rate and not self.rates.take(trigger.campaign_id, plan.rate):
                    waiting.add((row.trigger_id, row.chunk_no))  # stays queued; back soon
                    continue
                crashed_mid_send = row.status == "sending"
                mark = {
                    "mid": row.id,
                    "n": row.attempts + 1,
                    "dup": row.possible_duplicate or crashed_mid_send,
                }
                marks.append(mark)
                # A message that caps or re-eligibility count (as soon as it is being sent),
                # or one handed over before, is marked sending by itself; the others are
                # covered by their chunk's hand-over row.
                if crashed_mid_send or plan.counted:
                    own_marks.append(mark)
                renderer = plan.renderer  # the same for every recipient, unless targets differ
                if renderer is None:
                    given = plan.given
                    whose = given.key(row.project_user_id, row.device_id or None)
                    renderer = renderers.get((trigger.id, whose))
                    if renderer is None:
                        renderer = renderers[trigger.id, whose] = plan.renderer_for(
                            session, trigger, whose
                        )
                claimed.append((row, plan.version, renderer))
        # The statements' parameters are encoded before taking the (SQLite) write lock.
        dialect = self.db.engine.dialect
        repaired = repository.sending_batch(dialect, repairs)
        sending = repository.sending_batch(dialect, own_marks)
        with metrics.stage("persist"), self.db.write() as session:
            statuses = repository.locked_statuses(session, triggers, share=True)
            stopped = {t for t, status in statuses.items() if status == "cancelled"}
            if stopped:  # cancelled since these rows were read: none of them goes out
                given_up += [
                    _unsent(row, "cancelled",
                            CANCELLED_IN_FLIGHT if row.status == "sending" else CANCELLED)
                    for row, _, _ in claimed if row.trigger_id in stopped
                ]  # fmt: skip
                claimed = [c for c in claimed if c[0].trigger_id not in stopped]
            held = controls.held_back(session, _candidates(claimed, triggers), utcnow())
            if held:  # re-eligibility and frequency caps, checked under the marks' lock
                given_up += [_unsent(row, "skipped", held[row.id])
                             for row, _, _ in claimed if row.id in held]  # fmt: skip
                claimed = [c for c in claimed if c[0].id not in held]
            if stopped or held:
                kept = {row.id for row, _, _ in claimed}
                marks = [m for m in marks if m["mid"] in kept]
                own_marks = [m for m in own_marks if m["mid"] in kept]
                sending = repository.sending_batch(dialect, own_marks)
            repository.chunks_taken(session, chunks)  # from here on, their rows are read
            repaired.run(session)
            sending.run(session)
            handovers.end(session, left_open)  # superseded by the repairs and this step's
            handing = _handovers(pending, marks, own_marks)
            handovers.begin(session, handing)
            repository.record_outcomes(session, given_up)
        outcomes, retry_after, dead_tokens = self._send(claimed)
        tally = {m["mid"]: (m["n"], m["dup"]) for m in marks}
        for outcome in outcomes:  # a hand-over's tally, recorded with its outcome
            outcome["attempts"], outcome["possible_duplicate"] = tally[outcome["mid"]]
        delays: dict[tuple[str, int], float] = dict.fromkeys(waiting, RETRY_IN)
        for chunk, wait in due_in.items():  # back when the first of them is due
            delays[chunk] = min(delays.get(chunk, wait), wait)
        if retry_after:  # (rare: a map of every claimed message is built for them alone)
            chunk_of = {row.id: (row.trigger_id, row.chunk_no) for row, _, _ in claimed}
            for message_id, delay in retry_after.items():
                key = chunk_of[message_id]
                delays[key] = max(delays.get(key, 0.0), delay)
        with metrics.stage("persist"):
            recorded = repository.outcomes_batch(dialect, outcomes)
            attempted = repository.attempts_batch(dialect, outcomes)
        with metrics.stage("persist"), self.db.write() as session:
            recorded.run(session)
            attempted.run(session)
            handovers.end(session, [(t, c) for t, c, _ in handing])
            repository.invalidate_tokens(session, dead_tokens)  # with the outcomes, atomically
            done = [c for c in chunks if c not in delays]  # none of their messages pending
            self.engine.finish(session, "deliver", done)
            repository.chunks_done(session, done)
            self.engine.retry_deliver(session, [(t, c, d) for (t, c), d in delays.items()])
            _completed(session, repository.complete_if_done(session, [t for t, _ in chunks]))
            _message_events(session, claimed, outcomes, triggers)
        channels = {version.channel for _, version, _ in claimed}
        if len(channels) == 1:  # a step's messages are usually one channel's: no map needed
            metrics.count_outcomes([*given_up, *outcomes], {}, channels.pop())
        else:
            channel_of = {row.id: version.channel for row, version, _ in claimed}
            metrics.count_outcomes([*given_up, *outcomes], channel_of)

    def _send(
        self, claimed: list[tuple[Any, Version, TriggerMessages]]
    ) -> tuple[list[dict[str, Any]], dict[str, float], list[tuple[str, str, str, str]]]:
        """Render and hand over, one provider call per channel; returns the outcome of each
        message, for retryable ones the delay before the next try, and the tokens providers
        called dead (project, device, token, reason)."""
        retry_after: dict[str, float] = {}
        with metrics.stage("render"):
            outcomes, pushes, others, rendered = self._render(claimed)
        dead: list[tuple[str, str, str, str]] = []
        if pushes:
            push = self.providers.push
            with metrics.stage("dispatch"), metrics.PROVIDER_SECONDS.labels(push.name).time():
                results = push.send(pushes)
            outcomes += self._outcomes(push.name, results, rendered, retry_after)
            by_id = {m.message_id: m for m in pushes}
            for r in results:
                if r.outcome == "invalid_recipient":  # stop sending to that token
                    m = by_id[r.message_id]
                    dead.append((m.project_id, m.device_id, m.push_token, r.reason or "invalid"))
        for channel, batch in others.items():
            provider = self.providers.for_channel(channel)
            with metrics.stage("dispatch"), metrics.PROVIDER_SECONDS.labels(provider.name).time():
                sent = provider.send(batch)
            outcomes += self._outcomes(provider.name, sent, rendered, retry_after)
        return outcomes, retry_after, dead

    @staticmethod
    def _render(
        claimed: list[tuple[Any, Version, TriggerMessages]],
    ) -> tuple[
        list[dict[str, Any]],
        list[OutboundPush],
        dict[str, list[OutboundMessage]],
        dict[str, dict[str, str]],
    ]:
        """Each message rendered into what its provider takes, or its outcome when it cannot
        be (no address, a template that fails for this recipient)."""
        outcomes: list[dict[str, Any]] = []
        pushes: list[OutboundPush] = []
        others: dict[str, list[OutboundMessage]] = {}
        rendered: dict[str, dict[str, str]] = {}
        for row, version, renderer in claimed:
            address = ""
            if version.email is not None:
                address = email_address(row.user_properties, version.email.to_property)
                if not address:
                    reason = SKIP_NO_EMAIL.format(prop=version.email.to_property)
                    outcomes.append({"mid": row.id, "status": "skipped", "reason": reason})
                    continue
            context = None
            if renderer.personalised:
                device = row if row.device_id is not None else None
                context = template_context(
                    renderer.properties, row.project_user_id, row.user_properties, device
                )
            try:
                fields = renderer.render(context)
            except MessageRejected as exc:
                outcomes.append({"mid": row.id, "status": "failed", "reason": exc.reason})
                continue
            rendered[row.id] = log_fields(version, fields)
            if version.channel != "push":
                section = version.email if version.email is not None else version.webhook
                others.setdefault(version.channel, []).append(OutboundMessage(
                    message_id=row.id, project_id=row.project_id, user_id=row.user_id,
                    project_user_id=row.project_user_id, fields=fields, to=address,
                    section=section,
                ))  # fmt: skip
                continue
            title, body = fields["title"], fields["body"]
            image_url, landing_url = fields["image_url"], fields["landing_url"]
            # Positional, in OutboundPush's order (keywords cost a third more per message).
            pushes.append(OutboundPush(
                row.id, row.device_id, row.platform, row.push_token or "", title, body,
                image_url, landing_url, clix_payload(row.id, title, body, image_url, landing_url),
                row.project_id, version.push,
            ))  # fmt: skip
        return outcomes, pushes, others, rendered

    @staticmethod
    def _outcomes(
        provider: str,
        results: Sequence[SendResult],
        rendered: dict[str, dict[str, str]],
        retry_after: dict[str, float],
    ) -> list[dict[str, Any]]:
        outcomes: list[dict[str, Any]] = []
        sent_at = utcnow()  # the provider's answer: one time for the call's messages
        for result in results:
            outcome: dict[str, Any] = {
                "mid": result.message_id,
                "provider": result.provider or provider,
                "reason": result.reason,
                **rendered[result.message_id],
                # The hand-over: on the message when it settles it, else an attempt row.
                "attempt_outcome": result.outcome,
                "response_code": result.response_code,
                "attempted_at": sent_at,
            }
            if result.outcome == "sent":
                outcome.update(
                    status="sent", provider_message_id=result.provider_message_id, sent_at=sent_at
                )
            elif result.outcome == "retryable":
                outcome["status"] = "queued"
                retry_after[result.message_id] = result.retry_after or 1.0
            else:
                outcome["status"] = "failed"
            outcomes.append(outcome)
        return outcomes


@dataclass(slots=True)
class _Plan:
    """What a delivery step needs of a trigger, looked up once per step: its version, its
    quiet hours, whether caps count its messages, its send rate, its targets' own
    properties, and the renderer all its recipients share when no target has properties of
    its own (None: one per set of them, renderer_for)."""

    version: Version
    quiet: controls.QuietHours | None
    counted: bool
    rate: float | None
    given: recipients.RecipientProperties
    renderer: TriggerMessages | None

    @classmethod
    def of(cls, session: Session, trigger: Any) -> _Plan:
        version = load_version(session, trigger.campaign_id, trigger.campaign_version)
        quiet = version.delivery.quiet(controls.project_settings(session, trigger.project_id))
        given = _recipient_properties(session, trigger, version)
        plan = cls(version, quiet, _counted(version), version.rate, given, None)
        if not given:
            plan.renderer = plan.renderer_for(session, trigger, given.key(None, None))
        return plan

    def renderer_for(
        self, session: Session, trigger: Any, whose: recipients.Key
    ) -> TriggerMessages:
        """The renderer of the recipients with these targets' properties."""
        schemes = auth.url_schemes(session, trigger.project_id)
        properties = self.given.merged(trigger.properties, whose)
        return self.version.plan.for_trigger(properties, schemes)


def _stopped(session: Session, trigger_ids: Sequence[str]) -> set[str]:
    """Those of the triggers whose messages must not be written: cancelled while resolving,
    or gone. Their rows stay locked until the commit, so a message's trigger is checked here,
    once per commit, not row by row (see Message.trigger_id)."""
    statuses = repository.locked_statuses(session, trigger_ids, share=True)
    return {t for t in trigger_ids if statuses.get(t, "cancelled") == "cancelled"}


def _unsent(row: Any, status: str, reason: str) -> dict[str, Any]:
    """The outcome of a message that is not handed over (its tally as it stands)."""
    return {"mid": row.id, "status": status, "reason": reason, "attempts": row.attempts,
            "possible_duplicate": row.possible_duplicate}  # fmt: skip


def _counted(version: Version) -> bool:
    """Do re-eligibility or frequency caps count this campaign's messages (as soon as they
    are being sent)?"""
    checks = version.delivery
    return checks.reeligibility != "every_time" or checks.capped


def _handovers(
    pending: dict[tuple[str, int], list[str]],
    marks: Sequence[dict[str, Any]],
    own_marks: Sequence[dict[str, Any]],
) -> list[tuple[str, int, list[str]]]:
    """A hand-over row per chunk with messages that their own mark does not cover: (trigger,
    chunk, the chunk's pending messages that it does not cover)."""
    covered = {m["mid"] for m in marks} - {m["mid"] for m in own_marks}
    return [
        (trigger_id, chunk_no, [mid for mid in ids if mid not in covered])
        for (trigger_id, chunk_no), ids in pending.items()
        if any(mid in covered for mid in ids)
    ]


def _candidates(
    claimed: Sequence[tuple[Any, Version, TriggerMessages]], triggers: dict[str, Any]
) -> list[controls.Candidate]:
    """The claimed messages whose campaign has re-eligibility or a frequency cap to check."""
    out = []
    for row, version, _ in claimed:
        checks = version.delivery
        if _counted(version):
            campaign_id = triggers[row.trigger_id].campaign_id
            out.append(controls.Candidate(row.id, row.user_id, row.trigger_id, campaign_id,
                                          version.channel, row.project_id, checks))  # fmt: skip
    return out


def _due_in_local_time(reader: Session, trigger: Any, rows: list[dict[str, Any]]) -> None:
    """Each device's message waits for send_at's wall-clock time in the device's timezone."""
    devices = [r["device_id"] for r in rows if r["device_id"]]
    zones = repository.device_timezones(reader, trigger.project_id, devices)
    for row in rows:
        row["not_before"] = schedule.due(trigger.send_at, zones.get(row["device_id"]))


def _recipient_properties(
    session: Session, trigger: Any, version: Version
) -> recipients.RecipientProperties:
    if trigger.audience_mode != "targets":
        return recipients.NONE
    return recipients.of(session, trigger.project_id, trigger.targets, version.per_user)


def _completed(session: Session, done: Sequence[Any]) -> None:
    """trigger.completed, with the final counts, for projects with webhooks that want it."""
    for trigger in done:
        if subscribed(session, trigger.project_id):
            counts = repository.counts(session, trigger.id)
            event = webhooks.trigger_event("trigger.completed", trigger._mapping,
                                           status="completed", matched=trigger.matched,
                                           counts=counts)  # fmt: skip
            webhooks.emit(session, trigger.project_id, [event])


def _message_events(
    session: Session,
    claimed: Sequence[tuple[Any, Version, TriggerMessages]],
    outcomes: Sequence[dict[str, Any]],
    triggers: dict[str, Any],
) -> None:
    """PUSH_SENT / PUSH_FAILED (MESSAGE_* on other channels) for the final outcomes, in the
    commit that records them; nothing for retries, nor for projects without webhooks."""
    projects = {row.project_id for row, _, _ in claimed}
    if not any(subscribed(session, project_id) for project_id in projects):
        return  # no project here has a webhook: nothing to build
    rows = {row.id: (row, version.channel) for row, version, _ in claimed}
    by_project: dict[str, list[dict[str, Any]]] = {}
    for outcome in outcomes:
        if outcome["status"] not in ("sent", "failed"):
            continue
        row, channel = rows[outcome["mid"]]
        if not subscribed(session, row.project_id):
            continue
        message = {
            "project_id": row.project_id, "message_id": row.id, "device_id": row.device_id,
            "platform": row.platform, "channel": channel, "trigger_id": row.trigger_id,
            "campaign_id": triggers[row.trigger_id].campaign_id,
            "project_user_id": row.project_user_id,
        }  # fmt: skip
        by_project.setdefault(row.project_id, []).append(webhooks.message_event(message, outcome))
    for project_id, events in by_project.items():
        webhooks.emit(session, project_id, events)


def email_address(properties: dict[str, Any] | None, name: str) -> str:
    """The user's address from the property the campaign names ("" when none is usable)."""
    value = (properties or {}).get(name)
    if isinstance(value, str) and EMAIL.fullmatch(value.strip()):
        return value.strip()
    return ""


def log_fields(version: Version | CampaignSpec, fields: dict[str, str]) -> dict[str, str]:
    """What the message log (and the console's preview) shows of a rendered message (title,
    body, image and landing URL): an e-mail's subject and text (or HTML), a webhook's
    request and JSON body."""
    if version.email is not None:
        body = fields.get("text") or fields.get("html", "")
        subject = one_line(fields["subject"])  # as sent: a header is one line
        return {"title": subject, "body": body, "image_url": "", "landing_url": ""}
    if version.webhook is not None:
        body = jsonbody.assemble(version.webhook.body, fields)
        return {"title": f"POST {version.webhook.url}", "body": orjson.dumps(body).decode(),
                "image_url": "", "landing_url": ""}  # fmt: skip
    return fields


def skip_reason(device_id: str | None, token: str | None, permission: bool | None) -> str | None:
    """Why a recipient cannot be reached (None: it can). The pipeline, the dry run and
    messages:send all ask this."""
    if device_id is None:
        return SKIP_NO_DEVICE
    if not token:
        return SKIP_NO_TOKEN
    if not permission:
        return SKIP_PERMISSION
    return None


class _Writer:
    """Writes a resolve's chunks on a thread of its own, one commit at a time and in order,
    while the resolving thread reads and builds the next ones: on PostgreSQL the COPY and
    the commit run in the database's process, on SQLite in C without the GIL, and the
    resolving thread used to wait for both. At 1,000,000 devices, side by side: resolving
    ended 21.7 against 27.4 s after the 200 on PostgreSQL, 15.2 against 16.5 s on SQLite."""

    def __init__(self, write: Callable[[str, list[_Chunk]], bool], trigger_id: str) -> None:
        self._write = write
        self._trigger_id = trigger_id
        self._pool: ThreadPoolExecutor | None = None
        self._pending: Future[bool] | None = None

    def write(self, chunks: list[_Chunk]) -> bool:
        """Hand these chunks to the writer, once it has written the ones before; False when
        those found the trigger cancelled (nothing more is written)."""
        if not self.done():
            return False
        if self._pool is None:
            self._pool = ThreadPoolExecutor(1, thread_name_prefix="clarion-resolve-writer")
        self._pending = self._pool.submit(self._write, self._trigger_id, chunks)
        return True

    def done(self) -> bool:
        """Wait for the last write; False when it found the trigger cancelled. A write that
        failed raises here."""
        pending, self._pending = self._pending, None
        return pending is None or pending.result()

    def __enter__(self) -> _Writer:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)  # no write outlives the resolve step


@dataclass(slots=True)
class _Chunk:
    """A resolved chunk: its number, its message rows and, when it keeps one, the snapshot of
    its recipients for its first delivery step."""

    no: int
    rows: list[dict[str, Any]]
    queued: bool = False  # has it messages to deliver (not all skipped)?
    snapshot: bytes | None = None

    def counts(self) -> tuple[int, int]:
        """(queued, skipped): its messages as written."""
        queued = sum(1 for row in self.rows if row["status"] == "queued")
        return queued, len(self.rows) - queued

    @classmethod
    def of(
        cls, trigger: Any, version: Version, chunk_no: int, part: Sequence[Any], keep: bool
    ) -> _Chunk:
        rows = _message_rows(trigger, version, chunk_no, part)
        chunk = cls(chunk_no, rows, any(r["status"] == "queued" for r in rows))
        if keep and chunk.queued:
            chunk.snapshot = snapshots.encode(trigger.project_id, rows, part)
        return chunk


def _message_rows(
    trigger: Any, version: Version, chunk_no: int, part: Sequence[Any]
) -> list[dict[str, Any]]:
    """A chunk's message rows, one per recipient (user id, project user id, device id, push
    token, permission, and maybe more columns)."""
    now = utcnow()
    rows = []
    for message_id, recipient in zip(uuid7_batch(len(part)), part, strict=True):
        user_id, project_user_id, device_id, token, permission = recipient[:5]
        # Per-user channels (in-app, e-mail, webhook) reach the user, not a device.
        reason = None if version.per_user else skip_reason(device_id, token, permission)
        rows.append({
            "id": message_id,
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
            "created_at": now,
            "not_before": None,
            "capped": version.delivery.capped,
        })  # fmt: skip
    return rows


def _excluded(
    session: Session, trigger: Any, seen_users: set[str], seen_devices: set[str] | None
) -> list[dict[str, str]]:
    """Why each explicit target that got no message was left out. Only targets that the
    resolved recipients do not already cover cost a lookup. ``seen_devices`` None: the
    channel reaches users, so device targets are not judged by device."""
    if trigger.audience_mode != "targets":
        return []
    targets = trigger.targets
    missing_users = [
        t["project_user_id"]
        for t in targets
        if "project_user_id" in t and t["project_user_id"] not in seen_users
    ]
    missing_devices = [
        t["device_id"]
        for t in targets
        if "device_id" in t and seen_devices is not None and t["device_id"] not in seen_devices
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


def _numbered_with_last(
    parts: Iterator[list[Any]], first: int = 0
) -> Iterator[tuple[int, list[Any], bool]]:
    """(chunk number, rows, is it the last chunk); an empty stream is one empty last chunk."""
    current = next(parts, [])
    number = first
    for following in parts:
        yield number, current, False
        current, number = following, number + 1
    yield number, current, True
