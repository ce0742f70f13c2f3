"""SQL for the pipeline: recipients, message rows, outcomes, completion.

This is the hot path, so it speaks SQLAlchemy Core with statements built once and bound per
call: no per-call statement construction and no ORM unit of work.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from datetime import datetime
from functools import lru_cache
from typing import Any, NamedTuple, cast

import orjson
from sqlalchemy import (
    ColumnElement,
    Dialect,
    Select,
    Table,
    Text,
    and_,
    bindparam,
    case,
    delete,
    exists,
    func,
    null,
    or_,
    select,
    true,
    update,
)
from sqlalchemy.orm import Session

from clarion.audience import compiler
from clarion.audience.rules import Audience
from clarion.delivery import handovers
from clarion.storage.bulk import Batch, in_values, insert_batch, insert_ignore, update_batch
from clarion.storage.models import (
    Device,
    Job,
    Message,
    MessageAttempt,
    PendingChunk,
    Trigger,
    User,
    utcnow,
)

PENDING = ("queued", "sending")
T = cast(Table, Trigger.__table__)
M = cast(Table, Message.__table__)
J = cast(Table, Job.__table__)
D = cast(Table, Device.__table__)
U = cast(Table, User.__table__)
A = cast(Table, MessageAttempt.__table__)
P = cast(Table, PendingChunk.__table__)

_TRIGGERS = select(
    T.c.id, T.c.project_id, T.c.campaign_id, T.c.campaign_version, T.c.audience_mode,
    T.c.targets, T.c.properties, T.c.status, T.c.send_at, T.c.in_local_time,
).where(T.c.id.in_(bindparam("tids", expanding=True)))  # fmt: skip
_LOCK_TRIGGERS = (
    select(T.c.id)
    .where(T.c.id.in_(bindparam("tids", expanding=True)))
    .order_by(T.c.id)
    .with_for_update()
)
# A cancelled trigger stays cancelled, whatever a step that began before the cancel writes.
# A status it already has is not written again: on PostgreSQL each write is a new version of
# the row, and a resolve writes its status with every chunk (a million recipients: 500 dead
# versions that every foreign-key check of a message row walked past).
_SET_STATUS = (
    update(T)
    .where(
        T.c.id == bindparam("tid"),
        T.c.status != "cancelled",
        T.c.status != bindparam("new_status"),
    )
    .values(status=bindparam("new_status"))
)
_FINALIZE = (
    update(T)
    .where(T.c.id == bindparam("tid"))
    .values(
        status=case((T.c.status == "cancelled", T.c.status), else_="sending"),
        matched=bindparam("matched"),
        excluded_targets=bindparam("excl"),
    )
)
# PostgreSQL row locks on a trigger (SQLite's write lock serialises its writers anyway):
# - a step that read the status takes FOR KEY SHARE until its commit; a cancel's FOR UPDATE
#   waits for it, and a step after the cancel sees it;
# - completing takes FOR NO KEY UPDATE: concurrent completers (and a resolve updating the
#   status) take turns, so that the last sees the others' outcomes; it does not wait for the
#   steps' key-share locks. With FOR SHARE and FOR UPDATE instead, every delivery commit
#   waited for the resolve's chunk being written, and every step behind that commit.
_SHARE_TRIGGERS = (
    select(T.c.id)
    .where(T.c.id.in_(bindparam("tids", expanding=True)))
    .order_by(T.c.id)
    .with_for_update(read=True, key_share=True)
)
_COMPLETING_TRIGGERS = (
    select(T.c.id)
    .where(T.c.id.in_(bindparam("tids", expanding=True)))
    .order_by(T.c.id)
    .with_for_update(key_share=True)
)
_STATUSES = select(T.c.id, T.c.status).where(T.c.id.in_(bindparam("tids", expanding=True)))


@lru_cache(maxsize=4)
def _cancel_queued(dialect: Dialect) -> Any:
    """Queued messages but those being handed over (see delivery.handovers)."""
    return (
        update(M)
        .where(
            M.c.trigger_id == bindparam("tid"),
            M.c.status == "queued",
            ~handovers.covered(dialect),
        )
        .values(status="cancelled", reason=bindparam("reason"))
    )


_COMPLETE = (
    update(T)
    .where(
        T.c.id.in_(bindparam("tids", expanding=True)),
        T.c.status == "sending",
        ~exists().where(P.c.trigger_id == T.c.id),  # no chunk with messages pending
    )
    .values(status="completed", completed_at=bindparam("now"))
    .returning(T.c.id, T.c.project_id, T.c.campaign_id, T.c.matched)
)


def _chunk_read(dialect: str) -> Select[Any]:
    """The chunk read: its messages, each with its device and its user's properties, both
    reached by key, message by message. As plain joins, PostgreSQL chose by its statistics:
    once they counted the trigger's messages (autovacuum analyses a big broadcast as it
    goes) it hashed the whole users table, or devices table, for every chunk (85 against
    27 ms a chunk at 200,000 users, growing with them). So on PostgreSQL the device is a
    LATERAL subquery kept apart by OFFSET 0; SQLite's planner looks rows up by key anyway
    (and has no LATERAL)."""
    device: tuple[ColumnElement[Any], ...] = (
        D.c.id.label("device_id"), D.c.platform, D.c.push_token, D.c.locale_region,
        D.c.locale_language, D.c.timezone,
    )  # fmt: skip
    same_device = and_(D.c.project_id == M.c.project_id, D.c.id == M.c.device_id)
    # Outer joins: a per-user channel's message has no device (device_id "").
    if dialect == "postgresql":
        by_key = select(*device).where(same_device).offset(0).lateral("device")
        source = M.outerjoin(by_key, true())
        device = tuple(by_key.c)
    else:
        source = M.outerjoin(D, same_device)
    columns = (M.c.id, M.c.project_id, M.c.trigger_id, M.c.chunk_no, M.c.status,
               M.c.attempts, M.c.possible_duplicate, M.c.not_before, M.c.project_user_id,
               M.c.user_id)  # fmt: skip
    # Deleting a user deletes their messages: a message's user is always found.
    properties = select(U.c.properties).where(U.c.id == M.c.user_id).scalar_subquery()
    return (
        select(*columns, *device, properties.label("user_properties"))
        .select_from(source)
        # One trigger at a time, so that both databases walk ix_messages_chunk for the
        # chunks' rows: with (trigger, chunk) pairs SQLite scanned every user, or every
        # pending message of the trigger, per chunk.
        .where(
            M.c.trigger_id == bindparam("tid"),
            M.c.chunk_no.in_(bindparam("nos", expanding=True)),
            M.c.status.in_(PENDING),
        )
        .order_by(M.c.id)
    )


_CHUNK = _chunk_read("postgresql")
OUTCOME_FIELDS = (
    "status", "reason", "provider", "provider_message_id", "title", "body", "image_url",
    "landing_url", "sent_at",
)  # fmt: skip
TALLY = ("attempts", "possible_duplicate")  # a message's hand-overs so far
# The hand-over behind an outcome (absent: none, as for a message given up): recorded on the
# message when it settles it, as a MessageAttempt row when it leaves the message pending.
HANDOVER_FIELDS = ("attempt_outcome", "response_code", "attempted_at")
_UNSETTLED = dict.fromkeys(HANDOVER_FIELDS)


def _leaves_pending(outcome: dict[str, Any]) -> bool:
    """Does this outcome leave its message pending (a retryable hand-over: queued again)?"""
    return bool(outcome["status"] == "queued")


_COUNTS = (
    select(M.c.status, func.count()).where(M.c.trigger_id == bindparam("tid")).group_by(M.c.status)
)


def get_triggers(session: Session, trigger_ids: Iterable[str]) -> dict[str, Any]:
    rows = session.execute(_TRIGGERS, {"tids": list(trigger_ids)}).all()
    return {row.id: row for row in rows}


def stream_recipients(
    session: Session,
    trigger: Any,
    audience: Audience,
    batch: int,
    *,
    per_user: bool = False,
    first: int | None = None,
    snapshot: bool = False,
) -> Iterator[list[Any]]:
    """Yield (user_id, project_user_id, device_id, push_token, permission), ``batch`` rows
    at a time (the first part ``first`` rows, when given), without loading the audience into
    memory (in no fixed order). ``per_user``: one row per user (device columns null), for
    channels that reach users, not devices. ``snapshot`` (not with ``per_user``): each row
    goes on with the device's platform, locale, language and timezone and the user's
    properties as stored (JSON text): what a chunk's snapshot keeps of its recipients."""
    targets = trigger.targets if trigger.audience_mode == "targets" else None
    bound = audience.bind(trigger.properties)
    params = compiler.params(trigger.project_id, audience, bound, time.time(), targets)
    stmt = compiler.recipients(audience, targets is not None)
    if snapshot:  # the device's columns and the user's properties as stored (JSON text)
        stmt = stmt.add_columns(D.c.platform, D.c.locale_region, D.c.locale_language,
                                D.c.timezone, U.c.properties.cast(Text))  # fmt: skip
    elif per_user:
        sub = stmt.subquery()
        user_id, project_user_id = list(sub.c)[:2]
        stmt = select(user_id, project_user_id, null(), null(), null()).distinct()
    result = session.execute(stmt, params, execution_options={"yield_per": batch})
    if first is not None and (head := result.fetchmany(first)):
        yield list(head)
    for part in result.partitions(batch):
        yield list(part)


