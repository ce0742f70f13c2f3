"""Trigger plans: the seed validator's verdict on a corpus covering every rule, warnings and
--strict, the CLI (exit codes, JSON, line and column), init, and the drift check against a
live campaign; the trigger and status commands."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from clarion_client import plan
from clarion_client.cli import main

from clarion.storage.db import Database
from tests.conftest import Server, make_project
from tests.helpers import add_user, create_campaign

GOOD: dict[str, Any] = {
    "campaign_id": "019aa002-1d0e-7407-a0c5-5bfa8dd2be30",
    "audience": {"mode": "broadcast"},
    "dynamic_filter_keys": ["store_location"],
    "properties": {
        "store_location": {"type": "string", "required": True, "example": "San Francisco"},
        "order_id": {"type": "string", "required": True, "example": "ORD-12345"},
        "item_count": {"type": "number", "required": True, "example": 3},
        "pickup_time": {"type": "string", "required": False, "example": "2:30 PM"},
    },
}


def with_(**changes: Any) -> dict[str, Any]:
    data = json.loads(json.dumps(GOOD))
    for key, value in changes.items():
        if value is ...:
            data.pop(key, None)
        else:
            data[key] = value
    return data


def prop(**spec: Any) -> dict[str, Any]:
    return with_(properties={"store_location": {"type": "string", "required": True}, **spec})


# (plan, passes, a phrase of the first error) — the seed validator's verdicts, rule by rule.
CORPUS: list[tuple[Any, bool, str]] = [
    (GOOD, True, ""),
    (with_(audience=...), True, ""),  # mode defaults to "default"
    (with_(audience=None, dynamic_filter_keys=None), True, ""),
    (with_(audience={"mode": "default"}), True, ""),
    (with_(audience={"mode": "broadcast", "targets": "x"}), False, "must be an array if present"),
    (with_(audience={"mode": "broadcast", "targets": [{"bad": 1}]}), True, ""),  # ignored
    (with_(audience=[]), False, "audience must be an object"),
    (with_(audience={"mode": "everyone"}), False, "audience.mode must be one of"),
    (with_(audience={"mode": "targets"}), False, "must be a non-empty array"),
    (with_(audience={"mode": "targets", "targets": []}), False, "must be a non-empty array"),
    (with_(audience={"mode": "targets", "targets": [{"project_user_id": "u"}]}), True, ""),
    (with_(audience={"mode": "targets", "targets": [{"device_id": "d"}]}), True, ""),
    (with_(audience={"mode": "targets", "targets": ["u"]}), False, "must be an object"),
    (with_(audience={"mode": "targets", "targets": [{"project_user_id": "u",
                                                     "device_id": "d"}]}), False, "not both"),
    (with_(audience={"mode": "targets", "targets": [{"project_user_id": "  "}]}), False,
     "exactly one of project_user_id or device_id"),
    (with_(audience={"mode": "targets", "targets": [{"project_user_id": 5}]}), False,
     "exactly one"),
    (with_(campaign_id=...), False, "campaign_id must be a non-empty string"),
    (with_(campaign_id=""), False, "campaign_id must be a non-empty string"),
    (with_(campaign_id="   "), False, "campaign_id must be a non-empty string"),
    (with_(campaign_id=42), False, "campaign_id must be a non-empty string"),
    (with_(dynamic_filter_keys=["a", "b", "c", "d"]), False, "at most 3 entries"),
    (with_(dynamic_filter_keys="store_location"), False, "must be an array if present"),
    (with_(dynamic_filter_keys=["storeLocation"]), False, "dynamic_filter_keys[0] must be snake"),
    (with_(dynamic_filter_keys=[1]), False, "dynamic_filter_keys[0] must be snake"),
    (with_(dynamic_filter_keys=["_x"]), False, "must be snake_case"),
    (with_(dynamic_filter_keys=[]), True, ""),
    (with_(properties=...), False, "properties must be a non-empty object"),
    (with_(properties={}), False, "properties must be a non-empty object"),
    (with_(properties=[{"type": "string"}]), False, "properties must be a non-empty object"),
    (prop(storeLocation={"type": "string"}), False, "properties key 'storeLocation'"),
    (prop(a1_b={"type": "string"}), True, ""),
    (prop(x="string"), False, "properties['x'] must be an object"),
    (prop(x={}), False, "properties['x'].type is required"),
    (prop(x={"type": "str"}), False, "type must be one of: string, number, boolean, datetime"),
    (prop(x={"type": "string", "required": "yes"}), False, "required must be boolean"),
    (prop(x={"type": "string", "pii": 1}), False, "pii must be boolean"),
    (prop(x={"type": "string", "required": None, "pii": None}), True, ""),
    (prop(x={"type": "string", "example": ["a"]}), False, "example must be a primitive"),
    (prop(x={"type": "string", "example": {"a": 1}}), False, "example must be a primitive"),
    (prop(x={"type": "string", "example": None}), True, ""),
    (prop(x={"type": "string", "example": 3}), False, "example must be a string"),
    (prop(x={"type": "number", "example": True}), False, "example must be a number"),
    (prop(x={"type": "number", "example": "3"}), False, "example must be a number"),
    (prop(x={"type": "number", "example": 2.5}), True, ""),
    (prop(x={"type": "boolean", "example": 0}), False, "example must be a boolean"),
    (prop(x={"type": "boolean", "example": False}), True, ""),
    (prop(x={"type": "datetime", "example": 1714000000}), False, "ISO-8601 string"),
    (prop(x={"type": "datetime", "example": "tomorrow"}), True, ""),  # a warning only
    (prop(x={"type": "datetime", "example": "2026-05-01T14:30:00Z"}), True, ""),
    (prop(x={"type": "bogus", "example": 3}), False, "type must be one of"),
    ([], False, "must be a JSON object"),
    ("plan", False, "must be a JSON object"),
]  # fmt: skip


@pytest.mark.parametrize(("data", "passes", "phrase"), CORPUS)
def test_the_seed_verdict_on_every_rule(data: Any, passes: bool, phrase: str) -> None:
    verdict = plan.validate(data)
    assert verdict.passed() is passes, verdict
    if phrase:
        assert any(phrase in e for e in verdict.errors), verdict.errors


@pytest.mark.parametrize(
    ("data", "warning"),
    [
        (with_(dynamic_filter_keys=["city"]), "dynamic filter key 'city' is not declared"),
        (prop(x={"type": "string"}) | {"dynamic_filter_keys": ["x"]}, "'x' is not required"),
        (prop(x={"type": "string", "required": True, "pii": True})
         | {"dynamic_filter_keys": ["x"]}, "'x' is marked pii"),
        (prop(x={"type": "datetime", "example": "tomorrow"}), "not an ISO-8601 datetime"),
    ],
)  # fmt: skip
def test_extra_checks_warn_and_fail_only_under_strict(data: Any, warning: str) -> None:
    verdict = plan.validate(data)
    assert verdict.passed() and not verdict.passed(strict=True)
    assert any(warning in w for w in verdict.warnings), verdict.warnings


def write(tmp_path: Path, data: Any, name: str = "plan.json") -> Path:
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else json.dumps(data), "utf-8")
    return path


def test_validate_cli_exit_codes_messages_and_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["plan", "validate", str(write(tmp_path, GOOD))]) == 0
    assert "validation passed" in capsys.readouterr().out
    bad = write(tmp_path, with_(campaign_id=""))
    assert main(["plan", "validate", str(bad)]) == 1
    assert "- error: campaign_id must be a non-empty string" in capsys.readouterr().out
    broken = write(tmp_path, '{\n  "campaign_id": "c",\n  "properties": {,}\n}', "broken.json")
    assert main(["plan", "validate", str(broken)]) == 1
    out = capsys.readouterr().out
    assert "not valid JSON at line 3, column 18" in out and "Traceback" not in out
    assert main(["plan", "validate", str(tmp_path / "missing.json")]) == 2
    assert "No such file" in capsys.readouterr().err
    with pytest.raises(SystemExit) as usage:
        main(["plan", "validate", "--no-such-flag"])
    assert usage.value.code == 2
    capsys.readouterr()

    warned = write(tmp_path, with_(dynamic_filter_keys=["city"]), "warned.json")
    assert main(["plan", "validate", str(warned)]) == 0
    assert "- warning: dynamic filter key 'city'" in capsys.readouterr().out
    assert main(["plan", "validate", "--strict", "--json", str(warned)]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["passed"] is False and report["strict"] is True and report["warnings"]


def test_init_writes_a_valid_plan(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / ".clix" / "api-trigger-plan.json"
    code = main(["plan", "init", str(path), "--campaign-id", "c-1", "--mode", "broadcast",
                 "--prop", "order_id:string:required", "--prop", "email:string:pii",
                 "--dynamic-key", "store_location"])  # fmt: skip
    assert code == 0, capsys.readouterr()
    data = json.loads(path.read_text("utf-8"))
    assert data["properties"]["store_location"] == {"type": "string", "required": True}
    assert data["properties"]["email"]["pii"] is True
    assert plan.validate(data).passed(strict=True)
    assert main(["plan", "init", str(path), "--campaign-id", "x", "--mode", "default"]) == 2


def test_check_reports_drift_with_fixes(
    server: Server, db: Database, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    project = make_project(db)
    campaign_id = create_campaign(server.client, project, {
        "name": "drift", "status": "active",
        "message": {"title": "Order {{ trigger.order_id }} ({{ trigger.eta }})"},
        "audience": {"conditions": [
            {"attribute": "store", "operator": "equals", "value": "{{ trigger.store_location }}"}]},
    })  # fmt: skip
    monkeypatch.setenv("CLIX_PROJECT_ID", project.id)
    monkeypatch.setenv("CLIX_API_KEY", project.secret)
    monkeypatch.setenv("CLIX_BASE_URL", server.url)

    in_sync = with_(campaign_id=campaign_id) | {"properties": {
        "store_location": {"type": "string", "required": True},
        "order_id": {"type": "string", "required": True}, "eta": {"type": "string"}}}  # fmt: skip
    assert main(["plan", "check", str(write(tmp_path, in_sync))]) == 0
    assert "in sync" in capsys.readouterr().out

    drifted = with_(campaign_id=campaign_id, dynamic_filter_keys=["city"]) | {
        "properties": {
            "store_location": {"type": "string"},
            "city": {"type": "string", "required": True},
        }
    }
    assert main(["plan", "check", "--json", str(write(tmp_path, drifted))]) == 1
    findings = json.loads(capsys.readouterr().out)["findings"]
    problems = [f["problem"] for f in findings]
    assert "the audience rules use trigger.store_location, missing from dynamic_filter_keys" in (
        problems
    )
    assert ("trigger.store_location is required by the audience rules but optional in the "
            "plan") in problems  # fmt: skip
    assert "dynamic_filter_keys has city, which no audience rule uses" in problems
    assert "the templates use trigger.order_id, not declared in the plan" in problems
    assert "the templates use trigger.eta, not declared in the plan" in problems
    assert all(f["fix"] for f in findings)

    server.client.post(f"/api/v1/campaigns/{campaign_id}:pause", headers=project.headers)
    assert main(["plan", "check", str(write(tmp_path, in_sync))]) == 1
    assert "campaign is paused" in capsys.readouterr().out
    missing = with_(campaign_id="00000000-0000-0000-0000-000000000000")
    assert main(["plan", "check", str(write(tmp_path, missing))]) == 1
    assert "does not exist in this project" in capsys.readouterr().out


def test_trigger_and_status_commands(
    server: Server, db: Database, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    project = make_project(db)
    campaign_id = create_campaign(server.client, project, {
        "name": "cli", "status": "active", "message": {"title": "{{ trigger.n }} items"},
    })  # fmt: skip
    add_user(
        server.client,
        project,
        "u-1",
        {},
        [{"id": "d-1", "platform": "ios", "push_token": "t", "is_push_permission_granted": True}],
    )
    monkeypatch.setenv("CLIX_PROJECT_ID", project.id)
    monkeypatch.setenv("CLIX_API_KEY", project.secret)
    monkeypatch.setenv("CLIX_BASE_URL", server.url)
    plan_path = write(tmp_path, with_(campaign_id=campaign_id, dynamic_filter_keys=[]) | {
        "properties": {"n": {"type": "number", "required": True}}})  # fmt: skip

    assert main(["trigger", campaign_id, "--target", "user:u-1", "--prop", "n=3",
                 "--plan", str(plan_path), "--wait"]) == 0  # fmt: skip
    lines = capsys.readouterr().out.strip().splitlines()
    trigger_id = lines[0]
    assert lines[-1] == "completed: matched=1 sent=1 failed=0 skipped=0 pending=0"
    assert main(["status", trigger_id, "--no-follow"]) == 0
    assert "completed: matched=1 sent=1" in capsys.readouterr().out
    assert main(["trigger", campaign_id, "--prop", "n=three", "--plan", str(plan_path)]) == 1
    assert "'n' must be a number" in capsys.readouterr().err
    assert main(["trigger", campaign_id, "--prop", "oops"]) == 2
    monkeypatch.delenv("CLIX_API_KEY")
    assert main(["status", trigger_id]) == 2
    assert "CLIX_API_KEY" in capsys.readouterr().err


def test_the_server_cli_runs_the_same_plan_commands(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from clarion.cli import app as server_cli

    path = write(tmp_path, with_(campaign_id=""))
    run = CliRunner().invoke(server_cli, ["plan", "validate", str(path)])
    assert run.exit_code == 1 and "campaign_id must be a non-empty string" in run.output
    run = CliRunner().invoke(server_cli, ["plan", "validate", "--json", str(write(tmp_path, GOOD))])
    assert run.exit_code == 0 and json.loads(run.output)["passed"] is True
