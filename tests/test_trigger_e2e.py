"""The trigger endpoint end to end, on a real server: delivery, segments, targets, rendering."""

from __future__ import annotations

import json
from typing import Any

from clarion.storage.db import Database
from tests.conftest import Server, make_project, run_worker_until_idle
from tests.helpers import PROPS, add_user, create_campaign, ok, store_pickup, trigger


def test_broadcast_reaches_only_that_stores_staff_rendered(server: Server, db: Database) -> None:
    project = make_project(db)
    campaign_id = store_pickup(server.client, project)
    trigger_id, status = server.fire(
        project, campaign_id, {"audience": {"broadcast": True}, "properties": PROPS}
    )
    assert status["status"] == "completed"
    assert status["counts"] == {
        "matched": 2,
        "sent": 2,
        "failed": 0,
        "skipped": 0,
        "pending": 0,
        "cancelled": 0,
    }
    messages = server.messages(project, trigger_id)
    assert sorted(m["project_user_id"] for m in messages) == ["sf-staff-1", "sf-staff-2"]
    for m in messages:
        assert m["status"] == "sent"
        assert m["title"] == "New pickup order"
        assert m["body"] == "Order #ORD-12345 from Jamie Chen. 3 items ready by 2:30 PM."
    # The sink wrote the exact Clix payload, one line per sent message.
    lines = [json.loads(x) for x in server.settings.resolved_outbox_path().read_text().splitlines()]
    assert len(lines) == 2
    clix = lines[0]["data"]["clix"]
    assert set(clix) == {
        "message_id", "title", "body", "image_url", "landing_url",
        "user_journey_id", "user_journey_node_id",
    }  # fmt: skip
    assert clix["message_id"] in {m["message_id"] for m in messages}
    assert "nothing was sent to a real device" in messages[0]["reason"]


def test_other_city_and_empty_body_means_campaign_audience(server: Server, db: Database) -> None:
    project = make_project(db)
    campaign_id = store_pickup(server.client, project)
    ny, status = server.fire(
        project, campaign_id, {"properties": {**PROPS, "store_location": "New York"}}
    )
    assert status["audience_mode"] == "default"
    assert [m["project_user_id"] for m in server.messages(project, ny)] == ["ny-staff-1"]


def test_targets_are_narrowed_by_the_segment(server: Server, db: Database) -> None:
    project = make_project(db)
    campaign_id = store_pickup(server.client, project)
    targets = [
        {"project_user_id": "sf-staff-1"},  # matches
        {"project_user_id": "sf-cust-1"},  # customer: not in the segment
        {"project_user_id": "ny-staff-1"},  # other store: not in the segment
        {"device_id": "dev-sf-staff-2"},  # a device of a matching user
        {"project_user_id": "nobody"},
    ]
    trigger_id, status = server.fire(
        project, campaign_id, {"audience": {"targets": targets}, "properties": PROPS}
    )
    assert status["audience_mode"] == "targets"
    messages = server.messages(project, trigger_id)
    assert sorted((m["project_user_id"], m["device_id"]) for m in messages) == [
        ("sf-staff-1", "dev-sf-staff-1"),
        ("sf-staff-2", "dev-sf-staff-2"),
    ]
    assert sorted(status["excluded_targets"], key=str) == sorted(
        [
            {"project_user_id": "sf-cust-1", "reason": "segment_mismatch"},
            {"project_user_id": "ny-staff-1", "reason": "segment_mismatch"},
            {"project_user_id": "nobody", "reason": "unknown_user"},
        ],
        key=str,
    )


