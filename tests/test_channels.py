"""The per-user channels end to end on a real server: in-app (the inbox and its read state),
e-mail (real SMTP to a local aiosmtpd relay: plain, STARTTLS, TLS; HTML escaped; the relay's
answers), the webhook channel (signed JSON); and the Android/APNs overrides."""

from __future__ import annotations

import logging
import ssl
import time
from collections.abc import Iterator
from typing import Any

import orjson
import pytest

from clarion.campaigns.schemas import PushOverrides
from clarion.delivery.providers.apns import ApnsProvider
from clarion.delivery.providers.base import OutboundPush
from clarion.delivery.providers.fcm import FcmProvider
from clarion.storage.db import Database
from tests.conftest import Project, Server, make_project
from tests.fakes import apns, fcm, smtp
from tests.fakes.http1 import serve_json
from tests.helpers import add_user, create_campaign, ok
from tests.test_webhooks import Receiver, verify


def settled(server: Server, project: Project, trigger_id: str) -> dict[str, dict[str, Any]]:
    """The message log by project user id, once resolved and each message has had its first
    try (retries are left waiting: their delay is tens of seconds)."""
    deadline = time.monotonic() + 15
    while True:
        status = ok(server.client.get(f"/api/v1/triggers/{trigger_id}", headers=project.headers))
        messages = server.messages(project, trigger_id)
        first_tries = all(m["status"] not in ("sending", "queued") or m["reason"]
                          for m in messages)  # fmt: skip
        done = status["status"] in ("sending", "completed", "failed") and first_tries
        if done or time.monotonic() > deadline:
            return {m["project_user_id"]: m for m in messages}
        time.sleep(0.05)


# -- in-app ---------------------------------------------------------------------------------
def test_in_app_messages_land_in_the_users_inbox(server: Server, db: Database) -> None:
    project, other = make_project(db, "shop"), make_project(db, "other")
    campaign_id = create_campaign(server.client, project, {
        "name": "inbox", "channel": "in_app", "status": "active",
        "message": {"title": "Order {{ trigger.order_id }} is ready", "body": "Hi {{ user.name }}",
                    "landing_url": "myshop://orders/{{ trigger.order_id }}"},
    })  # fmt: skip
    add_user(server.client, project, "ann", {"name": "Ann"}, [{"id": "ann-phone"},
                                                             {"id": "ann-tablet"}])  # fmt: skip
    add_user(server.client, project, "bo", {"name": "Bo"}, [])  # no device yet: still gets it
    trigger_id, final = server.fire(project, campaign_id, {"properties": {"order_id": "A-1"}})
    assert final["status"] == "completed"
    log = settled(server, project, trigger_id)
    assert set(log) == {"ann", "bo"}  # one message per user, not per device
    assert all(m["status"] == "sent" and m["provider"] == "inbox" for m in log.values())
    assert log["ann"]["device_id"] in ("", None)

    inbox = ok(server.client.get("/api/v1/devices/ann-phone/inbox", headers=project.sdk_headers))
    assert inbox["unread"] == 1 and inbox["next_before"] is None
    (item,) = inbox["messages"]
    assert item["id"] == log["ann"]["message_id"] and item["title"] == "Order A-1 is ready"
    assert item["body"] == "Hi Ann" and item["landing_url"] == "myshop://orders/A-1"
    assert item["read_at"] is None and item["image_url"] is None
    same = ok(server.client.get("/api/v1/devices/ann-tablet/inbox", headers=project.sdk_headers))
    assert [m["id"] for m in same["messages"]] == [item["id"]]  # the user's inbox, any device

    path = f"/api/v1/devices/ann-phone/inbox/{item['id']}:read"
    first = ok(server.client.post(path, headers=project.sdk_headers))
    assert first["read_at"] is not None
    again = ok(server.client.post(path, headers=project.sdk_headers))
    assert again["read_at"] == first["read_at"]  # marking twice keeps the first time
    inbox = ok(server.client.get("/api/v1/devices/ann-phone/inbox", headers=project.sdk_headers,
                                 params={"unread_only": True}))  # fmt: skip
    assert inbox == {"messages": [], "unread": 0, "next_before": None}

    # Another user's message, another project's device: not found, nothing changed.
    r = server.client.post(f"/api/v1/devices/ann-phone/inbox/{log['bo']['message_id']}:read",
                           headers=project.sdk_headers)  # fmt: skip
    assert r.status_code == 404 and r.json()["error"]["code"] == "inbox_message_not_found"
    r = server.client.get("/api/v1/devices/ann-phone/inbox", headers=other.sdk_headers)
    assert r.status_code == 404 and r.json()["error"]["code"] == "device_not_found"

    # Bo registers a device later and finds his message; read-all marks it.
    add_user(server.client, project, "bo", {"name": "Bo"}, [{"id": "bo-phone"}])
    bo = ok(server.client.get("/api/v1/devices/bo-phone/inbox", headers=project.sdk_headers))
    assert bo["unread"] == 1 and bo["messages"][0]["body"] == "Hi Bo"
    marked = ok(server.client.post("/api/v1/devices/bo-phone/inbox:read-all",
                                   headers=project.sdk_headers))  # fmt: skip
    assert marked == {"marked": 1}


