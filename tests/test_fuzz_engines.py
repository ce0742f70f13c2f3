"""The rule compiler and the template renderer under arbitrary input (Hypothesis).

Whatever a caller sends as audience rules and trigger properties, the rules are either
refused with a clear error (a validation error naming the problem, or a refusal of the
trigger value) or they compile to SQL that runs on the database and whose count agrees with
its stream. Whatever text is saved as a template and whatever data it is rendered with, the
template is refused at save time with a position, or it renders (or fails that one message
with a reason): never an unexpected exception.
"""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from clarion import limits
from clarion.audience.rules import ALIASES, BUILTINS, OPERATORS, PRESENCE, Audience
from clarion.errors import ClarionError
from clarion.storage.db import Database
from clarion.templating import engine
from clarion.templating.analysis import TemplateProblem, analyze
from tests.audience_data import Person, by_sql, populate

SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=12)
)
JSON = st.recursive(
    SCALARS,
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=6), children, max_size=3)
    ),
    max_leaves=8,
)
ATTRIBUTES = st.sampled_from([*BUILTINS, "tier", "age", "city", "signup_at"]) | st.text(max_size=8)
NAMES = sorted({op for ops in OPERATORS.values() for op in ops} | set(PRESENCE) | set(ALIASES))
VALUES = (
    JSON
    | st.sampled_from(["{{ trigger.x }}", "{{trigger.y}}", "3.2.0", "2024-01-01T00:00:00Z"])
    | st.lists(st.sampled_from(["{{ trigger.x }}", "a", 1, None]), max_size=3)
)
CONDITION = st.fixed_dictionaries(
    {"attribute": ATTRIBUTES, "operator": st.sampled_from(NAMES) | st.text(max_size=6)},
    optional={"value": VALUES, "type": st.sampled_from(["string", "number", "boolean",
                                                           "datetime", "version", "x"])},
)  # fmt: skip
RULES = (
    st.fixed_dictionaries({"conditions": st.lists(CONDITION, max_size=4)},
                          optional={"match": st.sampled_from(["all", "any", "x"])})
    | st.fixed_dictionaries({"groups": st.lists(st.fixed_dictionaries(
        {"conditions": st.lists(CONDITION, max_size=3)},
        optional={"match": st.sampled_from(["all", "any"])}), max_size=3)},
        optional={"match": st.sampled_from(["all", "any"])})
    | JSON
)  # fmt: skip
TRIGGER = st.dictionaries(st.sampled_from(["x", "y", "z"]), JSON, max_size=3)

PEOPLE = [
    Person("u1", {"tier": "gold", "age": 30, "city": "Paris"},
           [{"id": "d1", "platform": "IOS", "app_version": "3.2.0"}], None),
    Person("u2", {"tier": 5, "signup_at": "2024-05-01T00:00:00Z"},
           [{"id": "d2", "platform": "ANDROID", "is_push_permission_granted": True}], None),
    Person("u3", {}, [], None),
]  # fmt: skip


@settings(max_examples=500, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture,
                                 HealthCheck.too_slow])  # fmt: skip
@given(rule=RULES, trigger=TRIGGER)
def test_rules_are_refused_cleanly_or_run(db: Database, rule: Any, trigger: dict[str, Any]) -> None:
    project_id = _population(db)
    try:
        audience = Audience.model_validate(rule)
        audience.bind(trigger)
    except (ValidationError, ClarionError):
        event("refused")
        return  # refused with a message (a 400 at the API)
    event("compiled and ran")
    matched = by_sql(db, project_id, audience, trigger)  # runs, and count == stream
    assert len(matched) <= 3  # at most every device (or deviceless user) of the population


_projects: dict[str, str] = {}


def _population(db: Database) -> str:
    """One small population per database, made at the first example."""
    if db.url not in _projects:
        _projects[db.url] = populate(db, PEOPLE)
    return _projects[db.url]


TEMPLATE_TEXT = st.text(alphabet=st.sampled_from(list("{}%|.:\"' ab1-_=<>\n")) | st.characters(),
                        max_size=40)  # fmt: skip
TEMPLATE_PARTS = st.lists(
    st.sampled_from([
        "{{ trigger.x }}", "{{ user.name | default: 'there' }}", "{% if trigger.x > 3 %}",
        "{% else %}", "{% endif %}", "{% for i in (1..3) %}", "{% endfor %}", "{{", "}}",
        "{%", "%}", "| upcase", "| truncate: 5", "| plus: trigger.y", "{{ device.platform }}",
        "{% unless user.vip %}", "{% endunless %}", "{{ trigger.x | split: ',' | first }}",
    ]) | TEMPLATE_TEXT,
    max_size=8,
).map("".join)  # fmt: skip
CONTEXTS = st.fixed_dictionaries({
    "trigger": st.dictionaries(st.sampled_from(["x", "y"]), JSON, max_size=2),
    "user": st.dictionaries(st.sampled_from(["name", "vip", "id"]), JSON, max_size=3),
    "device": st.dictionaries(st.sampled_from(["platform", "locale"]), JSON, max_size=2),
})  # fmt: skip


@settings(max_examples=400, deadline=None, database=None)
@given(source=TEMPLATE_PARTS, contexts=st.lists(CONTEXTS, min_size=1, max_size=3),
       html=st.booleans())  # fmt: skip
def test_templates_are_refused_cleanly_or_render(
    source: str, contexts: list[dict[str, Any]], html: bool
) -> None:
    try:
        analyze("title", source)
    except TemplateProblem as problem:
        event("refused at save")
        assert problem.message  # a readable reason, with a position when there is one
        return
    compiled = engine.parse(source, html)
    for context in contexts:
        try:
            out = engine.render(compiled, context)
        except engine.RenderError as exc:
            event("render failed with a reason")
            assert str(exc)  # that one message fails, with its reason
            continue
        event("rendered")
        assert isinstance(out, str)
        if not html:  # the compiled fast path and python-liquid agree
            assert engine.render(compiled, context, fast=False) == out


@settings(max_examples=400, deadline=None, database=None)
@given(value=st.recursive(
    st.none() | st.integers() | st.text(max_size=6),
    lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=6), c, max_size=4),
    max_leaves=20))  # fmt: skip
def test_the_properties_limits_fast_check_agrees_with_the_naming_walk(value: Any) -> None:
    saved = (limits.current.max_properties, limits.current.max_depth, limits.current.max_string)
    limits.configure(3, 3, 4)  # small, so that random values breach them often
    try:
        refused = None
        try:
            limits.check_properties(value)
        except limits.LimitExceeded as exc:
            refused = exc
        try:
            limits._walk(value, "$.properties", 1)  # the slow walk alone decides
            walked = None
        except limits.LimitExceeded as exc:
            walked = exc
        assert (refused is None) == (walked is None)
        if refused is not None and walked is not None:
            assert refused.details == walked.details
    finally:
        limits.configure(*saved)
