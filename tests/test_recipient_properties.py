"""audience.targets[i].properties: merged over the top-level properties for that recipient's
templates (top level < user target < device target); the audience rules still compare the
top-level values; the dry run, the explanation and the schema check see the same merge."""

from __future__ import annotations

from typing import Any

from clarion.storage.db import Database
from tests.conftest import Server, make_project
from tests.helpers import PICKUP, PROPS, add_user, create_campaign, ok, store_pickup, trigger

GREETING = {**PICKUP, "message": {
    "title": "Order {{ trigger.order_id }} for {{ trigger.customer_name | default: 'a guest' }}",
    "body": "Ready by {{ trigger.pickup_time }}"}}  # fmt: skip


def by_device(server: Server, project: Any, trigger_id: str) -> dict[str, dict[str, Any]]:
    return {m["device_id"]: m for m in server.messages(project, trigger_id)}


def test_each_target_renders_with_its_own_properties_over_the_top_level(
    server: Server, db: Database
) -> None:
    project = make_project(db)
    store_pickup(server.client, project)
    staff = {"user_role": "store_staff", "store_location": "San Francisco"}
    add_user(server.client, project, "sf-staff-3", staff, [{"id": "s3-phone"},
                                                           {"id": "s3-tablet"}])  # fmt: skip
    campaign_id = create_campaign(server.client, project, {**GREETING, "name": "greeting"})
    body = {
        "audience": {"targets": [
            {"project_user_id": "sf-staff-1", "properties": {"customer_name": "Ann",
                                                              "order_id": "A-1"}},
            {"project_user_id": "sf-staff-2"},  # the top level alone
            {"project_user_id": "sf-staff-3", "properties": {"customer_name": "Bo"}},
            {"device_id": "s3-tablet", "properties": {"customer_name": "Cy", "pickup_time": "9"}},
            # A per-recipient value never changes who is in the audience:
            {"project_user_id": "ny-staff-1", "properties": {"store_location": "New York"}},
        ]},
        "properties": {**PROPS, "customer_name": None},
    }  # fmt: skip
    trigger_id, status = server.fire(project, campaign_id, body)
    assert status["counts"]["sent"] == 4
    log = by_device(server, project, trigger_id)
    assert {d: (m["title"], m["body"]) for d, m in log.items()} == {
        "dev-sf-staff-1": ("Order A-1 for Ann", "Ready by 2:30 PM"),
        "dev-sf-staff-2": ("Order ORD-12345 for a guest", "Ready by 2:30 PM"),
        "s3-phone": ("Order ORD-12345 for Bo", "Ready by 2:30 PM"),
        "s3-tablet": ("Order ORD-12345 for Cy", "Ready by 9"),  # device over user
    }
    assert status["excluded_targets"] == [
        {"project_user_id": "ny-staff-1", "reason": "segment_mismatch"}]  # fmt: skip

    dry = ok(server.client.post(f"/api/v1/campaigns/{campaign_id}:dry-run?sample=10", json=body,
                                headers=project.headers))  # fmt: skip
    shown = {s["device_id"]: s["message"]["title"] for s in dry["sample"]}
    assert shown == {d: m["title"] for d, m in log.items()}

    url = f"/api/v1/triggers/{trigger_id}/explain"
    why = ok(server.client.get(url, params={"device_id": "s3-tablet"}, headers=project.headers))
    (rendering,) = [s for s in why["steps"] if s["title"] == "Rendering"]
    assert rendering["detail"] == "renders: Order ORD-12345 for Cy"


def test_channels_that_message_users_fold_a_device_targets_properties_into_its_user(
    server: Server, db: Database
) -> None:
    project = make_project(db)
    campaign_id = create_campaign(server.client, project, {
        "name": "inbox", "channel": "in_app", "status": "active",
        "message": {"title": "Hi {{ trigger.name }}"}})  # fmt: skip
    add_user(server.client, project, "ann", {}, [{"id": "ann-phone"}, {"id": "ann-tablet"}])
    add_user(server.client, project, "bo", {}, [{"id": "bo-phone"}])
    body = {"audience": {"targets": [
        {"project_user_id": "ann", "properties": {"name": "Ann"}},
        {"device_id": "ann-tablet", "properties": {"name": "Annie"}},
        {"device_id": "bo-phone", "properties": {"name": "Bo"}}]},
        "properties": {"name": "you"}}  # fmt: skip
    trigger_id, status = server.fire(project, campaign_id, body)
    assert status["counts"]["sent"] == 2
    titles = {m["project_user_id"]: m["title"] for m in server.messages(project, trigger_id)}
    assert titles == {"ann": "Hi Annie", "bo": "Hi Bo"}


def test_bad_recipient_properties_are_refused_with_their_path(server: Server, db: Database) -> None:
    project = make_project(db)
    campaign_id = store_pickup(server.client, project)
    cases = [
        ([{"project_user_id": "sf-staff-1", "properties": ["x"]}],
         "$.audience.targets[0].properties", "invalid_request"),
        ([{"project_user_id": "sf-staff-1"}, {"device_id": "d", "properties": {"k": "x" * 20000}}],
         "$.audience.targets[1].properties.k", "limit_exceeded"),
    ]  # fmt: skip
    for targets, path, code in cases:
        r = trigger(server.client, project, campaign_id,
                    {"audience": {"targets": targets}, "properties": PROPS})  # fmt: skip
        assert r.status_code == 400, r.text
        assert r.json()["error"]["code"] == code
        assert r.json()["error"]["path"] == path

    schema = {"store_location": {"type": "string", "required": True},
              "item_count": {"type": "number", "required": True}}  # fmt: skip
    typed = create_campaign(server.client, project,
                            {**PICKUP, "name": "typed", "trigger_schema": schema})  # fmt: skip
    top = {"store_location": "San Francisco"}
    # item_count may come per recipient, but then every recipient needs it ...
    fine = {
        "audience": {
            "targets": [
                {"project_user_id": "sf-staff-1", "properties": {"item_count": 1}},
                {"project_user_id": "sf-staff-2", "properties": {"item_count": 2}},
            ]
        },
        "properties": top,
    }
    assert trigger(server.client, project, typed, fine).status_code == 200
    for targets, where in (
        ([{"project_user_id": "sf-staff-1", "properties": {"item_count": "1"}}],
         "audience.targets[0]"),
        ([{"project_user_id": "sf-staff-1", "properties": {"item_count": 1}},
          {"project_user_id": "sf-staff-2"}], None),  # the second has only the top level
    ):  # fmt: skip
        r = trigger(server.client, project, typed,
                    {"audience": {"targets": targets}, "properties": top})  # fmt: skip
        assert r.status_code == 400, r.text
        error = r.json()["error"]
        assert error["code"] == "invalid_trigger_payload"
        assert error["problems"][0]["key"] == "item_count"
        assert error.get("path") == where
        if where:
            assert f"for {where}" in error["message"]
