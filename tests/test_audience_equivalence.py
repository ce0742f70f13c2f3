"""Property-based: for random rules and random users and devices, the SQL the compiler emits
and the pure-Python reference evaluator pick exactly the same (user, device) pairs. The
suite runs this on SQLite and again on PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import HealthCheck, Phase, assume, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from clarion.audience.rules import BUILTINS, OPERATORS, PRESENCE, Audience, TriggerValueError
from clarion.storage.db import Database
from tests.audience_data import NOW, Person, by_reference, by_sql, load_facts, populate

NOW_DT = datetime.fromtimestamp(NOW, UTC)
CUSTOM = ("a", "b")
ATTRIBUTES = (*CUSTOM, "user_id", "last_session_at", "platform", "app_version",
              "is_push_permission_granted", "locale_region")  # fmt: skip

# Small pools that share values, so that boundaries (equal values) come up often.
TEXTS = ["x", "X", "3", "true", "", "San Jose", "ü-ß"]
NUMBERS = [3, 10, 2.5, "3"]
INSTANTS = ["2026-10-30", "2026-10-30T00:00:00Z", "2025-06-01T12:00:00+02:00", NOW - 86400]
VERSIONS = ["3.2.0", "3.2", "3.10.1", "3.2.0-beta"]
STORED = st.sampled_from(
    [*TEXTS, "San José", 3, 10, 2.5, True, False, "2026-10-30T00:00:00Z", "2026-11-01"]
)
LITERALS = {"string": TEXTS, "number": NUMBERS, "datetime": INSTANTS, "version": VERSIONS}
TRIGGER = {"t0": "x", "t1": 3, "t2": ["x", "3", "San Jose"], "t3": "2026-10-30T00:00:00Z",
           "t4": "3.2.0", "t5": "10"}  # fmt: skip


@st.composite
def conditions(draw: st.DrawFn, attributes: list[str]) -> dict[str, Any]:
    attribute = draw(st.sampled_from(attributes))
    if attribute in BUILTINS:
        type_ = BUILTINS[attribute][1]
    else:
        type_ = draw(st.sampled_from(["string", "number", "boolean", "datetime"]))
    operator = draw(st.sampled_from([*OPERATORS[type_], *PRESENCE]))
    condition: dict[str, Any] = {"attribute": attribute, "type": type_, "operator": operator}
    if attribute in BUILTINS:
        del condition["type"]
    pool = LITERALS.get(type_, TEXTS)
    reference = st.sampled_from([f"{{{{ trigger.{k} }}}}" for k in TRIGGER])
    single = st.one_of(st.sampled_from(pool), reference)
    if operator in ("exists", "not_exists", "is_true", "is_false"):
        return condition
    if operator in ("within_last_days", "more_than_days_ago"):
        condition["value"] = draw(st.sampled_from([0, 1, 5, 30, 100, "{{ trigger.t1 }}"]))
    elif operator in ("in", "not_in"):
        condition["value"] = draw(
            st.one_of(st.lists(single, min_size=1, max_size=3), st.just("{{ trigger.t2 }}"))
        )
    elif operator == "between":
        condition["value"] = draw(st.lists(single, min_size=2, max_size=2))
    else:
        condition["value"] = draw(single)
    return condition


@st.composite
def audiences(draw: st.DrawFn) -> Audience:
    # At most three distinct attributes, half custom properties, half built-ins.
    attribute = st.one_of(st.sampled_from(CUSTOM), st.sampled_from(ATTRIBUTES[len(CUSTOM) :]))
    attributes = draw(st.lists(attribute, min_size=1, max_size=3, unique=True))
    groups = draw(
        st.lists(
            st.fixed_dictionaries(
                {
                    "match": st.sampled_from(["all", "any"]),
                    "conditions": st.lists(conditions(attributes), min_size=1, max_size=3),
                }
            ),
            min_size=0,
            max_size=2,
        )
    )
    try:
        return Audience.model_validate({"match": draw(st.sampled_from(["all", "any"])),
                                        "groups": groups})  # fmt: skip
    except ValidationError:
        assume(False)
        raise


devices = st.fixed_dictionaries(
    {
        "platform": st.sampled_from(["", "ios", "ANDROID", "web"]),
        "app_version": st.sampled_from(["", "3.2.0", "3.10.1", "3.2.0-beta", "3.2", "junk"]),
        "is_push_permission_granted": st.booleans(),
        "push_token": st.sampled_from(["", "token"]),
        "locale_region": st.sampled_from(["", "US", "KR", "x"]),
    }
)
people = st.lists(
    st.tuples(
        st.fixed_dictionaries({}, optional=dict.fromkeys(CUSTOM, STORED)),
        st.lists(devices, max_size=2),
        st.sampled_from([None, 0.5, 3.0, 10.0, 45.0]),
    ),
    min_size=4,
    max_size=8,
)


@settings(
    max_examples=200,
    deadline=None,
    database=None,
    # No shrinking: each replay writes a population, so shrinking takes minutes; the
    # assertion already names the rule that disagrees, and the population is small.
    phases=[Phase.explicit, Phase.reuse, Phase.generate],
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(rules=st.lists(audiences(), min_size=20, max_size=20), population=people)
def test_sql_and_reference_agree(
    db: Database, rules: list[Audience], population: list[tuple[Any, ...]]
) -> None:
    """Each example: one random population, twenty random rules over it."""
    persons = [
        Person(
            f"u{i}",
            props,
            [{"id": f"u{i}-d{j}", **d} for j, d in enumerate(devs)],
            NOW_DT - timedelta(days=days) if days is not None else None,
        )
        for i, (props, devs, days) in enumerate(population)
    ]
    project_id = populate(db, persons)
    loaded = load_facts(db, project_id)
    for audience in rules:
        try:
            audience.bind(TRIGGER)
        except TriggerValueError:
            continue
        sql = by_sql(db, project_id, audience, TRIGGER)
        expected = by_reference(db, project_id, audience, TRIGGER, loaded)
        assert sql == expected, (
            f"rule {audience.describe()}: SQL only {sorted(sql - expected, key=str)}, "
            f"reference only {sorted(expected - sql, key=str)}; people {population}"
        )
