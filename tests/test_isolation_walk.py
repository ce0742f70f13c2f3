"""Tenant isolation (OWASP API1), walked over every operation of the OpenAPI document.

Project B has a campaign, users and devices, a completed trigger with its messages, a webhook
endpoint and keys. Project A, with a key holding every scope, calls every operation twice:
once naming B's objects (in the path or the body) and once naming ids nobody has. It must
get the same answer both times (so the answers reveal nothing about B's ids), never a 2xx
that acts on B's objects, and never see any of B's ids it did not send. Afterwards B's
objects, read with B's key, are exactly as before.

Every operation in the document must be in WALK: a new endpoint fails this test until it
says how it is walked.
"""

from __future__ import annotations

import json
from typing import Any

import httpx

from clarion.storage.db import Database
from tests.conftest import Server, make_project
from tests.helpers import PICKUP, PROPS, create_campaign, ok, store_pickup, trigger

PROPERTY = {"name": "x", "type": "USER_PROPERTY_TYPE_STRING", "value": "1"}
PUSH = {"title": "t", "target": {"user_id": "{user_uuid}"}}
ACTIVITY = {"target": {"device_id": "{device}"}, "attributes_type": "T"}
# (method, path): (body or None, query or None). Placeholders name B's objects, or unknown
# ones. Operations without any placeholder act only in the caller's own project.
WALK: dict[tuple[str, str], tuple[Any, dict[str, Any] | None]] = {
    ("POST", "/api/v1/campaigns/{campaign_id}:trigger"): ({"properties": PROPS}, None),
    ("GET", "/api/v1/triggers/{trigger_id}"): (None, None),
    ("GET", "/api/v1/triggers/{trigger_id}/messages"): (None, None),
    ("GET", "/api/v1/triggers/{trigger_id}/explain"): (None, {"project_user_id": "{user}"}),
    ("POST", "/api/v1/triggers/{trigger_id}:cancel"): (None, None),
    ("GET", "/api/v1/project/delivery"): (None, None),
    ("PUT", "/api/v1/project/delivery"): ({"quiet_hours": None}, None),
    ("POST", "/api/v1/campaigns/{campaign_id}:dry-run"): ({"properties": PROPS}, None),
    ("GET", "/api/v1/campaigns"): (None, None),
    ("POST", "/api/v1/campaigns"): (None, None),
    ("POST", "/api/v1/campaigns:apply"): (None, None),
    ("GET", "/api/v1/campaigns/{campaign_id}"): (None, None),
    ("PUT", "/api/v1/campaigns/{campaign_id}"): (PICKUP, None),
    ("POST", "/api/v1/campaigns/{campaign_id}:preview"): ({"properties": PROPS}, None),
    ("GET", "/api/v1/campaigns/{campaign_id}/versions"): (None, None),
    ("GET", "/api/v1/campaigns/{campaign_id}/plan"): (None, None),
    ("POST", "/api/v1/campaigns/{campaign_id}:activate"): (None, None),
    ("POST", "/api/v1/campaigns/{campaign_id}:pause"): (None, None),
    ("POST", "/api/v1/campaigns/{campaign_id}:archive"): (None, None),
    ("POST", "/api/v1/users"): (None, None),
    ("PATCH", "/api/v1/users/{project_user_id}"): ({"properties": {"x": 1}}, None),
    ("DELETE", "/api/v1/users/{project_user_id}"): (None, None),
    ("POST", "/api/v1/devices"): (None, None),
    ("POST", "/api/v1/devices/{device_id}/user/project-user-id"): (
        {"project_user_id": "{user}"},
        None,
    ),
    ("DELETE", "/api/v1/devices/{device_id}/user/project-user-id"): (None, None),
    ("POST", "/api/v1/devices/{device_id}/user/properties"): ({"properties": [PROPERTY]}, None),
    ("DELETE", "/api/v1/devices/{device_id}/user/properties"): (None, {"names": ["user_role"]}),
    ("POST", "/api/v1/events"): ({"events": [{"device_id": "{device}", "name": "x"}]}, None),
    ("GET", "/api/v1/messages/{message_id}/attempts"): (None, None),
    ("POST", "/api/v1/messages:send"): ({"push_notifications": [PUSH]}, None),
    ("POST", "/api/v1/devices/{device_id}/live-activity-start-tokens"): (
        {"attributes_type": "T", "push_to_start_token": "tok"},
        None,
    ),
    ("POST", "/api/v1/live-activities:start"): ({"live_activities": [ACTIVITY]}, None),
    ("GET", "/api/v1/providers"): (None, None),
    ("PUT", "/api/v1/providers/fcm"): (None, None),
    ("PUT", "/api/v1/providers/apns"): (None, None),
    ("PUT", "/api/v1/providers/smtp"): (None, None),
    ("PUT", "/api/v1/providers/webhook"): (None, None),
    ("DELETE", "/api/v1/providers/{provider}"): (None, None),
    ("GET", "/api/v1/webhooks"): (None, None),
    ("POST", "/api/v1/webhooks"): (None, None),
    ("DELETE", "/api/v1/webhooks/{endpoint_id}"): (None, None),
    ("GET", "/api/v1/webhooks/{endpoint_id}/deliveries"): (None, None),
    ("GET", "/api/v1/devices/{device_id}/inbox"): (None, None),
    ("POST", "/api/v1/devices/{device_id}/inbox/{message_id}:read"): (None, None),
    ("POST", "/api/v1/devices/{device_id}/inbox:read-all"): (None, None),
    ("GET", "/api/v1/keys"): (None, None),
    ("POST", "/api/v1/keys"): (None, None),
    ("POST", "/api/v1/keys/{key_id}:rotate"): ({"overlap_seconds": 0}, None),
    ("POST", "/api/v1/keys/{key_id}:revoke"): (None, None),
    ("GET", "/api/v1/audit-log"): (None, None),
}
# Extra walks of one operation with ids in the body rather than the path.
BODY_WALKS: list[tuple[str, str, Any]] = [
    ("POST", "/api/v1/campaigns/{own}:trigger",
     {"audience": {"targets": [{"project_user_id": "{user}"}, {"device_id": "{device}"}]},
      "properties": PROPS}),
    ("POST", "/api/v1/messages:send",
     {"push_notifications": [{"title": "t", "target": {"project_user_id": "{user}"}},
                             {"title": "t", "target": {"device_id": "{device}"}}]}),
]  # fmt: skip
PATH_PARAMS = {
    "campaign_id": "campaign",
    "trigger_id": "trigger",
    "message_id": "message",
    "project_user_id": "user",
    "device_id": "device",
    "endpoint_id": "endpoint",
    "key_id": "key",
    "provider": None,  # a provider's name, not an id: the same for every project
}
UNKNOWN = {
    "campaign": "01900000-0000-7000-8000-00000000c0de",
    "trigger": "01900000-0000-7000-8000-00000000beef",
    "message": "01900000-0000-7000-8000-00000000f00d",
    "user": "nobody-at-all",
    "user_uuid": "01900000-0000-7000-8000-00000000cafe",
    "device": "no-such-device",
    "endpoint": "01900000-0000-7000-8000-00000000dead",
    "key": "01900000-0000-7000-8000-00000000abcd",
}


