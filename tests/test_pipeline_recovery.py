"""What the pipeline does with the state a crash leaves behind, on a real database: a message
left "sending" (or left queued under an open hand-over of its chunk) is sent once more and
flagged a possible duplicate, up to its last hand-over; meanwhile the log shows it sending and
a cancel leaves it be. And how a resolve cuts a trigger into chunks, and resumes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import delete, select, update

from clarion.config import Settings
from clarion.delivery import handovers
from clarion.delivery import pipeline as pipeline_module
from clarion.delivery.pipeline import (
    CANCELLED_IN_FLIGHT,
    FAIL_INTERRUPTED,
    MAX_HANDOVERS,
    Pipeline,
)
from clarion.delivery.providers.registry import build_registry
from clarion.runner import jobs
from clarion.storage.db import Database
from clarion.storage.models import Handover, Job, Message, Trigger, utcnow
from tests.conftest import Server, make_project, run_worker_until_idle
from tests.helpers import ONE_STAFF, PROPS, add_user, ok, store_pickup, trigger


def _message(db: Database) -> Any:
    with db.read() as session:
        (message,) = session.scalars(select(Message)).all()
        return message


def _exists(db: Database, message_id: str) -> bool:
    with db.read() as session:
        return session.get(Message, message_id) is not None


def _nine_staff(server: Server, project: Any) -> None:
    """Seven more San Francisco staff members: nine in all."""
    for i in range(7):
        add_user(server.client, project, f"sf-extra-{i}",
                 {"user_role": "store_staff", "store_location": "San Francisco"})  # fmt: skip


def _to_nine_staff(
    server_factory: Any, db: Database, tmp_path: Path
) -> tuple[Server, Any, str, Settings]:
    """A server without its worker, a project with nine San Francisco staff members and a
    store-pickup trigger to them, not yet resolved; and the settings of a pipeline beside
    the server (its outbox under ``tmp_path``)."""
    server: Server = server_factory(embedded_worker=False)
    project = make_project(db)
    campaign_id = store_pickup(server.client, project)
    _nine_staff(server, project)
    trigger_id = ok(trigger(server.client, project, campaign_id, {"properties": PROPS}))[
        "trigger_id"
    ]
    settings = Settings(database_url=server.settings.database_url, var_dir=tmp_path)
    return server, project, trigger_id, settings


def _crash_mid_send(db: Database, trigger_id: str) -> None:
    """What a crash between the hand-over to the provider and its record leaves: the message
    'sending' and its deliver job still leased."""
    with db.write() as session:
        session.execute(update(Message).values(status="sending"))
        jobs.add_deliver_jobs(session, [(trigger_id, 0)], lease_until=utcnow())


def _crash_mid_handover(db: Database, trigger_id: str) -> None:
    """The same crash where the hand-over is recorded by its chunk: the message still queued
    with the hand-over not yet counted, its chunk's hand-over open, the job still leased."""
    with db.write() as session:
        session.execute(update(Message).values(status="queued", attempts=Message.attempts - 1))
        handovers.begin(session, [(trigger_id, 0, [])])
        jobs.add_deliver_jobs(session, [(trigger_id, 0)], lease_until=utcnow())


@pytest.mark.parametrize("crash", [_crash_mid_send, _crash_mid_handover])
def test_a_message_left_sending_is_resent_until_its_last_handover_then_given_up(
    server_factory: Any, db: Database, tmp_path: Path, crash: Any
) -> None:
    server: Server = server_factory(embedded_worker=False)
    project = make_project(db)
    campaign_id = store_pickup(server.client, project)
    trigger_id = ok(trigger(server.client, project, campaign_id, ONE_STAFF))["trigger_id"]
    settings = Settings(database_url=server.settings.database_url, var_dir=tmp_path)
    pipeline = Pipeline(db, build_registry(settings, db), chunk_size=500)

    pipeline.resolve([trigger_id])  # resolves, then delivers its one chunk at once
    message = _message(db)
    assert (message.status, message.attempts, message.possible_duplicate) == ("sent", 1, False)

    for handover in range(2, MAX_HANDOVERS + 1):
        crash(db, trigger_id)
        pipeline.deliver([(trigger_id, 0)])
        message = _message(db)
        assert (message.status, message.attempts, message.possible_duplicate) == (
            "sent", handover, True,
        )  # fmt: skip

    crash(db, trigger_id)  # and again: there is no hand-over past the last
    pipeline.deliver([(trigger_id, 0)])
    message = _message(db)
    assert (message.status, message.reason) == ("failed", FAIL_INTERRUPTED)

    outbox = settings.resolved_outbox_path().read_text().splitlines()
    sent = [json.loads(line)["data"]["clix"]["message_id"] for line in outbox]
    assert sent == [message.id] * MAX_HANDOVERS
    with db.read() as session:
        assert session.scalars(select(Job)).all() == []  # every job finished
        assert session.scalars(select(Handover)).all() == []  # every hand-over recorded
    status = server.wait_done(project, trigger_id)
    assert status["status"] == "completed"
    assert (status["counts"]["sent"], status["counts"]["failed"]) == (0, 1)


