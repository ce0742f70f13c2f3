"""`clarion users import`: JSONL and CSV, bad rows named by line, good rows imported, and a
second run changes nothing."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, inspect, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.schema import DropIndex
from typer.testing import CliRunner

from clarion.audience.rules import Audience
from clarion.cli import app as cli
from clarion.storage.db import Database
from clarion.storage.migrate import upgrade
from clarion.storage.models import VALUE_INDEXES, Device, User, UserProperty, utcnow
from clarion.users import importer
from clarion.users.schemas import device_attributes
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


def index_names(db: Database) -> set[str]:
    with db.engine.connect() as conn:
        return {str(i["name"]) for i in inspect(conn).get_indexes("user_properties")}


def test_imported_rows_read_back_like_rows_the_api_wrote(
    cli_env: CliRunner, db: Database, tmp_path: Path
) -> None:
    """New rows go to the driver as tuples: timestamps, JSON and booleans must be stored in
    the form SQLAlchemy itself writes, or reads and comparisons elsewhere would break."""
    project = make_project(db)
    path = tmp_path / "u.jsonl"
    path.write_text(json.dumps(ROWS[0]) + "\n", "utf-8")
    assert cli_env.invoke(cli, ["users", "import", str(path), "-p", project.id]).exit_code == 0
    with db.write() as session:
        session.add(User(id="api-user", project_id=project.id, project_user_id="api",
                         properties={"city": "Seoul"}))  # fmt: skip
    with db.read() as session:
        user = session.scalars(select(User).where(User.project_user_id == "u-1")).one()
        device = session.get(Device, (project.id, "d-1"))
        raw = session.execute(
            text("SELECT created_at, properties FROM users WHERE project_id = :p ORDER BY id"),
            {"p": project.id},
        ).all()
    assert user.created_at.tzinfo is not None and abs(user.created_at - utcnow()).seconds < 60
    assert user.properties == {"city": "Seoul", "age": 31, "vip": True}
    assert device is not None and device.attributes["push_token"] == "t1"
    assert device.is_push_permission_granted is True and device.app_version_key is not None
    imported, api = (raw[0], raw[1]) if raw[1][0] is not None else (raw[1], raw[0])
    assert type(imported[0]) is type(api[0])
    if db.is_sqlite:  # the same text form: no zone suffix, microseconds
        assert len(str(imported[0])) == len(str(api[0])) == 26


def test_a_large_import_builds_the_value_indexes_after_the_load(
    db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(importer, "BULK_LOAD_MIN", 2)
    project = make_project(db)
    rows = [importer.Row(i, f"u-{i}", {"city": f"c{i % 3}", "age": i}, []) for i in range(9)]
    report = importer.import_rows(db, project.id, rows, batch_size=4, expected_rows=9)
    assert report.bulk_load and report.rows == 9
    assert {str(i.name) for i in VALUE_INDEXES} <= index_names(db)
    audience = Audience.model_validate({"conditions": [
        {"attribute": "city", "value": "c1"}, {"attribute": "age", "operator": ">", "value": 3},
    ]})  # fmt: skip
    assert by_sql(db, project.id, audience, {}) == {("u-4", None), ("u-7", None)}

    # Fewer rows than users stored: the indexes are kept up to date row by row.
    small = importer.import_rows(db, project.id, rows[:3], expected_rows=3)
    assert not small.bulk_load


def test_a_failed_bulk_load_still_builds_the_indexes(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(importer, "BULK_LOAD_MIN", 2)
    project = make_project(db)

    def rows() -> Iterator[importer.Row]:
        yield importer.Row(1, "u-1", {"city": "x"}, [])
        raise OSError("disk went away")

    with pytest.raises(OSError, match="disk went away"):
        importer.import_rows(db, project.id, rows(), batch_size=1, expected_rows=10)
    assert {str(i.name) for i in VALUE_INDEXES} <= index_names(db)


def test_upgrade_rebuilds_indexes_a_killed_import_left_dropped(db: Database) -> None:
    with db.write() as session:
        for index in VALUE_INDEXES:
            session.execute(DropIndex(index))
    assert not {str(i.name) for i in VALUE_INDEXES} & index_names(db)
    upgrade(db.url)
    assert {str(i.name) for i in VALUE_INDEXES} <= index_names(db)


def test_a_batch_of_known_and_new_users_keys_every_row_to_its_user(db: Database) -> None:
    """The reader prepares each row as a new user; in a batch that mixes known and new
    users, the known ones' properties and devices must go to their stored user (and a
    device named by a new user moves to it)."""
    project = make_project(db)
    ios, android = ({"platform": p} for p in ("IOS", "ANDROID"))
    first = [importer.Row(1, "u-1", {"city": "Seoul", "age": 30},
                          [device_attributes({"id": "d-1", **ios})])]  # fmt: skip
    importer.import_rows(db, project.id, first)
    second = [
        importer.Row(1, "u-1", {"age": 31, "vip": True}, [device_attributes({"id": "d-9", **ios})]),
        importer.Row(2, "u-2", {"city": "Busan"}, [device_attributes({"id": "d-1", **android})]),
    ]
    report = importer.import_rows(db, project.id, second)
    assert (report.users_created, report.users_updated, report.devices) == (1, 1, 2)
    with db.read() as session:
        users = {u.project_user_id: u for u in session.scalars(select(User))}
        owner = {d.id: d.user_id for d in session.scalars(select(Device))}
        props = {(p.user_id, p.key): p.value_text for p in session.scalars(select(UserProperty))}
    one, two = users["u-1"].id, users["u-2"].id
    assert users["u-1"].properties == {"city": "Seoul", "age": 31, "vip": True}
    assert owner == {"d-1": two, "d-9": one}
    assert props == {(one, "city"): "Seoul", (one, "age"): "31", (one, "vip"): "true",
                     (two, "city"): "Busan"}  # fmt: skip
    assert counts(db, project.id) == (2, 2, 4)


def test_only_the_importers_trusted_writes_skip_foreign_key_checks(db: Database) -> None:
    """The importer's transactions vouch for their rows; the next transaction on the same
    pooled connection checks foreign keys again."""
    project = make_project(db)
    orphan = {"u": "no-such-user", "p": project.id}
    insert = text("INSERT INTO user_properties (user_id, key, project_id, value_text) "
                  "VALUES (:u, 'k', :p, 'v')")  # fmt: skip
    if db.is_sqlite:
        with db.write(trusted=True) as session:
            session.execute(insert, orphan)
            session.execute(text("DELETE FROM user_properties WHERE user_id = :u"), orphan)
    else:  # PostgreSQL checks them always
        with pytest.raises(IntegrityError), db.write(trusted=True) as session:
            session.execute(insert, orphan)
    with pytest.raises(IntegrityError), db.write() as session:
        session.execute(insert, orphan)
