"""The SDK data plane with the shapes the official Clix SDKs really send (Android, iOS,
React Native), over a real server, with the public key they embed."""

from __future__ import annotations

from typing import Any

from clarion.storage.db import Database
from tests.conftest import Project, Server, make_project
from tests.helpers import ok

DEVICE_FIELDS = ("id", "platform", "model", "manufacturer", "os_name", "os_version",
                 "locale_region", "locale_language", "timezone", "app_name", "app_version",
                 "sdk_type", "sdk_version", "ad_id", "is_push_permission_granted", "push_token",
                 "push_token_type")  # fmt: skip

ANDROID_DEVICE = {
    "id": "and-1", "platform": "ANDROID", "model": "Pixel 8", "manufacturer": "Google",
    "os_name": "Android", "os_version": "15", "locale_region": "US", "locale_language": "en",
    "timezone": "America/Los_Angeles", "app_name": "Shop", "app_version": "3.2.0",
    "sdk_type": "native", "sdk_version": "1.4.0", "ad_id": None,
    "is_push_permission_granted": True, "push_token": "fcm-token-1", "push_token_type": "FCM",
}  # fmt: skip


def post(server: Server, path: str, body: Any, headers: dict[str, str]) -> Any:
    return ok(server.client.post(path, json=body, headers=headers))


def register(server: Server, project: Project, device: dict[str, Any]) -> dict[str, Any]:
    body = post(server, "/api/v1/devices", {"devices": [device]}, project.sdk_headers)
    return dict(body["devices"][0])


def user_properties(server: Server, project: Project, user: str) -> dict[str, Any]:
    r = server.client.patch(f"/api/v1/users/{user}", json={}, headers=project.headers)
    return dict(ok(r)["properties"])


def test_device_upsert_answers_every_field_the_android_sdk_decodes(
    server: Server, db: Database
) -> None:
    project = make_project(db)
    out = register(server, project, ANDROID_DEVICE)
    assert set(DEVICE_FIELDS) | {"user_id"} <= set(out)
    assert all(isinstance(out[f], str) for f in DEVICE_FIELDS if f != "is_push_permission_granted")
    assert isinstance(out["user_id"], str) and out["user_id"]  # the anonymous user's id
    assert out["ad_id"] == "" and out["push_token"] == "fcm-token-1"
    again = register(server, project, {**ANDROID_DEVICE, "app_version": "3.3.0"})
    assert again["user_id"] == out["user_id"] and again["app_version"] == "3.3.0"
    too_long = server.client.post(
        "/api/v1/devices",
        json={"devices": [{**ANDROID_DEVICE, "platform": "x" * 21}]},
        headers=project.sdk_headers,
    )
    assert too_long.status_code == 400 and too_long.json()["error"]["path"] == (
        "$.devices[0].platform"
    )


def test_property_variants_of_the_three_sdks(server: Server, db: Database) -> None:
    project = make_project(db)
    register(server, project, ANDROID_DEVICE)
    post(server, "/api/v1/devices/and-1/user/project-user-id", {"project_user_id": "u-1"},
         project.sdk_headers)  # fmt: skip
    path = "/api/v1/devices/and-1/user/properties"
    android = [
        {"name": "age", "type": "USER_PROPERTY_TYPE_NUMBER", "value": "34"},
        {"name": "vip", "type": "USER_PROPERTY_TYPE_BOOLEAN", "value": "true"},
        {"name": "city", "type": "USER_PROPERTY_TYPE_STRING", "value": "Seoul"},
    ]
    ios = [
        {"name": "score", "type": "USER_PROPERTY_TYPE_NUMBER", "value": 7.5},
        {"name": "beta", "type": "USER_PROPERTY_TYPE_BOOLEAN", "value": False},
        {"name": "signup", "type": "USER_PROPERTY_TYPE_DATETIME",
         "value": "2026-05-01T18:00:00+09:00"},
    ]  # fmt: skip
    react_native = [{"name": "tier", "type": "USER_PROPERTY_TYPE_STRING", "value_string": "gold"}]
    out = post(server, path, {"properties": android}, project.sdk_headers)["properties"]
    assert [(p["name"], p["value"], p["value_string"]) for p in out] == [
        ("age", 34, "34"), ("vip", True, "true"), ("city", "Seoul", "Seoul"),
    ]  # fmt: skip
    post(server, path, {"properties": ios}, project.sdk_headers)
    post(server, path, {"properties": react_native}, project.sdk_headers)
    assert user_properties(server, project, "u-1") == {
        "age": 34, "vip": True, "city": "Seoul", "score": 7.5, "beta": False,
        "signup": "2026-05-01T09:00:00Z", "tier": "gold",
    }  # fmt: skip

    # Removal: Android/iOS repeat ?names=, React Native joins ?property_names=.
    r = server.client.delete(path, params=[("names", "age"), ("names", "vip")],
                             headers=project.sdk_headers)  # fmt: skip
    assert ok(r) == {}
    r = server.client.delete(path, params={"property_names": "city,tier"},
                             headers=project.sdk_headers)  # fmt: skip
    ok(r)
    assert set(user_properties(server, project, "u-1")) == {"score", "beta", "signup"}
    r = server.client.delete(path, headers=project.sdk_headers)
    assert r.status_code == 400 and "names=" in r.json()["error"]["message"]


