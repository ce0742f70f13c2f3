"""The audience rule model: groups of typed conditions, checked completely at save time.

An audience is a list of groups joined by ``match`` (all = AND, any = OR); each group is a
list of conditions joined by its own ``match``. No groups means every identified user.
A condition reads one attribute: a built-in user or device attribute, or a custom user
property. Its value is a literal, or exactly ``{{ trigger.key }}`` (bound per trigger).
An API-triggered audience may use at most three distinct attributes (the Clix rule).

The older one-group form, ``{"conditions": [...]}``, is still accepted and means one
``all`` group.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from clarion.audience import values
from clarion.audience.values import AttrType, ValueTypeError
from clarion.errors import InvalidRequest

MAX_ATTRIBUTES = 3
TRIGGER_REF = re.compile(r"^\{\{\s*trigger\.([A-Za-z_][A-Za-z0-9_]*)\s*\}\}$")
ATTRIBUTE = r"^[A-Za-z_][A-Za-z0-9_.\-]{0,127}$"
CUSTOM_PREFIX = "properties."  # forces a custom property even where a built-in has the name

Scope = Literal["user", "device", "property"]

# Built-in attributes: name -> (where it lives, type).
BUILTINS: dict[str, tuple[Scope, AttrType]] = {
    "user_id": ("user", "string"),
    "last_session_at": ("user", "datetime"),
    "platform": ("device", "string"),
    "app_version": ("device", "version"),
    "locale_region": ("device", "string"),
    "locale_language": ("device", "string"),
    "timezone": ("device", "string"),
    "is_push_permission_granted": ("device", "boolean"),
    "sdk_type": ("device", "string"),
}

OPERATORS: dict[AttrType, tuple[str, ...]] = {
    "string": ("eq", "ne", "contains", "not_contains", "starts_with", "in", "not_in"),
    "number": ("eq", "ne", "gt", "gte", "lt", "lte", "between"),
    "boolean": ("is_true", "is_false"),
    "datetime": ("before", "after", "within_last_days", "more_than_days_ago"),
    "version": ("eq", "ne", "gt", "gte", "lt", "lte"),
}
PRESENCE = ("exists", "not_exists")  # every type
ALIASES = {
    "equals": "eq", "=": "eq", "==": "eq", "not_equals": "ne", "!=": "ne", "≠": "ne",
    ">": "gt", ">=": "gte", "≥": "gte", "<": "lt", "<=": "lte", "≤": "lte",
    "greater_than": "gt", "greater_than_or_equal": "gte", "less_than": "lt",
    "less_than_or_equal": "lte", "does_not_contain": "not_contains", "in_list": "in",
    "not_in_list": "not_in", "does_not_exist": "not_exists",
}  # fmt: skip
# A negative operator is exactly NOT its positive: a user without the property matches it.
NEGATIONS = {"ne": "eq", "not_contains": "contains", "not_in": "in", "not_exists": "exists"}
NO_VALUE = ("exists", "not_exists", "is_true", "is_false")
# The type an operator implies for a custom property declared without one.
IMPLIED: dict[str, AttrType] = {
    **{op: "number" for op in ("gt", "gte", "lt", "lte", "between")},
    **{op: "datetime" for op in OPERATORS["datetime"]},
    **{op: "boolean" for op in OPERATORS["boolean"]},
}
READABLE = {
    "eq": "=", "ne": "≠", "gt": ">", "gte": "≥", "lt": "<", "lte": "≤",
    "not_contains": "does not contain", "starts_with": "starts with", "not_in": "not in",
    "not_exists": "does not exist", "is_true": "is true", "is_false": "is false",
    "within_last_days": "within the last", "more_than_days_ago": "more than",
}  # fmt: skip


def trigger_key(value: Any) -> str | None:
    """The ``trigger.*`` key a condition value refers to, or None for a literal."""
    if isinstance(value, str):
        match = TRIGGER_REF.match(value.strip())
        if match:
            return match.group(1)
    return None


def _reader(type_: AttrType, operator: str, attribute: str) -> Callable[[Any], Any]:
    """How an operand of this condition is read (and checked)."""
    if operator in ("within_last_days", "more_than_days_ago"):
        return values.as_days
    reader: Callable[[Any], Any] = {
        "string": values.as_text,
        "number": values.as_number,
        "boolean": values.as_text,
        "datetime": values.as_instant,
        "version": values.as_version,
    }[type_]
    if attribute == "platform":
        return lambda v: reader(v).upper()  # stored as IOS / ANDROID
    return reader


class Condition(BaseModel):
    """``attribute operator value``. ``type`` is fixed for built-ins; for a custom property it
    defaults to what the operator implies, else string."""

    model_config = ConfigDict(extra="forbid")

    attribute: str = Field(pattern=ATTRIBUTE, description="A built-in or custom attribute.")
    operator: str = Field(default="eq", description="See the operator table in the README.")
    type: AttrType | None = None
    value: Any = None

    @model_validator(mode="after")
    def _check(self) -> Condition:
        self.operator = ALIASES.get(self.operator, self.operator)
        builtin = BUILTINS.get(self.attribute)
        if builtin is not None:
            if self.type is not None and self.type != builtin[1]:
                raise ValueError(
                    f"{self.attribute} is a {builtin[1]} attribute, not {self.type}; drop 'type'"
                )
            self.type = builtin[1]
        elif self.type is None:
            self.type = IMPLIED.get(self.operator, "string")
        elif self.type == "version":
            raise ValueError("version rules apply to the built-in app_version attribute only")
        allowed = (*OPERATORS[self.type], *PRESENCE)
        if self.operator not in allowed:
            raise ValueError(
                f"operator {self.operator!r} does not apply to {self.type} attribute "
                f"{self.attribute!r}; use one of {', '.join(allowed)}"
            )
        self._check_value()
        return self

    def _check_value(self) -> None:
        op = self.operator
        if op in NO_VALUE:
            if self.value is not None:
                raise ValueError(f"operator {op!r} takes no value; remove 'value'")
            return
        if op == "between":
            if not isinstance(self.value, list) or len(self.value) != 2:
                raise ValueError("'between' needs a value of exactly two items: [low, high]")
        elif op in ("in", "not_in"):
            if trigger_key(self.value) is None and (
                not isinstance(self.value, list) or not self.value
            ):
                raise ValueError(
                    f"{op!r} needs a non-empty list of values, or '{{{{ trigger.key }}}}'"
                )
        elif self.value is None or isinstance(self.value, list | dict):
            raise ValueError(f"operator {op!r} needs one value (a literal or a trigger reference)")
        read = _reader(self._type, op, self.attribute)
        for item in self.operands:
            if isinstance(item, str) and "{{" in item and trigger_key(item) is None:
                raise ValueError(
                    "a value is either a literal or exactly '{{ trigger.key }}' "
                    "(a snake_case key, nothing around it)"
                )
            if trigger_key(item) is None:
                try:
                    read(item)
                except ValueTypeError as exc:
                    raise ValueError(f"value: {exc}") from None

    @property
    def _type(self) -> AttrType:
        assert self.type is not None, "set by the validator"
        return self.type

    @property
    def operands(self) -> list[Any]:
        """The raw operands: none, one, or several (``in``, ``between``)."""
        if self.value is None:
            return []
        return list(self.value) if isinstance(self.value, list) else [self.value]

    @property
    def scope(self) -> Scope:
        builtin = BUILTINS.get(self.attribute)
        return builtin[0] if builtin else "property"

    @property
    def property_key(self) -> str:
        """The custom property's name (``properties.`` prefix removed)."""
        return self.attribute.removeprefix(CUSTOM_PREFIX)

    @property
    def identity(self) -> str:
        """What counts as one attribute for the three-attribute limit."""
        return self.attribute if self.scope != "property" else "properties." + self.property_key

    def describe(self) -> str:
        op = READABLE.get(self.operator, self.operator.replace("_", " "))
        if self.operator in NO_VALUE:
            return f"{self.attribute} {op}"
        shown = (
            " and ".join(map(repr, self.operands))
            if self.operator == "between"
            else repr(self.value)
        )
        suffix = " days" if self.operator in ("within_last_days",) else ""
        if self.operator == "more_than_days_ago":
            suffix = " days ago"
        return f"{self.attribute} {op} {shown}{suffix}"

    def bind(self, properties: dict[str, Any]) -> list[Any]:
        """The operands read as this condition needs, trigger references replaced by the
        trigger's values (a reference inside ``in`` may bring a whole list)."""
        read = _reader(self._type, self.operator, self.attribute)
        out: list[Any] = []
        for item in self.operands:
            key = trigger_key(item)
            if key is None:
                out.append(read(item))
                continue
            value = properties.get(key)
            items = (
                value if self.operator in ("in", "not_in") and isinstance(value, list) else [value]
            )
            for one in items:
                try:
                    out.append(read(one))
                except ValueTypeError as exc:
                    raise TriggerValueError(
                        f"properties.{key}: the audience rule '{self.describe()}' needs "
                        f"{exc.expected}; got {values.describe(one)}.",
                        key=key,
                        expected=exc.expected,
                    ) from None
        return out