def test_inbox_pages_newest_first(server: Server, db: Database) -> None:
    project = make_project(db)
    campaign_id = create_campaign(server.client, project, {
        "name": "inbox", "channel": "in_app", "status": "active",
        "message": {"title": "Note {{ trigger.n }}"},
    })  # fmt: skip
    add_user(server.client, project, "ann", {}, [{"id": "d-1"}])
    for n in range(3):
        server.fire(project, campaign_id, {"properties": {"n": n}})
    page = ok(server.client.get("/api/v1/devices/d-1/inbox", headers=project.sdk_headers,
                                params={"limit": 2}))  # fmt: skip
    assert [m["title"] for m in page["messages"]] == ["Note 2", "Note 1"]
    rest = ok(server.client.get("/api/v1/devices/d-1/inbox", headers=project.sdk_headers,
                                params={"limit": 2, "before": page["next_before"]}))  # fmt: skip
    assert [m["title"] for m in rest["messages"]] == ["Note 0"] and rest["next_before"] is None


# -- e-mail ---------------------------------------------------------------------------------
EMAIL_CAMPAIGN = {
    "name": "receipt", "channel": "email", "status": "active",
    "email": {"to_property": "email", "subject": "Order {{ trigger.order_id }}\nconfirmed",
              "text": "Hi {{ user.name }}, order {{ trigger.order_id }} is confirmed.",
              "html": "<p>Hi {{ user.name }}</p><p>Order <b>{{ trigger.order_id }}</b></p>"},
}  # fmt: skip


@pytest.fixture
def relay() -> Iterator[smtp.FakeRelay]:
    with smtp.serve("none") as fake:
        yield fake


