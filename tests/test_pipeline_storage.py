"""The pipeline's storage. Its batch writes and its chunk read: on SQLite multi-row VALUES
statements and a JSON aggregate back, on PostgreSQL COPY for inserts (an INSERT that skips
collisions when a replay's row collides) and one JSON parameter per update; what goes in
must come back exactly as the ORM would have written and read it. Job claims that share
a broadcast's chunks out, and trigger counts cheap enough to poll."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from sqlalchemy import Table, func, insert, select, text
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import Session

from clarion.delivery import repository
from clarion.ids import uuid7
from clarion.runner import jobs
from clarion.storage.bulk import _copy_of, insert_batch, update_batch
from clarion.storage.db import Database
from clarion.storage.models import Campaign, Device, Message, MessageAttempt, Trigger, User, utcnow
from clarion.triggers.progress import CountCache
from tests.conftest import make_project

M = cast(Table, Message.__table__)


def insert_rows(session: Session, table: Table, rows: Any, ignore_conflicts: bool = False) -> None:
    dialect = session.get_bind().dialect
    insert_batch(dialect, table, rows, ignore_conflicts=ignore_conflicts).run(session)


def update_rows(session: Session, table: Table, key: str, rows: Any) -> None:
    update_batch(session.get_bind().dialect, table, key, rows).run(session)


A = cast(Table, MessageAttempt.__table__)
ODD = "Zoë's \"order\" \\ 🚚 ünïcode; '); DROP TABLE messages; --"


def _trigger(db: Database, project_id: str) -> str:
    trigger_id, campaign_id = uuid7(), uuid7()
    with db.write() as session:
        session.add(Campaign(id=campaign_id, project_id=project_id, name=campaign_id,
                             channel="push", type="api", status="active", version=1))  # fmt: skip
        session.flush()
        session.add(Trigger(id=trigger_id, project_id=project_id, campaign_id=campaign_id,
                            campaign_version=1, audience_mode="segment", status="sending",
                            properties={}, targets=[]))  # fmt: skip
    return trigger_id


def _message(project_id: str, trigger_id: str, n: int, **extra: Any) -> dict[str, Any]:
    return {
        "id": uuid7(), "project_id": project_id, "trigger_id": trigger_id, "chunk_no": n % 3,
        "user_id": f"u{n}", "project_user_id": f"user-{n}", "device_id": f"d{n}",
        "channel": "push", "status": "queued", "reason": None, "attempts": 0,
        "possible_duplicate": False, "created_at": utcnow(), "not_before": None,
        "capped": False, **extra,
    }  # fmt: skip


def test_batch_writes_round_trip_every_type(db: Database) -> None:
    project = make_project(db)
    trigger_id = _trigger(db, project.id)
    later = datetime(2030, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
    rows = [_message(project.id, trigger_id, n) for n in range(5)]
    rows[1].update(reason=ODD, not_before=later, capped=True, possible_duplicate=True)
    with db.write() as session:
        insert_rows(session, M, rows, ignore_conflicts=True)
    replay = [{**rows[0], "id": uuid7()}, _message(project.id, trigger_id, 9)]
    with db.write() as session:  # the first collides with a row's identity: skipped, no error
        insert_rows(session, M, replay, ignore_conflicts=True)
    sent_at = utcnow()
    outcomes = [{"id": r["id"], "status": "sent", "title": ODD, "body": "b" * 5000,
                 "provider_message_id": None, "sent_at": sent_at, "attempts": 2}
                for r in rows[:3]]  # fmt: skip
    with db.write() as session:
        update_rows(session, M, "id", outcomes)
        insert_rows(session, A, [{"message_id": r["id"], "attempt": 1, "at": sent_at,
                                  "provider": "sink", "outcome": "sent", "response_code": None,
                                  "reason": ODD} for r in rows[:2]])  # fmt: skip
    with db.read() as session:
        stored = {m.id: m for m in session.scalars(select(Message))}
        attempts = session.scalars(select(MessageAttempt).order_by(MessageAttempt.id)).all()
    assert len(stored) == 6  # five, and the second batch's new row
    assert replay[0]["id"] not in stored
    first, second, fourth = stored[rows[0]["id"]], stored[rows[1]["id"]], stored[rows[3]["id"]]
    assert (second.reason, second.not_before, second.capped, second.possible_duplicate) == (
        ODD, later, True, True)  # fmt: skip
    assert first.created_at == rows[0]["created_at"] and first.not_before is None
    assert (first.status, first.title, first.body, first.attempts) == ("sent", ODD, "b" * 5000, 2)
    assert first.sent_at == sent_at and first.provider_message_id is None
    assert (fourth.status, fourth.title, fourth.sent_at) == ("queued", None, None)
    assert [(a.message_id, a.reason, a.at) for a in attempts] == [
        (rows[0]["id"], ODD, sent_at), (rows[1]["id"], ODD, sent_at)]  # fmt: skip


def test_copy_goes_in_binary_format_only_where_every_column_has_one() -> None:
    """Message rows go by COPY in binary format (psycopg writes the values in C); a table
    with a JSON column (users' properties) in text, where psycopg formats what it is given."""
    dialect = postgresql.dialect()
    message = _copy_of(dialect, M, ("id", "chunk_no", "possible_duplicate", "created_at"))
    assert message.sql.endswith("FROM STDIN (FORMAT BINARY)")
    assert message.binary == ("text", "int4", "bool", "timestamptz")
    users = _copy_of(dialect, cast(Table, User.__table__), ("id", "properties", "created_at"))
    assert users.sql.endswith("FROM STDIN") and users.binary is None


def test_a_batch_larger_than_a_statement_is_written_whole(db: Database) -> None:
    """On SQLite a batch goes in pieces of a power of two rows (1,001 = 3 x 256 + 128 + 64 +
    32 + 8 + 1): every row is written once and updated once, whatever piece it falls in."""
    project = make_project(db)
    trigger_id = _trigger(db, project.id)
    rows = [_message(project.id, trigger_id, n) for n in range(1001)]
    with db.write() as session:
        insert_rows(session, M, rows, ignore_conflicts=True)
        insert_rows(session, M, rows[500:], ignore_conflicts=True)  # a replay: all skipped
    with db.write() as session:
        update_rows(session, M, "id", [{"id": r["id"], "status": "sent", "title": r["user_id"]}
                                        for r in rows])  # fmt: skip
    with db.read() as session:
        stored = session.execute(select(M.c.id, M.c.status, M.c.title, M.c.user_id)).all()
    assert len(stored) == 1001
    assert {(s.id, s.status, s.title) for s in stored} == {
        (r["id"], "sent", r["user_id"]) for r in rows}  # fmt: skip


def test_chunk_read_gives_typed_rows(db: Database) -> None:
    project = make_project(db)
    trigger_id = _trigger(db, project.id)
    due = utcnow() + timedelta(hours=1)
    with db.write() as session:
        session.add(User(id="u1", project_id=project.id, project_user_id="user-1",
                         properties={"first_name": ODD, "n": 3, "tags": ["a"]}))  # fmt: skip
        session.add(User(id="u2", project_id=project.id, project_user_id=None))
        session.flush()
        session.add(Device(id="d1", project_id=project.id, user_id="u1",
                           platform="IOS", push_token="tok", locale_region="NL",
                           locale_language="nl", timezone="Europe/Amsterdam"))  # fmt: skip
    rows = [
        _message(project.id, trigger_id, 1, user_id="u1", device_id="d1", chunk_no=0,
                 not_before=due, possible_duplicate=True),
        _message(project.id, trigger_id, 2, user_id="u2", device_id="", chunk_no=0,
                 project_user_id=None),
        _message(project.id, trigger_id, 3, user_id="u1", device_id="d1", chunk_no=1,
                 channel="in_app"),
        _message(project.id, trigger_id, 4, user_id="u1", device_id="d1", chunk_no=0,
                 status="sent", channel="webhook"),
    ]  # fmt: skip
    rows[1]["user_id"] = "u2"
    with db.write() as session:
        insert_rows(session, M, rows)
    with db.read() as session:
        found = repository.chunk_messages(session, [(trigger_id, 0)])
    for dialect in ("sqlite", "postgresql"):
        columns = repository._chunk_read(dialect).selected_columns
        assert list(repository.ChunkRow._fields) == [c.name for c in columns]
    by_id = {r.id: r for r in found}
    assert set(by_id) == {rows[0]["id"], rows[1]["id"]}  # chunk 0, not yet sent
    one, two = by_id[rows[0]["id"]], by_id[rows[1]["id"]]
    assert one == repository.ChunkRow(
        rows[0]["id"], project.id, trigger_id, 0, "queued", 0, True, due, "user-1", "u1",
        "d1", "IOS", "tok", "NL", "nl", "Europe/Amsterdam",
        {"first_name": ODD, "n": 3, "tags": ["a"]},
    )  # fmt: skip
    assert one.not_before is not None and one.not_before.tzinfo is not None
    assert (two.project_user_id, two.device_id, two.platform, two.possible_duplicate) == (
        None, None, None, False)  # fmt: skip
    assert two.user_properties in ({}, None)


def test_the_chunk_read_finds_users_by_key_whatever_the_statistics_say(db: Database) -> None:
    """Once statistics count a trigger's messages (a broadcast big enough for autovacuum to
    analyse), PostgreSQL read a chunk's users and devices by hashing the whole users and
    devices tables, chunk after chunk; the chunk read must reach each message's user and
    device by key however the planner sees them."""
    project = make_project(db)
    trigger_id = _trigger(db, project.id)
    n, now = 20_000, utcnow()
    users = [{"id": f"u{i}", "project_id": project.id, "project_user_id": f"user-{i}",
              "properties": {"n": i}, "created_at": now, "updated_at": now}
             for i in range(n)]  # fmt: skip
    devices = [{"id": f"d{i}", "project_id": project.id, "user_id": f"u{i}", "platform": "IOS",
                "push_token": f"tok-{i}", "created_at": now, "updated_at": now}
               for i in range(n)]  # fmt: skip
    messages = [{**_message(project.id, trigger_id, i), "chunk_no": i // 500} for i in range(n)]
    with db.write() as session:
        session.execute(insert(User), users)
        session.execute(insert(Device), devices)
        insert_rows(session, M, messages)
    with db.engine.connect() as conn:
        conn.execute(text("ANALYZE"))
        dialect = conn.dialect
        chunk = repository._chunk_read(dialect.name).params(tid=trigger_id, nos=[8, 9, 10, 11])
        sql = str(chunk.compile(dialect=dialect, compile_kwargs={"literal_binds": True}))
        explain = "EXPLAIN QUERY PLAN " if dialect.name == "sqlite" else "EXPLAIN "
        plan = "\n".join(str(row[-1]) for row in conn.exec_driver_sql(explain + sql))
        assert len(conn.exec_driver_sql(sql).all()) == 2000
    assert "users" in plan and "devices" in plan
    assert not re.search(r"Seq Scan on (users|devices)|SCAN (users|devices)\b", plan), plan


def test_a_claim_takes_at_most_its_share_of_deliver_jobs(db: Database) -> None:
    project = make_project(db)
    broadcast, small = _trigger(db, project.id), _trigger(db, project.id)
    with db.write() as session:
        jobs.add_deliver_jobs(session, [(broadcast, n) for n in range(10)])
        jobs.enqueue_resolve(session, [small], {})
    with db.write() as session:
        first = jobs.claim(session, 60, 32, deliver_limit=4)
    with db.write() as session:
        second = jobs.claim(session, 60, 32, deliver_limit=4)
    with db.write() as session:
        rest = jobs.claim(session, 60, 32)
    assert [j.kind for j in first].count("deliver") == 4
    assert [j.kind for j in first].count("resolve") == 1  # the others are not held back
    assert [(j.kind, j.chunk_no) for j in second] == [("deliver", n) for n in range(4, 8)]
    assert [j.chunk_no for j in rest] == [8, 9]


def test_counts_are_reused_while_the_status_stays_and_recounted_when_it_changes(
    db: Database,
) -> None:
    project = make_project(db)
    trigger_id = _trigger(db, project.id)
    with db.write() as session:
        insert_rows(session, M, [_message(project.id, trigger_id, n) for n in range(3)])

    def trigger() -> Any:
        with db.read() as session:
            return session.get(Trigger, trigger_id)

    def add(n: int, status: str) -> None:  # in a chunk of its own, settled
        with db.write() as session:
            insert_rows(session, M, [_message(project.id, trigger_id, n, status=status,
                                              chunk_no=n)])  # fmt: skip

    fresh, lasting = CountCache(reuse=0), CountCache(reuse=1e9)
    with db.read() as session:
        assert fresh.counts(session, trigger()) == lasting.counts(session, trigger()) == {
            "queued": 3}  # fmt: skip
    add(10, "sent")
    with db.read() as session:  # the same status: one cache counts again, the other reuses
        assert fresh.counts(session, trigger()) == {"queued": 3, "sent": 1}
        assert lasting.counts(session, trigger()) == {"queued": 3}
    with db.write() as session:
        session.get(Trigger, trigger_id).status = "completed"  # type: ignore[union-attr]
    with db.read() as session:  # a new status: counted afresh, whatever was reused before
        assert lasting.counts(session, trigger()) == {"queued": 3, "sent": 1}


def test_polled_counts_count_settled_chunks_once(db: Database) -> None:
    """While the status stays, the chunks before the first pending one are settled: their
    counts are kept and only the chunks from there on are counted again. A new status is
    counted afresh, whole."""
    project = make_project(db)
    trigger_id = _trigger(db, project.id)
    rows = [_message(project.id, trigger_id, n, chunk_no=n // 2) for n in range(8)]  # 0-3
    with db.write() as session:
        insert_rows(session, M, rows)
        repository.chunks_pending(session, [(trigger_id, 1), (trigger_id, 2), (trigger_id, 3)])

    def trigger() -> Any:
        with db.read() as session:
            return session.get(Trigger, trigger_id)

    def settle(chunk_no: int, status: str = "sent") -> None:
        with db.write() as session:
            session.execute(M.update().where(M.c.chunk_no == chunk_no).values(status=status))
            repository.chunks_done(session, [(trigger_id, chunk_no)])

    cache = CountCache(reuse=0)
    with db.read() as session:
        assert cache.counts(session, trigger()) == {"queued": 8}
    with db.write() as session:  # what no pipeline does: a settled chunk's message changes
        session.execute(M.update().where(M.c.id == rows[0]["id"]).values(status="failed"))
    settle(1)
    with db.read() as session:  # chunk 0 was settled: not counted again; chunk 1 was not
        assert cache.counts(session, trigger()) == {"queued": 6, "sent": 2}
    settle(2)
    settle(3, "skipped")
    with db.read() as session:
        assert cache.counts(session, trigger()) == {"queued": 2, "sent": 4, "skipped": 2}
    with db.write() as session:
        session.get(Trigger, trigger_id).status = "completed"  # type: ignore[union-attr]
    with db.read() as session:  # counted afresh: the change in chunk 0 shows
        assert cache.counts(session, trigger()) == {
            "queued": 1, "failed": 1, "sent": 4, "skipped": 2}  # fmt: skip


def test_a_chunk_settled_after_a_pending_one_is_counted_once(db: Database) -> None:
    """Chunks settle out of order (two workers, a retry): one settled while an earlier one is
    still pending is kept too, and a chunk written since the last count is read."""
    project = make_project(db)
    trigger_id = _trigger(db, project.id)
    rows = [_message(project.id, trigger_id, n, chunk_no=n // 2) for n in range(6)]  # 0-2
    with db.write() as session:
        insert_rows(session, M, rows)
        repository.chunks_pending(session, [(trigger_id, n) for n in range(3)])
    with db.write() as session:
        session.execute(M.update().where(M.c.chunk_no == 2).values(status="sent"))
        repository.chunks_done(session, [(trigger_id, 2)])
    with db.read() as session:
        settled, others, found = repository.counts_from(session, trigger_id, 0)
    assert (settled, others, found) == ({"sent": 2}, {"queued": 4}, {2})
    with db.write() as session:  # what no pipeline does: a settled chunk's message changes
        session.execute(M.update().where(M.c.id == rows[4]["id"]).values(status="failed"))
        insert_rows(session, M, [_message(project.id, trigger_id, 9, chunk_no=3)])
    with db.read() as session:  # chunk 2 is not read again; chunk 3 is new
        assert repository.counts_from(session, trigger_id, 0, {2}) == (
            {"queued": 1}, {"queued": 4}, {3})  # fmt: skip
        cache = CountCache(reuse=0)
        trigger = session.get(Trigger, trigger_id)
        assert cache.counts(session, trigger) == {"queued": 5, "sent": 1, "failed": 1}
    with db.write() as session:
        session.execute(M.update().where(M.c.chunk_no < 2).values(status="sent"))
        repository.chunks_done(session, [(trigger_id, 0), (trigger_id, 1)])
    with db.read() as session:
        assert cache.counts(session, trigger) == {"queued": 1, "sent": 5, "failed": 1}
        assert cache._entries[trigger_id].upto == 4  # every chunk settled, as one number


def test_a_trigger_completes_when_its_last_pending_chunk_is_done(db: Database) -> None:
    """Completion reads the pending chunks (there is no index on the messages' status): a
    trigger past resolving completes in the commit that leaves none of its chunks pending,
    and only then; a chunk written twice (a replay) is one pending chunk."""
    project = make_project(db)
    trigger_id, other = _trigger(db, project.id), _trigger(db, project.id)
    with db.write() as session:
        repository.chunks_pending(session, [(trigger_id, 0), (trigger_id, 1), (other, 0)])
        repository.chunks_pending(session, [(trigger_id, 1)])
    with db.write() as session:
        repository.chunks_done(session, [(trigger_id, 0)])
        assert repository.complete_if_done(session, [trigger_id, other]) == []
    with db.write() as session:
        repository.chunks_done(session, [(trigger_id, 1), (trigger_id, 7)])  # 7: never pending
        done = repository.complete_if_done(session, [trigger_id, other])
    assert [row.id for row in done] == [trigger_id]
    with db.read() as session:
        statuses = {t: session.get(Trigger, t).status for t in (trigger_id, other)}  # type: ignore[union-attr]
    assert statuses == {trigger_id: "completed", other: "sending"}


def test_the_attempt_log_is_the_retried_hand_overs_then_the_settling_one(db: Database) -> None:
    """A hand-over that leaves its message pending is an attempt row; the one that settles it
    is recorded with the outcome, on the message; the log shows them all, in order."""
    project = make_project(db)
    trigger_id = _trigger(db, project.id)
    retried, first_time, given_up = (_message(project.id, trigger_id, n) for n in range(3))
    with db.write() as session:
        insert_rows(session, M, [retried, first_time, given_up])
    dialect = db.engine.dialect
    t1, t2 = utcnow(), utcnow() + timedelta(seconds=60)

    def handed(message: dict[str, Any], n: int, outcome: str, code: str, at: datetime) -> Any:
        status = {"retryable": "queued", "sent": "sent"}.get(outcome, "failed")
        return {"mid": message["id"], "status": status, "provider": "fcm", "reason": None,
                "attempt_outcome": outcome, "response_code": code, "attempted_at": at,
                "attempts": n, "possible_duplicate": False}  # fmt: skip

    def record(outcomes: list[dict[str, Any]]) -> None:
        with db.write() as session:
            repository.outcomes_batch(dialect, outcomes).run(session)
            repository.attempts_batch(dialect, outcomes).run(session)

    record([handed(retried, 1, "retryable", "429 QUOTA_EXCEEDED", t1),
            handed(first_time, 1, "invalid_recipient", "404 UNREGISTERED", t1),
            {"mid": given_up["id"], "status": "failed", "reason": "interrupted",
             "attempts": 5, "possible_duplicate": True}])  # fmt: skip
    with db.read() as session:
        pending = session.get(Message, retried["id"])
        assert pending is not None and pending.status == "queued"
        assert (pending.attempt_outcome, pending.response_code, pending.attempted_at) == (
            None, None, None)  # fmt: skip
    record([handed(retried, 2, "sent", "200", t2)])
    with db.read() as session:
        log = repository.attempts_for(session, [retried["id"], first_time["id"], given_up["id"]])
        rows = session.scalar(select(func.count()).select_from(MessageAttempt))
    assert [(a.attempt, a.outcome, a.response_code, a.at) for a in log[retried["id"]]] == [
        (1, "retryable", "429 QUOTA_EXCEEDED", t1), (2, "sent", "200", t2)]  # fmt: skip
    assert [(a.attempt, a.provider, a.outcome) for a in log[first_time["id"]]] == [
        (1, "fcm", "invalid_recipient")]  # fmt: skip
    assert log[given_up["id"]] == []  # never reached a provider
    assert rows == 1  # only the hand-over that left its message pending
