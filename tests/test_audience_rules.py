"""Rules are checked completely when a campaign is saved, and trigger values when a trigger
arrives; the dry run explains every target that would get nothing."""

from __future__ import annotations

from typing import Any

import pytest

from clarion.storage.db import Database
from tests.conftest import Project, Server, make_project
from tests.helpers import PICKUP, PROPS, add_user, ok


def save(server: Server, project: Project, audience: Any) -> Any:
    spec = {"name": "rules", "status": "active", "message": {"title": "t"}, "audience": audience}
    return server.client.post("/api/v1/campaigns", json=spec, headers=project.headers)


@pytest.mark.parametrize(
    ("condition", "fragment"),
    [
        ({"attribute": "city", "operator": "greater_than_ever", "value": 1},
         "operator 'greater_than_ever' does not apply to string attribute 'city'"),
        ({"attribute": "platform", "operator": "gt", "value": "IOS"},
         "does not apply to string attribute 'platform'"),
        ({"attribute": "age", "operator": "between", "value": [1]}, "exactly two items"),
        ({"attribute": "age", "operator": "between", "value": 5}, "exactly two items"),
        ({"attribute": "app_version", "operator": ">=", "value": "three"},
         "expected a version such as '3.2.0'"),
        ({"attribute": "age", "operator": ">", "value": "old"}, "expected a number"),
        ({"attribute": "signup", "operator": "before", "value": "last week"}, "ISO-8601"),
        ({"attribute": "seen", "operator": "within_last_days", "value": -3}, "0 or more"),
        ({"attribute": "vip", "operator": "is_true", "value": "yes"}, "takes no value"),
        ({"attribute": "city", "operator": "in", "value": []}, "non-empty list"),
        ({"attribute": "city", "value": None}, "needs one value"),
        ({"attribute": "score", "type": "version", "value": "1.0"}, "app_version attribute only"),
        ({"attribute": "user_id", "type": "number", "value": 3}, "drop 'type'"),
    ],
)  # fmt: skip
def test_a_rule_that_cannot_be_evaluated_is_refused_with_its_path(
    server: Server, db: Database, condition: dict[str, Any], fragment: str
) -> None:
    project = make_project(db)
    audience = {"groups": [
        {"conditions": [{"attribute": "tier", "value": "gold"}]},
        {"match": "any", "conditions": [{"attribute": "tier", "operator": "exists"}, condition]},
    ]}  # fmt: skip
    r = save(server, project, audience)
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert error["path"] == "$.audience.groups[1].conditions[1]", error
    assert fragment in error["message"], error["message"]
    assert ok(server.client.get("/api/v1/campaigns", headers=project.headers))["campaigns"] == []


def test_the_three_attribute_limit_counts_across_groups(server: Server, db: Database) -> None:
    project = make_project(db)
    audience = {"match": "any", "groups": [
        {"conditions": [{"attribute": "a", "value": "1"},
                        {"attribute": "platform", "value": "IOS"}]},
        {"conditions": [{"attribute": "b", "value": "1"},
                        {"attribute": "properties.platform", "value": "x"}]},
    ]}  # fmt: skip
    r = save(server, project, audience)
    assert r.status_code == 400
    message = r.json()["error"]["message"]
    assert "4 distinct attributes" in message and "at most 3" in message
    assert "properties.platform" in message and "platform" in message


def test_legacy_and_grouped_forms_both_load_and_read_back(server: Server, db: Database) -> None:
    project = make_project(db)
    body = ok(server.client.post("/api/v1/campaigns", json=PICKUP, headers=project.headers), 201)
    assert body["audience"]["groups"][0]["conditions"][1]["operator"] == "eq"
    assert body["trigger_keys"] == ["store_location"]