class TriggerValueError(InvalidRequest):
    code = "invalid_trigger_property"


class Group(BaseModel):
    model_config = ConfigDict(extra="forbid")

    match: Literal["all", "any"] = Field(default="all", description="all = AND, any = OR")
    conditions: list[Condition] = Field(min_length=1)


@dataclass(frozen=True, slots=True)
class Located:
    """A condition with its place: ``index`` counts across groups, ``path`` names it."""

    index: int
    group: int
    path: str
    condition: Condition


class Audience(BaseModel):
    """Groups joined by ``match``; no groups means every identified user of the project."""

    model_config = ConfigDict(extra="forbid")

    match: Literal["all", "any"] = Field(default="all", description="all = AND, any = OR")
    groups: list[Group] = Field(default_factory=list)

    @model_validator(mode="before")
    @classmethod
    def _shorthands(cls, data: Any) -> Any:
        if data is None or data == "all":
            return {}
        if isinstance(data, dict) and "conditions" in data and "groups" not in data:
            conditions = data["conditions"]
            rest = {k: v for k, v in data.items() if k not in ("conditions", "match")}
            if not conditions:
                return rest
            group = {"match": data.get("match", "all"), "conditions": conditions}
            return {**rest, "groups": [group]}
        return data

    @model_validator(mode="after")
    def _attribute_limit(self) -> Audience:
        attributes = sorted({c.condition.identity for c in self.located()})
        if len(attributes) > MAX_ATTRIBUTES:
            raise ValueError(
                f"the audience uses {len(attributes)} distinct attributes "
                f"({', '.join(attributes)}); an API-triggered audience may use at most "
                f"{MAX_ATTRIBUTES}. Narrow further in the caller with audience.targets."
            )
        return self

    def located(self) -> Iterator[Located]:
        index = 0
        for g, group in enumerate(self.groups):
            for c, condition in enumerate(group.conditions):
                yield Located(index, g, f"audience.groups[{g}].conditions[{c}]", condition)
                index += 1

    def trigger_keys(self) -> list[str]:
        """The ``trigger.*`` keys the rules need, in order of first use."""
        seen: dict[str, None] = {}
        for located in self.located():
            for item in located.condition.operands:
                key = trigger_key(item)
                if key is not None:
                    seen.setdefault(key, None)
        return list(seen)

    def uses_device(self) -> bool:
        return any(c.condition.scope == "device" for c in self.located())

    def shape(self) -> tuple[Any, ...]:
        """Everything the compiled SQL depends on (values are bound, so not them)."""
        return (
            self.match,
            tuple(
                (g.match, tuple((c.attribute, c.type, c.operator) for c in g.conditions))
                for g in self.groups
            ),
        )

    def bind(self, properties: dict[str, Any]) -> list[list[Any]]:
        """Every condition's operands for one trigger; refuses values of the wrong type."""
        return [c.condition.bind(properties) for c in self.located()]

    def describe(self) -> str:
        if not self.groups:
            return "every identified user"
        inner = {"all": " AND ", "any": " OR "}
        parts = [
            "(" + inner[g.match].join(c.describe() for c in g.conditions) + ")" for g in self.groups
        ]
        return inner[self.match].join(parts)
