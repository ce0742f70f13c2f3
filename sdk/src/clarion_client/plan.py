"""Trigger plans (``.clix/api-trigger-plan.json``): the contract between a backend and one
API-triggered campaign.

``validate`` gives the verdict of the seed's validator, rule for rule: valid JSON; a
non-empty string ``campaign_id``; ``audience.mode`` broadcast, targets or default (default
when absent); in targets mode a non-empty array whose entries each hold exactly one
non-blank ``project_user_id`` or ``device_id``; ``dynamic_filter_keys`` an array of at most 3
snake_case strings; ``properties`` a non-empty object with snake_case keys, each spec with a
``type`` of string, number, boolean or datetime, boolean ``required``/``pii`` when present,
and a primitive ``example`` matching the type (booleans are not numbers). Checks the seed
lacks are warnings, errors under ``strict``.

``Plan.check_properties`` holds a call to the plan before anything is sent.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from clarion_client.errors import PlanMismatchError

SNAKE = re.compile(r"^[a-z][a-z0-9_]*$")
TYPES = ("string", "number", "boolean", "datetime")
MODES = ("broadcast", "targets", "default")
DEFAULT_PATH = Path(".clix/api-trigger-plan.json")


@dataclass
class Verdict:
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def passed(self, strict: bool = False) -> bool:
        return not self.errors and not (strict and self.warnings)

    def to_json(self, strict: bool = False) -> dict[str, Any]:
        return {"passed": self.passed(strict), "strict": strict, "errors": self.errors,
                "warnings": self.warnings}  # fmt: skip


class PlanFileError(ValueError):
    """The file is not JSON (the message has the line and column)."""


def parse(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise PlanFileError(
            f"not valid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}"
        ) from None


def read(path: Path) -> Any:
    """Raises OSError for a missing file, PlanFileError for one that is not JSON."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise PlanFileError(f"not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    return parse(text)


def validate(data: Any) -> Verdict:
    verdict = Verdict()
    errors = verdict.errors
    if not isinstance(data, dict):
        errors.append("the plan must be a JSON object")
        return verdict
    campaign_id = data.get("campaign_id")
    if not isinstance(campaign_id, str) or not campaign_id.strip():
        errors.append("campaign_id must be a non-empty string")
    audience = data.get("audience", {})
    if audience is None:
        audience = {}
    if not isinstance(audience, dict):
        errors.append("audience must be an object if present")
        audience = {}
    mode = audience.get("mode", "default")
    if mode not in MODES:
        errors.append("audience.mode must be one of: broadcast, targets, default")
    targets = audience.get("targets")
    if mode == "targets":
        if not isinstance(targets, list) or not targets:
            errors.append(
                "audience.targets must be a non-empty array when audience.mode == 'targets'"
            )
        else:
            for i, target in enumerate(targets):
                if not isinstance(target, dict):
                    errors.append(f"audience.targets[{i}] must be an object")
                    continue
                user, device = (
                    _filled(target.get("project_user_id")),
                    _filled(target.get("device_id")),
                )
                if user and device:
                    errors.append(
                        f"audience.targets[{i}] must specify exactly one of project_user_id "
                        "or device_id (not both)"
                    )
                elif not user and not device:
                    errors.append(
                        f"audience.targets[{i}] must specify exactly one of project_user_id "
                        "or device_id"
                    )
    elif targets is not None and not isinstance(targets, list):
        errors.append("audience.targets must be an array if present")
    keys = data.get("dynamic_filter_keys", [])
    if keys is None:
        keys = []
    if not isinstance(keys, list):
        errors.append("dynamic_filter_keys must be an array if present")
        keys = []
    else:
        if len(keys) > 3:
            errors.append("dynamic_filter_keys must contain at most 3 entries")
        for i, key in enumerate(keys):
            if not isinstance(key, str) or not SNAKE.match(key):
                errors.append(f"dynamic_filter_keys[{i}] must be snake_case string")
    properties = data.get("properties")
    if not isinstance(properties, dict) or not properties:
        errors.append("properties must be a non-empty object")
        properties = {}
    for key, spec in properties.items():
        _check_property(verdict, key, spec)
    _extra_checks(verdict, keys, properties)
    return verdict


def _filled(value: Any) -> bool:
    return isinstance(value, str) and bool(value.strip())


