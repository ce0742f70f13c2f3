"""Idempotency-Key on the trigger call, as the IETF draft describes it: the first answer
replayed byte for byte, 409 while in flight, 422 for a different body, nothing stored for a
refused request, per project, expiring; and 50 parallel identical requests make one trigger."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy import func, select, update

from clarion.idempotency import service as idem
from clarion.storage.db import Database
from clarion.storage.models import IdempotencyKey, Trigger, utcnow
from tests.conftest import Server, make_project
from tests.helpers import PROPS, create_campaign, store_pickup


def triggers(db: Database) -> int:
    with db.read() as session:
        return int(session.scalar(select(func.count()).select_from(Trigger)) or 0)


def post(server: Server, project: Any, campaign_id: str, key: str, body: Any) -> httpx.Response:
    return server.client.post(f"/api/v1/campaigns/{campaign_id}:trigger", json=body,
                              headers={**project.headers, "Idempotency-Key": key})  # fmt: skip


def test_a_replay_gets_the_first_answer_byte_for_byte(server: Server, db: Database) -> None:
    project = make_project(db)
    campaign_id = store_pickup(server.client, project)
    first = post(server, project, campaign_id, "order-1", {"properties": PROPS})
    assert first.status_code == 200 and "idempotency-replayed" not in first.headers
    again = post(server, project, campaign_id, "order-1", {"properties": PROPS})
    assert again.status_code == 200 and again.content == first.content
    assert again.headers["idempotency-replayed"] == "true"
    assert triggers(db) == 1

    other = post(server, project, campaign_id, "order-1", {"properties": {**PROPS, "x": 1}})
    assert other.status_code == 422
    assert other.json()["error"]["code"] == "idempotency_key_reused"
    assert triggers(db) == 1

    # Keys belong to a project: another project's same key is its own.
    second = make_project(db, "other")
    theirs = store_pickup(server.client, second)
    assert post(server, second, theirs, "order-1", {"properties": PROPS}).status_code == 200
    assert triggers(db) == 2


def test_in_flight_refused_and_expired_keys(server: Server, db: Database) -> None:
    project = make_project(db)
    campaign_id = store_pickup(server.client, project)
    body = {"properties": PROPS}
    raw = httpx.Request("POST", "http://x", json=body).content
    path = f"/api/v1/campaigns/{campaign_id}:trigger"
    with db.write() as session:  # another request holds the key right now
        idem.begin(session, project.id, "busy", idem.fingerprint("POST", path, raw),
                   timedelta(hours=24))  # fmt: skip
    r = post(server, project, campaign_id, "busy", body)
    assert r.status_code == 409 and r.headers["retry-after"] == "1"
    assert r.json()["error"]["code"] == "idempotency_key_in_flight"

    # A refused request stores nothing: the same key works once the request is right.
    bad = post(server, project, campaign_id, "fix-me", {"properties": "not an object"})
    assert bad.status_code == 400
    assert post(server, project, campaign_id, "fix-me", body).status_code == 200

    # Expired: the key is new again.
    with db.write() as session:
        session.execute(update(IdempotencyKey).values(expires_at=utcnow()))
    before = triggers(db)
    assert (
        post(server, project, campaign_id, "fix-me", body).headers.get("idempotency-replayed")
        is None
    )
    assert triggers(db) == before + 1
    r = post(server, project, campaign_id, "k" * 256, body)
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_idempotency_key"


def test_fifty_parallel_identical_requests_make_one_trigger(server: Server, db: Database) -> None:
    project = make_project(db)
    campaign_id = create_campaign(server.client, project, {
        "name": "once", "status": "active", "message": {"title": "Hi"}})  # fmt: skip
    url = f"{server.url}/api/v1/campaigns/{campaign_id}:trigger"
    headers = {**project.headers, "Idempotency-Key": "the-one"}

    def one(_: int) -> httpx.Response:
        return httpx.post(url, json={"properties": {"n": 1}}, headers=headers, timeout=30)

    with ThreadPoolExecutor(50) as pool:
        answers = list(pool.map(one, range(50)))
    statuses = {a.status_code for a in answers}
    assert statuses <= {200, 409}, statuses
    ok = [a for a in answers if a.status_code == 200]
    assert ok and len({a.content for a in ok}) == 1  # every 200 is the same answer
    assert triggers(db) == 1
    # Retrying the 409s after a moment gets the stored answer.
    assert one(0).content == ok[0].content


def test_the_other_creating_posts_honour_the_key(server: Server, db: Database) -> None:
    from clarion.storage.models import Message
    from tests.helpers import add_user

    project = make_project(db)
    headers = {**project.headers, "Idempotency-Key": "user-ann"}
    body = {"project_user_id": "ann", "properties": {"tier": "gold"}}
    first = server.client.post("/api/v1/users", json=body, headers=headers)
    again = server.client.post("/api/v1/users", json=body, headers=headers)
    assert first.status_code == again.status_code == 200
    assert again.content == first.content and again.headers["idempotency-replayed"] == "true"
    other = server.client.post("/api/v1/users", json={**body, "properties": {}}, headers=headers)
    assert other.status_code == 422
    assert other.json()["error"]["code"] == "idempotency_key_reused"
    refused = server.client.post("/api/v1/users", json={"nope": 1},
                                 headers={**project.headers, "Idempotency-Key": "bad"})  # fmt: skip
    assert refused.status_code == 400
    fixed = server.client.post("/api/v1/users", json=body,
                               headers={**project.headers, "Idempotency-Key": "bad"})  # fmt: skip
    assert fixed.status_code == 200 and "idempotency-replayed" not in fixed.headers

    add_user(server.client, project, "bo", {}, [{"id": "bo-phone"}])
    send = {"push_notifications": [{"target": {"device_id": "bo-phone"}, "title": "Hi"}]}
    keyed = {**project.headers, "Idempotency-Key": "send-1"}
    one = server.client.post("/api/v1/messages:send", json=send, headers=keyed)
    two = server.client.post("/api/v1/messages:send", json=send, headers=keyed)
    assert one.status_code == 200 and two.content == one.content
    with db.read() as session:  # sent once
        assert session.scalar(select(func.count()).select_from(Message)) == 1
    # Only the project's own keys get a replay: the project id and the Idempotency-Key
    # without a valid API key get the usual 401, not the stored answer.
    for stranger in ({"X-Clix-Project-ID": project.id, "Idempotency-Key": "send-1"},
                     {"X-Clix-Project-ID": project.id, "X-Clix-API-Key": "clx_sk_x",
                      "Idempotency-Key": "send-1"}):  # fmt: skip
        r = server.client.post("/api/v1/messages:send", json=send, headers=stranger)
        assert r.status_code == 401 and "idempotency-replayed" not in r.headers
    long_key = {**project.headers, "Idempotency-Key": "k" * 256}
    r = server.client.post("/api/v1/messages:send", json=send, headers=long_key)
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_idempotency_key"


def test_a_streamed_body_over_the_limit_is_413_with_a_key(server: Server, db: Database) -> None:
    project = make_project(db)
    limit = server.settings.max_body_bytes

    def chunks() -> Any:
        for _ in range(limit // 1000 + 2):
            yield b" " * 1000

    r = server.client.post("/api/v1/users", content=chunks(),
                           headers={**project.headers, "Idempotency-Key": "big",
                                    "Content-Type": "application/json"})  # fmt: skip
    assert r.status_code == 413 and r.json()["error"]["code"] == "payload_too_large"