class Crash(Exception):
    """The worker dies between handing messages over and recording their outcomes."""


def _cut_off_mid_send(
    server_factory: Any, db: Database, tmp_path: Path
) -> tuple[Server, Any, str, Pipeline]:
    """Nine recipients resolved and handed to the sink, whose worker then dies: returns the
    server, the project, the trigger and a pipeline whose provider works again."""
    server, project, trigger_id, settings = _to_nine_staff(server_factory, db, tmp_path)
    pipeline = Pipeline(db, build_registry(settings, db), chunk_size=500)
    push = pipeline.providers.push
    send = push.send

    def send_then_die(messages: Any) -> Any:
        send(messages)
        raise Crash

    push.send = send_then_die  # type: ignore[method-assign]
    with pytest.raises(Crash):
        pipeline.resolve([trigger_id])  # resolves, then hands the one chunk over, and dies
    push.send = send  # type: ignore[method-assign]
    outbox = settings.resolved_outbox_path().read_text().splitlines()
    assert len(outbox) == 9
    return server, project, trigger_id, pipeline


def test_a_handover_cut_off_mid_send_reads_as_sending_and_is_sent_again_flagged(
    server_factory: Any, db: Database, tmp_path: Path
) -> None:
    server, project, trigger_id, pipeline = _cut_off_mid_send(server_factory, db, tmp_path)
    with db.read() as session:  # no message was marked one by one: the chunk's row says it
        assert {m.status for m in session.scalars(select(Message))} == {"queued"}
    log = server.messages(project, trigger_id)
    assert [m["status"] for m in log] == ["sending"] * 9
    assert len(server.messages(project, trigger_id, status="sending")) == 9
    assert server.messages(project, trigger_id, status="queued") == []
    assert server.wait_done(project, trigger_id, timeout=0)["counts"]["pending"] == 9

    pipeline.deliver([(trigger_id, 0)])  # the job's rerun, after its lease ran out
    log = server.messages(project, trigger_id)
    assert [(m["status"], m["attempts"], m["possible_duplicate"]) for m in log] == [
        ("sent", 2, True)
    ] * 9
    with db.read() as session:
        assert session.scalars(select(Handover)).all() == []
    status = server.wait_done(project, trigger_id)
    assert (status["status"], status["counts"]["sent"]) == ("completed", 9)


def test_a_cancel_leaves_the_messages_being_handed_over(
    server_factory: Any, db: Database, tmp_path: Path
) -> None:
    """Only messages not yet handed to a provider are cancelled: those of an open hand-over
    stay as they are (sending), and their outcomes come with the step that handed them. The
    job's rerun sends none of them again: each ends cancelled, saying that the provider may
    have received it."""
    server, project, trigger_id, pipeline = _cut_off_mid_send(server_factory, db, tmp_path)
    cancelled = ok(server.client.post(f"/api/v1/triggers/{trigger_id}:cancel",
                                      headers=project.headers))  # fmt: skip
    assert cancelled["status"] == "cancelled" and cancelled["counts"]["cancelled"] == 0
    assert [m["status"] for m in server.messages(project, trigger_id)] == ["sending"] * 9

    pipeline.deliver([(trigger_id, 0)])  # the job's rerun, after its lease ran out
    log = server.messages(project, trigger_id)
    assert [(m["status"], m["reason"], m["attempts"]) for m in log] == [
        ("cancelled", CANCELLED_IN_FLIGHT, 1)
    ] * 9
    outbox = Settings(var_dir=tmp_path).resolved_outbox_path()
    assert len(outbox.read_text().splitlines()) == 9  # nothing handed over again
    with db.read() as session:
        assert session.scalars(select(Handover)).all() == []