def test_explain_says_step_by_step_why_a_target_was_or_was_not_reached(
    server: Server, db: Database
) -> None:
    project = make_project(db)
    campaign_id = store_pickup(server.client, project)
    body = {
        "audience": {
            "targets": [{"project_user_id": "sf-staff-1"}, {"project_user_id": "sf-cust-1"}]
        },
        "properties": PROPS,
    }
    trigger_id, _ = server.fire(project, campaign_id, body)  # fmt: skip

    def explain(**query: str) -> Any:
        return server.client.get(f"/api/v1/triggers/{trigger_id}/explain", params=query,
                                 headers=project.headers)  # fmt: skip

    customer = ok(explain(project_user_id="sf-cust-1"))
    assert customer["target"] == {"project_user_id": "sf-cust-1", "device_id": None}
    assert customer["reached"] is False
    assert customer["first_failure"].startswith("Condition audience.groups[0].conditions[0]: "
                                                "user_role = 'store_staff'")  # fmt: skip
    assert "stored: 'customer'" in customer["first_failure"]
    assert [s["ok"] for s in customer["steps"]][:3] == [True, True, False]  # target, listed
    staff = ok(explain(device_id="dev-sf-staff-1"))
    assert staff["reached"] is True and staff["first_failure"] is None
    assert staff["steps"][-1]["title"] == "Message log" and staff["steps"][-1]["ok"] is True
    # A device id asked for as a user is not found as one, and the answer says which.
    wrong = ok(explain(project_user_id="dev-sf-staff-1"))
    assert wrong["reached"] is False
    assert wrong["first_failure"].startswith("Target: No user 'dev-sf-staff-1'")
    for query in ({}, {"project_user_id": "sf-staff-1", "device_id": "dev-sf-staff-1"}):
        refused = explain(**query)
        assert refused.status_code == 400, refused.text
        assert refused.json()["error"]["code"] == "invalid_request"
        assert "exactly one of project_user_id or device_id" in refused.json()["error"]["message"]
    unknown = server.client.get("/api/v1/triggers/nope/explain", headers=project.headers,
                                params={"project_user_id": "sf-staff-1"})  # fmt: skip
    assert unknown.status_code == 404, unknown.text


def test_broadcast_true_ignores_targets(server: Server, db: Database) -> None:
    project = make_project(db)
    campaign_id = store_pickup(server.client, project)
    _, status = server.fire(project, campaign_id, {
        "audience": {"broadcast": True, "targets": [{"project_user_id": "sf-staff-1"}]},
        "properties": PROPS,
    })  # fmt: skip
    assert status["counts"]["sent"] == 2


def test_device_without_token_or_permission_is_skipped_with_reason(
    server: Server, db: Database
) -> None:
    project = make_project(db)
    campaign_id = create_campaign(server.client, project, {
        "name": "all", "status": "active", "message": {"title": "Hi {{ user.first_name }}"},
    })  # fmt: skip
    add_user(server.client, project, "u1", {"first_name": "Ann"}, [
        {"id": "d-ok"},
        {"id": "d-notoken", "push_token": ""},
        {"id": "d-noperm", "is_push_permission_granted": False},
    ])  # fmt: skip
    add_user(server.client, project, "u2", {}, [])
    trigger_id, status = server.fire(project, campaign_id)
    assert status["counts"] == {
        "matched": 4,
        "sent": 1,
        "failed": 0,
        "skipped": 3,
        "pending": 0,
        "cancelled": 0,
    }
    by_device = {m["device_id"]: m for m in server.messages(project, trigger_id)}
    assert by_device["d-ok"]["title"] == "Hi Ann"
    assert by_device["d-notoken"]["reason"].startswith("no_push_token")
    assert by_device["d-noperm"]["reason"].startswith("push_permission_off")
    assert by_device[None]["reason"].startswith("no_device")
    assert by_device[None]["project_user_id"] == "u2"
    skipped = server.messages(project, trigger_id, status="skipped")
    assert len(skipped) == 3 and all(m["status"] == "skipped" for m in skipped)