def next_chunk(session: Session, trigger_id: str) -> int:
    """One past the highest chunk number a trigger's messages use (0 when none)."""
    stmt = select(func.max(M.c.chunk_no)).where(M.c.trigger_id == trigger_id)
    highest = session.execute(stmt).scalar()
    return 0 if highest is None else int(highest) + 1


def known_targets(
    session: Session, project_id: str, user_ids: Sequence[str], device_ids: Sequence[str]
) -> tuple[set[str], set[str]]:
    """Which of these project user ids and device ids exist in the project."""
    users: set[str] = set()
    devices: set[str] = set()
    if user_ids:
        stmt = select(U.c.project_user_id).where(
            U.c.project_id == project_id, U.c.project_user_id.in_(user_ids)
        )
        users = {u for u in session.scalars(stmt).all() if u}
    if device_ids:
        dstmt = select(D.c.id).where(D.c.project_id == project_id, D.c.id.in_(device_ids))
        devices = set(session.scalars(dstmt).all())
    return users, devices


def device_timezones(
    session: Session, project_id: str, device_ids: Sequence[str]
) -> dict[str, str | None]:
    if not device_ids:
        return {}
    stmt = select(D.c.id, D.c.timezone).where(D.c.project_id == project_id,
                                              D.c.id.in_(list(device_ids)))  # fmt: skip
    return {row.id: row.timezone for row in session.execute(stmt)}


