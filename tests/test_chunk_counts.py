"""A pending chunk's counts as written (pending_chunks.queued/skipped), on a real database:
counting a trigger reads them instead of the chunk's rows while nothing has changed those,
and whatever changes them clears the counts first (the chunk's first delivery step, a
cancel, a user deleted), so that a count always equals counting every row."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import select, update

from clarion.delivery import repository
from clarion.storage.db import Database
from clarion.storage.models import Message, PendingChunk, Trigger
from clarion.triggers.progress import CountCache
from tests.helpers import ok
from tests.test_chunk_snapshots import _resolved, deliver_dying_after_first_commit


def _as_written(db: Database, trigger_id: str) -> dict[int, tuple[int | None, int | None]]:
    with db.read() as session:
        rows = session.execute(
            select(PendingChunk.chunk_no, PendingChunk.queued, PendingChunk.skipped).where(
                PendingChunk.trigger_id == trigger_id
            )
        ).all()
    return {no: (queued, skipped) for no, queued, skipped in rows}


def _counted(db: Database, trigger_id: str) -> tuple[dict[str, int], dict[str, int]]:
    """(a count as a poll makes it, every row counted)."""
    with db.read() as session:
        trigger = session.get(Trigger, trigger_id)
        polled = CountCache(reuse=0).counts(session, trigger)
        return polled, repository.counts(session, trigger_id)


def test_pending_chunks_are_counted_as_written_until_a_step_takes_them(
    server_factory: Any, db: Database, tmp_path: Path
) -> None:
    server, project, trigger_id, pipeline = _resolved(server_factory, db, tmp_path)
    assert _as_written(db, trigger_id) == {0: (2, 0), 1: (2, 0), 2: (2, 0), 3: (2, 0), 4: (1, 0)}
    polled, every_row = _counted(db, trigger_id)
    assert polled == every_row == {"queued": 9}
    # Read from the pending rows, not the messages: a number changed by hand shows.
    with db.write() as session:
        session.execute(update(PendingChunk).where(PendingChunk.chunk_no == 4).values(queued=7))
    assert _counted(db, trigger_id)[0] == {"queued": 15}
    with db.write() as session:
        session.execute(update(PendingChunk).where(PendingChunk.chunk_no == 4).values(queued=1))
    deliver_dying_after_first_commit(pipeline, [(trigger_id, 0), (trigger_id, 1)])
    kept = _as_written(db, trigger_id)
    assert kept[0] == kept[1] == (None, None) and kept[2] == (2, 0)
    pipeline.deliver([(trigger_id, 0), (trigger_id, 1)])
    assert sorted(_as_written(db, trigger_id)) == [2, 3, 4]
    polled, every_row = _counted(db, trigger_id)
    assert polled == every_row == {"sent": 4, "queued": 5}
    pipeline.deliver([(trigger_id, no) for no in (2, 3, 4)])
    assert server.wait_done(project, trigger_id)["counts"]["sent"] == 9


def test_a_cancel_or_a_deleted_user_clears_the_counts_as_written(
    server_factory: Any, db: Database, tmp_path: Path
) -> None:
    server, project, trigger_id, _ = _resolved(server_factory, db, tmp_path)
    with db.read() as session:
        user = session.scalars(select(Message.project_user_id).where(Message.chunk_no == 3)).first()
    ok(server.client.delete(f"/api/v1/users/{user}", headers=project.headers))
    kept = _as_written(db, trigger_id)
    assert kept[3] == (None, None) and kept[2] == (2, 0)
    polled, every_row = _counted(db, trigger_id)
    assert polled == every_row == {"queued": 8}
    ok(server.client.post(f"/api/v1/triggers/{trigger_id}:cancel", headers=project.headers))
    assert set(_as_written(db, trigger_id).values()) == {(None, None)}
    polled, every_row = _counted(db, trigger_id)
    assert polled == every_row == {"cancelled": 8}


def test_no_counts_as_written_where_rows_were_there_already(
    server_factory: Any, db: Database, tmp_path: Path
) -> None:
    """A resumed resolve skips the rows it wrote before: its chunks' counts would not be
    what they hold, so none are kept."""
    _, _, trigger_id, pipeline = _resolved(server_factory, db, tmp_path)
    with db.write() as session:  # as if the resolve had died after its commits
        session.execute(update(Trigger).where(Trigger.id == trigger_id)
                        .values(status="resolving"))  # fmt: skip
        session.execute(PendingChunk.__table__.delete())
    pipeline.resolve([trigger_id])
    assert set(_as_written(db, trigger_id).values()) <= {(None, None)}
    polled, every_row = _counted(db, trigger_id)
    assert polled == every_row == {"queued": 9}
