"""The Clix users API and device registration, with the shapes the SDKs send and decode."""

from __future__ import annotations

from typing import Any

from clarion.storage.db import Database
from tests.conftest import Server, make_project
from tests.helpers import ok

SDK_DEVICE = {  # every field the Android SDK sends (clix-api.md)
    "id": "3f1c6f3e-2d5b-4a8e-9d7e-0b6f5a1c2d3e",
    "platform": "ANDROID",
    "model": "Pixel 8",
    "manufacturer": "Google",
    "os_name": "Android",
    "os_version": "15",
    "locale_region": "US",
    "locale_language": "en",
    "timezone": "America/Los_Angeles",
    "app_name": "MyShop",
    "app_version": "3.4.0",
    "sdk_type": "native",
    "sdk_version": "1.2.0",
    "ad_id": "",
    "is_push_permission_granted": True,
    "push_token": "fcm-token-abc",
    "push_token_type": "FCM",
}


def test_users_upsert_patch_delete(server: Server, db: Database) -> None:
    project = make_project(db)
    c, h = server.client, project.headers
    body = ok(
        c.post(
            "/api/v1/users",
            json={"project_user_id": "u1", "properties": {"plan": "pro", "age": 30}},
            headers=h,
        )
    )
    assert body == {"properties": {"plan": "pro", "age": 30}}
    body = ok(
        c.post(
            "/api/v1/users",
            json={"project_user_id": "u1", "properties": {"age": 31, "plan": None}},
            headers=h,
        )
    )
    assert body == {"properties": {"age": 31}}  # merged; null removes
    body = ok(c.patch("/api/v1/users/u1", json={"properties": {"city": "Austin"}}, headers=h))
    assert body == {"properties": {"age": 31, "city": "Austin"}}
    r = c.patch("/api/v1/users/ghost", json={"properties": {}}, headers=h)
    assert r.status_code == 404 and r.json()["error"]["code"] == "user_not_found"
    assert ok(c.delete("/api/v1/users/u1", headers=h)) == {}
    assert ok(c.delete("/api/v1/users/u1", headers=h)) == {}  # absent: still 200
    assert c.patch("/api/v1/users/u1", json={"properties": {}}, headers=h).status_code == 404


def test_users_bad_input(server: Server, db: Database) -> None:
    project = make_project(db)
    r = server.client.post("/api/v1/users", json={"properties": {}}, headers=project.headers)
    assert r.status_code == 400
    assert r.json()["error"]["path"] == "$.project_user_id"
    r = server.client.post("/api/v1/users", json={"project_user_id": "u", "properties": []},
                           headers=project.headers)  # fmt: skip
    assert r.status_code == 400 and r.json()["error"]["path"] == "$.properties"
    r = server.client.post("/api/v1/users", json={"project_user_id": "u"},
                           headers=project.sdk_headers)  # fmt: skip
    assert r.status_code == 403


def test_device_upsert_answers_every_field_the_sdks_decode(server: Server, db: Database) -> None:
    project = make_project(db)
    c = server.client
    body = ok(
        c.post("/api/v1/devices", json={"devices": [SDK_DEVICE]}, headers=project.sdk_headers)
    )
    (device,) = body["devices"]
    assert {k: device[k] for k in SDK_DEVICE} == SDK_DEVICE
    assert isinstance(device["user_id"], str) and device["user_id"]
    anonymous = device["user_id"]
    # Updating keeps the same (anonymous) user; identify links the device to a project user.
    again = ok(c.post("/api/v1/devices", json={"devices": [{**SDK_DEVICE, "push_token": "new"}]},
                      headers=project.sdk_headers))["devices"][0]  # fmt: skip
    assert again["user_id"] == anonymous and again["push_token"] == "new"
    ident = ok(
        c.post(
            f"/api/v1/devices/{SDK_DEVICE['id']}/user/project-user-id",
            json={"project_user_id": "shopper-1"},
            headers=project.sdk_headers,
        )
    )
    assert ident == {"device_id": SDK_DEVICE["id"], "project_user_id": "shopper-1"}
    # The anonymous user became shopper-1, who is now reachable by the users API.
    ok(
        c.patch(
            "/api/v1/users/shopper-1", json={"properties": {"vip": True}}, headers=project.headers
        )
    )


def test_identify_into_an_existing_user_merges_and_moves_devices(
    server: Server, db: Database
) -> None:
    project = make_project(db)
    c = server.client
    ok(c.post("/api/v1/users", json={"project_user_id": "known", "properties": {"tier": "gold"}},
              headers=project.headers))  # fmt: skip
    first = ok(
        c.post("/api/v1/devices", json={"devices": [SDK_DEVICE]}, headers=project.sdk_headers)
    )
    anonymous = first["devices"][0]["user_id"]
    ok(c.post(f"/api/v1/devices/{SDK_DEVICE['id']}/user/project-user-id",
              json={"project_user_id": "known"}, headers=project.sdk_headers))  # fmt: skip
    after = ok(
        c.post("/api/v1/devices", json={"devices": [SDK_DEVICE]}, headers=project.sdk_headers)
    )
    assert after["devices"][0]["user_id"] != anonymous
    r = c.post("/api/v1/devices/nope/user/project-user-id", json={"project_user_id": "x"},
               headers=project.sdk_headers)  # fmt: skip
    assert r.status_code == 404 and r.json()["error"]["code"] == "device_not_found"


def test_device_bad_input(server: Server, db: Database) -> None:
    project = make_project(db)
    r = server.client.post("/api/v1/devices", json={"devices": [{"platform": "IOS"}]},
                           headers=project.sdk_headers)  # fmt: skip
    assert r.status_code == 400
    assert r.json()["error"]["path"] == "$.devices[0].id"
    r = server.client.post("/api/v1/devices", content=b"{nope", headers={
        **project.sdk_headers, "Content-Type": "application/json"})  # fmt: skip
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_json"


def test_every_endpoint_caps_the_body(server_factory: Any, db: Database) -> None:
    server = server_factory(max_body_bytes=2048)
    project = make_project(db)
    big = {"project_user_id": "u1", "properties": {"blob": "x" * 4000}}
    r = server.client.post("/api/v1/users", json=big, headers=project.headers)
    assert r.status_code == 413 and r.json()["error"]["code"] == "payload_too_large"
    assert r.headers["x-request-id"]
    streamed = iter([b'{"project_user_id": "u1", "x": "', b"y" * 4000, b'"}'])  # no length
    headers = {**project.headers, "Content-Type": "application/json"}
    r = server.client.post("/api/v1/users", content=streamed, headers=headers)
    assert r.status_code == 413 and r.json()["error"]["code"] == "payload_too_large"
    assert server.client.patch("/api/v1/users/u1", json={"properties": {}},
                               headers=project.headers).status_code == 404  # fmt: skip
