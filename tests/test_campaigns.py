"""Campaign management over the API and as code (CLI): validation, versions, lifecycle."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from clarion.cli import app as cli
from clarion.storage.db import Database
from tests.conftest import Server, make_project
from tests.helpers import PICKUP, ok

FOUR_ATTRIBUTES = {
    "name": "too wide",
    "message": {"title": "t"},
    "audience": {
        "conditions": [
            {"attribute": a, "operator": "equals", "value": "x"} for a in ("a", "b", "c", "d")
        ]
    },
}


def test_a_fourth_attribute_is_refused(server: Server, db: Database) -> None:
    project = make_project(db)
    r = server.client.post("/api/v1/campaigns", json=FOUR_ATTRIBUTES, headers=project.headers)
    assert r.status_code == 400
    error = r.json()["error"]
    assert error["code"] == "invalid_request" and error["path"] == "$.audience"
    assert "4 distinct attributes" in error["message"] and "at most 3" in error["message"]
    # Three distinct attributes, one used twice, is fine.
    three = json.loads(json.dumps(FOUR_ATTRIBUTES))
    three["audience"]["conditions"][3]["attribute"] = "a"
    ok(server.client.post("/api/v1/campaigns", json=three, headers=project.headers), 201)
    assert (
        len(ok(server.client.get("/api/v1/campaigns", headers=project.headers))["campaigns"]) == 1
    )


@pytest.mark.parametrize(
    ("message", "field", "line", "column"),
    [
        ({"title": "Hi {{ user.name "}, "title", 1, 4),
        ({"title": "ok", "body": "line one\n{% if trigger.x %}never closed"}, "body", 2, 31),
    ],
)
def test_template_syntax_errors_are_refused_at_save_time(
    server: Server, db: Database, message: dict[str, str], field: str, line: int, column: int
) -> None:
    project = make_project(db)
    r = server.client.post(
        "/api/v1/campaigns", json={"name": "t", "message": message}, headers=project.headers
    )
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert error["code"] == "invalid_template" and error["path"] == f"message.{field}"
    assert (error["line"], error["column"]) == (line, column)


@pytest.mark.parametrize(
    "value", ["x {{ trigger.a }}", "{{ user.store }}", "{{ trigger.a }}{{ trigger.b }}"]
)
def test_rule_values_are_a_literal_or_exactly_a_trigger_reference(
    server: Server, db: Database, value: str
) -> None:
    project = make_project(db)
    spec = {"name": "t", "message": {"title": "t"},
            "audience": {"conditions": [{"attribute": "a", "value": value}]}}  # fmt: skip
    r = server.client.post("/api/v1/campaigns", json=spec, headers=project.headers)
    assert r.status_code == 400 and "{{ trigger.key }}" in r.json()["error"]["message"]


def test_lifecycle_versions_and_names(server: Server, db: Database) -> None:
    project = make_project(db)
    c = server.client
    spec = {**PICKUP, "status": None}
    created = ok(c.post("/api/v1/campaigns", json=spec, headers=project.headers), 201)
    assert created["status"] == "draft" and created["version"] == 1
    assert created["trigger_keys"] == ["store_location"]
    assert len(created["id"]) == 36 and created["id"][14] == "7"  # UUIDv7
    dup = c.post("/api/v1/campaigns", json=spec, headers=project.headers)
    assert dup.json()["error"]["code"] == "campaign_name_taken"
    cid = created["id"]
    assert ok(c.post(f"/api/v1/campaigns/{cid}:activate", headers=project.headers))["status"] == (
        "active"
    )
    # Applying the same definition again makes no new version.
    same = ok(c.post("/api/v1/campaigns:apply", json=spec, headers=project.headers))
    assert (same["id"], same["version"], same["status"]) == (cid, 1, "active")
    changed = {**spec, "message": {"title": "changed"}}
    assert (
        ok(c.post("/api/v1/campaigns:apply", json=changed, headers=project.headers))["version"] == 2
    )
    assert ok(c.post(f"/api/v1/campaigns/{cid}:archive", headers=project.headers))["status"] == (
        "archived"
    )
    r = c.post(f"/api/v1/campaigns/{cid}:activate", headers=project.headers)
    assert r.json()["error"]["code"] == "campaign_archived"


def test_management_api_needs_a_secret_key(server: Server, db: Database) -> None:
    project = make_project(db)
    r = server.client.get("/api/v1/campaigns", headers=project.sdk_headers)
    assert r.status_code == 403
    assert server.client.get("/api/v1/campaigns").status_code == 401


def test_campaigns_as_code_with_the_cli(cli_env: CliRunner, db: Database, tmp_path: Path) -> None:
    project = make_project(db)
    yaml_file = Path(__file__).parents[1] / "src/clarion/demo_data/new-pickup-order.yaml"
    run = cli_env.invoke(cli, ["campaigns", "apply", str(yaml_file), "--project", project.id])
    assert run.exit_code == 0, run.output
    assert "created 'New pickup order' (version 1, active)" in run.output
    campaign_id = run.output.strip().splitlines()[-1]
    assert len(campaign_id) == 36

    as_json = tmp_path / "c.json"
    as_json.write_text(json.dumps({**PICKUP, "message": {"title": "JSON edit"}}))
    run = cli_env.invoke(cli, ["campaigns", "apply", str(as_json), "-p", project.id])
    assert "updated 'New pickup order' (version 2, active)" in run.output, run.output

    run = cli_env.invoke(cli, ["campaigns", "pause", campaign_id, "-p", project.id])
    assert "is now paused" in run.output
    run = cli_env.invoke(cli, ["campaigns", "show", campaign_id, "-p", project.id])
    shown = json.loads(run.output)
    assert (shown["status"], shown["message"]["title"]) == ("paused", "JSON edit")
    run = cli_env.invoke(cli, ["campaigns", "list", "-p", project.id])
    assert campaign_id in run.output

    bad = tmp_path / "bad.yaml"
    bad.write_text(json.dumps(FOUR_ATTRIBUTES))
    run = cli_env.invoke(cli, ["campaigns", "apply", str(bad), "-p", project.id])
    assert run.exit_code == 1 and "at most 3" in run.output


def test_projects_and_keys_cli(cli_env: CliRunner) -> None:
    run = cli_env.invoke(cli, ["projects", "create", "Acme"])
    assert run.exit_code == 0, run.output
    lines = dict(line.split(":", 1) for line in run.output.splitlines() if ":" in line)
    project_id = lines["project id"].strip()
    secret = lines["secret key"].split()[0]
    assert secret.startswith("clx_sk_")
    run = cli_env.invoke(cli, ["keys", "create", "--kind", "public", "--name", "ios app"])
    assert run.exit_code == 0 and "clx_pk_" in run.output  # the only project is the default
    key_id = run.output.split()[2]
    listing = cli_env.invoke(cli, ["keys", "list", "-p", project_id]).output
    assert "ios app" in listing and secret not in listing
    run = cli_env.invoke(cli, ["keys", "revoke", key_id, "-p", project_id])
    assert run.exit_code == 0 and "revoked" in run.output
    run = cli_env.invoke(cli, ["keys", "revoke", "nope", "-p", project_id])
    assert run.exit_code == 1 and "No key" in run.output