def _check_property(verdict: Verdict, key: str, spec: Any) -> None:
    errors = verdict.errors
    if not SNAKE.match(key):
        errors.append(f"properties key '{key}' must be snake_case")
    if not isinstance(spec, dict):
        errors.append(f"properties['{key}'] must be an object")
        return
    kind = spec.get("type")
    if kind is None:
        errors.append(f"properties['{key}'].type is required")
        return
    if kind not in TYPES:
        errors.append(f"properties['{key}'].type must be one of: string, number, boolean, datetime")
    for flag in ("required", "pii"):
        if spec.get(flag) is not None and not isinstance(spec.get(flag), bool):
            errors.append(f"properties['{key}'].{flag} must be boolean if present")
    example = spec.get("example")
    if example is None:
        return
    if not isinstance(example, str | int | float | bool):
        errors.append(
            f"properties['{key}'].example must be a primitive (string/number/boolean/null)"
        )
        return
    problem = type_problem(kind, example, iso=False)
    if problem:
        errors.append(f"properties['{key}'].example must be {problem}")
    elif kind == "datetime" and type_problem(kind, example, iso=True):
        verdict.warnings.append(
            f"properties['{key}'].example {example!r} is not an ISO-8601 datetime "
            "(e.g. 2026-05-01T14:30:00Z)"
        )


def type_problem(kind: Any, value: Any, *, iso: bool = True) -> str | None:
    """What ``value`` should be for ``kind`` (None when it is fine)."""
    if kind == "string" and not isinstance(value, str):
        return "a string"
    if kind == "boolean" and not isinstance(value, bool):
        return "a boolean"
    if kind == "number" and (isinstance(value, bool) or not isinstance(value, int | float)):
        return "a number"
    if kind == "datetime":
        if not isinstance(value, str):
            return "an ISO-8601 string"
        if iso and not _is_iso(value):
            return "an ISO-8601 string"
    return None


def _is_iso(text: str) -> bool:
    try:
        datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return False
    return True


def _extra_checks(verdict: Verdict, keys: list[Any], properties: dict[str, Any]) -> None:
    for key in keys:
        if not isinstance(key, str):
            continue
        spec = properties.get(key)
        if not isinstance(spec, dict):
            verdict.warnings.append(
                f"dynamic filter key '{key}' is not declared in properties: declare it "
                "(required) so every trigger sends it"
            )
            continue
        if spec.get("required") is not True:
            verdict.warnings.append(
                f"dynamic filter key '{key}' is not required: a trigger without it is refused "
                'by the server (set "required": true)'
            )
        if spec.get("pii") is True:
            verdict.warnings.append(
                f"dynamic filter key '{key}' is marked pii: personal data used for targeting "
                "travels in every trigger; filter on a non-personal key instead"
            )


@dataclass(frozen=True)
class Plan:
    """A validated plan, for holding calls to it."""

    campaign_id: str
    mode: str
    dynamic_filter_keys: tuple[str, ...]
    properties: Mapping[str, Mapping[str, Any]]
    source: str = ""

    @classmethod
    def load(cls, path: str | Path, *, strict: bool = False) -> Plan:
        data = read(Path(path))
        return cls.from_data(data, strict=strict, source=str(path))

    @classmethod
    def from_data(cls, data: Any, *, strict: bool = False, source: str = "") -> Plan:
        verdict = validate(data)
        if not verdict.passed(strict):
            problems = verdict.errors + (verdict.warnings if strict else [])
            raise PlanFileError(f"{source or 'plan'}: " + "; ".join(problems))
        return cls(
            campaign_id=data["campaign_id"],
            mode=(data.get("audience") or {}).get("mode", "default"),
            dynamic_filter_keys=tuple(data.get("dynamic_filter_keys") or ()),
            properties=data["properties"],
            source=source,
        )

    @property
    def pii_keys(self) -> frozenset[str]:
        return frozenset(k for k, s in self.properties.items() if s.get("pii") is True)

    def check_properties(self, properties: Mapping[str, Any]) -> None:
        """Required keys present, declared types respected, dynamic filter keys present.
        Raises PlanMismatchError (before any request)."""
        problems = []
        for key, spec in self.properties.items():
            if key not in properties or properties[key] is None:
                if spec.get("required") is True or key in self.dynamic_filter_keys:
                    why = "a dynamic filter key" if key in self.dynamic_filter_keys else "required"
                    problems.append(f"'{key}' is missing ({why} by the plan)")
                continue
            problem = type_problem(spec.get("type"), properties[key])
            if problem:
                problems.append(f"'{key}' must be {problem} (the plan says {spec.get('type')})")
        for key in self.dynamic_filter_keys:
            if key not in self.properties and key not in properties:
                problems.append(f"'{key}' is missing (a dynamic filter key of the plan)")
        if problems:
            where = f" {self.source}" if self.source else ""
            raise PlanMismatchError(
                f"properties do not match the trigger plan{where}: " + "; ".join(problems),
                code="plan_mismatch",
            )
