"""A file imported by worker processes (users.file_import) ends exactly as one process leaves
it: same users, properties, devices and report, the later row of a user winning."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, text

from clarion.storage.db import Database
from clarion.storage.models import VALUE_INDEXES, Device, User, UserProperty
from clarion.users import file_import, importer
from tests.conftest import make_project
from tests.test_users_import import index_names


def jsonl_rows() -> list[Any]:
    """30 users over 40 lines: bad lines, blank lines, users named twice far apart (the
    later row wins), a device moving to another user."""
    rows: list[Any] = []
    for i in range(30):
        devices = [{"id": f"d-{i}", "platform": "IOS" if i % 2 else "android",
                    "app_version": f"3.{i % 4}.0", "push_token": f"t-{i}"}]  # fmt: skip
        rows.append({"project_user_id": f"u-{i}",
                     "properties": {"city": f"c{i % 3}", "age": 20 + i, "vip": i % 5 == 0},
                     "devices": devices})  # fmt: skip
        if i == 4:
            rows.append("not json")
        if i in (9, 19):
            rows.append("")
        if i == 14:
            rows.append({"properties": {"city": "x"}})
    rows.append({"project_user_id": "u-3", "properties": {"age": 99, "city": None},
                 "devices": [{"id": "d-3-new", "platform": "IOS"}]})  # fmt: skip
    rows.append({"project_user_id": "u-40", "devices": [{"id": "d-5", "platform": "IOS"}]})
    rows.append({"project_user_id": "u-41", "devices": [{"id": "d-41", "platform": "x" * 40}]})
    return rows


def write_jsonl(path: Path, rows: list[Any]) -> Path:
    path.write_text(
        "\n".join(r if isinstance(r, str) else json.dumps(r) for r in rows) + "\n", "utf-8"
    )
    return path


def stored(db: Database, project_id: str) -> dict[str, Any]:
    """Everything the import wrote for a project, keyed by what does not depend on the
    generated user ids."""
    with db.read() as session:
        users = {
            u.id: u for u in session.scalars(select(User).where(User.project_id == project_id))
        }
        props = session.scalars(select(UserProperty).where(UserProperty.project_id == project_id))
        devices = session.scalars(select(Device).where(Device.project_id == project_id))
        return {
            "users": {u.project_user_id: u.properties for u in users.values()},
            "properties": {
                (users[p.user_id].project_user_id, p.key): (p.value_text, p.value_num)
                for p in props
            },
            "devices": {
                d.id: (
                    users[d.user_id].project_user_id,
                    d.platform,
                    d.app_version_key,
                    d.push_token,
                    d.attributes,
                )
                for d in devices
            },
        }


def summary(report: importer.Report) -> tuple[Any, ...]:
    return (report.rows, report.users_created, report.users_updated, report.devices,
            report.rejected, report.rejected_total)  # fmt: skip


def test_workers_import_a_file_exactly_as_one_process_does(
    db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_jsonl(tmp_path / "users.jsonl", jsonl_rows())
    one, many = make_project(db), make_project(db)
    single = file_import.import_file(db, one.id, path, batch_size=4, workers=1)
    monkeypatch.setattr(importer, "BULK_LOAD_MIN", 2)  # and drop the value indexes for it
    progress: list[int] = []
    parallel = file_import.import_file(
        db, many.id, path, batch_size=4, workers=3, progress=progress.append
    )

    assert summary(parallel) == summary(single)
    assert (parallel.rows, parallel.users_created, parallel.users_updated) == (32, 31, 1)
    assert [line for line, _ in parallel.rejected] == [6, 18, 37]
    assert sum(progress) == 32  # the rows written
    assert parallel.bulk_load and {str(i.name) for i in VALUE_INDEXES} <= index_names(db)
    result = stored(db, many.id)
    assert result == stored(db, one.id)
    assert result["users"]["u-3"] == {"age": 99, "vip": False}  # the later row won
    assert ("u-3", "city") not in result["properties"]
    assert result["properties"]["u-3", "age"] == ("99", 99.0)
    assert result["devices"]["d-3-new"][0] == result["devices"]["d-3"][0] == "u-3"
    assert result["devices"]["d-5"][0] == "u-40"  # moved to the user that named it last

    again = file_import.import_file(db, many.id, path, batch_size=4, workers=3)
    assert (again.users_created, again.users_updated) == (0, 32)
    assert stored(db, many.id) == result


def test_workers_import_csv_as_one_process_does(db: Database, tmp_path: Path) -> None:
    path = tmp_path / "users.csv"
    lines = ["project_user_id,city,age:number,device_id,device_platform"]
    lines += [f"u-{i},c{i % 4},{i},d-{i},{'IOS' if i % 2 else 'ANDROID'}" for i in range(11)]
    lines += ["u-12,c1,abc,,", "", "u-2,c9,,d-2b,IOS"]
    path.write_text("\n".join(lines) + "\n", "utf-8")
    one, many = make_project(db), make_project(db)
    single = file_import.import_file(db, one.id, path, batch_size=3, workers=1)
    parallel = file_import.import_file(db, many.id, path, batch_size=3, workers=2)
    assert summary(parallel) == summary(single)
    assert parallel.rejected == [(13, "age: 'abc' is not a number")]
    result = stored(db, many.id)
    assert result == stored(db, one.id)
    assert result["users"]["u-2"] == {"city": "c9", "age": 2}
    assert len(result["devices"]) == 12


def test_a_failing_worker_stops_the_import_and_says_why(db: Database, tmp_path: Path) -> None:
    """A write that fails in one worker (a database trigger refuses one user) ends the whole
    import with that worker's error; the value indexes are built again all the same."""
    rows = [{"project_user_id": f"u-{i}", "properties": {"n": i}} for i in range(40)]
    rows[25]["project_user_id"] = "u-boom"
    path = write_jsonl(tmp_path / "users.jsonl", rows)
    project = make_project(db)
    if db.is_sqlite:
        create = [
            "CREATE TRIGGER refuse_boom BEFORE INSERT ON users WHEN "
            "NEW.project_user_id = 'u-boom' BEGIN SELECT RAISE(ABORT, 'boom'); END"
        ]
        drop = ["DROP TRIGGER refuse_boom"]
    else:
        create = [
            "CREATE FUNCTION refuse_boom() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
            "IF NEW.project_user_id = 'u-boom' THEN RAISE EXCEPTION 'boom'; END IF; "
            "RETURN NEW; END $$",
            "CREATE TRIGGER refuse_boom BEFORE INSERT ON users "
            "FOR EACH ROW EXECUTE FUNCTION refuse_boom()",
        ]
        drop = ["DROP TRIGGER refuse_boom ON users", "DROP FUNCTION refuse_boom()"]
    with db.write() as session:
        for sql in create:
            session.execute(text(sql))
    try:
        with pytest.raises(file_import.WorkerFailed, match="boom"):
            file_import.import_file(db, project.id, path, batch_size=5, workers=2)
    finally:
        with db.write() as session:
            for sql in drop:
                session.execute(text(sql))
    with db.read() as session:
        names = set(session.scalars(select(User.project_user_id)))
    # Chunks are written in order: those before the failing one are in, none after it.
    assert names == {f"u-{i}" for i in range(25)}
    assert {str(i.name) for i in VALUE_INDEXES} <= index_names(db)
