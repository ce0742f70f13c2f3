"""Templates over the API: save-time checks and warnings, the preview, URL checks at send
time, render-once in the pipeline."""

from __future__ import annotations

from typing import Any

from clarion.storage.db import Database
from tests.conftest import Server, make_project
from tests.helpers import add_user, create_campaign, ok

DEVICE = {"id": "d-1", "platform": "ios", "push_token": "tok", "is_push_permission_granted": True,
          "locale_region": "KR", "locale_language": "ko", "timezone": "Asia/Seoul"}  # fmt: skip


def test_save_reports_template_keys_and_warnings(server: Server, db: Database) -> None:
    project = make_project(db)
    body = ok(server.client.post("/api/v1/campaigns", headers=project.headers, json={
        "name": "w",
        "message": {"title": "{{ user.nickname }}",
                    "body": 'Order {{ trigger.order_id }} at {{ trigger.store | default: "-" }}'},
    }), 201)  # fmt: skip
    assert body["template_keys"] == ["order_id", "store"]
    assert body["warnings"] == [
        "message.title renders empty for a recipient without the data it uses; add literal "
        "text or a default",
        "message.body uses trigger.order_id without a default: renders empty when absent",
    ]


def test_save_refuses_unknown_filters_namespaces_and_disallowed_schemes(
    server: Server, db: Database
) -> None:
    project = make_project(db, url_schemes=("myshop",))

    def save(message: dict[str, str]) -> dict[str, Any]:
        r = server.client.post("/api/v1/campaigns", headers=project.headers,
                               json={"name": "x", "message": message})  # fmt: skip
        assert r.status_code == 400, r.text
        return dict(r.json()["error"])

    error = save({"title": "ok", "body": "line\n{{ trigger.a | shout }}"})
    assert (error["code"], error["path"], error["line"], error["column"]) == (
        "invalid_template", "message.body", 2, 16)  # fmt: skip
    assert "unknown filter 'shout'" in error["message"]
    error = save({"title": "Hi {{ customer.name }}"})
    assert error["code"] == "invalid_template" and "unknown variable 'customer'" in error["message"]
    error = save({"title": "t", "landing_url": "otherapp://x/{{ trigger.id }}"})
    assert error["code"] == "invalid_url" and error["path"] == "message.landing_url"
    assert "scheme 'otherapp' is not allowed; use one of: https, myshop" in error["message"]
    error = save({"title": "t", "image_url": "javascript:alert(1)"})
    assert error["code"] == "invalid_url"
    ok(server.client.post("/api/v1/campaigns", headers=project.headers, json={
        "name": "fine", "message": {"title": "t", "landing_url": "myshop://o/{{ trigger.id }}",
                                    "image_url": "https://cdn.example/{{ trigger.img }}.png"}},
    ), 201)  # fmt: skip


def test_preview_with_sample_and_real_data(server: Server, db: Database) -> None:
    project = make_project(db)
    campaign_id = create_campaign(server.client, project, {
        "name": "p",
        "message": {"title": "Hi {{ user.first_name | default: 'there' }}",
                    "body": "Order {{ trigger.order_id }} on {{ device.platform }}",
                    "landing_url": "myshop://orders/{{ trigger.order_id }}"},
    })  # fmt: skip
    url = f"/api/v1/campaigns/{campaign_id}:preview"
    sample = ok(server.client.post(url, headers=project.headers, json={
        "properties": {"order_id": "A-7"},
        "user": {"id": "u-x", "properties": {"first_name": "Sam"}},
        "device": {"platform": "android"},
    }))  # fmt: skip
    assert sample["status"] == "ok" and sample["campaign_version"] == 1
    assert sample["fields"] == {"title": "Hi Sam", "body": "Order A-7 on ANDROID",
                                "image_url": "", "landing_url": "myshop://orders/A-7"}  # fmt: skip
    assert sample["payload"]["notification"] == {"title": "Hi Sam", "body": "Order A-7 on ANDROID"}
    assert '"landing_url":"myshop://orders/A-7"' in sample["payload"]["data"]["clix"]
    assert 100 < sample["payload_bytes"] < sample["payload_limit"] == 4096
    assert sample["variables"]["title"]["renders"] == "per recipient"
    assert sample["variables"]["landing_url"] == {
        "trigger_keys": ["order_id"], "namespaces": ["trigger"], "renders": "once per trigger"
    }  # fmt: skip

    add_user(server.client, project, "u-1", {"first_name": "Ann"}, [DEVICE])
    real = ok(
        server.client.post(
            url,
            headers=project.headers,
            json={"properties": {"order_id": "B-2"}, "project_user_id": "u-1", "device_id": "d-1"},
        )
    )
    assert real["fields"]["title"] == "Hi Ann" and real["fields"]["body"] == "Order B-2 on IOS"

    unsaved = ok(server.client.post(url, headers=project.headers, json={
        "properties": {}, "message": {"title": "Draft {{ trigger.x | upcase }}",
                                      "landing_url": "{{ trigger.link }}"},
    }))  # fmt: skip
    assert unsaved["campaign_version"] is None and unsaved["fields"]["title"] == "Draft "
    bad_link = ok(server.client.post(url, headers=project.headers, json={
        "properties": {"link": "ftp://x"},
        "message": {"title": "t", "landing_url": "{{ trigger.link }}"},
    }))  # fmt: skip
    assert bad_link["status"] == "invalid_url" and "scheme 'ftp'" in bad_link["reason"]

    r = server.client.post(url, headers=project.headers, json={"message": {"title": "{{ x"}})
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_template"
    r = server.client.post(url, headers=project.headers, json={"project_user_id": "nobody"})
    assert r.status_code == 400 and r.json()["error"]["code"] == "user_not_found"
    r = server.client.post(url, headers=project.sdk_headers, json={})
    assert r.status_code == 403  # a management call: secret keys only