def test_a_value_that_does_not_parse_as_its_type_is_refused_naming_it(
    server: Server, db: Database
) -> None:
    project = make_project(db)
    register(server, project, ANDROID_DEVICE)
    path = "/api/v1/devices/and-1/user/properties"
    for prop, fragment in [
        ({"name": "age", "type": "USER_PROPERTY_TYPE_NUMBER", "value": "abc"}, "not a number"),
        ({"name": "vip", "type": "USER_PROPERTY_TYPE_BOOLEAN", "value": "yes"}, "not a boolean"),
        ({"name": "at", "type": "USER_PROPERTY_TYPE_DATETIME", "value": "tomorrow"}, "ISO-8601"),
        ({"name": "x", "type": "USER_PROPERTY_TYPE_COLOR", "value": "red"}, "unknown type"),
    ]:
        good = {"name": "fine", "type": "USER_PROPERTY_TYPE_STRING", "value": "kept?"}
        r = server.client.post(path, json={"properties": [good, prop]}, headers=project.sdk_headers)
        assert r.status_code == 400, r.text
        error = r.json()["error"]
        assert error["code"] == "invalid_property" and error["property"] == prop["name"]
        assert repr(prop["name"]) in error["message"] and fragment in error["message"]
        assert error["path"].startswith("$.properties[1]")
    # Nothing was changed by the refused batches.
    post(server, "/api/v1/devices/and-1/user/project-user-id", {"project_user_id": "u-9"},
         project.sdk_headers)  # fmt: skip
    assert user_properties(server, project, "u-9") == {}
    unknown = server.client.post(
        "/api/v1/devices/nope/user/properties",
        json={"properties": [{"name": "a", "value": "b"}]},
        headers=project.sdk_headers,
    )
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "device_not_found"


def test_identify_merges_the_anonymous_users_properties_and_history(
    server: Server, db: Database
) -> None:
    project = make_project(db)
    ok(server.client.post("/api/v1/users", json={"project_user_id": "u-1",
       "properties": {"tier": "gold"}}, headers=project.headers))  # fmt: skip
    anonymous = register(server, project, ANDROID_DEVICE)["user_id"]
    post(server, "/api/v1/devices/and-1/user/properties",
         {"properties": [{"name": "tier", "value": "free"}, {"name": "cart", "value": "3"}]},
         project.sdk_headers)  # fmt: skip
    events = post(server, "/api/v1/events", {"events": [
        {"device_id": "and-1", "name": "SESSION_START", "source_type": "SDK", "properties": {}},
    ]}, project.sdk_headers)["events"]  # fmt: skip
    assert events[0]["user_id"] == anonymous
    out = post(server, "/api/v1/devices/and-1/user/project-user-id",
               {"project_user_id": "u-1"}, project.sdk_headers)  # fmt: skip
    assert out == {"device_id": "and-1", "project_user_id": "u-1"}
    # The identified user's own value wins; the anonymous user's other properties move over.
    assert user_properties(server, project, "u-1") == {"tier": "gold", "cart": "3"}
    identified = register(server, project, ANDROID_DEVICE)["user_id"]
    assert identified != anonymous
    # History moved too: the session makes u-1 match "last session within a day".
    campaign = ok(server.client.post("/api/v1/campaigns", json={
        "name": "recent", "status": "active", "message": {"title": "hi"},
        "audience": {"conditions": [{"attribute": "last_session_at",
                                     "operator": "within_last_days", "value": 1}]},
    }, headers=project.headers), 201)["id"]  # fmt: skip
    dry = post(server, f"/api/v1/campaigns/{campaign}:dry-run", None, project.headers)
    assert dry["reach"]["users"] == 1 and dry["sample"][0]["project_user_id"] == "u-1"

    # React Native's un-identify: a new anonymous user; u-1 keeps its data.
    r = server.client.delete("/api/v1/devices/and-1/user/project-user-id",
                             headers=project.sdk_headers)  # fmt: skip
    body = ok(r)
    assert body["device_id"] == "and-1" and body["user_id"] not in (anonymous, identified)
    assert user_properties(server, project, "u-1") == {"tier": "gold", "cart": "3"}


