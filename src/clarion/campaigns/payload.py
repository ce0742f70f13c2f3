"""A campaign's trigger payload schema (like Novu's ``payloadSchema`` and Knock's trigger
data schema): the ``properties`` a trigger must or may carry, and their types. A campaign
that declares one refuses a trigger (and a dry run) whose properties break it, naming each
bad key; keys it does not declare are still accepted, as Clix accepts them."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from clarion.errors import ClarionError

KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,99}$")  # usable as trigger.<key> in a template
PropertyType = Literal["string", "number", "boolean", "datetime"]


class TriggerProperty(BaseModel):
    """One declared property: the trigger plan's vocabulary, so a plan can be made from it."""

    model_config = ConfigDict(extra="forbid")

    type: PropertyType
    required: bool = False
    pii: bool = Field(default=False, description="Personal data: never used for targeting.")
    description: str = Field(default="", max_length=500)
    example: str | float | bool | None = Field(default=None, union_mode="left_to_right")

    @model_validator(mode="after")
    def _example_matches(self) -> TriggerProperty:
        if self.example is not None and (problem := type_problem(self.type, self.example)):
            raise ValueError(f"example {self.example!r} is not {problem}")
        return self


def type_problem(kind: str, value: Any) -> str | None:
    """What ``value`` should be to have type ``kind``; None when it has it. Strings are not
    numbers (``"3"``), booleans are not numbers, a datetime is an ISO-8601 string."""
    if kind == "string":
        return None if isinstance(value, str) else "a string"
    if kind == "boolean":
        return None if isinstance(value, bool) else "a boolean (true or false)"
    if kind == "number":
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        return None if ok else "a number"
    if isinstance(value, str):
        try:
            datetime.fromisoformat(value.replace("Z", "+00:00"))
            return None
        except ValueError:
            pass
    return "an ISO-8601 datetime string (2026-05-01T14:30:00Z)"


def check_keys(schema: Mapping[str, TriggerProperty], rule_keys: list[str]) -> None:
    """Save time: property names usable in templates, and every ``trigger.*`` key the
    audience rules compare declared and required (a trigger without it is refused anyway)."""
    for key in schema:
        if not KEY.match(key):
            raise ValueError(f"trigger_schema key {key!r}: letters, digits and _ only, "
                             "not first a digit (it is trigger.<key> in templates)")  # fmt: skip
    for key in rule_keys:
        spec = schema.get(key)
        if spec is None or not spec.required:
            raise ValueError(
                f"the audience rules use trigger.{key}, so trigger_schema must declare "
                f"{key!r} with required: true"
            )
        if spec.pii:
            raise ValueError(f"trigger_schema marks {key!r} pii, but the audience rules "
                             "target on it: personal data is not for targeting")  # fmt: skip


class InvalidTriggerPayload(ClarionError):
    status_code = 400
    code = "invalid_trigger_payload"


def check(
    schema: Mapping[str, TriggerProperty] | None,
    properties: Mapping[str, Any],
    recipient: str = "",
) -> None:
    """Trigger time: raises InvalidTriggerPayload naming every bad key, with ``problems``.
    ``recipient``: the target whose merged properties these are (named in the answer)."""
    if not schema:
        return
    problems: list[dict[str, str]] = []
    for key, spec in schema.items():
        value = properties.get(key)
        if value is None:
            if spec.required:
                problems.append({"key": key, "problem": f"is required ({spec.type})"})
            continue
        wrong = type_problem(spec.type, value)
        if wrong is not None:
            got = type(value).__name__ if not isinstance(value, str) else f"string {value!r}"
            problems.append({"key": key, "problem": f"must be {wrong}, got {got}"[:300]})
    if problems:
        said = "; ".join(f"{p['key']} {p['problem']}" for p in problems)
        whose = f" (for {recipient}, its properties over the top level)" if recipient else ""
        details: dict[str, Any] = {"problems": problems}
        if recipient:
            details["path"] = recipient
        raise InvalidTriggerPayload(
            f"properties{whose} do not match the campaign's trigger_schema: {said}.", **details
        )