def test_missing_variables_render_empty(server: Server, db: Database) -> None:
    project = make_project(db)
    campaign_id = create_campaign(server.client, project, {
        "name": "m", "status": "active",
        "message": {
            "title": "Hello {{ user.nickname }}!",
            "body": "[{{ trigger.absent }}][{{ device.nothing.deeper }}][{{ trigger.present }}]",
            "landing_url": "app://x/{{ trigger.absent }}",
        },
    })  # fmt: skip
    add_user(server.client, project, "u1", {})
    trigger_id, _ = server.fire(project, campaign_id, {"properties": {"present": "yes"}})
    (message,) = server.messages(project, trigger_id)
    assert message["status"] == "sent"
    assert message["title"] == "Hello !"
    assert message["body"] == "[][][yes]"
    assert message["landing_url"] == "app://x/"


def test_personalisation_uses_user_and_device(server: Server, db: Database) -> None:
    project = make_project(db)
    campaign_id = create_campaign(server.client, project, {
        "name": "p", "status": "active",
        "message": {"title": "{{ user.first_name | upcase }} on {{ device.platform }}",
                    "body": "{{ user.id }} {{ device.id }} {{ trigger.n | default: 'none' }}"},
    })  # fmt: skip
    add_user(server.client, project, "u1", {"first_name": "ann"}, [{"id": "d1", "platform": "ios"}])
    trigger_id, _ = server.fire(project, campaign_id)
    (message,) = server.messages(project, trigger_id)
    assert (message["title"], message["body"]) == ("ANN on IOS", "u1 d1 none")


def test_editing_a_campaign_never_changes_a_trigger_in_flight(
    server_factory: Any, db: Database
) -> None:
    server = server_factory(embedded_worker=False)  # nothing delivers until we say so
    project = make_project(db)
    campaign_id = store_pickup(server.client, project)
    first = ok(trigger(server.client, project, campaign_id, {"properties": PROPS}))
    ok(
        server.client.put(
            f"/api/v1/campaigns/{campaign_id}", json=PICKUP_V2, headers=project.headers
        )
    )
    campaign = ok(server.client.get(f"/api/v1/campaigns/{campaign_id}", headers=project.headers))
    assert campaign["version"] == 2
    second = ok(trigger(server.client, project, campaign_id, {"properties": PROPS}))
    run_worker_until_idle(server)
    one = server.wait_done(project, first["trigger_id"])
    two = server.wait_done(project, second["trigger_id"])
    assert (one["campaign_version"], two["campaign_version"]) == (1, 2)
    assert {m["title"] for m in server.messages(project, first["trigger_id"])} == {
        "New pickup order"
    }
    assert {m["title"] for m in server.messages(project, second["trigger_id"])} == {"v2"}
    # v2 dropped the role condition: the SF customer is reached too.
    assert len(server.messages(project, second["trigger_id"])) == 3
    versions = ok(
        server.client.get(f"/api/v1/campaigns/{campaign_id}/versions", headers=project.headers)
    )
    assert [v["version"] for v in versions["versions"]] == [1, 2]


PICKUP_V2 = {
    "name": "New pickup order",
    "status": "active",
    "message": {"title": "v2"},
    "audience": {
        "conditions": [
            {"attribute": "store_location", "value": "{{ trigger.store_location }}"},
        ]
    },
}


def test_a_render_error_fails_that_message_with_the_reason(server: Server, db: Database) -> None:
    project = make_project(db)
    campaign_id = create_campaign(server.client, project, {
        "name": "r", "status": "active",
        "message": {"title": "Split {{ trigger.total | divided_by: user.people }} ways"},
    })  # fmt: skip
    add_user(server.client, project, "two", {"people": 2})
    add_user(server.client, project, "none", {"people": 0})
    trigger_id, status = server.fire(project, campaign_id, {"properties": {"total": 10}})
    assert status["status"] == "completed"
    assert (status["counts"]["sent"], status["counts"]["failed"]) == (1, 1)
    by_user = {m["project_user_id"]: m for m in server.messages(project, trigger_id)}
    assert by_user["two"]["title"] == "Split 5 ways"
    assert by_user["none"]["status"] == "failed"
    assert by_user["none"]["reason"] == "render_error: title: divided_by: can't divide by 0"
    assert by_user["none"]["title"] is None  # never sent half-rendered
