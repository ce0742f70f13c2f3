"""Delivery-event webhooks: Standard Webhooks signatures checked by a receiver written here
from the spec, the Clix PUSH_* payloads and trigger events, retries with every attempt
logged, the retry window, and the SSRF guard."""

from __future__ import annotations

import base64
import hashlib
import hmac
import threading
import time
from datetime import timedelta
from typing import Any

import orjson
import pytest
from sqlalchemy import select, update

from clarion.config import Settings
from clarion.credentials.crypto import Box, load_key
from clarion.storage.db import Database
from clarion.storage.models import WebhookDelivery, utcnow
from clarion.webhooks import netguard
from clarion.webhooks.dispatcher import WebhookDispatcher
from tests.conftest import Project, Server, make_project
from tests.fakes.http1 import serve_json
from tests.helpers import add_user, create_campaign, ok


class Receiver:
    """Records each POST; answers with the scripted statuses, then 200."""

    def __init__(self, statuses: list[int] | None = None) -> None:
        self.statuses = list(statuses or [])
        self.received: list[tuple[dict[str, str], bytes]] = []
        self.lock = threading.Lock()

    def __call__(self, method: str, path: str, headers: dict[str, str], body: bytes) -> Any:
        with self.lock:
            self.received.append((headers, body))
            status = self.statuses.pop(0) if self.statuses else 200
        return status, {}, {"ok": status == 200}

    def events(self) -> list[dict[str, Any]]:
        return [orjson.loads(body) for _, body in self.received]


def verify(secret: str, headers: dict[str, str], body: bytes, tolerance: int = 300) -> bool:
    """The receiver side of Standard Webhooks, independently of Clarion's code."""
    msg_id, stamp = headers["webhook-id"], headers["webhook-timestamp"]
    if abs(time.time() - int(stamp)) > tolerance:
        return False
    key = base64.b64decode(secret.split("_", 1)[1])
    mac = hmac.new(key, msg_id.encode() + b"." + stamp.encode() + b"." + body, hashlib.sha256)
    expected = base64.b64encode(mac.digest()).decode()
    offered = [s.split(",", 1)[1] for s in headers["webhook-signature"].split() if s[:3] == "v1,"]
    return any(hmac.compare_digest(expected, s) for s in offered)


def add_endpoint(server: Server, project: Project, url: str, **extra: Any) -> dict[str, Any]:
    r = server.client.post("/api/v1/webhooks", headers=project.headers, json={"url": url, **extra})
    return dict(ok(r, 201))


