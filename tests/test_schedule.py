"""send_at and in_local_time, with the clock set (clarion.clock.frozen) rather than slept:
scheduled until due, each device at its own wall-clock time (a spring-forward day, unknown
timezones), cancel before it goes, and the refusals."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from clarion import clock
from clarion.storage.db import Database
from clarion.triggers import schedule
from tests.conftest import Project, Server, make_project, run_worker_until_idle
from tests.helpers import PICKUP, PROPS, add_user, create_campaign, ok, trigger

STAFF = {"user_role": "store_staff", "store_location": "San Francisco"}


def iso(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def status(server: Server, project: Project, trigger_id: str) -> dict[str, Any]:
    return dict(ok(server.client.get(f"/api/v1/triggers/{trigger_id}", headers=project.headers)))


def test_a_scheduled_trigger_waits_for_send_at_and_can_be_cancelled(
    server_factory: Any, db: Database
) -> None:
    server: Server = server_factory(embedded_worker=False)
    project = make_project(db)
    for i in range(2):
        add_user(server.client, project, f"staff-{i}", STAFF)
    campaign_id = create_campaign(server.client, project, PICKUP)
    send_at = clock.now().replace(microsecond=0) + timedelta(hours=2)
    body = {"properties": PROPS, "send_at": iso(send_at)}
    first = ok(trigger(server.client, project, campaign_id, body))["trigger_id"]
    second = ok(trigger(server.client, project, campaign_id, body))["trigger_id"]
    shown = status(server, project, first)
    assert shown["status"] == "scheduled"
    assert datetime.fromisoformat(shown["send_at"]) == send_at
    assert shown["in_local_time"] is False

    run_worker_until_idle(server)  # now: nothing is due
    assert status(server, project, first)["status"] == "scheduled"
    assert server.messages(project, first) == []
    assert ok(server.client.post(f"/api/v1/triggers/{second}:cancel",
                                 headers=project.headers))["status"] == "cancelled"  # fmt: skip

    with clock.frozen(send_at - timedelta(seconds=1)):
        run_worker_until_idle(server)
        assert status(server, project, first)["status"] == "scheduled"
    with clock.frozen(send_at):
        run_worker_until_idle(server)
        done = status(server, project, first)
    assert done["status"] == "completed" and done["counts"]["sent"] == 2
    assert all(m["sent_at"] == done["completed_at"] for m in server.messages(project, first))
    cancelled = status(server, project, second)
    assert cancelled["status"] == "cancelled" and server.messages(project, second) == []


def test_in_local_time_each_device_at_its_own_wall_clock(server_factory: Any, db: Database) -> None:
    server: Server = server_factory(embedded_worker=False)
    project = make_project(db)
    zones = {"ny": "America/New_York", "tokyo": "Asia/Tokyo", "london": "Europe/London",
             "mars": "Mars/Olympus_Mons", "blank": ""}  # fmt: skip
    start = datetime(2027, 3, 10, 12, 0, tzinfo=UTC)
    with clock.frozen(start) as now:
        for name, zone in zones.items():
            add_user(
                server.client, project, name, STAFF, [{"id": f"{name}-phone", "timezone": zone}]
            )
        campaign_id = create_campaign(server.client, project, PICKUP)
        # 02:30 on 14 March 2027, the day New York springs forward: 02:30 never happens there.
        body = {"properties": PROPS, "send_at": "2027-03-14T02:30:00Z", "in_local_time": True}
        trigger_id = ok(trigger(server.client, project, campaign_id, body))["trigger_id"]
        assert status(server, project, trigger_id)["status"] == "scheduled"

        def sent() -> set[str]:
            run_worker_until_idle(server)
            log = server.messages(project, trigger_id, status="sent")
            return {m["project_user_id"] for m in log}

        now.set(datetime(2027, 3, 13, 12, 29, tzinfo=UTC))  # UTC+14 reaches 02:30 at 12:30
        assert sent() == set()
        assert server.messages(project, trigger_id) == []  # not even resolved yet
        now.set(datetime(2027, 3, 13, 17, 30, tzinfo=UTC))  # 02:30 in Tokyo (UTC+9)
        assert sent() == {"tokyo"}
        held = {m["project_user_id"]: m["not_before"]
                for m in server.messages(project, trigger_id, status="queued")}  # fmt: skip
        assert {k: datetime.fromisoformat(v) for k, v in held.items()} == {
            "ny": datetime(2027, 3, 14, 7, 30, tzinfo=UTC),  # read as 02:30 EST = 03:30 EDT
            "london": datetime(2027, 3, 14, 2, 30, tzinfo=UTC),  # GMT until 28 March
            "mars": datetime(2027, 3, 14, 2, 30, tzinfo=UTC),  # unknown: the instant given
            "blank": datetime(2027, 3, 14, 2, 30, tzinfo=UTC),
        }
        assert status(server, project, trigger_id)["status"] == "sending"
        now.set(datetime(2027, 3, 14, 2, 29, 59, tzinfo=UTC))
        assert sent() == {"tokyo"}
        now.set(datetime(2027, 3, 14, 2, 30, tzinfo=UTC))
        assert sent() == {"tokyo", "london", "mars", "blank"}
        now.set(datetime(2027, 3, 14, 7, 30, tzinfo=UTC))
        assert sent() == set(zones)
        assert status(server, project, trigger_id)["status"] == "completed"


@pytest.mark.parametrize(
    ("wall", "zone", "expected"),
    [
        ("2027-11-07T01:30:00", "America/New_York", "2027-11-07T05:30:00"),  # twice: the 1st
        ("2027-03-14T02:30:00", "America/New_York", "2027-03-14T07:30:00"),  # skipped
        ("2027-03-28T01:30:00", "Europe/London", "2027-03-28T01:30:00"),  # skipped (GMT)
        ("2027-06-01T09:00:00", "Europe/London", "2027-06-01T08:00:00"),  # BST
        ("2027-06-01T09:00:00", "Australia/Lord_Howe", "2027-05-31T22:30:00"),  # +10:30
        ("2027-06-01T09:00:00", "not/a zone", "2027-06-01T09:00:00"),
    ],
)
def test_due_reads_the_wall_clock_in_the_zone(wall: str, zone: str, expected: str) -> None:
    send_at = datetime.fromisoformat(wall).replace(tzinfo=UTC)
    assert schedule.due(send_at, zone) == datetime.fromisoformat(expected).replace(tzinfo=UTC)


@pytest.mark.parametrize(
    ("extra", "path", "phrase"),
    [
        ({"send_at": "2027-03-14T02:30:00"}, "$.send_at", "has no UTC offset"),
        ({"send_at": "next tuesday"}, "$.send_at", "is not an ISO-8601 date and time"),
        ({"send_at": 1767225600}, "$.send_at", "must be an ISO-8601 string"),
        ({"send_at": "2030-01-01T00:00:00Z"}, "$.send_at", "more than 30 days ahead"),
        ({"in_local_time": True}, "$.in_local_time", "needs send_at"),
        ({"send_at": "2026-12-01T09:00:00Z", "in_local_time": "yes"}, "$.in_local_time",
         "must be true or false"),
    ],
)  # fmt: skip
def test_bad_schedules_are_refused_and_write_nothing(
    server: Server, db: Database, extra: dict[str, Any], path: str, phrase: str
) -> None:
    project = make_project(db)
    campaign_id = create_campaign(server.client, project, PICKUP)
    with clock.frozen(datetime(2026, 11, 27, 12, 0, tzinfo=UTC)):
        r = trigger(server.client, project, campaign_id, {"properties": PROPS, **extra})
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert error["code"] == "invalid_request" and error["path"] == path
    assert phrase in error["message"]


def test_the_client_sdk_schedules_and_sends_per_recipient_properties(
    server_factory: Any, db: Database
) -> None:
    from clarion_client import Client, errors

    server: Server = server_factory(embedded_worker=False)
    project = make_project(db)
    add_user(server.client, project, "staff-1", STAFF)
    campaign_id = create_campaign(server.client, project, {**PICKUP, "message": {
        "title": "For {{ trigger.customer_name }}"}})  # fmt: skip
    send_at = clock.now().replace(microsecond=0) + timedelta(hours=1)
    with Client(project.id, project.secret, server.url) as clix:
        result = clix.trigger_campaign(
            campaign_id, properties=PROPS, send_at=send_at,
            targets=[{"project_user_id": "staff-1", "properties": {"customer_name": "Ann"}}],
        )  # fmt: skip
        assert clix.get_trigger(result.trigger_id).status == "scheduled"
        with pytest.raises(errors.InvalidRequestError, match="aware datetime"):
            clix.trigger_campaign(campaign_id, properties=PROPS,
                                  send_at=send_at.replace(tzinfo=None))  # fmt: skip
        with pytest.raises(errors.InvalidRequestError, match="exactly one of"):
            clix.trigger_campaign(campaign_id, properties=PROPS,
                                  targets=[{"project_user_id": "a", "extra": "b"}])  # fmt: skip
    with clock.frozen(send_at):
        run_worker_until_idle(server)
    (message,) = server.messages(project, result.trigger_id)
    assert message["status"] == "sent" and message["title"] == "For Ann"
