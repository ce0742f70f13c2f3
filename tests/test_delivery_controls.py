"""Re-eligibility, frequency caps, quiet hours and the throttle, end to end through the
trigger endpoint, with the clock set (clarion.clock.frozen) rather than slept."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from clarion import clock
from clarion.storage.db import Database
from tests.conftest import Project, Server, make_project, run_worker_until_idle
from tests.helpers import PICKUP, PROPS, add_user, create_campaign, ok, trigger

STAFF = {"user_role": "store_staff", "store_location": "San Francisco"}
T0 = datetime(2027, 1, 10, 14, 0, tzinfo=UTC)  # 23:00 in Tokyo, 14:00 in London


def fire(server: Server, project: Project, campaign_id: str, **body: Any) -> str:
    trigger_id: str = ok(trigger(server.client, project, campaign_id,
                                 {"properties": PROPS, **body}))["trigger_id"]  # fmt: skip
    run_worker_until_idle(server)
    return trigger_id


def outcomes(server: Server, project: Project, trigger_id: str) -> dict[str, tuple[str, str]]:
    """device -> (status, reason)"""
    return {m["device_id"]: (m["status"], m["reason"] or "")
            for m in server.messages(project, trigger_id)}  # fmt: skip


def campaign(server: Server, project: Project, name: str, **delivery: Any) -> str:
    return create_campaign(server.client, project, {**PICKUP, "name": name, "delivery": delivery})


@pytest.fixture
def setup(server_factory: Any, db: Database) -> tuple[Server, Project]:
    server: Server = server_factory(embedded_worker=False)
    project = make_project(db)
    with clock.frozen(T0):
        add_user(
            server.client,
            project,
            "ann",
            STAFF,
            [
                {"id": "ann-phone", "timezone": "Europe/London"},
                {"id": "ann-tablet", "timezone": "Europe/London"},
            ],
        )
        add_user(
            server.client,
            project,
            "kenji",
            STAFF,
            [{"id": "kenji-phone", "timezone": "Asia/Tokyo"}],
        )
        add_user(server.client, project, "nomad", STAFF, [{"id": "nomad-phone",
                 "timezone": "Nowhere/Unknown"}])  # fmt: skip
    return server, project


def test_reeligibility_once_and_once_per_window(setup: tuple[Server, Project]) -> None:
    server, project = setup
    with clock.frozen(T0) as now:
        once = campaign(server, project, "once", reeligibility="once")
        window = campaign(server, project, "daily", reeligibility="once_per_window",
                          reeligibility_window_hours=24)  # fmt: skip
        first = fire(server, project, once)
        assert {s for s, _ in outcomes(server, project, first).values()} == {"sent"}
        now.advance(timedelta(days=300))
        again = outcomes(server, project, fire(server, project, once))
        assert again["ann-phone"] == ("skipped", "not_reeligible: received this campaign at "
                                      "2027-01-10 14:00 UTC; it reaches a user once")  # fmt: skip
        assert {s for s, _ in again.values()} == {"skipped"}

        now.set(T0)
        assert {s for s, _ in outcomes(server, project, fire(server, project, window)).values()
                } == {"sent"}  # fmt: skip
        now.advance(timedelta(hours=23, minutes=59))
        held = outcomes(server, project, fire(server, project, window))
        assert held["kenji-phone"][1].endswith("it reaches a user once per 24 h")
        now.advance(timedelta(minutes=2))  # 24 h after the first: eligible again
        assert {s for s, _ in outcomes(server, project, fire(server, project, window)).values()
                } == {"sent"}  # fmt: skip


def test_a_frequency_cap_of_one_lets_one_of_two_campaigns_through(
    setup: tuple[Server, Project],
) -> None:
    server, project = setup
    with clock.frozen(T0) as now:
        caps = {"frequency_caps": {"push": {"max": 1, "per_hours": 24}}}
        r = server.client.put("/api/v1/project/delivery", headers=project.headers, json=caps)
        assert ok(r)["frequency_caps"]["push"] == {"max": 1, "per_hours": 24.0}
        promo = campaign(server, project, "promo", kind="marketing")
        news = campaign(server, project, "news", kind="marketing")
        receipt = campaign(server, project, "receipt")  # transactional: exempt
        opted = campaign(server, project, "opted-in", frequency_cap="apply")

        first = outcomes(server, project, fire(server, project, promo))
        assert first["ann-phone"][0] == first["ann-tablet"][0] == "sent"  # one message, 2 devices
        second = outcomes(server, project, fire(server, project, news))
        assert {s for s, _ in second.values()} == {"skipped"}
        assert second["kenji-phone"][1] == (
            "frequency_cap: the user already received 1 push message(s) in the last 24 h "
            "(the project's cap)")  # fmt: skip
        assert {s for s, _ in outcomes(server, project, fire(server, project, receipt)).values()
                } == {"sent"}  # fmt: skip
        assert {s for s, _ in outcomes(server, project, fire(server, project, opted)).values()
                } == {"skipped"}  # fmt: skip
        now.advance(timedelta(hours=24, seconds=1))
        assert {s for s, _ in outcomes(server, project, fire(server, project, news)).values()
                } == {"sent"}  # fmt: skip


def test_quiet_hours_delay_drop_and_urgent(setup: tuple[Server, Project]) -> None:
    server, project = setup
    quiet = {"start": "22:00", "end": "08:00", "action": "delay"}
    with clock.frozen(T0) as now:
        ok(server.client.put("/api/v1/project/delivery", headers=project.headers,
                             json={"quiet_hours": quiet}))  # fmt: skip
        digest = campaign(server, project, "digest")
        reset = campaign(server, project, "reset", urgent=True)
        dropper = campaign(server, project, "dropper",
                           quiet_hours={**quiet, "action": "drop"})  # fmt: skip

        delayed = fire(server, project, digest)
        log = outcomes(server, project, delayed)
        assert log["kenji-phone"] == ("queued", "")  # 23:00 in Tokyo: held
        assert log["ann-phone"][0] == log["nomad-phone"][0] == "sent"  # 14:00 in London, UTC
        now.set(datetime(2027, 1, 10, 22, 59, tzinfo=UTC))
        run_worker_until_idle(server)
        assert outcomes(server, project, delayed)["kenji-phone"][0] == "queued"
        now.set(datetime(2027, 1, 10, 23, 0, tzinfo=UTC))  # 08:00 in Tokyo
        run_worker_until_idle(server)
        assert outcomes(server, project, delayed)["kenji-phone"][0] == "sent"

        now.set(T0)
        assert outcomes(server, project, fire(server, project, reset))["kenji-phone"][0] == "sent"
        dropped = outcomes(server, project, fire(server, project, dropper))
        assert dropped["kenji-phone"] == (
            "skipped",
            "quiet_hours: 23:00 in Asia/Tokyo is within the quiet hours 22:00-08:00",
        )
        now.set(datetime(2027, 1, 10, 23, 30, tzinfo=UTC))  # an unknown zone is judged in UTC
        late = outcomes(server, project, fire(server, project, dropper))
        assert late["nomad-phone"][1].startswith("quiet_hours: 23:30 in UTC")
        assert late["ann-phone"][1].startswith("quiet_hours: 23:30 in Europe/London")
        assert late["kenji-phone"][0] == "sent"  # 08:30 in Tokyo


def test_the_throttle_spreads_sends_and_shows_an_eta(setup: tuple[Server, Project]) -> None:
    server, project = setup
    with clock.frozen(T0) as now:
        slow = campaign(server, project, "slow", throttle_per_minute=60)
        trigger_id = fire(server, project, slow)
        status = ok(server.client.get(f"/api/v1/triggers/{trigger_id}", headers=project.headers))
        assert status["status"] == "sending" and status["counts"]["sent"] == 1
        assert status["counts"]["pending"] == 3
        assert datetime.fromisoformat(status["eta"]) == T0 + timedelta(seconds=3)
        for _ in range(3):
            now.advance(timedelta(seconds=1))
            run_worker_until_idle(server)
        status = ok(server.client.get(f"/api/v1/triggers/{trigger_id}", headers=project.headers))
        assert status["status"] == "completed" and status["eta"] is None
        sent_at = sorted(datetime.fromisoformat(m["sent_at"])
                         for m in server.messages(project, trigger_id))  # fmt: skip
        assert sent_at == [T0 + timedelta(seconds=i) for i in range(4)]  # one a second


@pytest.mark.parametrize(
    ("delivery", "phrase"),
    [
        ({"reeligibility": "once_per_window"}, "needs reeligibility_window_hours"),
        ({"quiet_hours": {"start": "25:00", "end": "08:00"}}, "is not a time of day"),
        ({"quiet_hours": {"start": "08:00", "end": "08:00"}}, "the window would be empty"),
        ({"throttle_per_minute": 0}, "greater than 0"),
        ({"kind": "promotional"}, "transactional"),
    ],
)
def test_bad_controls_are_refused_at_save(
    server: Server, db: Database, delivery: dict[str, Any], phrase: str
) -> None:
    project = make_project(db)
    r = server.client.post("/api/v1/campaigns", headers=project.headers,
                           json={**PICKUP, "delivery": delivery})  # fmt: skip
    assert r.status_code == 400, r.text
    assert phrase in r.text
    sms = {"frequency_caps": {"sms": {"max": 1, "per_hours": 1}}}
    bad = server.client.put("/api/v1/project/delivery", headers=project.headers, json=sms)
    assert bad.status_code == 400, bad.text


def test_two_triggers_of_a_once_campaign_in_one_batch_reach_a_user_once(
    setup: tuple[Server, Project],
) -> None:
    server, project = setup
    with clock.frozen(T0):
        once = campaign(server, project, "once", reeligibility="once")
        ids = [ok(trigger(server.client, project, once, {"properties": PROPS}))["trigger_id"]
               for _ in range(2)]  # fmt: skip
        run_worker_until_idle(server)  # both resolve together, delivered in one step
        logs = [outcomes(server, project, t) for t in ids]
    for device in ("ann-phone", "ann-tablet", "kenji-phone", "nomad-phone"):
        got = sorted(log[device][0] for log in logs)
        assert got == ["sent", "skipped"], (device, logs)
    assert all(log["ann-phone"][0] == log["ann-tablet"][0] for log in logs)  # one trigger each
    reasons = {log[d][1] for log in logs for d in log if log[d][0] == "skipped"}
    assert reasons <= {
        "not_reeligible: another trigger of this campaign reaches the user at the same time",
        "not_reeligible: received this campaign at 2027-01-10 14:00 UTC; it reaches a user once",
    }
