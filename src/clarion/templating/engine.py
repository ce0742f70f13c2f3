"""The Liquid environment Clarion renders with (Clix semantics on python-liquid).

Templates are untrusted input: loops, output size and context depth are limited. A missing
variable renders as the empty string (Liquid's default undefined).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from liquid import Environment
from liquid.exceptions import LiquidError

from clarion.errors import InvalidRequest


class ClarionEnvironment(Environment):
    loop_iteration_limit = 10_000
    output_stream_limit = 64 * 1024
    context_depth_limit = 30


ENV = ClarionEnvironment()


class RenderError(Exception):
    """A template failed for one recipient; the message is marked failed with this reason."""


@lru_cache(maxsize=4096)
def _parse(source: str) -> Any:
    return ENV.from_string(source)


def check(field: str, source: str) -> None:
    """Refuse a template that does not parse, naming the field, line and column."""
    try:
        _parse(source)
    except LiquidError as exc:
        line, col = _position(source, exc)
        where = f" at line {line}, column {col}" if line else ""
        raise InvalidRequest(
            f"message.{field} is not a valid template{where}: {_reason(exc)}",
            code="invalid_template",
            path=f"message.{field}",
            line=line,
            column=col,
        ) from None


def render(source: str, context: dict[str, Any]) -> str:
    if "{" not in source:
        return source
    try:
        return str(_parse(source).render(**context))
    except LiquidError as exc:
        raise RenderError(_reason(exc)) from None


def _reason(exc: LiquidError) -> str:
    message = getattr(exc, "message", None) or str(exc).splitlines()[0]
    return str(message)


def _position(source: str, exc: LiquidError) -> tuple[int | None, int | None]:
    token = getattr(exc, "token", None)
    index = getattr(token, "start_index", None)
    if not isinstance(index, int):
        return None, None
    if index < 0 or index > len(source):  # "unexpected end": point just past the text
        index = len(source)
    before = source[:index]
    line = before.count("\n") + 1
    col = index - (before.rfind("\n") + 1) + 1
    return line, col