def messages_batch(dialect: Dialect, rows: Sequence[dict[str, Any]]) -> Batch:
    """Writes message rows; rows whose identity already exists (a replay) are skipped."""
    return insert_batch(dialect, M, rows, ignore_conflicts=True)


def add_messages(session: Session, rows: Sequence[dict[str, Any]]) -> None:
    messages_batch(session.get_bind().dialect, rows).run(session)


def fail_trigger(session: Session, trigger_id: str, kind: str, attempts: int, error: str) -> None:
    """A step of the trigger failed for the last time: the trigger ends as failed."""
    trigger = session.get(Trigger, trigger_id)
    if trigger is not None and trigger.status not in ("completed", "failed", "cancelled"):
        trigger.status = "failed"
        trigger.error = f"{kind} step failed {attempts} times: {error}"
        trigger.completed_at = utcnow()


_CHUNK_DONE = delete(P).where(P.c.trigger_id == bindparam("tid"), P.c.chunk_no == bindparam("no"))


def chunks_pending(
    session: Session,
    chunks: Sequence[tuple[str, int]],
    recipients: dict[tuple[str, int], bytes] | None = None,
    written: dict[tuple[str, int], tuple[int, int]] | None = None,
) -> None:
    """(trigger, chunk): these chunks' messages, written in this commit, are pending;
    ``recipients``: the snapshots of those that have one; ``written``: (queued, skipped),
    the messages of those whose every message this commit wrote."""
    found, counted, unknown = recipients or {}, written or {}, (None, None)
    insert_ignore(session, P, [
        {"trigger_id": t, "chunk_no": c, "recipients": found.get((t, c)),
         "queued": counted.get((t, c), unknown)[0], "skipped": counted.get((t, c), unknown)[1]}
        for t, c in chunks
    ])  # fmt: skip