def test_email_goes_through_smtp_with_html_escaped_and_each_answer_logged(
    server: Server, db: Database, relay: smtp.FakeRelay, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    project = make_project(db)
    saved = ok(server.client.put("/api/v1/providers/smtp", headers=project.headers,
                                 json=relay.settings()))  # fmt: skip
    assert saved["configured"] and saved["settings"]["host"] == "127.0.0.1"
    assert "password" not in saved["settings"] and smtp.PASSWORD not in str(saved)
    campaign_id = create_campaign(server.client, project, EMAIL_CAMPAIGN)
    people = {"ann": "ann@example.com", "bo": None, "cy": "bounce@example.com",
              "di": "later@example.com", "ed": "not an address"}  # fmt: skip
    for user_id, address in people.items():
        props: dict[str, Any] = {"name": "<b>Ann</b> & co" if user_id == "ann" else user_id}
        if address:
            props["email"] = address
        add_user(server.client, project, user_id, props, [])
    r = server.client.post(f"/api/v1/campaigns/{campaign_id}:trigger", headers=project.headers,
                           json={"properties": {"order_id": "A-7"}})  # fmt: skip
    log = settled(server, project, ok(r)["trigger_id"])

    assert log["ann"]["status"] == "sent" and log["ann"]["provider"] == "smtp"
    assert log["ann"]["title"] == "Order A-7 confirmed"  # the subject, on one line
    for user_id in ("bo", "ed"):
        assert log[user_id]["status"] == "skipped"
        assert log[user_id]["reason"].startswith("no_email_address: the user property 'email'")
    assert log["cy"]["status"] == "failed" and "550" in log["cy"]["reason"]
    assert log["di"]["status"] == "queued" and "451" in log["di"]["reason"]  # retried later

    (sender, _, mail) = next(m for m in relay.received if m[1] == ["ann@example.com"])
    assert sender == "orders@shop.example" and relay.logins >= 1
    assert mail["From"] == "Shop <orders@shop.example>" and mail["To"] == "ann@example.com"
    assert mail["Subject"] == "Order A-7 confirmed"
    assert mail["Message-ID"] == f"<{log['ann']['message_id']}@shop.example>"
    text = mail.get_body(("plain",))
    html = mail.get_body(("html",))
    assert text is not None and html is not None
    assert text.get_content().strip() == "Hi <b>Ann</b> & co, order A-7 is confirmed."
    assert html.get_content().strip() == (
        "<p>Hi &lt;b&gt;Ann&lt;/b&gt; &amp; co</p><p>Order <b>A-7</b></p>"
    )
    attempts = ok(server.client.get(f"/api/v1/messages/{log['cy']['message_id']}/attempts",
                                    headers=project.headers))["attempts"]  # fmt: skip
    assert attempts[0]["response_code"] == "550"
    assert smtp.PASSWORD not in caplog.text


@pytest.mark.parametrize("security", ["starttls", "tls"])
def test_email_over_starttls_and_tls(server_factory: Any, db: Database, security: str) -> None:
    with smtp.serve(security) as relay:
        server: Server = server_factory(smtp_ca_file=relay.ca_file)
        project = make_project(db)
        ok(server.client.put("/api/v1/providers/smtp", headers=project.headers,
                             json=relay.settings()))  # fmt: skip
        campaign_id = create_campaign(server.client, project, EMAIL_CAMPAIGN)
        add_user(server.client, project, "ann", {"name": "Ann", "email": "ann@example.com"}, [])
        trigger_id, _ = server.fire(project, campaign_id, {"properties": {"order_id": "B-2"}})
        log = settled(server, project, trigger_id)
    assert log["ann"]["status"] == "sent", log["ann"]["reason"]
    assert relay.logins == 1 and relay.received[0][2]["Subject"] == "Order B-2 confirmed"


def test_email_without_trust_or_with_a_wrong_password_fails_clearly(
    server: Server, db: Database
) -> None:
    project = make_project(db)
    campaign_id = create_campaign(server.client, project, EMAIL_CAMPAIGN)
    add_user(server.client, project, "ann", {"name": "Ann", "email": "ann@example.com"}, [])
    trigger_id, _ = server.fire(project, campaign_id, {"properties": {"order_id": "C-3"}})
    log = settled(server, project, trigger_id)
    assert log["ann"]["status"] == "failed" and "PUT /api/v1/providers/smtp" in log["ann"]["reason"]

    with smtp.serve("none") as relay:
        ok(server.client.put("/api/v1/providers/smtp", headers=project.headers,
                             json=relay.settings(password="wrong")))  # fmt: skip
        trigger_id, _ = server.fire(project, campaign_id, {"properties": {"order_id": "C-4"}})
        log = settled(server, project, trigger_id)
    assert log["ann"]["status"] == "failed" and "SMTP login refused: 535" in log["ann"]["reason"]
    assert relay.received == []


@pytest.mark.parametrize(
    ("settings", "fragment"),
    [
        ({"host": "smtp.example.com", "port": "x", "from_address": "a@b.co"}, "port"),
        ({"host": "smtp.example.com", "port": 587, "from_address": "nobody"}, "from_address"),
        ({"host": "", "port": 587, "from_address": "a@b.co"}, "host"),
        ({"host": "h", "port": 25, "security": "ssl", "from_address": "a@b.co"}, "security"),
    ],
)
def test_bad_smtp_settings_are_refused(
    server: Server, db: Database, settings: dict[str, Any], fragment: str
) -> None:
    project = make_project(db)
    r = server.client.put("/api/v1/providers/smtp", headers=project.headers, json=settings)
    assert r.status_code == 400, r.text
    assert r.json()["error"]["code"] == "invalid_provider_credentials"
    assert fragment in r.json()["error"]["message"]
    providers = ok(server.client.get("/api/v1/providers", headers=project.headers))["providers"]
    assert not next(p for p in providers if p["provider"] == "smtp")["configured"]


# -- webhook channel ------------------------------------------------------------------------
def test_webhook_channel_posts_signed_rendered_json(server_factory: Any, db: Database) -> None:
    server: Server = server_factory(webhook_allowed_networks="127.0.0.0/8")
    project = make_project(db)
    receiver = Receiver([503])  # the first request fails: retried by the runner
    with serve_json(receiver) as url:
        campaign_id = create_campaign(server.client, project, {
            "name": "to slack", "channel": "webhook", "status": "active",
            "webhook": {"url": url + "/in", "headers": {"Authorization": "Bearer abc"},
                        "body": {"text": "Order {{ trigger.order_id }} for {{ user.name }}",
                                 "meta": {"n": 3, "ok": True, "tags": ["{{ user.id }}", "x"]}}},
        })  # fmt: skip
        secret = ok(server.client.put("/api/v1/providers/webhook", headers=project.headers,
                                      json={}))["secret"]  # fmt: skip
        add_user(server.client, project, "ann", {"name": "Ann"}, [])
        add_user(server.client, project, "bo", {"name": "Bo"}, [])
        r = server.client.post(
            f"/api/v1/campaigns/{campaign_id}:trigger",
            headers=project.headers,
            json={"properties": {"order_id": "A-1"}},
        )
        log = settled(server, project, ok(r)["trigger_id"])
    statuses = sorted(m["status"] for m in log.values())
    assert statuses == ["queued", "sent"]  # one 503 (waits for its retry), one delivered
    waiting = next(m for m in log.values() if m["status"] == "queued")
    attempts = ok(server.client.get(f"/api/v1/messages/{waiting['message_id']}/attempts",
                                    headers=project.headers))["attempts"]  # fmt: skip
    assert attempts[0]["response_code"] == "503" and attempts[0]["outcome"] == "retryable"
    delivered = [(h, b) for h, b in receiver.received][1:]
    by_user = {orjson.loads(b)["meta"]["tags"][0]: (h, b) for h, b in receiver.received}
    for user_id, name in (("ann", "Ann"), ("bo", "Bo")):
        headers, body = by_user[user_id]
        assert orjson.loads(body) == {
            "text": f"Order A-1 for {name}",
            "meta": {"n": 3, "ok": True, "tags": [user_id, "x"]},
        }
        assert headers["authorization"] == "Bearer abc"
        assert verify(secret, headers, body)
        assert headers["webhook-id"] == log[user_id]["message_id"]  # the message id: dedupe by it
    assert len(delivered) == 1
    sent = next(m for m in log.values() if m["status"] == "sent")
    assert sent["provider"] == "webhook" and sent["title"] == f"POST {url}/in"


def test_webhook_channel_refuses_private_destinations_at_send_time(
    server: Server, db: Database
) -> None:
    project = make_project(db)
    campaign_id = create_campaign(server.client, project, {
        "name": "internal", "channel": "webhook", "status": "active",
        "webhook": {"url": "http://169.254.169.254/latest/meta-data", "body": {"a": "b"}},
    })  # fmt: skip
    add_user(server.client, project, "ann", {}, [])
    trigger_id, _ = server.fire(project, campaign_id)
    log = settled(server, project, trigger_id)
    assert log["ann"]["status"] == "failed"
    assert "refused" in log["ann"]["reason"] and "link-local" in log["ann"]["reason"]


# -- campaign sections ----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("spec", "fragment"),
    [
        ({"channel": "email", "message": {"title": "x"}}, "needs a `email` section"),
        (
            {"channel": "push", "message": {"title": "x"}, "email": EMAIL_CAMPAIGN["email"]},
            "`email` does not apply",
        ),
        (
            {
                "channel": "in_app",
                "message": {"title": "x"},
                "push": {"android": {"priority": "high"}},
            },
            "`push` overrides do not apply",
        ),
        ({"channel": "email", "email": {"subject": "x"}}, "text or an html body"),
        ({"channel": "webhook", "webhook": {"url": "ftp://x.example/", "body": {}}}, "https://"),
        (
            {"channel": "email", "email": {"subject": "x", "html": "{{ user.name | nope }}"}},
            "email.html",
        ),
        (
            {"channel": "push", "message": {"title": "x"}, "push": {"apns": {"priority": 7}}},
            "priority",
        ),
    ],
)
def test_campaign_sections_must_match_the_channel(
    server: Server, db: Database, spec: dict[str, Any], fragment: str
) -> None:
    project = make_project(db)
    r = server.client.post("/api/v1/campaigns", headers=project.headers,
                           json={"name": "c", **spec})  # fmt: skip
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert fragment in error["message"] or fragment in str(error.get("path", "")), error