def wait_for(predicate: Any, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


@pytest.fixture
def loopback_server(server_factory: Any) -> Server:
    server: Server = server_factory(webhook_allowed_networks="127.0.0.0/8")
    return server


def test_push_and_trigger_events_arrive_signed_in_the_clix_shape(
    loopback_server: Server, db: Database
) -> None:
    server, project = loopback_server, make_project(db)
    receiver = Receiver()
    campaign_id = create_campaign(server.client, project, {
        "name": "hooks", "status": "active",
        "message": {"title": "Order {{ trigger.order_id }}", "body": "Hi {{ user.name }}"},
    })  # fmt: skip
    device = {"platform": "ios", "is_push_permission_granted": True}
    add_user(server.client, project, "ann", {"name": "Ann"},
             [{**device, "id": "d-ann", "push_token": "tok-ann"}])  # fmt: skip
    add_user(
        server.client, project, "bo", {"name": "Bo"}, [{**device, "id": "d-bo", "push_token": None}]
    )
    with serve_json(receiver) as url:
        created = add_endpoint(server, project, url + "/hooks", headers={"X-Team": "ops"})
        assert created["secret"].startswith("whsec_")
        listed = ok(server.client.get("/api/v1/webhooks", headers=project.headers))
        assert "secret" not in listed["endpoints"][0]  # shown once, at creation
        assert created["secret"] not in str(listed)

        trigger_id, final = server.fire(project, campaign_id, {"properties": {"order_id": "A-7"}})
        assert final["status"] == "completed"
        wait_for(lambda: len(receiver.received) >= 3)

    events = {e["event_type"]: e for e in receiver.events()}
    assert set(events) == {"trigger.accepted", "PUSH_SENT", "trigger.completed"}
    for headers, body in receiver.received:
        assert verify(created["secret"], headers, body)
        assert not verify("whsec_" + base64.b64encode(b"x" * 24).decode(), headers, body)
        assert headers["x-team"] == "ops" and headers["content-type"] == "application/json"
    assert len({h["webhook-id"] for h, _ in receiver.received}) == 3
    sent = events["PUSH_SENT"]
    clix_keys = {"project_id", "event_type", "timestamp", "message_id", "device_id", "platform",
                 "notification"}  # fmt: skip
    assert clix_keys <= set(sent)
    assert sent["project_id"] == project.id and sent["device_id"] == "d-ann"
    assert sent["platform"] == "IOS" or sent["platform"].upper() == "IOS"
    assert sent["notification"]["title"] == "Order A-7"
    assert sent["notification"]["body"] == "Hi Ann"
    assert sent["trigger_id"] == trigger_id and sent["project_user_id"] == "ann"
    done = events["trigger.completed"]
    assert done["trigger_id"] == trigger_id and done["campaign_id"] == campaign_id
    assert done["counts"] == {"sent": 1, "skipped": 1}
    assert events["trigger.accepted"]["trigger_id"] == trigger_id

    endpoint_id = created["id"]

    def deliveries() -> list[dict[str, Any]]:
        return list(ok(server.client.get(f"/api/v1/webhooks/{endpoint_id}/deliveries",
                                         headers=project.headers))["deliveries"])  # fmt: skip

    # The dispatcher records a delivery once the receiver has answered: a moment after the
    # receiver holds the request.
    wait_for(lambda: all(d["status"] != "pending" for d in deliveries()))
    recorded = deliveries()
    assert {d["status"] for d in recorded} == {"delivered"}
    assert all(len(d["attempts"]) == 1 and d["attempts"][0]["status_code"] == 200
               for d in recorded)  # fmt: skip


def test_failed_pushes_and_event_filters(loopback_server: Server, db: Database) -> None:
    server, project = loopback_server, make_project(db)
    receiver = Receiver()
    campaign_id = create_campaign(server.client, project, {
        "name": "bad url", "status": "active",
        "message": {"title": "Hi", "landing_url": "{{ trigger.link }}"},
    })  # fmt: skip
    add_user(server.client, project, "ann", {}, [{"id": "d-1", "platform": "android",
             "push_token": "t", "is_push_permission_granted": True}])  # fmt: skip
    with serve_json(receiver) as url:
        add_endpoint(server, project, url, event_types=["PUSH_FAILED"])
        trigger_id, _ = server.fire(project, campaign_id, {"properties": {"link": "nope nope"}})
        wait_for(lambda: len(receiver.received) >= 1)
        time.sleep(0.3)  # nothing else arrives: the endpoint wants PUSH_FAILED only
    (event,) = receiver.events()
    assert event["event_type"] == "PUSH_FAILED" and event["trigger_id"] == trigger_id
    assert event["reason"].startswith("invalid_url")


def dispatcher(server: Server, db: Database, allowed: list[Any], hours: float = 24) -> Any:
    return WebhookDispatcher(db, Box(load_key(server.settings)), allowed=allowed,
                             retry_hours=hours)  # fmt: skip


def test_retries_back_off_log_every_attempt_and_give_up_after_the_window(
    server_factory: Any, db: Database
) -> None:
    # No worker in the server: the test drives the dispatcher and moves time itself.
    server: Server = server_factory(webhook_allowed_networks="127.0.0.0/8", embedded_worker=False)
    project = make_project(db)
    receiver = Receiver([500, 503])
    loopback = netguard.parse_networks("127.0.0.0/8")
    campaign_id = create_campaign(server.client, project, {"name": "c", "status": "active",
                                                           "message": {"title": "Hi"}})  # fmt: skip
    with serve_json(receiver) as url:
        endpoint = add_endpoint(server, project, url, event_types=["trigger.accepted"])
        ok(server.client.post(f"/api/v1/campaigns/{campaign_id}:trigger", headers=project.headers))
        hooks = dispatcher(server, db, loopback)
        try:
            assert hooks.run_once() == 1  # 500
            with db.read() as session:
                (row,) = session.scalars(select(WebhookDelivery)).all()
                wait = (row.next_attempt_at - utcnow()).total_seconds()
            assert row.status == "pending" and row.attempts == 1 and 3.5 < wait < 6.5
            assert hooks.run_once() == 0  # not due yet: retries are scheduled, not slept on
            for _ in range(2):  # time passes: 503, then 200
                with db.write() as session:
                    session.execute(update(WebhookDelivery).values(next_attempt_at=utcnow()))
                assert hooks.run_once() == 1
        finally:
            hooks.stop()
    deliveries = ok(server.client.get(f"/api/v1/webhooks/{endpoint['id']}/deliveries",
                                      headers=project.headers))["deliveries"]  # fmt: skip
    (delivery,) = deliveries
    assert delivery["status"] == "delivered"
    assert [a["status_code"] for a in delivery["attempts"]] == [500, 503, 200]
    assert [a["error"] for a in delivery["attempts"]] == ["HTTP 500", "HTTP 503", None]
    ids = {h["webhook-id"] for h, _ in receiver.received}
    assert ids == {delivery["id"]}  # the same id on every retry: receivers dedupe by it

    # A receiver that never answers 2xx: given up once the next try falls past the window.
    r = server.client.delete(f"/api/v1/webhooks/{endpoint['id']}", headers=project.headers)
    assert r.status_code == 204
    receiver2 = Receiver([500] * 10)
    with serve_json(receiver2) as url:
        add_endpoint(server, project, url, event_types=["trigger.accepted"])
        ok(server.client.post(f"/api/v1/campaigns/{campaign_id}:trigger", headers=project.headers))
        with db.write() as session:  # created 23h59m57s ago: the next retry (4-6 s) is too late
            session.execute(update(WebhookDelivery).where(WebhookDelivery.status == "pending")
                            .values(created_at=utcnow() - timedelta(hours=23, minutes=59,
                                                                    seconds=57)))  # fmt: skip
        hooks = dispatcher(server, db, loopback)
        try:
            hooks.run_until_idle()
        finally:
            hooks.stop()
    with db.read() as session:
        (given_up,) = session.scalars(
            select(WebhookDelivery)
        ).all()  # the first left with its endpoint
    assert given_up.status == "failed" and given_up.attempts == 1
    assert len(receiver2.received) == 1


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:9/x",
        "http://localhost/x",
        "http://10.1.2.3/x",
        "http://192.168.0.10/x",
        "http://169.254.169.254/latest/meta-data",
        "http://[::1]/x",
        "http://[::ffff:127.0.0.1]/x",
        "http://0.0.0.0/x",
    ],
)
def test_ssrf_guard_refuses_non_public_addresses(server: Server, db: Database, url: str) -> None:
    project = make_project(db)
    r = server.client.post("/api/v1/webhooks", headers=project.headers, json={"url": url})
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert error["code"] == "unsafe_webhook_url"
    assert "CLARION_WEBHOOK_ALLOWED_NETWORKS" in error["message"]
    assert ok(server.client.get("/api/v1/webhooks", headers=project.headers))["endpoints"] == []


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"url": "ftp://example.com/x"}, "unsafe_webhook_url"),
        ({"url": "https://user:pw@example.com/x"}, "unsafe_webhook_url"),
        ({"url": "https://example.com/x", "event_types": ["PUSH_OPENED"]}, "unknown_event_type"),
        (
            {"url": "https://example.com/x", "headers": {"Webhook-Signature": "x"}},
            "reserved_header",
        ),
    ],
)
def test_bad_endpoints_are_refused(server: Server, db: Database, body: Any, code: str) -> None:
    project = make_project(db)
    r = server.client.post("/api/v1/webhooks", headers=project.headers, json=body)
    assert r.status_code == 400 and r.json()["error"]["code"] == code, r.text


