"""Rate limits (per project, Clix's headers and 429), the failed-authentication limit per
source address, resource limits on properties, and the broadcast amplification guard."""

from __future__ import annotations

import time
from typing import Any

import httpx
from sqlalchemy import func, select

from clarion.auth import service as auth
from clarion.storage.db import Database
from clarion.storage.models import Trigger, User
from clarion.triggers import amplification
from tests.conftest import Server, make_project
from tests.helpers import ONE_STAFF, PROPS, ok, store_pickup, trigger

TOO_MANY = b'{"error":"Too Many Requests"}'


def count(db: Database, model: Any) -> int:
    with db.read() as session:
        return int(session.scalar(select(func.count()).select_from(model)) or 0)


def test_each_project_has_a_token_bucket_with_clix_headers(
    server_factory: Any, db: Database
) -> None:
    server: Server = server_factory(rate_limit_per_second=5)
    a, b = make_project(db, "a"), make_project(db, "b")
    c = server.client
    asked = time.time()
    first = c.get("/api/v1/campaigns", headers=a.headers)
    assert first.status_code == 200
    assert first.headers["x-ratelimit-limit"] == "5"
    assert int(first.headers["x-ratelimit-remaining"]) == 4
    reset = int(first.headers["x-ratelimit-reset"])
    # Unix seconds: full again within 1 s of the request (bounded by when it was asked, not
    # by when the answer came: on a loaded machine that can be a second later).
    assert asked - 1 <= reset <= time.time() + 2

    answers = [c.get("/api/v1/campaigns", headers=a.headers) for _ in range(10)]
    refused = [r for r in answers if r.status_code == 429]
    assert refused, [r.status_code for r in answers]
    r = refused[0]
    assert r.content == TOO_MANY  # exactly Clix's body
    assert int(r.headers["retry-after"]) >= 1
    assert r.headers["x-ratelimit-remaining"] == "0" and r.headers["x-ratelimit-limit"] == "5"
    # Errors after authentication carry the headers too; B's bucket is its own.
    other = c.get("/api/v1/triggers/nope", headers=b.headers)
    assert other.status_code == 404 and other.headers["x-ratelimit-limit"] == "5"
    # A refused trigger changes nothing.
    before = count(db, Trigger)
    campaign = "01900000-0000-7000-8000-000000000000"
    for _ in range(10):
        c.post(f"/api/v1/campaigns/{campaign}:trigger", json={}, headers=a.headers)
    assert count(db, Trigger) == before

    # A project's own limit (through the service the CLI uses; the cache is this process's).
    with db.write() as session:
        auth.set_rate_limit(session, a.id, 100)
    time.sleep(1.1)
    assert c.get("/api/v1/campaigns", headers=a.headers).headers["x-ratelimit-limit"] == "100"
    assert c.get("/api/v1/campaigns", headers=b.headers).headers["x-ratelimit-limit"] == "5"
    with db.write() as session:
        auth.set_rate_limit(session, a.id, None)  # back to the default
    assert c.get("/api/v1/campaigns", headers=a.headers).headers["x-ratelimit-limit"] == "5"
    # The health check is not rate limited and carries no project headers.
    assert "x-ratelimit-limit" not in c.get("/api/v1/health").headers


def test_failed_authentication_is_limited_per_source_address(
    server_factory: Any, db: Database
) -> None:
    server: Server = server_factory(auth_failures_per_minute=3)
    project = make_project(db)
    c = server.client
    wrong = {"X-Clix-Project-ID": project.id, "X-Clix-API-Key": "clx_sk_guess"}
    for _ in range(3):
        r = c.get("/api/v1/campaigns", headers=wrong)
        assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_credentials"
    blocked = c.get("/api/v1/campaigns", headers=wrong)
    assert blocked.status_code == 429 and blocked.content == TOO_MANY
    assert int(blocked.headers["retry-after"]) >= 1
    # While blocked, even the right key from that address is not looked at.
    assert c.get("/api/v1/campaigns", headers=project.headers).status_code == 429
    assert c.get("/api/v1/health").status_code == 200