def _fill(template: Any, ids: dict[str, str]) -> Any:
    text = json.dumps(template)
    for name, value in ids.items():
        text = text.replace("{" + name + "}", value)
    return json.loads(text)


def _path(path: str, ids: dict[str, str]) -> str:
    for param, name in PATH_PARAMS.items():
        path = path.replace("{" + param + "}", ids[name] if name else "fcm")
    return path


def _answer(response: httpx.Response) -> tuple[int, Any]:
    """What the caller learns: the status and the error code (or, for a 2xx, the body with
    the ids that differ between the two calls taken out)."""
    if response.status_code >= 400:
        return response.status_code, response.json()["error"]["code"]
    return response.status_code, "ok"


def _b_state(c: httpx.Client, b: Any, ids: dict[str, str]) -> dict[str, Any]:
    def get(path: str) -> Any:
        return ok(c.get(path, headers=b.headers))

    keys = get("/api/v1/keys")["keys"]
    for k in keys:
        k.pop("last_used_at")
    return {
        "campaign": get(f"/api/v1/campaigns/{ids['campaign']}"),
        "versions": get(f"/api/v1/campaigns/{ids['campaign']}/versions"),
        "trigger": get(f"/api/v1/triggers/{ids['trigger']}"),
        "messages": get(f"/api/v1/triggers/{ids['trigger']}/messages"),
        "attempts": get(f"/api/v1/messages/{ids['message']}/attempts"),
        "webhooks": get("/api/v1/webhooks"),
        "deliveries": get(f"/api/v1/webhooks/{ids['endpoint']}/deliveries"),
        "keys": keys,
        "providers": get("/api/v1/providers"),
        "inbox": get(f"/api/v1/devices/{ids['device']}/inbox"),
        "dry_run": c.post(
            f"/api/v1/campaigns/{ids['campaign']}:dry-run",
            json={"properties": PROPS},
            headers=b.headers,
        ).json(),
        "audit": get("/api/v1/audit-log"),
    }