_RECIPIENTS = select(P.c.chunk_no, P.c.recipients).where(
    P.c.trigger_id == bindparam("tid"),
    P.c.chunk_no.in_(bindparam("nos", expanding=True)),
    P.c.recipients.is_not(None),
)
# What a pending chunk keeps of its messages as written (its snapshot, its counts), for as
# long as nothing has changed them. Only rows that keep something are written (on PostgreSQL,
# each write is a new version of the row).
_KEEPS = or_(P.c.recipients.is_not(None), P.c.queued.is_not(None))
_AS_WRITTEN_NO_MORE = {"recipients": None, "queued": None, "skipped": None}
_FORGET = (
    update(P)
    .where(P.c.trigger_id == bindparam("tid"), P.c.chunk_no == bindparam("no"), _KEEPS)
    .values(_AS_WRITTEN_NO_MORE)
)
_FORGET_TRIGGER = (
    update(P).where(P.c.trigger_id == bindparam("tid"), _KEEPS).values(_AS_WRITTEN_NO_MORE)
)
_FORGET_USERS = (
    update(P)
    .where(
        _KEEPS,
        exists().where(
            M.c.user_id == bindparam("uid"),
            M.c.trigger_id == P.c.trigger_id,
            M.c.chunk_no == P.c.chunk_no,
        ),
    )
    .values(_AS_WRITTEN_NO_MORE)
)


def forget_recipients_of(session: Session, user_id: str) -> None:
    """The user's messages are about to change (deleted, or moved to another user): the
    snapshots and counts of the chunks that hold them no longer stand for them."""
    session.execute(_FORGET_USERS, {"uid": user_id})


def chunk_recipients(
    session: Session, chunks: Sequence[tuple[str, int]]
) -> dict[tuple[str, int], bytes]:
    """The snapshots these chunks have (see delivery.snapshots)."""
    found: dict[tuple[str, int], bytes] = {}
    for trigger_id, numbers in _by_trigger(chunks).items():
        for chunk_no, value in session.execute(_RECIPIENTS, {"tid": trigger_id, "nos": numbers}):
            found[trigger_id, chunk_no] = bytes(value)
    return found


def chunks_taken(session: Session, chunks: Sequence[tuple[str, int]]) -> None:
    """A delivery step has taken these chunks: their messages may change from this commit
    on, so their snapshots and counts as written no longer stand (they are read from here
    on)."""
    if chunks:
        session.execute(_FORGET, [{"tid": t, "no": c} for t, c in chunks])


def chunks_done(session: Session, chunks: Sequence[tuple[str, int]]) -> None:
    """(trigger, chunk): none of these chunks' messages is pending any more."""
    if chunks:
        session.execute(_CHUNK_DONE, [{"tid": t, "no": c} for t, c in chunks])


def set_status(session: Session, trigger_id: str, status: str) -> None:
    session.execute(_SET_STATUS, {"tid": trigger_id, "new_status": status})


def finalize_resolve(session: Session, finals: Sequence[tuple[str, int, list[Any]]]) -> None:
    """(trigger id, matched count, excluded targets) for triggers done resolving."""
    if finals:
        session.execute(
            _FINALIZE, [{"tid": t, "matched": n, "excl": excl} for t, n, excl in finals]
        )


def locked_statuses(
    session: Session, trigger_ids: Iterable[str], *, share: bool = False
) -> dict[str, str]:
    """The triggers' statuses, their rows locked until the commit (on PostgreSQL; SQLite's
    write lock already serialises writers). The pipeline's steps take a key-share lock, so
    they do not wait for each other, and a cancel the exclusive one: it waits for a step that
    has read the status to commit, and a step after it sees the cancel."""
    ids = sorted(set(trigger_ids))
    if not ids:
        return {}
    session.execute(_SHARE_TRIGGERS if share else _LOCK_TRIGGERS, {"tids": ids}).all()
    return {row.id: row.status for row in session.execute(_STATUSES, {"tids": ids})}


