"""The audience rule model (first cut: one AND group of ``equals`` conditions).

A value is a literal or exactly ``{{ trigger.key }}``. An API-triggered audience may use at
most three distinct attributes, so that on-demand filtering stays fast (the Clix rule).
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

MAX_ATTRIBUTES = 3
VALUE_TEXT_MAX = 1024  # the indexed text form of a property value is cut at this length
TRIGGER_REF = re.compile(r"^\{\{\s*trigger\.([A-Za-z_][A-Za-z0-9_]*)\s*\}\}$")
ATTRIBUTE = r"^[A-Za-z_][A-Za-z0-9_.\-]{0,127}$"

Scalar = str | bool | int | float


def trigger_key(value: Any) -> str | None:
    """The ``trigger.*`` key a condition value refers to, or None for a literal."""
    if isinstance(value, str):
        match = TRIGGER_REF.match(value.strip())
        if match:
            return match.group(1)
    return None


class Condition(BaseModel):
    model_config = ConfigDict(extra="forbid")

    attribute: str = Field(pattern=ATTRIBUTE, description="A custom user property name.")
    operator: Literal["equals"] = "equals"
    value: Scalar

    @field_validator("value")
    @classmethod
    def _value_is_literal_or_reference(cls, value: Scalar) -> Scalar:
        if isinstance(value, str) and "{{" in value and trigger_key(value) is None:
            raise ValueError(
                "a value is either a literal or exactly '{{ trigger.key }}' "
                "(a snake_case key, nothing around it)"
            )
        return value

    @property
    def trigger_key(self) -> str | None:
        return trigger_key(self.value)


class Audience(BaseModel):
    """``conditions`` joined by AND; no conditions means every user of the project."""

    model_config = ConfigDict(extra="forbid")

    conditions: list[Condition] = Field(default_factory=list)

    @model_validator(mode="before")
    @classmethod
    def _shorthand_all(cls, data: Any) -> Any:
        if data is None or data == "all":
            return {"conditions": []}
        return data

    @model_validator(mode="after")
    def _attribute_limit(self) -> Audience:
        attributes = sorted({c.attribute for c in self.conditions})
        if len(attributes) > MAX_ATTRIBUTES:
            raise ValueError(
                f"the audience uses {len(attributes)} distinct attributes "
                f"({', '.join(attributes)}); an API-triggered audience may use at most "
                f"{MAX_ATTRIBUTES}. Narrow further in the caller with audience.targets."
            )
        return self

    def trigger_keys(self) -> list[str]:
        """The ``trigger.*`` keys the rules need, in order of first use."""
        seen: dict[str, None] = {}
        for condition in self.conditions:
            key = condition.trigger_key
            if key is not None:
                seen.setdefault(key, None)
        return list(seen)


def canonical_text(value: Any) -> str | None:
    """The text form used for equality, so that the SDKs' string-typed values compare equal
    to numbers and booleans sent as JSON (``"3"`` equals ``3``, ``"true"`` equals ``true``)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    if isinstance(value, str):
        return value
    return None


def canonical_number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    return None
