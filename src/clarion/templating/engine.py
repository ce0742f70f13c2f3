"""The Liquid environment Clarion renders with: Clix semantics on python-liquid.

- Namespaces ``trigger.*``, ``user.*`` (``user.id`` is the project user id), ``device.*``
  and ``event.*`` (reserved); a missing variable renders as the empty string.
- Every standard Liquid filter, the nine Clix ones among them.
- A condition that cannot be evaluated (``"abc" > 3``) is false, not an error.
- Templates are untrusted: loop iterations, output size, context depth, the size of any
  filter's result and the wall-clock time of a render are limited. A breach fails that one
  render with a reason (RenderError); the caller carries on with the next.

Templates are parsed once (cached by source). Most campaign templates are text, outputs
and ``if`` blocks: those render through ``fast.py``, a compiled form about ten times
quicker that gives the same output (tests/test_templating.py renders every case both ways).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from functools import lru_cache
from io import StringIO
from typing import Any

from liquid import BoundTemplate, Environment, RenderContext
from liquid.builtin.expressions import BooleanExpression
from liquid.builtin.tags.if_tag import IfNode, IfTag
from liquid.builtin.tags.unless_tag import UnlessNode, UnlessTag
from liquid.exceptions import (
    LiquidError,
    LiquidTypeError,
    OutputStreamLimitError,
    ResourceLimitError,
)
from liquid.token import Token

NAMESPACES = ("trigger", "user", "device", "event")
FIELD_OUTPUT_LIMIT = 16 * 1024  # characters one field may render to
RENDER_TIMEOUT_S = 0.05  # wall-clock budget of one field's render


class RenderError(Exception):
    """A template failed for one recipient; the message is marked failed with this reason."""


class TimeLimitError(ResourceLimitError):
    """The render ran past its wall-clock budget."""


_deadline: ContextVar[float] = ContextVar("clarion_render_deadline", default=float("inf"))


def check_deadline() -> None:
    if time.perf_counter() > _deadline.get():
        raise TimeLimitError(
            f"render time limit reached ({RENDER_TIMEOUT_S * 1000:.0f} ms)", token=None
        )


def check_size(value: object) -> object:
    """A filter's result may not outgrow the field's output limit (``replace`` chains
    would otherwise build huge strings before anything is written)."""
    if isinstance(value, (str, list, tuple)) and len(value) > FIELD_OUTPUT_LIMIT:
        raise OutputStreamLimitError(
            f"output limit reached ({FIELD_OUTPUT_LIMIT:,} characters)", token=None
        )
    return value


class _GuardedContext(RenderContext):
    """Checks the deadline at each filter call and loop, and the size of filter results."""

    def filter(self, name: str, token: Token | None) -> Callable[..., object]:
        func = super().filter(name, token)

        def guarded(*args: Any, **kwargs: Any) -> object:
            check_deadline()
            return check_size(func(*args, **kwargs))

        return guarded

    def raise_for_loop_limit(self, length: int = 1) -> None:
        check_deadline()
        super().raise_for_loop_limit(length)


class _Buffer(StringIO):
    """Output with a size limit (characters) and a deadline check per write."""

    def __init__(self) -> None:
        super().__init__()
        self.size = 0

    def write(self, text: str) -> int:
        self.size += len(text)
        if self.size > FIELD_OUTPUT_LIMIT:
            raise OutputStreamLimitError(
                f"output limit reached ({FIELD_OUTPUT_LIMIT:,} characters)", token=None
            )
        check_deadline()
        return super().write(text)


class _Template(BoundTemplate):
    context_class = _GuardedContext

    def _get_buffer(self) -> StringIO:
        return _Buffer()


def _lenient(expression: Any) -> Any:
    return _LenientCondition(expression.token, expression.expression)


class _LenientCondition(BooleanExpression):
    """An ``if``/``unless`` condition that cannot be evaluated is false."""

    __slots__ = ()

    def evaluate(self, context: RenderContext) -> bool:
        try:
            return super().evaluate(context)
        except LiquidTypeError:
            return False


def _lenient_node(node: Any) -> Any:
    if isinstance(node, IfNode | UnlessNode):
        node.condition = _lenient(node.condition)
        for alternative in node.alternatives:
            alternative.expression = _lenient(alternative.expression)
    return node


class _If(IfTag):
    def parse(self, stream: Any) -> Any:
        return _lenient_node(super().parse(stream))


class _Unless(UnlessTag):
    def parse(self, stream: Any) -> Any:
        return _lenient_node(super().parse(stream))


class ClarionEnvironment(Environment):
    loop_iteration_limit = 10_000
    output_stream_limit = None  # enforced by _Buffer, in characters, with the deadline
    context_depth_limit = 30
    template_class = _Template
    logical_not_operator = True  # `not` in conditions, as Clix documents
    logical_parentheses = True

    def setup_tags_and_filters(self, *, extra: bool = False) -> None:
        super().setup_tags_and_filters(extra=extra)
        self.add_tag(_If)
        self.add_tag(_Unless)


ENV = ClarionEnvironment()
HTML_ENV = ClarionEnvironment(autoescape=True)  # e-mail HTML: every value is escaped


@dataclass(frozen=True, slots=True)
class Compiled:
    """A parsed template and what rendering it needs."""

    source: str
    template: BoundTemplate | None  # None: plain text, no markup
    fast: Callable[[Mapping[str, Any]], str] | None  # the compiled form, when it applies
    roots: frozenset[str]  # namespaces it reads (trigger, user, device, event)

    @property
    def trigger_only(self) -> bool:
        """Renders the same for every recipient of a trigger."""
        return self.roots <= {"trigger"}


@lru_cache(maxsize=4096)
def parse(source: str, html: bool = False) -> Compiled:
    """Parse once; raises LiquidError on a template that does not parse. ``html``: every
    value it outputs is HTML-escaped (the text of the template itself is kept as written)."""
    if "{" not in source:
        return Compiled(source, None, None, frozenset())
    from clarion.templating import fast  # fast.py builds on this module's environment

    template = (HTML_ENV if html else ENV).from_string(source)
    roots = frozenset(str(v) for v in template.global_variables())
    compiled = None if html else fast.compile_template(template)  # the fast path never escapes
    return Compiled(source, template, compiled, roots)


def render(source: str | Compiled, context: Mapping[str, Any], *, fast: bool = True) -> str:
    """Render for one recipient. ``context`` maps each namespace to a dict. Raises
    RenderError with the reason when the template fails or breaks a limit."""
    compiled = source if isinstance(source, Compiled) else _parse_for_render(source)
    if compiled.template is None:
        return compiled.source
    if fast and compiled.fast is not None:
        try:
            return compiled.fast(context)
        except LiquidError as exc:
            raise RenderError(reason(exc)) from None
    budget = _deadline.set(time.perf_counter() + RENDER_TIMEOUT_S)
    try:
        return str(compiled.template.render(**context))
    except LiquidError as exc:
        raise RenderError(reason(exc)) from None
    except RecursionError:
        raise RenderError("template nesting too deep") from None
    finally:
        _deadline.reset(budget)


def _parse_for_render(source: str) -> Compiled:
    try:
        return parse(source)
    except LiquidError as exc:
        raise RenderError(reason(exc)) from None


def reason(exc: LiquidError) -> str:
    message = getattr(exc, "message", None) or str(exc).splitlines()[0]
    return str(message)


def position(source: str, index: int | None) -> tuple[int | None, int | None]:
    """1-based line and column of a character index (an index past the end points just
    after the text: "unexpected end of template")."""
    if not isinstance(index, int):
        return None, None
    if index < 0 or index > len(source):
        index = len(source)
    before = source[:index]
    line = before.count("\n") + 1
    col = index - (before.rfind("\n") + 1) + 1
    return line, col


def error_position(source: str, exc: LiquidError) -> tuple[int | None, int | None]:
    token = getattr(exc, "token", None)
    return position(source, getattr(token, "start_index", None))