def test_events_accept_properties_and_event_property(server: Server, db: Database) -> None:
    project = make_project(db)
    user_id = register(server, project, ANDROID_DEVICE)["user_id"]
    events = [
        {"device_id": "and-1", "name": "PUSH_NOTIFICATION_TAPPED", "source_type": "SDK",
         "properties": {"custom_properties": {"screen": "home"}, "message_id": "m-1"}},
        {"device_id": "and-1", "name": "added_to_cart", "properties": {"sku": "A1"}},
        {"device_id": "and-1", "name": "rn_event",
         "event_property": {"custom_properties": {"n": 2}}},
    ]  # fmt: skip
    out = post(server, "/api/v1/events", {"events": events}, project.sdk_headers)["events"]
    assert [e["user_id"] for e in out] == [user_id] * 3
    assert out[0]["properties"] == {"custom_properties": {"screen": "home"}, "message_id": "m-1"}
    assert out[1]["properties"] == {"custom_properties": {"sku": "A1"}}
    assert out[2]["properties"] == {"custom_properties": {"n": 2}}
    bad = server.client.post(
        "/api/v1/events",
        json={"events": [events[0], {"device_id": "ghost", "name": "x"}]},
        headers=project.sdk_headers,
    )
    assert bad.status_code == 404 and "ghost" in bad.json()["error"]["message"]


def test_public_keys_reach_only_the_sdk_endpoints(server: Server, db: Database) -> None:
    project = make_project(db)
    register(server, project, ANDROID_DEVICE)
    refused = [
        ("/api/v1/users", {"project_user_id": "u"}),
        ("/api/v1/messages:send",
         {"push_notifications": [{"target": {"device_id": "and-1"}, "title": "t"}]}),
        ("/api/v1/live-activities:start", {"live_activities": []}),
    ]  # fmt: skip
    for path, body in refused:
        r = server.client.post(path, json=body, headers=project.sdk_headers)
        assert r.status_code == 403 and r.json()["error"]["code"] == "insufficient_scope", path
    # Secret keys may call the SDK endpoints too.
    post(server, "/api/v1/events", {"events": [{"device_id": "and-1", "name": "x"}]},
         project.headers)  # fmt: skip


def test_messages_send_reports_one_result_per_device(server: Server, db: Database) -> None:
    project = make_project(db)
    register(server, project, ANDROID_DEVICE)
    register(server, project, {**ANDROID_DEVICE, "id": "and-2", "push_token": None})
    for device in ("and-1", "and-2"):
        post(server, f"/api/v1/devices/{device}/user/project-user-id",
             {"project_user_id": "u-1"}, project.sdk_headers)  # fmt: skip
    body = {"push_notifications": [
        {"target": {"project_user_id": "u-1"}, "title": "Hello", "body": "there",
         "landing_url": "myshop://home"},
        {"target": {"project_user_id": "nobody"}, "title": "Hello"},
    ]}  # fmt: skip
    results = post(server, "/api/v1/messages:send", body, project.headers)["delivery_results"]
    by_device = {r["additional_params"]["device_id"]: r for r in results}
    assert by_device["and-1"]["status"] == "DELIVERY_RESULT_STATUS_SUCCEED"
    assert by_device["and-1"]["additional_params"]["fcm_message_id"]
    assert by_device["and-2"]["status"] == "DELIVERY_RESULT_STATUS_FAILED"
    assert by_device["and-2"]["additional_params"]["failure_reason"].startswith("no_push_token")
    assert by_device[""]["additional_params"]["failure_reason"].startswith("unknown_user")
    outbox = (server.settings.resolved_outbox_path()).read_text().splitlines()
    assert len(outbox) == 1 and '"landing_url":"myshop://home"' in outbox[0]
    too_many = {"push_notifications": body["push_notifications"][:1] * 501}
    r = server.client.post("/api/v1/messages:send", json=too_many, headers=project.headers)
    assert r.status_code == 400 and r.json()["error"]["code"] == "too_many_notifications"
    assert "500" in r.json()["error"]["message"]


def test_live_activities_are_stored_and_say_they_were_not_delivered(
    server: Server, db: Database
) -> None:
    project = make_project(db)
    register(server, project, {**ANDROID_DEVICE, "id": "ios-1", "platform": "IOS"})
    token = post(server, "/api/v1/devices/ios-1/live-activity-start-tokens",
                 {"attributes_type": "DeliveryAttributes", "push_to_start_token": "pts-1"},
                 project.sdk_headers)  # fmt: skip
    assert token == {"device_id": "ios-1", "attributes_type": "DeliveryAttributes",
                     "stored": True}  # fmt: skip
    body = {"live_activities": [{
        "target": {"device_id": "ios-1"}, "attributes_type": "DeliveryAttributes",
        "attributes": {"order": "A1"}, "content_state": {"eta": 5},
        "alert": {"title": "On its way", "body": "5 min"},
    }]}  # fmt: skip
    out = post(server, "/api/v1/live-activities:start", body, project.headers)
    assert out["request_id"]
    (result,) = out["delivery_results"]
    assert result["status"] == "DELIVERY_RESULT_STATUS_FAILED"
    assert "stores" in result["additional_params"]["failure_reason"]
    assert out["request_id"] in result["additional_params"]["failure_reason"]
