"""A chunk's snapshot of its recipients (delivery.snapshots), on a real database: it gives
the first delivery step exactly the rows the database would, it is spent by that step's first
commit, and it is not written, or not used, wherever it might not stand for the database
(a resumed resolve, rows already there, a user deleted meanwhile, a stale or unreadable
value). And a server resolving beside its worker processes leaves delivering to them."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update

from clarion.delivery import repository, snapshots
from clarion.delivery.pipeline import Pipeline
from clarion.delivery.providers.registry import build_registry
from clarion.ids import uuid7
from clarion.runner import jobs
from clarion.runner.embedded import EmbeddedRunner
from clarion.storage.db import Database
from clarion.storage.models import Device, Message, PendingChunk, User, utcnow
from tests.conftest import Server, run_worker_until_idle
from tests.helpers import ok, queued_engine
from tests.test_pipeline_recovery import _to_nine_staff


def _resolved(
    server_factory: Any, db: Database, tmp_path: Path
) -> tuple[Server, Any, str, Pipeline]:
    """Nine recipients resolved in chunks of two, none delivered yet."""
    server, project, trigger_id, settings = _to_nine_staff(server_factory, db, tmp_path)
    pipeline = Pipeline(db, build_registry(settings, db), chunk_size=2, group_rows=4,
                        engine=queued_engine())  # fmt: skip
    pipeline.resolve([trigger_id])
    return server, project, trigger_id, pipeline


def deliver_dying_after_first_commit(pipeline: Pipeline, chunks: list[tuple[str, int]]) -> None:
    """A delivery step of these chunks that makes its first commit (the hand-over begun),
    then dies before sending."""

    class Crash(Exception):
        pass

    def crash(*args: Any) -> Any:
        raise Crash

    real_send = pipeline._send
    pipeline._send = crash  # type: ignore[method-assign]
    try:
        with pytest.raises(Crash):
            pipeline.deliver(chunks)
    finally:
        pipeline._send = real_send  # type: ignore[method-assign]


def _snapshots(db: Database, trigger_id: str) -> dict[int, bytes | None]:
    with db.read() as session:
        rows = session.execute(select(PendingChunk.chunk_no, PendingChunk.recipients)
                               .where(PendingChunk.trigger_id == trigger_id)).all()  # fmt: skip
    return {no: value for no, value in rows}


def test_a_snapshot_gives_the_rows_the_database_would(
    server_factory: Any, db: Database, tmp_path: Path
) -> None:
    _, _, trigger_id, _ = _resolved(server_factory, db, tmp_path)
    kept = _snapshots(db, trigger_id)
    assert sorted(kept) == [0, 1, 2, 3, 4] and all(kept.values())
    chunks = [(trigger_id, no) for no in kept]
    with db.read() as session:
        from_snapshots = snapshots.chunk_messages(session, chunks)
        from_database = repository.chunk_messages(session, chunks)
    assert len(from_snapshots) == 9
    # Field by field, the user's properties (embedded unparsed) included.
    assert sorted(from_snapshots) == sorted(from_database)
    assert all(row.user_properties for row in from_snapshots)


def test_the_first_step_spends_the_snapshot_in_its_first_commit(
    server_factory: Any, db: Database, tmp_path: Path
) -> None:
    """A step that dies after its first commit (the hand-over begun) leaves no snapshot: the
    next step reads the database, which shows what the first one did."""
    server, project, trigger_id, pipeline = _resolved(server_factory, db, tmp_path)
    deliver_dying_after_first_commit(pipeline, [(trigger_id, 0)])
    assert _snapshots(db, trigger_id)[0] is None
    assert all(_snapshots(db, trigger_id)[no] for no in (1, 2, 3, 4))
    pipeline.deliver([(trigger_id, no) for no in range(5)])
    status = server.wait_done(project, trigger_id)
    assert status["counts"]["sent"] == 9
    with db.read() as session:
        flagged = session.execute(select(Message.chunk_no, Message.possible_duplicate)).all()
    # Chunk 0's messages were handed over again after the crash: possible duplicates.
    assert {no for no, dup in flagged if dup} == {0}


def test_a_stale_or_unreadable_snapshot_is_not_used(
    server_factory: Any, db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A device's new token, registered after resolving: a chunk delivered within
    FRESH_SECONDS goes to the token resolving read, a later one (or one whose value cannot be
    read) to the database's."""
    server, project, trigger_id, pipeline = _resolved(server_factory, db, tmp_path)
    with db.read() as session:
        devices = session.scalars(select(Message.device_id)
                                  .where(Message.chunk_no.in_([0, 1, 2]))).all()  # fmt: skip
    with db.write() as session:
        session.execute(update(Device).where(Device.id.in_(devices))
                        .values(push_token="renewed-token"))  # fmt: skip
        session.execute(update(PendingChunk).where(PendingChunk.chunk_no == 2)
                        .values(recipients=b"\x00 not json"))  # fmt: skip
    with db.read() as session:
        fresh = snapshots.chunk_messages(session, [(trigger_id, 0)])
        unreadable = snapshots.chunk_messages(session, [(trigger_id, 2)])
    monkeypatch.setattr(snapshots, "FRESH_SECONDS", -1.0)
    with db.read() as session:
        stale = snapshots.chunk_messages(session, [(trigger_id, 1)])
    assert {r.push_token for r in fresh} != {"renewed-token"}
    assert {r.push_token for r in stale} == {r.push_token for r in unreadable} == {"renewed-token"}
    pipeline.deliver([(trigger_id, no) for no in range(5)])
    assert server.wait_done(project, trigger_id)["counts"]["sent"] == 9
    assert _snapshots(db, trigger_id) == {}


