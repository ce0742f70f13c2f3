"""APNs direct against the local fake (HTTP/2 over TLS, JWT verified): each answer and its
effect, the JWT reused and made afresh when refused, the router's choice per platform, and
credentials sealed and never shown."""

from __future__ import annotations

import logging
import ssl
import time
from collections.abc import Iterator
from typing import Any

import pytest

from clarion.delivery.providers.apns import ApnsProvider
from clarion.storage.db import Database
from clarion.storage.models import Device, ProviderCredential
from tests.conftest import Server, make_project
from tests.fakes import apns
from tests.helpers import add_user, create_campaign, ok
from tests.test_fcm import push


@pytest.fixture
def fake() -> Iterator[apns.FakeApns]:
    with apns.serve() as server:
        yield server


def provider_for(fake: apns.FakeApns) -> ApnsProvider:
    account = fake.credentials()
    trust = ssl.create_default_context(cafile=fake.ca_file)
    return ApnsProvider(fake.url, lambda project_id: account, verify=trust)


def test_each_answer_and_its_effect(fake: apns.FakeApns) -> None:
    provider = provider_for(fake)
    tokens = ["ok-1", "unregistered-1", "baddevice-1", "toomany-1", "internal-1", "badtopic-1"]
    try:
        answers = provider.send([push(t) for t in tokens])
        provider.send([push("ok-2")])
    finally:
        provider.close()
    results = {t.split("-")[0]: r for t, r in zip(tokens, answers, strict=True)}
    assert results["ok"].outcome == "sent" and len(results["ok"].provider_message_id or "") == 36
    assert results["unregistered"].outcome == "invalid_recipient"
    assert results["baddevice"].outcome == "invalid_recipient"
    for kind in ("toomany", "internal"):
        assert results[kind].outcome == "retryable" and (results[kind].retry_after or 0) > 0
    assert results["badtopic"].outcome == "failed" and "BadTopic" in (
        results["badtopic"].reason or ""
    )
    assert fake.refused == [] and len(fake.jwts) == 1  # one JWT, reused
    first = fake.pushes[0]
    assert first["payload"]["aps"]["alert"] == {"title": "Hi", "body": "There"}
    assert first["payload"]["clix"]["message_id"] == "m-ok-1-1"
    headers = first["headers"]
    assert headers["apns-topic"] == "com.example.shop" and headers["apns-push-type"] == "alert"
    assert headers["apns-priority"] == "10" and headers["apns-expiration"] == "0"
    assert headers["apns-collapse-id"] == "m-ok-1-1"


def test_a_refused_jwt_is_made_afresh_and_the_push_retried(fake: apns.FakeApns) -> None:
    provider = provider_for(fake)
    try:
        provider.send([push("ok-1")])
        fake.expire_next = True
        (result,) = provider.send([push("ok-2")])
    finally:
        provider.close()
    assert result.outcome == "sent" and len(fake.jwts) == 2 and len(fake.pushes) == 2


@pytest.fixture
def apns_server(server_factory: Any, fake: apns.FakeApns) -> Server:
    server: Server = server_factory(apns_base_url=fake.url, apns_ca_file=fake.ca_file)
    return server


def test_ios_goes_to_apns_end_to_end(
    apns_server: Server, fake: apns.FakeApns, db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    server = apns_server
    project = make_project(db)
    saved = ok(server.client.put("/api/v1/providers/apns", headers=project.headers,
                                 json=fake.credentials()))  # fmt: skip
    assert saved["settings"] == {"key_id": "KEY1234567", "team_id": "TEAM123456",
                                 "topic": "com.example.shop"}  # fmt: skip
    campaign_id = create_campaign(
        server.client,
        project,
        {"name": "ios", "status": "active", "message": {"title": "Hi {{ user.name }}"}},
    )
    granted = {"is_push_permission_granted": True}
    add_user(
        server.client,
        project,
        "ann",
        {"name": "Ann"},
        [
            {**granted, "id": "d-ios", "platform": "ios", "push_token": "ok-ann"},
            {**granted, "id": "d-android", "platform": "android", "push_token": "fcm-ann"},
        ],
    )
    add_user(
        server.client,
        project,
        "gone",
        {"name": "Bo"},
        [{**granted, "id": "d-gone", "platform": "ios", "push_token": "unregistered-bo"}],
    )
    trigger_id, status = server.fire(project, campaign_id, {})
    by_device = {m["device_id"]: m for m in server.messages(project, trigger_id)}
    assert by_device["d-ios"]["provider"] == "apns" and by_device["d-ios"]["status"] == "sent"
    assert by_device["d-android"]["provider"] == "sink"  # no FCM credentials: the dev sink
    assert by_device["d-gone"]["status"] == "failed"
    assert "Unregistered" in by_device["d-gone"]["reason"]
    (sent,) = fake.pushes
    assert sent["token"] == "ok-ann" and sent["payload"]["aps"]["alert"]["title"] == "Hi Ann"
    with db.read() as session:
        gone = session.get(Device, (project.id, "d-gone"))
        row = session.get(ProviderCredential, (project.id, "apns"))
    assert gone is not None and gone.push_token is None
    assert row is not None and "PRIVATE KEY" not in row.sealed
    shown = str(ok(server.client.get("/api/v1/providers", headers=project.headers)))
    assert "PRIVATE KEY" not in shown and "'configured': True" in shown
    logged = "\n".join(f"{r.getMessage()} {r.__dict__}" for r in caplog.records)
    assert "PRIVATE KEY" not in logged and not any(j in logged for j in fake.jwts)
    _ = (status, time)


def test_bad_apns_credentials_are_refused(apns_server: Server, db: Database,
                                          fake: apns.FakeApns) -> None:  # fmt: skip
    project = make_project(db)
    good = fake.credentials()
    for change, words in (({"key_id": "short"}, "10-character"),
                          ({"topic": ""}, "bundle id"),
                          ({"key": "-----BEGIN PRIVATE KEY-----\nnope\n-----END PRIVATE KEY-----"},
                           "does not load")):  # fmt: skip
        r = apns_server.client.put("/api/v1/providers/apns", headers=project.headers,
                                   json={**good, **change})  # fmt: skip
        assert r.status_code == 400 and words in r.json()["error"]["message"], r.text
