"""Every operator of every type, compiled to SQL, on the database under test (the suite runs
on SQLite and on PostgreSQL), checked against hand-written expectations and against the
reference evaluator."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from clarion.audience.rules import Audience
from clarion.storage.db import Database
from tests.audience_data import NOW, Person, by_reference, by_sql, populate

NOW_DT = datetime.fromtimestamp(NOW, UTC)


def device(did: str, **fields: Any) -> dict[str, Any]:
    return {"id": did, "push_token": f"tok-{did}", "is_push_permission_granted": True, **fields}


PEOPLE = [
    Person(
        "ana",
        {"city": "San Francisco", "age": 34, "vip": True, "tier": "gold",
         "signup": "2026-10-25T00:00:00Z", "score": "7.5"},
        [device("ana-ios", platform="iOS", app_version="3.2.0", locale_region="US",
                sdk_type="native"),
         device("ana-and", platform="android", app_version="3.10.1", locale_region="US")],
        NOW_DT - timedelta(days=2),
    ),
    Person(
        "bo",
        {"city": "San Jose", "age": "19", "vip": "false", "tier": "silver",
         "signup": "2025-01-01"},
        [device("bo-ios", platform="IOS", app_version="3.2.0-beta",
                is_push_permission_granted=False)],
        NOW_DT - timedelta(days=40),
    ),
    Person("cy", {"city": "Oakland", "age": 70, "tier": "gold", "nested": {"x": 1}}, []),
    Person("di", {"age": "not a number"}, [device("di-and", platform="ANDROID", app_version="x")]),
]  # fmt: skip


def users_of(pairs: set[tuple[str, str | None]]) -> set[str]:
    return {u for u, _ in pairs}


CASES: list[tuple[dict[str, Any], dict[str, Any], set[str]]] = [
    # string
    ({"attribute": "city", "operator": "equals", "value": "Oakland"}, {}, {"cy"}),
    ({"attribute": "city", "operator": "not_equals", "value": "Oakland"}, {}, {"ana", "bo", "di"}),
    ({"attribute": "city", "operator": "contains", "value": "San"}, {}, {"ana", "bo"}),
    ({"attribute": "city", "operator": "contains", "value": "san"}, {}, set()),
    ({"attribute": "city", "operator": "does_not_contain", "value": "San"}, {}, {"cy", "di"}),
    ({"attribute": "city", "operator": "starts_with", "value": "San J"}, {}, {"bo"}),
    ({"attribute": "city", "operator": "in", "value": ["Oakland", "San Jose"]}, {}, {"bo", "cy"}),
    ({"attribute": "city", "operator": "not_in", "value": ["Oakland"]}, {}, {"ana", "bo", "di"}),
    ({"attribute": "city", "operator": "exists"}, {}, {"ana", "bo", "cy"}),
    ({"attribute": "city", "operator": "does_not_exist"}, {}, {"di"}),
    ({"attribute": "nested", "operator": "exists"}, {}, set()),  # objects are not indexed
    ({"attribute": "user_id", "operator": "starts_with", "value": "b"}, {}, {"bo"}),
    ({"attribute": "city", "value": "{{ trigger.city }}"}, {"city": "San Jose"}, {"bo"}),
    ({"attribute": "city", "operator": "in", "value": "{{ trigger.cities }}"},
     {"cities": ["Oakland", "San Francisco"]}, {"ana", "cy"}),
    # number (the SDKs' string-typed numbers count)
    ({"attribute": "age", "operator": ">", "value": 30}, {}, {"ana", "cy"}),
    ({"attribute": "age", "operator": "gte", "value": 19}, {}, {"ana", "bo", "cy"}),
    ({"attribute": "age", "operator": "<", "value": "34"}, {}, {"bo"}),
    ({"attribute": "age", "operator": "lte", "value": 34}, {}, {"ana", "bo"}),
    ({"attribute": "age", "type": "number", "operator": "eq", "value": 70}, {}, {"cy"}),
    ({"attribute": "age", "type": "number", "operator": "ne", "value": 70}, {},
     {"ana", "bo", "di"}),
    ({"attribute": "age", "operator": "between", "value": [19, 34]}, {}, {"ana", "bo"}),
    ({"attribute": "age", "operator": "between", "value": ["{{ trigger.lo }}", 100]},
     {"lo": "35"}, {"cy"}),
    ({"attribute": "age", "type": "number", "operator": "exists"}, {},
     {"ana", "bo", "cy", "di"}),
    ({"attribute": "score", "operator": ">", "value": 7}, {}, {"ana"}),
    # boolean
    ({"attribute": "vip", "operator": "is_true"}, {}, {"ana"}),
    ({"attribute": "vip", "operator": "is_false"}, {}, {"bo"}),
    # datetime
    ({"attribute": "signup", "operator": "after", "value": "2026-01-01"}, {}, {"ana"}),
    ({"attribute": "signup", "operator": "before", "value": "2026-01-01T00:00:00Z"}, {}, {"bo"}),
    ({"attribute": "signup", "operator": "within_last_days", "value": 10}, {}, {"ana"}),
    ({"attribute": "signup", "operator": "more_than_days_ago", "value": 30}, {}, {"bo"}),
    ({"attribute": "last_session_at", "operator": "within_last_days", "value": 7}, {}, {"ana"}),
    ({"attribute": "last_session_at", "operator": "more_than_days_ago", "value": 30}, {},
     {"bo"}),
    ({"attribute": "last_session_at", "operator": "not_exists"}, {}, {"cy", "di"}),
    ({"attribute": "last_session_at", "operator": "after", "value": "{{ trigger.since }}"},
     {"since": "2026-10-01T00:00:00+00:00"}, {"ana"}),
]  # fmt: skip

DEVICE_CASES: list[tuple[dict[str, Any], set[tuple[str, str | None]]]] = [
    ({"attribute": "platform", "value": "ios"}, {("ana", "ana-ios"), ("bo", "bo-ios")}),
    ({"attribute": "platform", "operator": "ne", "value": "IOS"},
     {("ana", "ana-and"), ("cy", None), ("di", "di-and")}),
    ({"attribute": "app_version", "operator": ">=", "value": "3.2.0"},
     {("ana", "ana-ios"), ("ana", "ana-and")}),
    ({"attribute": "app_version", "operator": ">", "value": "3.9"}, {("ana", "ana-and")}),
    ({"attribute": "app_version", "operator": "<", "value": "3.2.0"}, {("bo", "bo-ios")}),
    ({"attribute": "app_version", "operator": "eq", "value": "3.2"}, {("ana", "ana-ios")}),
    ({"attribute": "app_version", "operator": "exists"},
     {("ana", "ana-ios"), ("ana", "ana-and"), ("bo", "bo-ios")}),
    ({"attribute": "is_push_permission_granted", "operator": "is_false"}, {("bo", "bo-ios")}),
    ({"attribute": "locale_region", "value": "US"}, {("ana", "ana-ios"), ("ana", "ana-and")}),
    ({"attribute": "sdk_type", "operator": "exists"}, {("ana", "ana-ios")}),
]  # fmt: skip


@pytest.fixture
def project_id(db: Database) -> str:
    return populate(db, PEOPLE)


@pytest.mark.parametrize(("condition", "props", "expected"), CASES)
def test_user_operators(
    db: Database,
    project_id: str,
    condition: dict[str, Any],
    props: dict[str, Any],
    expected: set[str],
) -> None:
    audience = Audience.model_validate({"conditions": [condition]})
    got = by_sql(db, project_id, audience, props)
    assert users_of(got) == expected
    assert got == by_reference(db, project_id, audience, props)
    # No device attribute: every device of a matching user receives it.
    for user in expected:
        wanted = {d["id"] for p in PEOPLE if p.project_user_id == user for d in p.devices}
        assert {d for u, d in got if u == user} == (wanted or {None})


@pytest.mark.parametrize(("condition", "expected"), DEVICE_CASES)
def test_device_attributes_keep_only_matching_devices(
    db: Database, project_id: str, condition: dict[str, Any], expected: set[Any]
) -> None:
    audience = Audience.model_validate({"conditions": [condition]})
    got = by_sql(db, project_id, audience, {})
    assert got == expected
    assert got == by_reference(db, project_id, audience, {})


def test_groups_and_or(db: Database, project_id: str) -> None:
    audience = Audience.model_validate(
        {
            "match": "any",
            "groups": [
                {"match": "all", "conditions": [
                    {"attribute": "tier", "value": "gold"},
                    {"attribute": "platform", "value": "IOS"},
                ]},
                {"match": "any", "conditions": [
                    {"attribute": "age", "operator": ">", "value": 60},
                    {"attribute": "tier", "operator": "not_exists"},
                ]},
            ],
        }
    )  # fmt: skip
    got = by_sql(db, project_id, audience, {})
    # ana: gold + her iOS device; cy: over 60 (no device); di: no tier (her device).
    assert got == {("ana", "ana-ios"), ("cy", None), ("di", "di-and")}
    assert got == by_reference(db, project_id, audience, {})


def test_targets_narrow_but_never_widen(db: Database, project_id: str) -> None:
    audience = Audience.model_validate({"conditions": [{"attribute": "tier", "value": "gold"}]})
    targets = [{"project_user_id": "bo"}, {"project_user_id": "cy"}, {"device_id": "ana-and"}]
    got = by_sql(db, project_id, audience, {}, targets)
    assert got == {("cy", None), ("ana", "ana-and")}
