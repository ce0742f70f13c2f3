"""`clarion users import`: JSONL and CSV, bad rows named by line, good rows imported, and a
second run changes nothing."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from typer.testing import CliRunner

from clarion.audience.rules import Audience
from clarion.cli import app as cli
from clarion.storage.db import Database
from clarion.storage.models import Device, User, UserProperty
from tests.audience_data import by_reference, by_sql
from tests.conftest import make_project

ROWS: list[Any] = [
    {"project_user_id": "u-1", "properties": {"city": "Seoul", "age": 31, "vip": True},
     "devices": [{"id": "d-1", "platform": "ios", "app_version": "3.2.0", "push_token": "t1",
                  "is_push_permission_granted": True}]},
    {"project_user_id": "u-2", "properties": {"city": "Busan"},
     "devices": [{"id": "d-2", "platform": "ANDROID"}, {"id": "d-3", "platform": "ANDROID"}]},
    "not json at all",
    {"properties": {"city": "nowhere"}},
    {"project_user_id": "u-4", "devices": [{"id": "d-4", "platform": "x" * 40}]},
    {"project_user_id": "u-5", "properties": {"age": "29"}},
]  # fmt: skip


def counts(db: Database, project_id: str) -> tuple[int, int, int]:
    with db.read() as session:
        users = session.scalar(
            select(func.count()).select_from(User).where(User.project_id == project_id)
        )
        devices = session.scalar(
            select(func.count()).select_from(Device).where(Device.project_id == project_id)
        )
        props = session.scalar(
            select(func.count())
            .select_from(UserProperty)
            .where(UserProperty.project_id == project_id)
        )
    return int(users or 0), int(devices or 0), int(props or 0)


def test_jsonl_import_reports_bad_lines_and_is_idempotent(
    cli_env: CliRunner, db: Database, tmp_path: Path
) -> None:
    project = make_project(db)
    path = tmp_path / "users.jsonl"
    path.write_text(
        "\n".join(r if isinstance(r, str) else json.dumps(r) for r in ROWS) + "\n", "utf-8"
    )
    run = cli_env.invoke(cli, ["users", "import", str(path), "-p", project.id])
    assert run.exit_code == 2, run.output  # some rows were rejected
    assert "imported 3 users (3 new, 0 updated) and 3 devices" in run.output
    assert "users/s" in run.output
    assert "line 3: not valid JSON" in run.output
    assert "line 4: project_user_id must be a string" in run.output
    assert "line 5: devices[0].platform" in run.output
    first = counts(db, project.id)
    assert first == (3, 3, 5)

    again = cli_env.invoke(cli, ["users", "import", str(path), "-p", project.id])
    assert "imported 3 users (0 new, 3 updated) and 3 devices" in again.output
    assert counts(db, project.id) == first

    # Imported data is what rules read: typed, indexed, devices normalised.
    audience = Audience.model_validate({"conditions": [
        {"attribute": "age", "operator": ">", "value": 30},
        {"attribute": "platform", "value": "IOS"},
        {"attribute": "app_version", "operator": ">=", "value": "3.2"},
    ]})  # fmt: skip
    assert by_sql(db, project.id, audience, {}) == {("u-1", "d-1")}
    assert by_reference(db, project.id, audience, {}) == {("u-1", "d-1")}


def test_csv_import_with_typed_columns(cli_env: CliRunner, db: Database, tmp_path: Path) -> None:
    project = make_project(db)
    path = tmp_path / "users.csv"
    path.write_text(
        "project_user_id,city,age:number,vip:boolean,signup:datetime,device_id,device_platform,"
        "device_push_token,device_is_push_permission_granted\n"
        "u-1,Seoul,31,true,2026-01-02,d-1,IOS,tok,true\n"
        "u-2,Busan,abc,false,,,,,\n"
        "u-3,,,,,,,,\n",
        "utf-8",
    )
    run = cli_env.invoke(cli, ["users", "import", str(path), "-p", project.id])
    assert "imported 2 users" in run.output, run.output
    assert "line 3: age: 'abc' is not a number" in run.output
    with db.read() as session:
        user = session.scalars(select(User).where(User.project_user_id == "u-1")).one()
        device = session.get(Device, (project.id, "d-1"))
    assert user.properties == {"city": "Seoul", "age": 31, "vip": True,
                               "signup": "2026-01-02T00:00:00Z"}  # fmt: skip
    assert device is not None and device.is_push_permission_granted and device.platform == "IOS"


def test_import_refuses_an_unknown_project(
    cli_env: CliRunner, db: Database, tmp_path: Path
) -> None:
    make_project(db)
    path = tmp_path / "u.jsonl"
    path.write_text('{"project_user_id": "u"}\n', "utf-8")
    run = cli_env.invoke(cli, ["users", "import", str(path), "-p", "nope"])
    assert run.exit_code == 1 and "no project 'nope'" in run.output
