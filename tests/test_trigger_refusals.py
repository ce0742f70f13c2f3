"""Every refusal of the trigger endpoint: status, stable code, a message saying what to fix,
and nothing changed."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, select

from clarion.auth import service as auth
from clarion.auth.keys import SCOPES
from clarion.storage.db import Database
from clarion.storage.models import Campaign, Job, Message, Trigger
from tests.conftest import Project, Server, make_project
from tests.helpers import PROPS, store_pickup, trigger


def _count(db: Database, model: Any) -> int:
    with db.read() as session:
        return int(session.scalar(select(func.count()).select_from(model)) or 0)


@pytest.fixture
def setup(server_factory: Any, db: Database) -> tuple[Server, Project, str]:
    server = server_factory(max_targets=5, max_body_bytes=4096)
    project = make_project(db)
    return server, project, store_pickup(server.client, project)


def assert_nothing_changed(db: Database) -> None:
    assert (_count(db, Trigger), _count(db, Job), _count(db, Message)) == (0, 0, 0)


def error(response: Any, status: int, code: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["x-request-id"]
    body: dict[str, Any] = response.json()["error"]
    if code is not None:
        assert body["code"] == code
    assert len(body["message"]) > 20
    return body


def test_bad_credentials_all_get_the_same_401(setup: Any, db: Database) -> None:
    server, project, campaign_id = setup
    other = make_project(db, "other")
    with db.write() as session:
        revoked = auth.create_key(session, project.id, "secret", "", SCOPES)
        auth.revoke_key(session, project.id, revoked.row.id)
    url = f"/api/v1/campaigns/{campaign_id}:trigger"
    attempts = [
        {},
        {"X-Clix-Project-ID": project.id},
        {"X-Clix-Project-ID": project.id, "X-Clix-API-Key": "clx_sk_wrong"},
        {"X-Clix-Project-ID": "no-such-project", "X-Clix-API-Key": project.secret},
        {"X-Clix-Project-ID": other.id, "X-Clix-API-Key": project.secret},
        {"X-Clix-Project-ID": project.id, "X-Clix-API-Key": revoked.plaintext},
    ]
    bodies = [error(server.client.post(url, json={}, headers=h), 401) for h in attempts]
    assert all(b == bodies[0] for b in bodies)
    assert "X-Clix-API-Key" in bodies[0]["message"]
    assert_nothing_changed(db)


def test_public_key_gets_403(setup: Any, db: Database) -> None:
    server, project, campaign_id = setup
    r = server.client.post(
        f"/api/v1/campaigns/{campaign_id}:trigger", json={"properties": PROPS},
        headers=project.sdk_headers,
    )  # fmt: skip
    assert "secret API key" in error(r, 403, "insufficient_scope")["message"]
    assert_nothing_changed(db)


def test_unknown_and_foreign_campaigns_look_the_same(setup: Any, db: Database) -> None:
    server, project, _ = setup
    other = make_project(db, "other")
    foreign = store_pickup(server.client, other)
    for campaign_id in ("01900000-0000-7000-8000-000000000000", foreign):
        body = error(trigger(server.client, project, campaign_id, {"properties": PROPS}), 400,
                     "campaign_not_found")  # fmt: skip
        assert campaign_id in body["message"]
    assert _count(db, Trigger) == 0


@pytest.mark.parametrize("state", ["draft", "paused", "archived"])
def test_inactive_campaign_names_its_state(setup: Any, db: Database, state: str) -> None:
    server, project, campaign_id = setup
    with db.write() as session:
        session.get_one(Campaign, campaign_id).status = state
    body = error(trigger(server.client, project, campaign_id, {"properties": PROPS}), 400,
                 "campaign_not_triggerable")  # fmt: skip
    assert state in body["message"]
    assert_nothing_changed(db)


def test_non_api_triggered_campaign(setup: Any, db: Database) -> None:
    server, project, campaign_id = setup
    with db.write() as session:
        session.get_one(Campaign, campaign_id).type = "scheduled"
    body = error(trigger(server.client, project, campaign_id, {"properties": PROPS}), 400,
                 "campaign_not_triggerable")  # fmt: skip
    assert "API-triggered" in body["message"]
    assert_nothing_changed(db)


def test_malformed_json_says_where(setup: Any, db: Database) -> None:
    server, project, campaign_id = setup
    r = server.client.post(
        f"/api/v1/campaigns/{campaign_id}:trigger",
        content=b'{"properties": {"store_location": "SF",\n "order_id": }}',
        headers={**project.headers, "Content-Type": "application/json"},
    )
    body = error(r, 400, "invalid_json")
    assert (body["line"], body["column"]) == (2, 14)
    assert "line 2, column 14" in body["message"]
    assert_nothing_changed(db)


@pytest.mark.parametrize(
    ("payload", "path"),
    [
        ([1, 2], "$"),
        ({"audience": "everyone"}, "$.audience"),
        ({"audience": {"targets": {"project_user_id": "a"}}}, "$.audience.targets"),
        ({"audience": {"broadcast": "yes"}}, "$.audience.broadcast"),
        ({"audience": {"targets": [{"project_user_id": "a", "device_id": "d"}]}},
         "$.audience.targets[0]"),
        ({"audience": {"targets": [{"project_user_id": "a"}, {}]}}, "$.audience.targets[1]"),
        ({"audience": {"targets": ["a"]}}, "$.audience.targets[0]"),
        ({"audience": {"targets": [{"project_user_id": 42}]}},
         "$.audience.targets[0].project_user_id"),
        ({"audience": {"targets": [{"device_id": ""}]}}, "$.audience.targets[0].device_id"),
        ({"properties": ["store_location"]}, "$.properties"),
    ],
)  # fmt: skip
def test_wrong_shapes_name_the_json_path(setup: Any, db: Database, payload: Any, path: str) -> None:
    server, project, campaign_id = setup
    if isinstance(payload, dict):
        payload = {"properties": PROPS, **payload}
    body = error(trigger(server.client, project, campaign_id, payload), 400, "invalid_request")
    assert body["path"] == path
    assert body["message"].startswith(path + ":")
    assert_nothing_changed(db)


def test_missing_trigger_property_names_the_expected_keys(setup: Any, db: Database) -> None:
    server, project, campaign_id = setup
    props = {k: v for k, v in PROPS.items() if k != "store_location"} | {"storeLocation": "SF"}
    body = error(trigger(server.client, project, campaign_id, {"properties": props}), 400,
                 "missing_trigger_property")  # fmt: skip
    assert body["missing"] == ["store_location"]
    assert "'store_location'" in body["message"] and "storeLocation" in body["message"]
    # No body at all: the campaign's rules still need the key.
    error(trigger(server.client, project, campaign_id), 400, "missing_trigger_property")
    assert_nothing_changed(db)


def test_too_many_targets(setup: Any, db: Database) -> None:
    server, project, campaign_id = setup
    targets = [{"project_user_id": f"u{i}"} for i in range(6)]
    body = error(
        trigger(server.client, project, campaign_id,
                {"audience": {"targets": targets}, "properties": PROPS}),
        400, "too_many_targets",
    )  # fmt: skip
    assert body["limit"] == 5 and "at most 5" in body["message"]
    assert_nothing_changed(db)


def test_body_over_the_limit_gets_413(setup: Any, db: Database) -> None:
    server, project, campaign_id = setup
    big = {"properties": {**PROPS, "blob": "x" * 5000}}
    body = error(trigger(server.client, project, campaign_id, big), 413, "payload_too_large")
    assert "4096" in body["message"]

    def chunks() -> Any:  # no Content-Length: the cap applies while streaming
        yield b'{"properties": {"blob": "'
        for _ in range(10):
            yield b"x" * 1000
        yield b'"}}'

    r = server.client.post(
        f"/api/v1/campaigns/{campaign_id}:trigger", content=chunks(), headers=project.headers
    )
    error(r, 413, "payload_too_large")
    assert_nothing_changed(db)
