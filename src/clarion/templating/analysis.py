"""Save-time checks of a campaign's templates, and what they tell the rest of Clarion.

A template is refused (TemplateProblem, with the field, line and column) when it does not
parse, uses a filter Liquid does not have, or reads a namespace other than ``trigger``,
``user``, ``device`` and ``event``. Otherwise the analysis says which ``trigger.*`` keys
the field uses (the trigger endpoint, the dry run and the plan tooling read this list) and
warns about what will surprise at send time: a ``trigger.*`` output with no ``default``
(renders empty when absent), and a title that renders empty for a recipient with no data.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from liquid.exceptions import LiquidError

from clarion.templating import engine

_DEFAULT = re.compile(r"\|\s*default\s*:")


@dataclass(frozen=True)
class TemplateProblem(Exception):
    """Why a template cannot be saved; ``line``/``column`` are 1-based, None if unknown."""

    field: str
    message: str
    line: int | None = None
    column: int | None = None

    def __str__(self) -> str:
        where = f" at line {self.line}, column {self.column}" if self.line else ""
        return f"{self.field}{where}: {self.message}"


@dataclass
class FieldAnalysis:
    name: str  # message.title, ...
    trigger_keys: list[str] = field(default_factory=list)
    namespaces: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    trigger_only: bool = True  # renders once per trigger, not once per recipient


def analyze(field_name: str, source: str, *, must_not_be_empty: bool = False) -> FieldAnalysis:
    """Check one template field; raises TemplateProblem. ``must_not_be_empty``: warn when
    the field renders empty for a recipient without data (a push title)."""
    result = FieldAnalysis(field_name)
    try:
        compiled = engine.parse(source)
    except LiquidError as exc:
        line, col = engine.error_position(source, exc)
        raise TemplateProblem(field_name, _readable(engine.reason(exc)), line, col) from None
    stray = _stray_delimiter(source)
    if stray is not None:
        line, col = engine.position(source, stray[0])
        raise TemplateProblem(
            field_name, f"{stray[1]!r} has no matching {_PAIRS[stray[1]]!r}", line, col
        )
    if compiled.template is None:
        return result
    report = compiled.template.analyze()
    for name, spans in report.filters.items():
        if name not in engine.ENV.filters:
            line, col = engine.position(source, spans[0].index)
            raise TemplateProblem(
                field_name, f"unknown filter {name!r}; see the Liquid filter list", line, col
            )
    for root, variables in report.globals.items():
        if root not in engine.NAMESPACES:
            line, col = engine.position(source, variables[0].span.index)
            raise TemplateProblem(
                field_name,
                f"unknown variable {root!r}: use trigger.*, user.*, device.* or event.*",
                line,
                col,
            )
    keys: dict[str, None] = {}
    bare: dict[str, None] = {}
    for variable in report.globals.get("trigger", []):
        segments = variable.segments
        if len(segments) < 2 or not isinstance(segments[1], str):
            continue
        keys[segments[1]] = None
        if _in_output_without_default(source, variable.span.index):
            bare[segments[1]] = None
    result.trigger_keys = list(keys)
    result.namespaces = sorted(report.globals)
    result.trigger_only = compiled.trigger_only
    result.warnings = [
        f"{field_name} uses trigger.{key} without a default: renders empty when absent"
        for key in bare
    ]
    if must_not_be_empty and _renders_empty(compiled):
        result.warnings.append(
            f"{field_name} renders empty for a recipient without the data it uses; "
            "add literal text or a default"
        )
    return result


_UNCLOSED = re.compile(r"expected tag (end\w+), found end of (expression|template|file)")


def _readable(message: str) -> str:
    """python-liquid's wording, with the fix spelled out where it is terse."""
    unclosed = _UNCLOSED.search(message)
    if unclosed:
        end = unclosed.group(1)
        return (
            f"{{% {end[3:]} %}} is never closed: add {{% {end} %}} (or the blocks are mis-nested)"
        )
    return message


_MARKUP = re.compile(r"\{\{.*?\}\}|\{%.*?%\}", re.DOTALL)
_PAIRS = {"}}": "{{", "%}": "{%", "{{": "}}", "{%": "%}"}


def _stray_delimiter(source: str) -> tuple[int, str] | None:
    """A ``}}`` or ``%}`` outside markup (Liquid would print it as text)."""
    text = _MARKUP.sub(lambda m: " " * len(m.group(0)), source)
    found = [(i, d) for d in ("}}", "%}") if (i := text.find(d)) >= 0]
    return min(found) if found else None


def _in_output_without_default(source: str, index: int) -> bool:
    """Is the variable at ``index`` inside ``{{ ... }}`` with no ``default`` filter?"""
    output = source.rfind("{{", 0, index)
    tag = source.rfind("{%", 0, index)
    if output < tag or output < 0:
        return False  # inside a tag (a condition: absent is simply false)
    end = source.find("}}", index)
    statement = source[output : end if end >= 0 else len(source)]
    return _DEFAULT.search(statement) is None


def _renders_empty(compiled: engine.Compiled) -> bool:
    empty = {"trigger": {}, "user": {"id": ""}, "device": {}, "event": {}}
    try:
        return not engine.render(compiled, empty).strip()
    except engine.RenderError:
        return False  # a failure is reported at send time with its reason