# -- overrides ------------------------------------------------------------------------------
OVERRIDES = PushOverrides.model_validate({
    "android": {"priority": "high", "ttl_seconds": 3600, "channel_id": "orders", "sound": "ding"},
    "apns": {"priority": 5, "sound": "default", "badge": 1, "collapse_id": "orders",
             "interruption_level": "time-sensitive"},
})  # fmt: skip


def overridden(token: str) -> OutboundPush:
    message = OutboundPush(project_id="p", message_id=f"m-{token}", device_id="d",
                           platform="IOS", push_token=token, title="Hi", body="There",
                           image_url="", landing_url="", overrides=OVERRIDES)  # fmt: skip
    message.data.update({"message_id": message.message_id})
    return message


def test_overrides_reach_fcm_and_apns() -> None:
    with fcm.serve() as fake_fcm:
        account = fake_fcm.service_account()
        provider = FcmProvider(fake_fcm.url, lambda project_id: account)
        try:
            (result,) = provider.send([overridden("ok-1")])
        finally:
            provider.close()
        assert result.outcome == "sent", result
        sent = fake_fcm.messages[0]
    assert sent["android"] == {
        "priority": "HIGH",
        "ttl": "3600s",
        "notification": {"channel_id": "orders", "sound": "ding"},
    }
    assert sent["apns"]["headers"] == {"apns-priority": "5", "apns-collapse-id": "orders"}
    assert sent["apns"]["payload"] == {
        "aps": {"sound": "default", "badge": 1, "interruption-level": "time-sensitive"}
    }

    with apns.serve() as fake_apns:
        account = fake_apns.credentials()
        trust = ssl.create_default_context(cafile=fake_apns.ca_file)
        direct = ApnsProvider(fake_apns.url, lambda project_id: account, verify=trust)
        try:
            (result,) = direct.send([overridden("ok-2")])
        finally:
            direct.close()
        assert result.outcome == "sent", result
        pushed = fake_apns.pushes[0]
    assert pushed["headers"]["apns-priority"] == "5"
    assert pushed["headers"]["apns-collapse-id"] == "orders"
    aps = pushed["payload"]["aps"]
    assert aps["sound"] == "default" and aps["badge"] == 1
    assert aps["interruption-level"] == "time-sensitive" and aps["alert"]["title"] == "Hi"


