"""`clarion template lint`: the save-time template checks, on files.

A campaign file (``.yaml``, ``.yml``, ``.json``) has each message field checked, and a
problem is reported at its position in the file. Any other file is one template. Findings
are errors (the save would be refused) or warnings (it would be saved, see the message).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import yaml

from clarion.templating.analysis import TemplateProblem, analyze
from clarion.templating.message import FIELDS, URL_FIELDS
from clarion.templating.urls import static_problem

CAMPAIGN_SUFFIXES = (".yaml", ".yml", ".json")


@dataclass(frozen=True)
class Finding:
    file: str
    line: int
    column: int
    field: str | None
    severity: Literal["error", "warning"]
    code: str
    message: str

    def __str__(self) -> str:
        where = f"{self.field}: " if self.field else ""
        return f"{self.file}:{self.line}:{self.column}: {self.severity}: {where}{self.message}"

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def lint(path: Path, url_schemes: tuple[str, ...] = ()) -> list[Finding]:
    """Raises OSError when the file cannot be read."""
    text = path.read_text(encoding="utf-8")
    if path.suffix.lower() not in CAMPAIGN_SUFFIXES:
        return list(_check(str(path), None, text, _Offset(1, 1, True), url_schemes))
    try:
        fields = _campaign_fields(text, json_file=path.suffix.lower() == ".json")
    except (ValueError, yaml.YAMLError) as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else getattr(exc, "lineno", 1)
        column = mark.column + 1 if mark is not None else getattr(exc, "colno", 1)
        return [Finding(str(path), line, column, None, "error", "invalid_file",
                        f"not a valid campaign file: {exc}")]  # fmt: skip
    findings: list[Finding] = []
    for name, (source, offset) in fields.items():
        findings += _check(str(path), f"message.{name}", source, offset, url_schemes)
    return findings


@dataclass(frozen=True)
class _Offset:
    """Where a template starts in its file, and whether its lines are the file's lines."""

    line: int
    column: int
    block: bool  # a YAML block scalar: template line n is file line ``line + n - 1``


def _check(
    file: str, field: str | None, source: str, at: _Offset, schemes: tuple[str, ...]
) -> Iterator[Finding]:
    label = field or "template"
    try:
        result = analyze(label, source, must_not_be_empty=field == "message.title")
    except TemplateProblem as exc:
        line, column = _in_file(at, exc.line or 1, exc.column or 1)
        yield Finding(file, line, column, field, "error", "invalid_template", exc.message)
        return
    if field is not None and field.removeprefix("message.") in URL_FIELDS:
        problem = static_problem(source, schemes)
        if problem is not None:
            yield Finding(file, at.line, at.column, field, "error", "invalid_url", problem)
    for warning in result.warnings:
        yield Finding(file, at.line, at.column, field, "warning", "template_warning",
                      warning.removeprefix(f"{label} "))  # fmt: skip


def _in_file(at: _Offset, line: int, column: int) -> tuple[int, int]:
    if line == 1:
        return at.line, at.column + column - 1
    if at.block:
        return at.line + line - 1, at.column + column - 1
    return at.line, at.column  # a one-line scalar holding newlines: the field's start


def _campaign_fields(text: str, *, json_file: bool) -> dict[str, tuple[str, _Offset]]:
    """Each message field's text and where it starts in the file."""
    if json_file:
        data = json.loads(text)
        message = data.get("message", {}) if isinstance(data, dict) else {}
        return {
            name: (message[name], _Offset(1, 1, False))
            for name in FIELDS
            if isinstance(message.get(name), str)
        }
    root = yaml.compose(text)
    found: dict[str, tuple[str, _Offset]] = {}
    if not isinstance(root, yaml.MappingNode):
        return found
    for key, value in root.value:
        if key.value != "message" or not isinstance(value, yaml.MappingNode):
            continue
        for field_key, node in value.value:
            if field_key.value in FIELDS and isinstance(node, yaml.ScalarNode):
                block = node.style in ("|", ">")
                if block:  # the text starts on the next line, at the block's indentation
                    start = node.start_mark.line + 2
                    column = _indent(text, start) + 1
                else:
                    start = node.start_mark.line + 1
                    column = node.start_mark.column + 1 + (1 if node.style in ("'", '"') else 0)
                found[field_key.value] = (
                    str(node.value),
                    _Offset(start, column, node.style == "|"),
                )
    return found


def _indent(text: str, line: int) -> int:
    lines = text.splitlines()
    if 0 < line <= len(lines):
        return len(lines[line - 1]) - len(lines[line - 1].lstrip(" "))
    return 0