def test_every_operation_keeps_projects_apart(server_factory: Any, db: Database) -> None:
    server: Server = server_factory(webhook_allowed_networks="127.0.0.0/8")
    c = server.client
    a, b = make_project(db, "a"), make_project(db, "b")
    campaign = store_pickup(c, b)
    trigger_id = ok(trigger(c, b, campaign, {"properties": PROPS}))["trigger_id"]
    server.wait_done(b, trigger_id)
    messages = server.messages(b, trigger_id)
    hook = ok(c.post("/api/v1/webhooks", json={"url": "http://127.0.0.1:9/hook"},
                     headers=b.headers), 201)  # fmt: skip
    b_key = ok(c.post("/api/v1/keys", json={"name": "b"}, headers=b.headers), 201)
    theirs = {
        "campaign": campaign,
        "trigger": trigger_id,
        "message": messages[0]["message_id"],
        "user": messages[0]["project_user_id"],
        "user_uuid": messages[0]["user_id"],
        "device": messages[0]["device_id"],
        "endpoint": hook["id"],
        "key": b_key["id"],
    }
    # B's ids A must never see unless it sent them (names like sf-staff-1 are not secrets:
    # any project may use the same ones).
    secret_ids = {b.id, campaign, trigger_id, hook["id"], b_key["id"]} | {
        m[k] for m in messages for k in ("message_id", "user_id")
    }
    before = _b_state(c, b, theirs)

    document = server.app.openapi()
    operations = {
        (method.upper(), path)
        for path, item in document["paths"].items()
        for method in item
        if path.startswith("/api/v1/") and not path.startswith("/api/v1/health")  # no ids
    }
    assert operations == set(WALK), operations ^ set(WALK)
    walks = [(m, p, body, query) for (m, p), (body, query) in WALK.items()]
    own = create_campaign(c, a, PICKUP)  # A's own campaign, with no users of its own
    walks += [(m, p.replace("{own}", own), body, None) for m, p, body in BODY_WALKS]
    seen_2xx = set()
    for method, path, body, query in walks:
        names_b = any("{" + p + "}" in path for p, name in PATH_PARAMS.items() if name) or (
            body is not None and _fill(body, theirs) != body
        )
        if method != "GET" and not names_b:
            continue  # acts only in A's own project
        answers = []
        for ids in (theirs, UNKNOWN):
            r = c.request(method, _path(path, ids), json=_fill(body, ids) if body else None,
                          params=query, headers=a.headers)  # fmt: skip
            assert r.status_code < 500, (method, path, r.text)
            sent = _path(path, ids) + json.dumps(_fill(body, ids) if body else None)
            leaked = {i for i in secret_ids if i in r.text and i not in sent}
            assert not leaked, (method, path, leaked)
            answers.append(_answer(r))
        assert answers[0] == answers[1], (method, path, answers)
        if names_b and answers[0][0] < 300:
            # Allowed only where the answer is A's own business: per-recipient results
            # that say "not found" for B's ids just as for unknown ones (checked above),
            # or an idempotent "nothing to do".
            seen_2xx.add((method, path.replace(own, "{own}")))

    assert seen_2xx == ALLOWED_2XX, sorted(seen_2xx)
    assert _b_state(c, b, theirs) == before


# Operations that answer 2xx for a foreign id exactly as for an unknown one: deleting an
# unknown user is a no-op (an idempotent DELETE), and a trigger's targets, a direct send's
# and a live activity's recipients are reported per recipient ("not found" alike).
ALLOWED_2XX = {
    ("DELETE", "/api/v1/users/{project_user_id}"),
    ("POST", "/api/v1/campaigns/{own}:trigger"),
    ("POST", "/api/v1/messages:send"),
    ("POST", "/api/v1/live-activities:start"),
}