@pytest.mark.parametrize(
    ("value", "expected"),
    [({"a": 1}, "a string"), (["SF"], "a string"), (None, "a string")],
)
def test_a_trigger_value_the_rules_cannot_compare_gets_400(
    server: Server, db: Database, value: Any, expected: str
) -> None:
    project = make_project(db)
    cid = ok(server.client.post("/api/v1/campaigns", json=PICKUP, headers=project.headers), 201)[
        "id"
    ]
    r = server.client.post(
        f"/api/v1/campaigns/{cid}:trigger",
        json={"properties": {**PROPS, "store_location": value}},
        headers=project.headers,
    )
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert error["code"] == "invalid_trigger_property" and error["key"] == "store_location"
    assert expected in error["message"] and "properties.store_location" in error["message"]


def test_a_number_rule_refuses_a_non_numeric_trigger_value(server: Server, db: Database) -> None:
    project = make_project(db)
    spec = {"name": "big spenders", "status": "active", "message": {"title": "t"},
            "audience": {"conditions": [{"attribute": "spent", "operator": ">=",
                                         "value": "{{ trigger.min_spent }}"}]}}  # fmt: skip
    cid = ok(server.client.post("/api/v1/campaigns", json=spec, headers=project.headers), 201)["id"]
    url = f"/api/v1/campaigns/{cid}:trigger"
    r = server.client.post(url, json={"properties": {"min_spent": "abc"}}, headers=project.headers)
    assert r.status_code == 400
    assert r.json()["error"]["expected"] == "a number"
    assert "min_spent" in r.json()["error"]["message"]
    ok(server.client.post(url, json={"properties": {"min_spent": "100"}}, headers=project.headers))


def test_dry_run_counts_renders_and_explains_every_excluded_target(
    server: Server, db: Database
) -> None:
    project = make_project(db)
    cid = ok(server.client.post("/api/v1/campaigns", json=PICKUP, headers=project.headers), 201)[
        "id"
    ]
    staff = {"user_role": "store_staff", "store_location": "San Francisco", "name": "Ana"}
    add_user(server.client, project, "sf-1", staff, [{"id": "d-ok"}])
    add_user(server.client, project, "sf-2", staff, [{"id": "d-notoken", "push_token": ""}])
    add_user(server.client, project, "sf-3", staff,
             [{"id": "d-off", "is_push_permission_granted": False}])  # fmt: skip
    add_user(server.client, project, "sf-4", staff, [])
    add_user(server.client, project, "nyc-1", {**staff, "store_location": "New York"},
             [{"id": "d-nyc"}])  # fmt: skip
    targets = [{"project_user_id": u} for u in ("sf-1", "sf-2", "sf-3", "sf-4", "nyc-1", "ghost")]
    targets.append({"device_id": "d-missing"})
    before = server.client.get(f"/api/v1/campaigns/{cid}", headers=project.headers).json()
    out = ok(
        server.client.post(
            f"/api/v1/campaigns/{cid}:dry-run?sample=5",
            json={"audience": {"targets": targets}, "properties": PROPS},
            headers=project.headers,
        )
    )
    assert out["reach"] == {
        "users": 4, "devices": 3, "messages": 4, "reachable": 1,
        "no_device": 1, "no_push_token": 1, "push_permission_off": 1,
    }  # fmt: skip
    assert [c["users"] for c in out["conditions"]] == [5, 4]
    assert out["conditions"][1]["condition"] == "store_location = '{{ trigger.store_location }}'"
    sent = [s for s in out["sample"] if s["status"] == "would_send"]
    assert len(sent) == 1 and sent[0]["message"]["body"].startswith("Order #ORD-12345 from Jamie")
    excluded = {e.get("project_user_id") or e.get("device_id"): e for e in out["excluded_targets"]}
    assert {k: e["reason"] for k, e in excluded.items()} == {
        "sf-2": "no_push_token", "sf-3": "push_permission_off", "sf-4": "no_device",
        "nyc-1": "segment_mismatch", "ghost": "unknown_user", "d-missing": "unknown_device",
    }  # fmt: skip
    assert excluded["nyc-1"]["failing_conditions"] == [
        "audience.groups[0].conditions[1]: store_location = '{{ trigger.store_location }}'"
    ]
    # Nothing was sent or written.
    assert not server.settings.resolved_outbox_path().exists()
    after = server.client.get(f"/api/v1/campaigns/{cid}", headers=project.headers).json()
    assert before == after