def cancel_queued(session: Session, trigger_id: str, reason: str) -> None:
    """Every message of the trigger not yet handed over ends as cancelled."""
    stmt = _cancel_queued(session.get_bind().dialect)
    session.execute(_FORGET_TRIGGER, {"tid": trigger_id})
    session.execute(stmt, {"tid": trigger_id, "reason": reason})


def complete_if_done(session: Session, trigger_ids: Sequence[str]) -> list[Any]:
    """Mark triggers completed once past resolving with no chunk pending; returns those that
    this call completed (id, project_id, campaign_id, matched). Locking the rows first makes
    concurrent last chunks on PostgreSQL see each other's commits."""
    if not trigger_ids:
        return []
    ids = sorted(set(trigger_ids))
    session.execute(_COMPLETING_TRIGGERS, {"tids": ids}).all()
    return list(session.execute(_COMPLETE, {"tids": ids, "now": utcnow()}).all())


class ChunkRow(NamedTuple):
    """A message to deliver, with its device and its user's properties (_CHUNK's columns)."""

    id: str
    project_id: str
    trigger_id: str
    chunk_no: int
    status: str
    attempts: int
    possible_duplicate: bool
    not_before: datetime | None
    project_user_id: str | None
    user_id: str
    device_id: str | None
    platform: str | None
    push_token: str | None
    locale_region: str | None
    locale_language: str | None
    timezone: str | None
    user_properties: dict[str, Any] | None


_DUP = ChunkRow._fields.index("possible_duplicate")
_NOT_BEFORE = ChunkRow._fields.index("not_before")
_CHUNK_SUB = _chunk_read("sqlite").subquery()
# SQLite: the chunk as one JSON value, in one step of the statement. Fetching it row by row
# lets go of the GIL around every row, and each time this thread waits to take it back from
# a thread that is rendering (see storage.bulk). json() embeds the properties as an object.
_CHUNK_JSON = select(func.json_group_array(func.json_array(*(
    func.json(c) if c.name == "user_properties" else c for c in _CHUNK_SUB.c
))))  # fmt: skip


def chunk_messages(session: Session, chunks: Sequence[tuple[str, int]]) -> list[ChunkRow]:
    """The undelivered messages of these (trigger, chunk) pairs, with what rendering and
    sending need."""
    rows: list[ChunkRow] = []
    dialect = session.get_bind().dialect
    for trigger_id, numbers in _by_trigger(chunks).items():
        params = {"tid": trigger_id, "nos": numbers}
        if dialect.name != "sqlite":
            rows += [ChunkRow._make(row) for row in session.execute(_CHUNK, params)]
            continue
        when = _datetime_result(dialect)
        for values in orjson.loads(session.execute(_CHUNK_JSON, params).scalar_one()):
            values[_DUP] = bool(values[_DUP])  # stored as 0 or 1
            values[_NOT_BEFORE] = when(values[_NOT_BEFORE])  # stored as text
            rows.append(ChunkRow._make(values))
    return rows


def _by_trigger(chunks: Sequence[tuple[str, int]]) -> dict[str, list[int]]:
    by_trigger: dict[str, list[int]] = {}
    for trigger_id, chunk_no in chunks:
        by_trigger.setdefault(trigger_id, []).append(chunk_no)
    return by_trigger


@lru_cache(maxsize=8)
def _datetime_result(dialect: Dialect) -> Callable[[Any], Any]:
    """A stored datetime as the column reads it back (UTC-aware)."""
    column = M.c.not_before
    processor = column.type.dialect_impl(dialect).result_processor(dialect, None)
    return processor if processor is not None else (lambda value: value)


def sending_batch(dialect: Dialect, marks: Sequence[dict[str, Any]]) -> Batch:
    """Marks messages sending. ``marks``: {"mid", "n" (attempt number), "dup" (possible
    duplicate)}."""
    return update_batch(dialect, M, "id", [
        {"id": m["mid"], "status": "sending", "attempts": m["n"], "possible_duplicate": m["dup"]}
        for m in marks
    ])  # fmt: skip


