"""FCM HTTP v1 against the local fake: the success path end to end, every error class and
its effect, token caching, credentials stored sealed and never shown or logged."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import orjson
import pytest
from sqlalchemy import select

from clarion.delivery.providers.base import OutboundPush
from clarion.delivery.providers.fcm import FcmProvider
from clarion.storage.db import Database
from clarion.storage.models import Device, Job, ProviderCredential, utcnow
from tests.conftest import Server, make_project
from tests.fakes import fcm
from tests.helpers import add_user, create_campaign, ok


@pytest.fixture
def fake() -> Iterator[fcm.FakeFcm]:
    with fcm.serve() as server:
        yield server


def push(token: str, n: int = 1) -> OutboundPush:
    message = OutboundPush(project_id="p", message_id=f"m-{token}-{n}", device_id=f"d-{token}",
                           platform="ANDROID", push_token=token, title="Hi", body="There",
                           image_url="https://cdn.example/i.png", landing_url="")  # fmt: skip
    message.data.update({"message_id": message.message_id, "title": "Hi"})
    return message


def test_every_error_class_maps_to_its_outcome(fake: fcm.FakeFcm) -> None:
    account = fake.service_account()
    provider = FcmProvider(fake.url, lambda project_id: account)
    tokens = ["ok-1", "unregistered-1", "badtoken-1", "quota-1", "quota120-1", "unavailable-1",
              "internal-1", "mismatch-1", "thirdparty-1"]  # fmt: skip
    try:
        answers = provider.send([push(t) for t in tokens])  # one result each, in order
        results = {t.split("-")[0]: r for t, r in zip(tokens, answers, strict=True)}
        provider.send([push("ok-2")])
    finally:
        provider.close()
    assert results["ok"].outcome == "sent"
    assert results["ok"].provider_message_id == "projects/fake-project/messages/1"
    assert results["unregistered"].outcome == "invalid_recipient"
    assert "UNREGISTERED" in (results["unregistered"].reason or "")
    assert results["badtoken"].outcome == "invalid_recipient"
    assert results["quota"].outcome == "retryable" and results["quota"].retry_after == 60
    assert results["quota120"].retry_after == 120  # Retry-After says more
    for kind in ("unavailable", "internal"):
        assert results[kind].outcome == "retryable" and 0 < (results[kind].retry_after or 0) < 60
    for kind, code in (
        ("mismatch", "SENDER_ID_MISMATCH"),
        ("thirdparty", "THIRD_PARTY_AUTH_ERROR"),
    ):
        assert results[kind].outcome == "failed" and code in (results[kind].reason or "")
    assert fake.refused == [] and fake.token_requests == 1  # one token, reused
    sent = fake.messages[0]
    assert sent["notification"] == {"title": "Hi", "body": "There",
                                    "image": "https://cdn.example/i.png"}  # fmt: skip
    assert orjson.loads(sent["data"]["clix"])["message_id"] == "m-ok-1-1"


def test_without_credentials_every_message_fails_with_the_reason(fake: fcm.FakeFcm) -> None:
    provider = FcmProvider(fake.url, lambda project_id: None)
    try:
        (result,) = provider.send([push("ok-1")])
    finally:
        provider.close()
    assert result.outcome == "failed" and "no credentials" in (result.reason or "")


def configure(server: Server, project: Any, fake: fcm.FakeFcm) -> dict[str, Any]:
    r = server.client.put("/api/v1/providers/fcm", headers=project.headers,
                          json={"service_account": fake.service_account()})  # fmt: skip
    return dict(ok(r))


@pytest.fixture
def fcm_server(server_factory: Any, fake: fcm.FakeFcm) -> Server:
    server: Server = server_factory(fcm_base_url=fake.url)
    return server


def test_a_trigger_reaches_fcm_and_dead_tokens_are_dropped(
    fcm_server: Server, fake: fcm.FakeFcm, db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    server = fcm_server
    project = make_project(db)
    saved = configure(server, project, fake)
    assert saved["configured"] and saved["settings"] == {
        "fcm_project_id": "fake-project",
        "client_email": "clarion@fake-project.iam.gserviceaccount.com",
    }
    campaign_id = create_campaign(server.client, project, {
        "name": "fcm", "status": "active",
        "message": {"title": "Order {{ trigger.order_id }}", "body": "Hi {{ user.name }}"},
    })  # fmt: skip
    device = {"platform": "android", "is_push_permission_granted": True}
    add_user(server.client, project, "ann", {"name": "Ann"},
             [{**device, "id": "d-ok", "push_token": "ok-ann"}])  # fmt: skip
    add_user(server.client, project, "gone", {"name": "Bo"},
             [{**device, "id": "d-gone", "push_token": "unregistered-bo"}])  # fmt: skip
    add_user(server.client, project, "busy", {"name": "Cy"},
             [{**device, "id": "d-busy", "push_token": "quota-cy"}])  # fmt: skip
    r = server.client.post(f"/api/v1/campaigns/{campaign_id}:trigger", headers=project.headers,
                           json={"properties": {"order_id": "A-1"}})  # fmt: skip
    trigger_id = ok(r)["trigger_id"]
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:  # two settle now; the quota one waits for its retry
        settled = [m for m in server.messages(project, trigger_id) if m["status"] != "sending"]
        queued = sum(m["status"] == "queued" for m in settled)
        if len(settled) == 3 and queued == 1 and any(m["status"] == "sent" for m in settled):
            break
        time.sleep(0.05)

    by_user = {m["project_user_id"]: m for m in server.messages(project, trigger_id)}
    assert by_user["ann"]["status"] == "sent" and by_user["ann"]["provider"] == "fcm"
    assert by_user["ann"]["provider_message_id"].startswith("projects/fake-project/messages/")
    assert by_user["gone"]["status"] == "failed"
    assert "UNREGISTERED" in by_user["gone"]["reason"]
    assert by_user["busy"]["status"] == "queued"  # retried later by the runner, not by sleeping
    (sent,) = fake.messages
    assert sent["token"] == "ok-ann" and sent["notification"]["title"] == "Order A-1"
    # Every hand-over is in the attempt log, with the provider's own answer.
    logs = {
        user: ok(server.client.get(f"/api/v1/messages/{by_user[user]['message_id']}/attempts",
                                   headers=project.headers))["attempts"]
        for user in ("ann", "gone", "busy")
    }  # fmt: skip
    assert [(a["attempt"], a["provider"], a["outcome"], a["response_code"])
            for a in logs["ann"]] == [(1, "fcm", "sent", "200")]  # fmt: skip
    assert [(a["outcome"], a["response_code"]) for a in logs["gone"]] == [
        ("invalid_recipient", "404 UNREGISTERED")
    ]
    assert [(a["outcome"], a["response_code"]) for a in logs["busy"]] == [
        ("retryable", "429 QUOTA_EXCEEDED")
    ]
    other = make_project(db, "other")
    r = server.client.get(f"/api/v1/messages/{by_user['ann']['message_id']}/attempts",
                          headers=other.headers)  # fmt: skip
    assert r.status_code == 404 and r.json()["error"]["code"] == "message_not_found"
    with db.read() as session:
        gone = session.get(Device, (project.id, "d-gone"))
        job = session.scalars(select(Job).where(Job.trigger_id == trigger_id)).first()
        row = session.get(ProviderCredential, (project.id, "fcm"))
    assert gone is not None and gone.push_token is None
    assert "UNREGISTERED" in (gone.token_invalid_reason or "")
    assert job is not None and job.run_after >= utcnow() + timedelta(seconds=55)
    # Sealed at rest, never shown, never logged.
    key = fake.service_account()["private_key"]
    assert row is not None and "PRIVATE KEY" not in row.sealed and key not in row.sealed
    shown = ok(server.client.get("/api/v1/providers", headers=project.headers))
    assert "private_key" not in str(shown) and shown["providers"][0]["configured"] is True
    logged = "\n".join(f"{r.getMessage()} {r.__dict__}" for r in caplog.records)
    assert "PRIVATE KEY" not in logged and not any(t in logged for t in fake.tokens)


def test_bad_credentials_are_refused(fcm_server: Server, db: Database) -> None:
    project = make_project(db)
    for account, words in (({"type": "authorized_user"}, '"type": "service_account"'),
                           ({"type": "service_account", "project_id": "x"}, "private_key"),
                           ({"type": "service_account", "project_id": "x", "client_email": "e",
                             "private_key": "not a key"}, "does not load")):  # fmt: skip
        r = fcm_server.client.put("/api/v1/providers/fcm", headers=project.headers,
                                  json={"service_account": account})  # fmt: skip
        assert r.status_code == 400, r.text
        assert r.json()["error"]["code"] == "invalid_provider_credentials"
        assert words in r.json()["error"]["message"]
    r = fcm_server.client.put("/api/v1/providers/fcm", headers=project.sdk_headers, json={})
    assert r.status_code == 403
    r = fcm_server.client.delete("/api/v1/providers/fcm", headers=project.headers)
    assert r.status_code == 204


def test_a_failing_provider_opens_the_breaker_and_messages_wait(fake: fcm.FakeFcm) -> None:
    from clarion.delivery.providers.breaker import WAITING, Breaker

    now = [1000.0]
    account = fake.service_account()
    inner = FcmProvider(fake.url, lambda project_id: account)
    breaker = Breaker(inner, threshold=3, cooldown=30, clock=lambda: now[0])
    try:
        breaker.send([push(f"unavailable-{i}") for i in range(3)])  # three outages: open
        calls = fake.requests
        (waiting,) = breaker.send([push("ok-1")])
        assert fake.requests == calls  # nothing sent while open
        assert waiting.outcome == "retryable" and waiting.reason == WAITING
        assert waiting.retry_after == 30
        breaker.send([push("quota-1")])  # still open: waits too
        assert fake.requests == calls

        now[0] += 31  # half-open: one batch goes through; an outage re-opens for longer
        breaker.send([push("unavailable-9")])
        (again,) = breaker.send([push("ok-2")])
        assert again.reason == WAITING and again.retry_after == 60

        now[0] += 61
        (sent,) = breaker.send([push("ok-3")])  # recovered: closed
        assert sent.outcome == "sent" and not breaker.is_open("p")
        quota = breaker.send([push(f"quota-{i}") for i in range(5)])  # quotas never open it
        assert all(r.reason != WAITING for r in quota) and not breaker.is_open("p")
    finally:
        breaker.close()