def test_an_invalid_url_fails_that_message_and_trigger_only_fields_render_once(
    server: Server, db: Database
) -> None:
    project = make_project(db, url_schemes=("myshop",))
    campaign_id = create_campaign(server.client, project, {
        "name": "links", "status": "active",
        "message": {"title": "Order {{ trigger.order_id }}",
                    "body": "Hi {{ user.first_name }}",
                    "landing_url": "{{ user.link }}"},
    })  # fmt: skip
    add_user(server.client, project, "good", {"first_name": "Ann", "link": "myshop://a"},
             [DEVICE])  # fmt: skip
    add_user(server.client, project, "bad", {"first_name": "Bo", "link": "javascript:x()"},
             [{**DEVICE, "id": "d-2"}])  # fmt: skip
    trigger_id, status = server.fire(project, campaign_id, {"properties": {"order_id": "Z-9"}})
    assert (status["counts"]["sent"], status["counts"]["failed"]) == (1, 1)
    by_user = {m["project_user_id"]: m for m in server.messages(project, trigger_id)}
    assert by_user["good"]["title"] == by_user["good"]["title"] == "Order Z-9"
    assert by_user["good"]["body"] == "Hi Ann" and by_user["good"]["landing_url"] == "myshop://a"
    assert by_user["bad"]["reason"].startswith("invalid_url: landing_url: scheme 'javascript'")


def test_dry_run_warns_about_template_keys_the_body_lacks(server: Server, db: Database) -> None:
    project = make_project(db)
    campaign_id = create_campaign(server.client, project, {
        "name": "d", "status": "active",
        "message": {
            "title": "Order {{ trigger.order_id }} for {{ trigger.name | default: 'you' }}"
        },
    })  # fmt: skip
    body = ok(server.client.post(f"/api/v1/campaigns/{campaign_id}:dry-run",
                                 headers=project.headers, json={"properties": {}}))  # fmt: skip
    assert (
        "The templates use trigger.order_id, trigger.name, which this body does not send."
        in (body["warnings"])
    )


def test_a_trigger_lacking_template_keys_says_so_in_a_header(server: Server, db: Database) -> None:
    project = make_project(db)
    campaign_id = create_campaign(server.client, project, {
        "name": "h", "status": "active",
        "message": {"title": "Order {{ trigger.order_id }} {{ trigger['가게'] }}"},
    })  # fmt: skip
    url = f"/api/v1/campaigns/{campaign_id}:trigger"
    r = server.client.post(url, headers=project.headers, json={"properties": {}})
    assert r.status_code == 200 and set(r.json()) == {"trigger_id"}
    assert r.headers["Clarion-Warning"] == (
        "templates use trigger.order_id, trigger.\\uac00\\uac8c, absent from properties: "
        "rendered empty"
    )
    r = server.client.post(url, headers=project.headers,
                           json={"properties": {"order_id": 1, "가게": "x"}})  # fmt: skip
    assert r.status_code == 200 and "Clarion-Warning" not in r.headers