def test_a_resolve_interrupted_between_chunks_resumes_without_loss_or_duplicates(
    server_factory: Any, db: Database, tmp_path: Path
) -> None:
    """A crash after some chunks were committed: the rerun adds only the missing recipients,
    in new chunks with their own jobs, and every recipient gets exactly one message."""
    server, project, trigger_id, settings = _to_nine_staff(server_factory, db, tmp_path)
    # Two chunks per commit after the first: chunk 0 alone, then 1 and 2, then 3 ...
    pipeline = Pipeline(db, build_registry(settings, db), chunk_size=2, group_rows=4)

    class Crash(Exception):
        pass

    calls = 0
    real_wake = pipeline.wake

    def crash_after_two_commits() -> None:
        nonlocal calls
        calls += 1
        real_wake()
        if calls == 2:
            raise Crash

    pipeline.wake = crash_after_two_commits
    with pytest.raises(Crash):
        pipeline.resolve([trigger_id])
    with db.read() as session:
        early = dict(session.execute(select(Message.id, Message.chunk_no)).all())
    assert sorted(set(early.values())) == [0, 1, 2] and len(early) == 6
    # The data moves on before the rerun: a recipient of chunk 0 is deleted, so the rerun's
    # stream shifts by one.
    with db.read() as session:
        first_user = session.scalars(
            select(Message.project_user_id).where(Message.chunk_no == 0).order_by(Message.id)
        ).first()
    ok(server.client.delete(f"/api/v1/users/{first_user}", headers=project.headers))
    early = {mid: chunk for mid, chunk in early.items() if _exists(db, mid)}
    pipeline.wake = real_wake
    pipeline.resolve([trigger_id])  # the job's rerun
    run_worker_until_idle(server)
    with db.read() as session:
        rows = session.execute(select(Message.id, Message.project_user_id, Message.chunk_no)).all()
    users = [u for _, u, _ in rows]
    assert len(users) == len(set(users)) == 8
    # Rows written after the crash went to new chunks, never into 0, 1 or 2 (whose jobs may
    # already have run).
    assert all(chunk >= 3 for mid, _, chunk in rows if mid not in early)
    status = server.wait_done(project, trigger_id)
    assert status["status"] == "completed" and status["counts"]["matched"] == 8


def test_a_trigger_gone_mid_resolve_gets_no_more_messages(
    server_factory: Any, db: Database, tmp_path: Path
) -> None:
    """A message's trigger is not a foreign key: the resolve checks, in each commit that
    writes messages, that their trigger is still there (locked), and writes none once it is
    gone."""
    _, _, trigger_id, settings = _to_nine_staff(server_factory, db, tmp_path)
    pipeline = Pipeline(db, build_registry(settings, db), chunk_size=2, group_rows=4)
    written: list[int] = []

    def delete_the_trigger() -> None:  # after the first commit, chunk 0's
        with db.write() as session:
            written.append(len(session.scalars(select(Message.id)).all()))
            session.execute(delete(Message).where(Message.trigger_id == trigger_id))
            session.execute(delete(Trigger).where(Trigger.id == trigger_id))

    pipeline.wake = delete_the_trigger
    pipeline.resolve([trigger_id])
    with db.read() as session:
        assert session.scalars(select(Message.id)).all() == []
        assert session.get(Trigger, trigger_id) is None
    assert written == [2]  # one commit wrote messages; none after the trigger went


@pytest.mark.parametrize(("chunk_size", "sizes"), [(5, [3, 5, 1]), (2, [2, 2, 2, 2, 1])])
def test_a_triggers_first_chunk_is_small_so_its_first_messages_go_out_at_once(
    server_factory: Any,
    db: Database,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    chunk_size: int,
    sizes: list[int],
) -> None:
    """The first chunk holds FIRST_CHUNK recipients (here 3) when chunks are larger, the
    others a whole chunk each: the first is sent, and recorded, without waiting for a whole
    chunk's provider calls. Chunks no larger than that are all alike."""
    monkeypatch.setattr(pipeline_module, "FIRST_CHUNK", 3)
    server, project, trigger_id, settings = _to_nine_staff(server_factory, db, tmp_path)
    Pipeline(db, build_registry(settings, db), chunk_size=chunk_size).resolve([trigger_id])
    run_worker_until_idle(server)
    with db.read() as session:
        chunks = session.scalars(select(Message.chunk_no)).all()
    assert [chunks.count(n) for n in range(len(sizes))] == sizes and len(chunks) == 9
    status = server.wait_done(project, trigger_id)
    assert status["status"] == "completed" and status["counts"]["sent"] == 9


def test_a_long_resolve_keeps_its_job_so_no_other_worker_runs_it_at_once(
    server_factory: Any, db: Database, tmp_path: Path
) -> None:
    """Each commit of a resolve extends its job's lease: one that outlasts the lease it was
    claimed with (a million recipients) is never claimed by a second worker meanwhile (two
    resolves of one trigger deadlocked on PostgreSQL)."""
    server, project, trigger_id, settings = _to_nine_staff(server_factory, db, tmp_path)
    with db.write() as session:  # claimed with a lease that is already over
        (claimed,) = jobs.claim(session, lease_seconds=0, limit=10)
    assert (claimed.kind, claimed.trigger_id) == ("resolve", trigger_id)
    pipeline = Pipeline(db, build_registry(settings, db), chunk_size=2, group_rows=4,
                        lease_seconds=600)  # fmt: skip
    others: list[Any] = []

    def another_worker_looks() -> None:
        with db.write() as session:
            others.extend(jobs.claim(session, 600, 10, deliver_limit=0))  # resolves only

    pipeline.wake = another_worker_looks  # after each commit of the resolve
    pipeline.resolve([trigger_id])
    assert others == []
    run_worker_until_idle(server)
    status = server.wait_done(project, trigger_id)
    assert status["status"] == "completed" and status["counts"]["sent"] == 9