def test_a_user_deleted_after_resolving_gets_no_message(
    server_factory: Any, db: Database, tmp_path: Path
) -> None:
    server, project, trigger_id, pipeline = _resolved(server_factory, db, tmp_path)
    with db.read() as session:
        chunk_no, user = session.execute(
            select(Message.chunk_no, Message.project_user_id).where(Message.chunk_no == 3)
        ).first()  # type: ignore[misc]
    ok(server.client.delete(f"/api/v1/users/{user}", headers=project.headers))
    kept = _snapshots(db, trigger_id)
    assert kept[chunk_no] is None and all(kept[no] for no in kept if no != chunk_no)
    pipeline.deliver([(trigger_id, no) for no in range(5)])
    status = server.wait_done(project, trigger_id)
    assert status["counts"]["sent"] == 8
    sent = {m["project_user_id"] for m in server.messages(project, trigger_id)}
    assert user not in sent and len(sent) == 8


def test_no_snapshot_where_rows_were_there_already(
    server_factory: Any, db: Database, tmp_path: Path
) -> None:
    """A message with a recipient's identity, there before the resolve: the commit that
    skips it keeps no snapshot, and the recipient gets one message, not two."""
    server, project, trigger_id, settings = _to_nine_staff(server_factory, db, tmp_path)
    with db.write() as session:
        user = session.scalars(
            select(User).where(User.project_id == project.id, User.project_user_id == "sf-extra-3")
        ).one()
        device = session.scalars(select(Device).where(Device.user_id == user.id)).one()
        session.add(Message(id=uuid7(), project_id=project.id, trigger_id=trigger_id,
                            chunk_no=99, user_id=user.id, project_user_id="sf-extra-3",
                            device_id=device.id, channel="push", status="sent",
                            created_at=utcnow()))  # fmt: skip
    pipeline = Pipeline(db, build_registry(settings, db), chunk_size=2, group_rows=4,
                        engine=queued_engine())  # fmt: skip
    pipeline.resolve([trigger_id])
    with db.read() as session:
        rows = session.execute(select(Message.chunk_no, Message.project_user_id)).all()
    assert [u for _, u in rows].count("sf-extra-3") == 1
    kept = _snapshots(db, trigger_id)
    assert any(value is None for value in kept.values())
    pipeline.deliver([(trigger_id, no) for no in kept])
    assert server.wait_done(project, trigger_id)["counts"]["sent"] == 9