def outcomes_batch(dialect: Dialect, outcomes: Sequence[dict[str, Any]]) -> Batch:
    """Records outcomes. ``outcomes``: {"mid", and the fields of OUTCOME_FIELDS and
    HANDOVER_FIELDS (absent or None where not known)}; with "attempts" and
    "possible_duplicate" in every one or in none (those of a message marked sending by itself
    are already recorded). The hand-over of an outcome that leaves the message pending
    (queued, to be retried) is not the message's: attempts_batch records it."""
    if not outcomes:
        return Batch()
    tally = TALLY if "attempts" in outcomes[0] else ()
    fields = OUTCOME_FIELDS + HANDOVER_FIELDS
    # Each row: the outcome over a row of Nones (in C: 0.4 against 1.3 us for a comprehension
    # per row), its "mid" as "id"; keys of an outcome that are not columns to write are left
    # out.
    template = dict.fromkeys(("mid", *fields, *tally))
    size = len(template)
    rows = []
    for o in outcomes:
        row = {**template, **o}
        if len(row) != size:
            row = {key: row[key] for key in template}
        if _leaves_pending(o):
            row.update(_UNSETTLED)
        row["id"] = row.pop("mid")
        rows.append(row)
    return update_batch(dialect, M, "id", rows)


def record_outcomes(session: Session, outcomes: Sequence[dict[str, Any]]) -> None:
    outcomes_batch(session.get_bind().dialect, outcomes).run(session)


def counts(session: Session, trigger_id: str) -> dict[str, int]:
    return {status: int(n) for status, n in session.execute(_COUNTS, {"tid": trigger_id}).all()}


_PENDING_CHUNKS = select(P.c.chunk_no, P.c.queued, P.c.skipped).where(
    P.c.trigger_id == bindparam("tid")
)
_LAST_CHUNK = select(func.max(M.c.chunk_no)).where(M.c.trigger_id == bindparam("tid"))
_COUNTS_AFTER = (
    select(M.c.status, func.count())
    .where(M.c.trigger_id == bindparam("tid"), M.c.chunk_no > bindparam("last"))
    .group_by(M.c.status)
)


def counts_from(
    session: Session, trigger_id: str, upto: int, known: Collection[int] = ()
) -> tuple[dict[str, int], dict[str, int], set[int]]:
    """A trigger's counts by status, but those of the chunks before ``upto`` and of the
    ``known`` ones (settled chunks counted before), split in two: the chunks found settled
    (none of their messages pending: a chunk's messages and its pending_chunks row are
    written in one commit, and a chunk that has left pending_chunks never returns), and the
    others; and the numbers of the chunks found settled. A pending chunk that still has its
    counts as written is not read: while a broadcast is being sent, that is most of its
    messages."""
    # Chunks are written in the order of their numbers: every chunk up to the last one
    # found here was written before the pending chunks are read, so one of them that is not
    # pending then is settled. Those after it (written since) are read as they are.
    found = session.execute(_LAST_CHUNK, {"tid": trigger_id}).scalar()
    last = -1 if found is None else int(found)
    pending = {row.chunk_no: row for row in session.execute(_PENDING_CHUNKS, {"tid": trigger_id})}
    settled: dict[str, int] = {}
    others: dict[str, int] = {}
    newly: set[int] = set()
    read: list[int] = []
    for chunk_no in range(upto, last + 1):
        if chunk_no in known:
            continue
        chunk = pending.get(chunk_no)
        if chunk is None:
            newly.add(chunk_no)
            read.append(chunk_no)
        elif chunk.queued is None:
            read.append(chunk_no)
        else:
            _add(others, "queued", chunk.queued)
            _add(others, "skipped", chunk.skipped)
    if read:
        stmt = _counts_of(session.get_bind().dialect, read)
        for chunk_no, status, n in session.execute(stmt, {"tid": trigger_id}):
            _add(settled if chunk_no in newly else others, status, n)
    for status, n in session.execute(_COUNTS_AFTER, {"tid": trigger_id, "last": last}):
        _add(others, status, n)
    return settled, others, newly


