"""What the pipeline does with the state a crash leaves behind, on a real database: a message
left "sending" is sent once more and flagged a possible duplicate, and never a third time."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from sqlalchemy import select, update

from clarion.config import Settings
from clarion.delivery import repository
from clarion.delivery.pipeline import FAIL_TWICE, Pipeline
from clarion.delivery.providers.registry import build_registry
from clarion.storage.db import Database
from clarion.storage.models import Job, Message, utcnow
from tests.conftest import Server, make_project
from tests.helpers import PROPS, ok, store_pickup, trigger


def _message(db: Database) -> Any:
    with db.read() as session:
        (message,) = session.scalars(select(Message)).all()
        return message


def _crash_mid_send(db: Database, trigger_id: str) -> None:
    """What a crash between the hand-over to the provider and its record leaves: the message
    'sending' and its deliver job still leased."""
    with db.write() as session:
        session.execute(update(Message).values(status="sending"))
        repository.add_deliver_jobs(session, [(trigger_id, 0)], lease_until=utcnow())


def test_a_message_left_sending_is_resent_once_then_given_up(
    server_factory: Any, db: Database, tmp_path: Path
) -> None:
    server: Server = server_factory(embedded_worker=False)
    project = make_project(db)
    campaign_id = store_pickup(server.client, project)
    target = {"audience": {"targets": [{"project_user_id": "sf-staff-1"}]}, "properties": PROPS}
    trigger_id = ok(trigger(server.client, project, campaign_id, target))["trigger_id"]
    settings = Settings(database_url=server.settings.database_url, var_dir=tmp_path)
    pipeline = Pipeline(db, build_registry(settings), chunk_size=500)

    pipeline.resolve([trigger_id])  # resolves, then delivers its one chunk at once
    message = _message(db)
    assert (message.status, message.attempts, message.possible_duplicate) == ("sent", 1, False)

    _crash_mid_send(db, trigger_id)
    pipeline.deliver([(trigger_id, 0)])
    message = _message(db)
    assert (message.status, message.attempts, message.possible_duplicate) == ("sent", 2, True)

    _crash_mid_send(db, trigger_id)  # and again: there is no third hand-over
    pipeline.deliver([(trigger_id, 0)])
    message = _message(db)
    assert (message.status, message.reason) == ("failed", FAIL_TWICE)

    outbox = settings.resolved_outbox_path().read_text().splitlines()
    assert [json.loads(line)["data"]["clix"]["message_id"] for line in outbox] == [message.id] * 2
    with db.read() as session:
        assert session.scalars(select(Job)).all() == []  # every job finished
    status = server.wait_done(project, trigger_id)
    assert status["status"] == "completed"
    assert (status["counts"]["sent"], status["counts"]["failed"]) == (0, 1)