def test_properties_limits_name_the_limit_and_change_nothing(
    server_factory: Any, db: Database
) -> None:
    server: Server = server_factory(max_properties=6, max_property_depth=3, max_string_length=50)
    project = make_project(db)
    campaign_id = store_pickup(server.client, project)
    c = server.client
    triggers, users = count(db, Trigger), count(db, User)

    def refused(response: httpx.Response, setting: str, path: str) -> None:
        assert response.status_code == 400, response.text
        error = response.json()["error"]
        assert error["code"] == "limit_exceeded" and error["setting"] == setting
        assert setting in error["message"] and error["path"] == path

    many = {f"k{i}": i for i in range(7)}
    refused(trigger(c, project, campaign_id, {"properties": many}),
            "CLARION_MAX_PROPERTIES", "$.properties")  # fmt: skip
    deep = {**PROPS, "a": {"b": {"c": {"d": 1}}}}
    refused(trigger(c, project, campaign_id, {"properties": deep}),
            "CLARION_MAX_PROPERTY_DEPTH", "$.properties.a.b.c")  # fmt: skip
    long = {**PROPS, "note": "x" * 51}
    refused(trigger(c, project, campaign_id, {"properties": long}),
            "CLARION_MAX_STRING_LENGTH", "$.properties.note")  # fmt: skip
    r = c.post("/api/v1/users", json={"project_user_id": "u", "properties": many},
               headers=project.headers)  # fmt: skip
    refused(r, "CLARION_MAX_PROPERTIES", "$.properties")
    event = {"device_id": "d", "name": "viewed", "properties": {"text": "y" * 51}}
    r = c.post("/api/v1/events", json={"events": [event]}, headers=project.sdk_headers)
    refused(r, "CLARION_MAX_STRING_LENGTH", "$.events[0].properties.text")
    sdk = {"properties": [{"name": "bio", "type": "USER_PROPERTY_TYPE_STRING", "value": "z" * 51}]}
    r = c.post("/api/v1/devices/dev-sf-staff-1/user/properties", json=sdk,
               headers=project.sdk_headers)  # fmt: skip
    refused(r, "CLARION_MAX_STRING_LENGTH", "$.properties[0].value")
    assert (count(db, Trigger), count(db, User)) == (triggers, users)
    # At the limits, accepted.
    fits = {**{f"k{i}": "x" * 50 for i in range(3)}, "store_location": "San Francisco"}
    assert trigger(c, project, campaign_id, {"properties": fits}).status_code == 200


def test_broadcasts_past_n_times_the_devices_are_refused_and_recorded(
    server: Server, db: Database
) -> None:
    project = make_project(db)
    campaign_id = store_pickup(server.client, project)  # 5 users, 5 devices
    c = server.client
    with db.write() as session:
        amplification.set_multiplier(session, project.id, 2)  # 10 recipients per 15 min
    broadcast = {"audience": {"broadcast": True}, "properties": PROPS}
    # Each broadcast matches 2 (San Francisco's staff). Resolved, each counts as 2; one more
    # may reach every device (5): 0+5, 2+5, 4+5 pass, 6+5 > 10 is refused.
    for _ in range(3):
        done = server.wait_done(
            project, ok(trigger(c, project, campaign_id, broadcast))["trigger_id"]
        )
        assert done["status"] == "completed" and done["counts"]["matched"] == 2
    refused = trigger(c, project, campaign_id, broadcast)
    assert refused.status_code == 403, refused.text
    error = refused.json()["error"]
    assert error["code"] == "broadcast_limit_exceeded" and error["devices"] == 5
    assert "set-broadcast-limit" in error["message"] and error["multiplier"] == 2
    # Targeted triggers, the transactional traffic, still pass.
    assert trigger(c, project, campaign_id, ONE_STAFF).status_code == 200
    # The refusal is in the audit log, with who and what.
    log = ok(c.get("/api/v1/audit-log", headers=project.headers))["entries"]
    refusals = [e for e in log if e["action"] == "broadcast.refused"]
    assert refusals and refusals[0]["target_id"] == campaign_id
    assert refusals[0]["actor"].startswith("key:") and refusals[0]["details"]["devices"] == 5
    # An admin raises the limit: broadcasts pass again.
    with db.write() as session:
        amplification.set_multiplier(session, project.id, 100)
    assert trigger(c, project, campaign_id, broadcast).status_code == 200


def test_an_unresolved_broadcast_counts_as_every_device(server_factory: Any, db: Database) -> None:
    server: Server = server_factory(embedded_worker=False, broadcast_multiplier=2)
    project = make_project(db)
    campaign_id = store_pickup(server.client, project)  # 5 devices; nothing resolves here
    broadcast = {"audience": {"broadcast": True}, "properties": PROPS}
    for _ in range(2):  # 0 + 5, then 5 + 5: at the limit of 2 x 5
        assert trigger(server.client, project, campaign_id, broadcast).status_code == 200
    refused = trigger(server.client, project, campaign_id, broadcast)
    assert refused.status_code == 403 and refused.json()["error"]["sent"] == 10


def test_text_with_nul_characters_is_refused_on_every_database(
    server: Server, db: Database
) -> None:
    project = make_project(db)
    campaign_id = store_pickup(server.client, project)
    c = server.client
    device = {"devices": [{"id": "phone\u0000x", "platform": "IOS"}]}
    r = c.post("/api/v1/devices", json=device, headers=project.sdk_headers)
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_text"
    assert r.json()["error"]["path"] == "$.devices[0].id"
    before = count(db, Trigger)
    r = trigger(c, project, campaign_id, {"properties": {**PROPS, "note": "a\u0000"}})
    assert r.status_code == 400 and r.json()["error"]["path"] == "$.properties.note"
    assert count(db, Trigger) == before
    # A backslash followed by "u0000" is ordinary text.
    r = trigger(c, project, campaign_id, {"properties": {**PROPS, "note": "\\u0000"}})
    assert r.status_code == 200