def _add(counts: dict[str, int], status: str, n: int | None) -> None:
    if n:
        counts[status] = counts.get(status, 0) + int(n)


def _counts_of(dialect: Dialect, chunk_nos: Sequence[int]) -> Select[Any]:
    """A trigger's counts by chunk and status in these chunks (each found by key in
    ix_messages_chunk)."""
    return (
        select(M.c.chunk_no, M.c.status, func.count())
        .where(M.c.trigger_id == bindparam("tid"), in_values(M.c.chunk_no, chunk_nos, dialect))
        .group_by(M.c.chunk_no, M.c.status)
    )


_INVALIDATE = (
    update(D)
    .where(
        D.c.project_id == bindparam("pid"),
        D.c.id == bindparam("did"),
        D.c.push_token == bindparam("token"),  # unless the app has registered a new one since
    )
    .values(
        push_token=None,
        token_invalid_reason=bindparam("why"),
        token_invalidated_at=bindparam("at"),
        updated_at=bindparam("at"),
    )
)


def invalidate_tokens(session: Session, dead: Sequence[tuple[str, str, str, str]]) -> None:
    """(project id, device id, token, reason): clear each token a provider called invalid,
    and record why; a device that registered a new token meanwhile keeps it."""
    now = utcnow()
    rows = [{"pid": p, "did": d, "token": t, "why": why[:255], "at": now} for p, d, t, why in dead]
    if rows:
        session.execute(_INVALIDATE, rows)


def attempts_batch(dialect: Dialect, outcomes: Sequence[dict[str, Any]]) -> Batch:
    """A row per hand-over that left its message pending (a retryable outcome: status
    queued); a hand-over that settles its message is recorded with the outcome, on the message
    (outcomes_batch). Outcomes without "attempt_outcome" never reached a provider."""
    rows = [
        {"message_id": o["mid"], "attempt": o.get("attempts", 1), "at": o["attempted_at"],
         "provider": o.get("provider") or "", "outcome": o["attempt_outcome"],
         "response_code": o.get("response_code"), "reason": o.get("reason")}
        for o in outcomes
        if "attempt_outcome" in o and _leaves_pending(o)
    ]  # fmt: skip
    return insert_batch(dialect, A, rows)


class Attempt(NamedTuple):
    """A hand-over of a message to a provider, as the attempt log shows it."""

    message_id: str
    attempt: int
    at: datetime
    provider: str
    outcome: str
    response_code: str | None
    reason: str | None


_ATTEMPTS = select(A.c.message_id, A.c.attempt, A.c.at, A.c.provider, A.c.outcome,
                   A.c.response_code, A.c.reason, A.c.id)  # fmt: skip
_SETTLING = select(
    M.c.id, M.c.attempts, M.c.attempted_at, M.c.provider, M.c.attempt_outcome,
    M.c.response_code, M.c.reason,
).where(M.c.attempt_outcome.is_not(None))  # fmt: skip


def attempts_for(session: Session, message_ids: Sequence[str]) -> dict[str, list[Attempt]]:
    """Every hand-over of each of these messages, in order: its rows in message_attempts,
    then the one that settled it (recorded on the message)."""
    found: dict[str, list[Attempt]] = {m: [] for m in message_ids}
    if not message_ids:
        return found
    ids = list(message_ids)
    earlier = session.execute(_ATTEMPTS.where(A.c.message_id.in_(ids))
                              .order_by(A.c.attempt, A.c.id)).all()  # fmt: skip
    for row in earlier:
        found[row.message_id].append(Attempt(*row[:7]))
    for m in session.execute(_SETTLING.where(M.c.id.in_(ids))).all():
        found[m.id].append(Attempt(m.id, m.attempts, m.attempted_at, m.provider or "",
                                   m.attempt_outcome, m.response_code, m.reason))  # fmt: skip
    return found


def attempts(session: Session, message_id: str) -> list[Attempt]:
    return attempts_for(session, [message_id])[message_id]
