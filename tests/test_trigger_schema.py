"""A campaign's trigger payload schema: refused payloads name each bad key and change nothing,
save-time checks, and the plan tooling (`clarion plan init --from-campaign`) built on it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from clarion_client import plan
from clarion_client.cli import main
from sqlalchemy import func, select

from clarion.storage.db import Database
from clarion.storage.models import Trigger
from tests.conftest import Project, Server, make_project
from tests.helpers import PICKUP, PROPS, add_user, create_campaign, ok, trigger

SCHEMA: dict[str, Any] = {
    "store_location": {"type": "string", "required": True, "example": "San Francisco"},
    "order_id": {"type": "string", "required": True, "description": "Our order number"},
    "item_count": {"type": "number", "required": True, "example": 3},
    "pickup_time": {"type": "datetime"},
    "gift": {"type": "boolean"},
    "customer_name": {"type": "string", "pii": True},
}


def schema_campaign(server: Server, project: Project) -> str:
    add_user(server.client, project, "sf-staff-1",
             {"user_role": "store_staff", "store_location": "San Francisco"})  # fmt: skip
    return create_campaign(server.client, project, {**PICKUP, "trigger_schema": SCHEMA})


def triggers(db: Database) -> int:
    with db.read() as session:
        return int(session.scalar(select(func.count()).select_from(Trigger)) or 0)


def test_a_payload_that_breaks_the_schema_is_refused_naming_each_key(
    server: Server, db: Database
) -> None:
    project = make_project(db)
    campaign_id = schema_campaign(server, project)
    shown = ok(server.client.get(f"/api/v1/campaigns/{campaign_id}", headers=project.headers))
    assert shown["trigger_schema"]["item_count"] == {"type": "number", "required": True,
                                                     "pii": False, "description": "",
                                                     "example": 3}  # fmt: skip

    bad = {"store_location": "San Francisco", "item_count": "3", "pickup_time": "2:30 PM",
           "gift": "yes"}  # fmt: skip
    for path in (":trigger", ":dry-run"):
        r = server.client.post(f"/api/v1/campaigns/{campaign_id}{path}",
                               json={"properties": bad}, headers=project.headers)  # fmt: skip
        assert r.status_code == 400, r.text
        error = r.json()["error"]
        assert error["code"] == "invalid_trigger_payload"
        assert error["problems"] == [
            {"key": "order_id", "problem": "is required (string)"},
            {"key": "item_count", "problem": "must be a number, got string '3'"},
            {"key": "pickup_time",
             "problem": "must be an ISO-8601 datetime string (2026-05-01T14:30:00Z), got "
                        "string '2:30 PM'"},
            {"key": "gift", "problem": "must be a boolean (true or false), got string 'yes'"},
        ]  # fmt: skip
        for key in ("order_id", "item_count", "pickup_time", "gift"):
            assert key in error["message"]
    assert triggers(db) == 0
    # A rule key still gets its own, earlier answer; null counts as absent.
    r = trigger(server.client, project, campaign_id, {"properties": {"order_id": None}})
    assert r.json()["error"]["code"] == "missing_trigger_property"

    good = {**PROPS, "item_count": 3, "pickup_time": "2026-05-01T14:30:00Z", "extra": [1]}
    _, status = server.fire(project, campaign_id, {"properties": good})
    assert status["counts"]["sent"] == 1  # undeclared keys are accepted, as Clix accepts them
    assert triggers(db) == 1


@pytest.mark.parametrize(
    ("schema", "phrase"),
    [
        ({"order_id": {"type": "string"}},
         "trigger_schema must declare 'store_location' with required: true"),
        ({"store_location": {"type": "string"}},
         "trigger_schema must declare 'store_location' with required: true"),
        ({"store_location": {"type": "string", "required": True, "pii": True}},
         "personal data is not for targeting"),
        ({**SCHEMA, "item_count": {"type": "number", "example": "three"}},
         "example 'three' is not a number"),
        ({**SCHEMA, "1st": {"type": "string"}}, "trigger_schema key '1st'"),
        ({**SCHEMA, "x": {"type": "money"}}, "trigger_schema.x.type"),
    ],
)  # fmt: skip
def test_a_schema_that_cannot_hold_is_refused_at_save(
    server: Server, db: Database, schema: dict[str, Any], phrase: str
) -> None:
    project = make_project(db)
    r = server.client.post("/api/v1/campaigns", json={**PICKUP, "trigger_schema": schema},
                           headers=project.headers)  # fmt: skip
    assert r.status_code == 400, r.text
    assert r.json()["error"]["code"] == "invalid_request"
    assert phrase in json.dumps(r.json()["error"]), r.json()


def test_plan_init_from_campaign_writes_a_plan_in_sync_with_it(
    server: Server, db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    project = make_project(db)
    campaign_id = schema_campaign(server, project)
    monkeypatch.setenv("CLIX_PROJECT_ID", project.id)
    monkeypatch.setenv("CLIX_API_KEY", project.secret)
    monkeypatch.setenv("CLIX_BASE_URL", server.url)
    path = tmp_path / "plan.json"
    assert main(["plan", "init", str(path), "--from-campaign", campaign_id]) == 0, (
        capsys.readouterr()
    )
    data = json.loads(path.read_text("utf-8"))
    assert data["campaign_id"] == campaign_id
    assert data["dynamic_filter_keys"] == ["store_location"]
    assert data["properties"]["store_location"] == {
        "type": "string", "required": True, "example": "San Francisco"}  # fmt: skip
    assert data["properties"]["item_count"] == {"type": "number", "required": True, "example": 3}
    assert data["properties"]["customer_name"] == {"type": "string", "required": False,
                                                   "pii": True, "example": "example"}  # fmt: skip
    assert data["properties"]["pickup_time"] == {"type": "datetime", "required": False,
                                                 "example": "2026-05-01T14:30:00Z"}  # fmt: skip
    assert plan.validate(data).passed(strict=True)
    capsys.readouterr()
    assert main(["plan", "check", str(path)]) == 0
    assert "in sync" in capsys.readouterr().out
    # The check catches a plan that has drifted from the schema.
    data["properties"]["item_count"] = {"type": "string"}
    path.write_text(json.dumps(data), "utf-8")
    assert main(["plan", "check", "--json", str(path)]) == 1
    problems = [f["problem"] for f in json.loads(capsys.readouterr().out)["findings"]]
    assert problems == [
        "the plan types item_count as string, the campaign's trigger_schema as number",
        "the campaign's trigger_schema requires item_count, optional in the plan",
    ]
    assert main(["plan", "init", str(path), "--force", "--from-campaign", "nope"]) == 1