def test_a_resumed_resolve_keeps_no_snapshot(
    server_factory: Any, db: Database, tmp_path: Path
) -> None:
    server, project, trigger_id, settings = _to_nine_staff(server_factory, db, tmp_path)
    pipeline = Pipeline(db, build_registry(settings, db), chunk_size=2, group_rows=4,
                        engine=queued_engine())  # fmt: skip

    class Crash(Exception):
        pass

    def crash() -> None:  # after the first commit, chunk 0's
        raise Crash

    pipeline.wake = crash
    with pytest.raises(Crash):
        pipeline.resolve([trigger_id])
    assert list(_snapshots(db, trigger_id)) == [0]
    pipeline.wake = lambda: None
    pipeline.resolve([trigger_id])  # the job's rerun
    kept = _snapshots(db, trigger_id)
    assert kept[0] and len(kept) > 1
    assert all(value is None for no, value in kept.items() if no != 0)
    run_worker_until_idle(server)
    assert server.wait_done(project, trigger_id)["counts"]["sent"] == 9


def test_a_server_resolving_beside_worker_processes_leaves_delivering_to_them(
    server_factory: Any, db: Database, tmp_path: Path
) -> None:
    """While one of its threads resolves, a server's other threads claim resolve jobs only;
    once none resolves, deliver jobs too."""
    _, _, trigger_id, pipeline = _resolved(server_factory, db, tmp_path)
    ran: list[str] = []
    pipeline.resolve = lambda ids: ran.append("resolve")  # type: ignore[method-assign]
    pipeline.deliver = lambda chunks: ran.append("deliver")  # type: ignore[method-assign]
    runner = EmbeddedRunner(db, pipeline, threads=1, lease_seconds=60, poll_interval=0.05,
                            defer_delivery=True)  # fmt: skip
    with db.write() as session:
        jobs.enqueue_resolve(session, [trigger_id], {})
    runner._resolving = 1  # as if another thread were resolving
    assert runner._run_one() and ran == ["resolve"]
    assert not runner._run_one()  # the deliver jobs wait
    runner._resolving = 0
    assert runner._run_one() and ran[1:] and set(ran[1:]) == {"deliver"}


def test_the_resolving_thread_delivers_the_first_chunk_and_resolves_on_if_that_fails(
    server_factory: Any, db: Database, tmp_path: Path
) -> None:
    """The first chunk is delivered by the thread that resolves, before the other chunks are
    written; when that delivery fails, resolving goes on and the chunk's job, its lease run
    out, is delivered by a worker."""
    server, project, trigger_id, settings = _to_nine_staff(server_factory, db, tmp_path)
    pipeline = Pipeline(db, build_registry(settings, db), chunk_size=2, group_rows=4,
                        lease_seconds=1)  # fmt: skip
    real_deliver = pipeline.deliver
    delivered: list[tuple[list[tuple[str, int]], list[int]]] = []  # and the chunks written

    def failing_first(chunks: Any) -> None:
        with db.read() as session:
            written = session.scalars(select(Message.chunk_no).distinct()).all()
        delivered.append((list(chunks), sorted(written)))
        if len(delivered) == 1:
            raise RuntimeError("the provider's client broke")
        real_deliver(chunks)

    pipeline.deliver = failing_first  # type: ignore[method-assign]
    pipeline.resolve([trigger_id])
    assert delivered[0] == ([(trigger_id, 0)], [0])  # before any other chunk was written
    assert delivered[1:] == [([(trigger_id, 4)], [0, 1, 2, 3, 4])]  # the last, as before
    time.sleep(1.1)  # chunk 0's lease runs out
    run_worker_until_idle(server)
    status = server.wait_done(project, trigger_id)
    assert status["status"] == "completed" and status["counts"]["sent"] == 9