# -- the CLI --------------------------------------------------------------------------------
def test_providers_and_webhooks_from_the_cli(
    cli_env: Any, db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    from clarion.cli import app as cli

    project = make_project(db)
    monkeypatch.setenv("SMTP_PASSWORD", "s3cret-relay-pw")
    run = cli_env.invoke(cli, ["providers", "set-smtp", "--host", "smtp.example.com",
                               "--from-address", "orders@shop.example", "--username", "shop",
                               "-p", project.id])  # fmt: skip
    assert run.exit_code == 0, run.output
    assert "smtp configured" in run.output and "s3cret-relay-pw" not in run.output
    run = cli_env.invoke(cli, ["providers", "set-smtp", "--host", "smtp.example.com",
                               "--from-address", "nobody", "-p", project.id])  # fmt: skip
    assert run.exit_code == 1 and "from_address" in run.output
    run = cli_env.invoke(cli, ["providers", "set-webhook-secret", "-p", project.id])
    assert run.exit_code == 0 and "whsec_" in run.output
    run = cli_env.invoke(cli, ["providers", "list", "-p", project.id])
    assert "smtp: configured" in run.output and "webhook: configured" in run.output
    assert "s3cret-relay-pw" not in run.output and "whsec_" not in run.output

    monkeypatch.setenv("CLARION_WEBHOOK_ALLOWED_NETWORKS", "127.0.0.0/8")
    from clarion.config import get_settings

    get_settings.cache_clear()
    add = ["webhooks", "add", "http://127.0.0.1:9/hooks", "--event", "PUSH_SENT", "--header",
           "X-Team=ops", "-p", project.id]  # fmt: skip
    run = cli_env.invoke(cli, add)
    assert run.exit_code == 0, run.output
    endpoint_id = run.output.split()[1]
    assert "signing secret (shown once): whsec_" in run.output
    run = cli_env.invoke(cli, ["webhooks", "list", "-p", project.id])
    assert endpoint_id in run.output and "PUSH_SENT" in run.output
    run = cli_env.invoke(cli, ["webhooks", "add", "http://10.0.0.1/x", "-p", project.id])
    assert run.exit_code == 1 and "private" in run.output
    run = cli_env.invoke(cli, ["webhooks", "remove", endpoint_id, "-p", project.id])
    assert run.exit_code == 0
    run = cli_env.invoke(cli, ["webhooks", "list", "-p", project.id])
    assert endpoint_id not in run.output


def test_dry_run_of_an_email_campaign_counts_users_and_explains_addresses(
    server: Server, db: Database
) -> None:
    project = make_project(db)
    campaign_id = create_campaign(server.client, project, EMAIL_CAMPAIGN)
    add_user(server.client, project, "ann", {"name": "Ann", "email": "ann@example.com"},
             [{"id": "a1"}, {"id": "a2"}])  # fmt: skip
    add_user(server.client, project, "bo", {"name": "Bo"}, [])
    dry = ok(server.client.post(f"/api/v1/campaigns/{campaign_id}:dry-run",
                                headers=project.headers,
                                json={"properties": {"order_id": "D-1"}}))  # fmt: skip
    assert dry["reach"]["messages"] == 2 and dry["reach"]["users"] == 2
    assert dry["reach"]["no_device"] == 0 and dry["reach"]["no_push_token"] == 0
    sample = {s["project_user_id"]: s for s in dry["sample"]}
    assert sample["ann"]["status"] == "would_send"
    assert sample["ann"]["message"]["title"] == "Order D-1 confirmed"
    assert sample["bo"]["status"] == "skipped"
    assert sample["bo"]["reason"].startswith("no_email_address")