def test_the_guard_runs_again_at_send_time(server_factory: Any, db: Database) -> None:
    """An endpoint saved while loopback was allowed is refused once it no longer is."""
    server: Server = server_factory(webhook_allowed_networks="127.0.0.0/8", embedded_worker=False)
    project = make_project(db)
    receiver = Receiver()
    campaign_id = create_campaign(server.client, project, {"name": "c", "status": "active",
                                                           "message": {"title": "Hi"}})  # fmt: skip
    with serve_json(receiver) as url:
        endpoint = add_endpoint(server, project, url)
        ok(server.client.post(f"/api/v1/campaigns/{campaign_id}:trigger", headers=project.headers))
        hooks = dispatcher(server, db, allowed=[])
        try:
            assert hooks.run_once() == 1
        finally:
            hooks.stop()
    assert receiver.received == []
    (delivery,) = ok(server.client.get(f"/api/v1/webhooks/{endpoint['id']}/deliveries",
                                       headers=project.headers))["deliveries"]  # fmt: skip
    (attempt,) = delivery["attempts"]
    assert attempt["status_code"] is None and attempt["error"].startswith("refused: ")
    assert "loopback" in attempt["error"]


def test_endpoints_are_project_scoped(loopback_server: Server, db: Database) -> None:
    server = loopback_server
    mine, other = make_project(db, "mine"), make_project(db, "other")
    endpoint = add_endpoint(server, mine, "http://127.0.0.1:9/x")
    for method, path in (("GET", f"/api/v1/webhooks/{endpoint['id']}/deliveries"),
                         ("DELETE", f"/api/v1/webhooks/{endpoint['id']}")):  # fmt: skip
        r = server.client.request(method, path, headers=other.headers)
        assert r.status_code == 404 and r.json()["error"]["code"] == "webhook_not_found"
    assert ok(server.client.get("/api/v1/webhooks", headers=other.headers))["endpoints"] == []
    r = server.client.post("/api/v1/webhooks", headers=mine.sdk_headers, json={"url": "x"})
    assert r.status_code == 403  # a public key cannot configure webhooks
    r = server.client.delete(f"/api/v1/webhooks/{endpoint['id']}", headers=mine.headers)
    assert r.status_code == 204
    assert ok(server.client.get("/api/v1/webhooks", headers=mine.headers))["endpoints"] == []


def test_settings_refuse_a_bad_network() -> None:
    with pytest.raises(ValueError, match="not-a-net"):
        Settings(webhook_allowed_networks="127.0.0.0/8, not-a-net")
