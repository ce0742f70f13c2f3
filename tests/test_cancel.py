"""POST /api/v1/triggers/{id}:cancel: before resolving, while a worker is sending (the cancel
lands inside a provider call), twice, and too late."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx

from clarion.delivery.pipeline import Pipeline
from clarion.delivery.providers.base import OutboundPush, SendResult
from clarion.delivery.providers.registry import ProviderRegistry
from clarion.delivery.providers.sink import SinkProvider
from clarion.runner.embedded import EmbeddedRunner
from clarion.storage.db import Database
from tests.conftest import Project, Server, make_project
from tests.helpers import PICKUP, PROPS, add_user, create_campaign, ok, trigger

STAFF = {"user_role": "store_staff", "store_location": "San Francisco"}


class CancellingSink(SinkProvider):
    """The development sink, which cancels the trigger over the API during its second
    hand-over: the cancel lands while the worker is mid-send."""

    def __init__(self, outbox: Path, cancel: httpx.Request) -> None:
        super().__init__(outbox)
        self.calls = 0
        self.cancel = cancel
        self.answer: dict[str, Any] = {}

    def send(self, batch: Sequence[OutboundPush]) -> list[SendResult]:
        self.calls += 1
        if self.calls == 2:
            with httpx.Client() as client:
                self.answer = ok(client.send(self.cancel))
        return super().send(batch)


def staff_and_campaign(server: Server, project: Project, n: int) -> str:
    for i in range(n):
        add_user(server.client, project, f"staff-{i}", STAFF)
    return create_campaign(server.client, project, PICKUP)


class CancellingRates:
    """A campaign send rate that never holds a message back, and cancels the trigger over
    the API the first time it is asked: after the worker read the messages, before it marks
    them as being sent."""

    def __init__(self, cancel: httpx.Request) -> None:
        self.cancel = cancel
        self.asked = 0

    def take(self, campaign_id: str, rate: float) -> bool:
        self.asked += 1
        if self.asked == 1:
            with httpx.Client() as client:
                ok(client.send(self.cancel))
        return True


def run_worker(server: Server, push: Any, chunk_size: int, rates: Any = None) -> None:
    db = Database(server.settings.resolved_database_url())
    pipeline = Pipeline(db, ProviderRegistry(push), chunk_size)
    if rates is not None:
        pipeline.rates = rates
    # One job at a time, so that the order of the hand-overs is known.
    EmbeddedRunner(db, pipeline, threads=1, lease_seconds=60, poll_interval=0.05,
                   batch_size=1).run_until_idle()  # fmt: skip
    db.dispose()


def cancel(server: Server, project: Project, trigger_id: str) -> httpx.Response:
    return server.client.post(f"/api/v1/triggers/{trigger_id}:cancel", headers=project.headers)


def test_cancel_while_the_worker_sends_stops_exactly_the_unsent_remainder(
    server_factory: Any, db: Database, tmp_path: Path
) -> None:
    server: Server = server_factory(embedded_worker=False)
    project = make_project(db)
    campaign_id = staff_and_campaign(server, project, 12)
    trigger_id = ok(trigger(server.client, project, campaign_id, {"properties": PROPS}))[
        "trigger_id"
    ]
    outbox = tmp_path / "outbox.jsonl"
    url = f"{server.url}/api/v1/triggers/{trigger_id}:cancel"
    sink = CancellingSink(outbox, httpx.Request("POST", url, headers=project.headers))
    run_worker(server, sink, chunk_size=3)  # 4 chunks: the cancel comes in the 2nd send

    assert sink.answer["status"] == "cancelled"
    final = ok(server.client.get(f"/api/v1/triggers/{trigger_id}", headers=project.headers))
    assert final["status"] == "cancelled" and final["completed_at"]
    counts = final["counts"]
    handed = [json.loads(line)["device_id"] for line in outbox.read_text().splitlines()]
    assert len(handed) == len(set(handed))  # nothing went out twice
    assert counts["sent"] == len(handed) == 6  # the resolver's last chunk, then one more
    assert counts["cancelled"] == 12 - len(handed)
    assert counts["pending"] == 0 and counts["failed"] == 0
    log = server.messages(project, trigger_id, limit=100)
    assert len(log) == 12
    assert {m["device_id"] for m in log if m["status"] == "sent"} == set(handed)
    stopped = server.messages(project, trigger_id, status="cancelled")
    assert {m["device_id"] for m in stopped}.isdisjoint(handed)
    assert all(m["reason"].startswith("cancelled:") for m in stopped)
    # Cancelling again is harmless: the same answer, nothing changes.
    again = ok(cancel(server, project, trigger_id))
    assert again["status"] == "cancelled" and again["counts"] == counts


def test_a_cancel_between_reading_and_sending_a_chunk_sends_none_of_it(
    server_factory: Any, db: Database, tmp_path: Path
) -> None:
    server: Server = server_factory(embedded_worker=False)
    project = make_project(db)
    for i in range(4):
        add_user(server.client, project, f"staff-{i}", STAFF)
    campaign_id = create_campaign(server.client, project, {**PICKUP, "send_rate": 1000})
    trigger_id = ok(trigger(server.client, project, campaign_id, {"properties": PROPS}))[
        "trigger_id"
    ]
    url = f"{server.url}/api/v1/triggers/{trigger_id}:cancel"
    rates = CancellingRates(httpx.Request("POST", url, headers=project.headers))
    outbox = tmp_path / "outbox.jsonl"
    run_worker(server, SinkProvider(outbox), chunk_size=10, rates=rates)
    assert rates.asked >= 1
    assert not outbox.exists()  # read before the cancel, and still not handed over
    final = ok(server.client.get(f"/api/v1/triggers/{trigger_id}", headers=project.headers))
    assert final["status"] == "cancelled"
    assert final["counts"]["cancelled"] == 4 and final["counts"]["sent"] == 0


def test_cancel_before_resolving_sends_nothing(server_factory: Any, db: Database,
                                               tmp_path: Path) -> None:  # fmt: skip
    server: Server = server_factory(embedded_worker=False)
    project = make_project(db)
    campaign_id = staff_and_campaign(server, project, 3)
    trigger_id = ok(trigger(server.client, project, campaign_id, {"properties": PROPS}))[
        "trigger_id"
    ]
    answer = ok(cancel(server, project, trigger_id))
    assert answer["status"] == "cancelled"
    outbox = tmp_path / "outbox.jsonl"
    run_worker(server, SinkProvider(outbox), chunk_size=2)
    assert not outbox.exists()
    final = ok(server.client.get(f"/api/v1/triggers/{trigger_id}", headers=project.headers))
    assert final["status"] == "cancelled"
    assert final["counts"]["sent"] == 0 and final["counts"]["pending"] == 0
    assert server.messages(project, trigger_id) == []


def test_a_finished_trigger_cannot_be_cancelled(server: Server, db: Database) -> None:
    project = make_project(db)
    campaign_id = staff_and_campaign(server, project, 2)
    trigger_id, status = server.fire(project, campaign_id, {"properties": PROPS})
    assert status["status"] == "completed"
    r = cancel(server, project, trigger_id)
    assert r.status_code == 409, r.text
    error = r.json()["error"]
    assert error["code"] == "trigger_finished" and error["status"] == "completed"
    assert "nothing left to cancel" in error["message"]
    after = ok(server.client.get(f"/api/v1/triggers/{trigger_id}", headers=project.headers))
    assert after["status"] == "completed" and after["counts"]["sent"] == 2

    assert cancel(server, project, "no-such-trigger").status_code == 404
    public = server.client.post(f"/api/v1/triggers/{trigger_id}:cancel",
                                headers=project.sdk_headers)  # fmt: skip
    assert public.status_code == 403
    other = make_project(db, "other")
    assert cancel(server, other, trigger_id).status_code == 404  # another project's: unknown
