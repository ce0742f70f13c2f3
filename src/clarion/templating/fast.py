"""A compiled form of the templates most campaigns use: text, ``{{ output | filters }}`` and
``if``/``elsif``/``else``/``unless`` blocks.

python-liquid renders through a general render context (scope chains, loop stacks, a
buffer); for a short push title most of the time goes there. This module turns the parsed
nodes of a template that uses only the forms above into one Python function, generated as
source and compiled once per template, the way Jinja2 compiles its templates. The
generated code holds no text of the template: every literal, lookup and filter is passed in
as a constant (``K[i]``) and only names this module makes appear in the source. It calls
python-liquid's own pieces, so the output is the same: its filter functions, its
comparison functions, ``RenderContext.get_item`` for ``.size``/``.first``/``.last`` and
indexes, and ``to_liquid_string``. Anything else (``for``, ``assign``, ``case``, filters
that need the render context, ...) makes ``compile_template`` return None, and that
template renders through python-liquid. tests/test_templating.py renders its whole golden
table both ways and requires identical output. Compiled templates have no loops: their work
is bounded by the size limit on every filter's result, so they need no render deadline.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, cast

from liquid import BoundTemplate, RenderContext
from liquid.builtin.content import ContentNode
from liquid.builtin.expressions import (
    BooleanExpression,
    Filter,
    FilteredExpression,
    KeywordArgument,
    Literal,
    Nil,
    Path,
    PositionalArgument,
)
from liquid.builtin.expressions.logical import (
    ContainsExpression,
    EqExpression,
    GeExpression,
    GtExpression,
    LeExpression,
    LogicalAndExpression,
    LogicalNotExpression,
    LogicalOrExpression,
    LtExpression,
    NeExpression,
    _contains,
    _eq,
    _le,
    _lt,
    is_truthy,
)
from liquid.builtin.expressions.primitive import Blank, Empty
from liquid.builtin.output import OutputNode
from liquid.builtin.tags.if_tag import IfNode
from liquid.builtin.tags.unless_tag import UnlessNode
from liquid.context import builtin
from liquid.exceptions import LiquidTypeError, OutputStreamLimitError
from liquid.stringify import to_liquid_string

from clarion.templating.engine import ENV, FIELD_OUTPUT_LIMIT, check_size

_SPECIAL = frozenset(("size", "first", "last"))  # properties get_item computes
_CONSTANTS = (Literal, Nil, Empty, Blank)
_DEFAULT = ENV.filters["default"]  # the most used filter: inlined for strings


class _Unsupported(Exception):
    pass


class _Scope:
    """The part of RenderContext that lookups and literals use."""

    __slots__ = ("scope",)
    env = ENV
    autoescape = ENV.autoescape
    get_item = RenderContext.get_item

    def __init__(self, scope: Mapping[str, Any]) -> None:
        self.scope = scope


_ANY_SCOPE = _Scope({})


def _lookup(segments: list[Any], token: Any) -> Callable[[Mapping[str, Any]], object]:
    """RenderContext.get for a path of names and indexes, over a scope of plain dicts (and
    the builtin now/today). A name that is no special property is looked up with ``[]``,
    which is what get_item does for it."""
    root, rest = segments[0], segments[1:]
    plain = [type(s) is str and s not in _SPECIAL for s in rest]
    get_item = cast(Any, _ANY_SCOPE).get_item

    def lookup(scope: Mapping[str, Any]) -> object:
        try:
            obj: Any = scope[root] if root in scope else builtin[root]
            for segment, simple in zip(rest, plain, strict=True):
                obj = obj[segment] if simple else get_item(obj, segment)
        except (KeyError, TypeError, IndexError):
            return ENV.undefined(root, token=token)
        return obj

    return lookup


class _Writer:
    """Python source for one template, and the constants it refers to."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.constants: list[Any] = []
        self.names = 0

    def constant(self, value: Any) -> str:
        self.constants.append(value)
        return f"K[{len(self.constants) - 1}]"

    def name(self) -> str:
        self.names += 1
        return f"v{self.names}"

    def emit(self, depth: int, line: str) -> None:
        self.lines.append("    " * depth + line)


def compile_template(template: BoundTemplate) -> Callable[[Mapping[str, Any]], str] | None:
    """The compiled form of ``template``, or None when it uses anything outside the
    supported forms."""
    w = _Writer()
    try:
        w.emit(0, "def render(M):")
        w.emit(1, "o = []")
        w.emit(1, "a = o.append")
        _block(w, 1, template.nodes)
        w.emit(1, "t = ''.join(o)")
        w.emit(1, "if len(t) > LIMIT:")
        w.emit(2, "raise OutputLimit(f'output limit reached ({LIMIT:,} characters)', token=None)")
        w.emit(1, "return t")
    except _Unsupported:
        return None
    namespace: dict[str, Any] = {
        "K": w.constants,
        "LIMIT": FIELD_OUTPUT_LIMIT,
        "OutputLimit": OutputStreamLimitError,
        "TypeErr": LiquidTypeError,
        "STR": to_liquid_string,
        "T": is_truthy,
        "EQ": _eq,
        "LT": _lt,
        "LE": _le,
        "CT": _contains,
        "UNDEFINED": ENV.undefined,
        "SIZE": check_size,
    }
    exec(compile("\n".join(w.lines), "<clarion template>", "exec"), namespace)
    return namespace["render"]  # type: ignore[no-any-return]


def _block(w: _Writer, depth: int, nodes: Any) -> None:
    start = len(w.lines)
    for node in nodes:
        kind = type(node)
        if kind is ContentNode:
            if node.text:
                w.emit(depth, f"a({w.constant(node.text)})")
        elif kind is OutputNode:
            _output(w, depth, node.expression)
        elif kind is IfNode or kind is UnlessNode:
            _conditional(w, depth, node, negate_first=kind is UnlessNode)
        else:
            raise _Unsupported(kind.__name__)
    if len(w.lines) == start:
        w.emit(depth, "pass")


def _output(w: _Writer, depth: int, expression: Any) -> None:
    if type(expression) is not FilteredExpression:
        raise _Unsupported("output expression")
    value = w.name()
    left = expression.left
    if type(left) is Path and _plain(left.path):
        # The common case, inline: names looked up with [] (what get_item does for them).
        lookup = "M" + "".join(f"[{w.constant(s)}]" for s in left.path)
        w.emit(depth, "try:")
        w.emit(depth + 1, f"{value} = {lookup}")
        w.emit(depth, "except (KeyError, TypeError, IndexError):")
        w.emit(depth + 1, f"{value} = UNDEFINED({w.constant(left.path[0])}, token=None)")
    else:
        w.emit(depth, f"{value} = {_value(w, left)}")
    for node in expression.filters or ():
        _filter(w, depth, value, node)
    w.emit(depth, f"a({value} if {value}.__class__ is str else STR({value}, False))")


def _plain(segments: Any) -> bool:
    """Names only, no special property, not rooted at the builtin now/today."""
    return (
        bool(segments)
        and all(type(s) is str for s in segments)
        and segments[0] not in builtin
        and not any(s in _SPECIAL for s in segments[1:])
    )


def _value(w: _Writer, expression: Any) -> str:
    """A Python expression for a Liquid value: a lookup or a constant."""
    if isinstance(expression, _CONSTANTS):
        return w.constant(expression.evaluate(cast(Any, _ANY_SCOPE)))
    if type(expression) is Path:
        segments = list(expression.path)
        if not segments or not isinstance(segments[0], str):
            raise _Unsupported("path")
        if not all(type(s) is str or type(s) is int for s in segments):
            raise _Unsupported("nested path")  # user[trigger.key]
        return f"{w.constant(_lookup(segments, expression.token))}(M)"
    raise _Unsupported(type(expression).__name__)


def _filter(w: _Writer, depth: int, value: str, node: Filter) -> None:
    func = ENV.filters.get(node.name)
    if func is None or getattr(func, "with_context", False):
        raise _Unsupported(f"filter {node.name}")
    args = []
    keywords = []
    for arg in node.args:
        if type(arg) is PositionalArgument:
            args.append(_value(w, arg.value))
        elif type(arg) is KeywordArgument:
            keywords.append(f"{w.constant(arg.name)}: {_value(w, arg.value)}")
        else:
            raise _Unsupported("filter argument")
    if getattr(func, "with_environment", False):  # as RenderContext.filter passes it
        keywords.append(f"'environment': {w.constant(ENV)}")
    if keywords:
        args.append("**{" + ", ".join(keywords) + "}")
    call = ", ".join([value, *args])
    message = w.constant(f"{node.name}: ")
    if func is _DEFAULT and len(args) == 1 and not keywords:
        # `default` on a string, inline: the string unless it is empty, which is what the
        # filter returns for one; any other value goes to the filter.
        w.emit(depth, f"if {value}.__class__ is str:")
        w.emit(depth + 1, f"{value} = SIZE({value} or {args[0]})")
        w.emit(depth, "else:")
        depth += 1
    w.emit(depth, "try:")
    w.emit(depth + 1, f"{value} = SIZE({w.constant(func)}({call}))")
    w.emit(depth, "except TypeError as e:  # as Filter.evaluate reports it")
    w.emit(depth + 1, f"raise TypeErr({message} + str(e), token=None) from e")


def _condition(w: _Writer, expression: Any) -> str:
    """A Python expression for a Liquid condition, built on python-liquid's comparisons."""
    kind = type(expression)
    if kind is BooleanExpression or isinstance(expression, BooleanExpression):
        return f"T({_condition(w, expression.expression)})"
    if kind is LogicalAndExpression:
        return f"(T({_condition(w, expression.left)}) and T({_condition(w, expression.right)}))"
    if kind is LogicalOrExpression:
        return f"(T({_condition(w, expression.left)}) or T({_condition(w, expression.right)}))"
    if kind is LogicalNotExpression:
        return f"(not T({_condition(w, expression.right)}))"
    if kind in _COMPARISONS:
        left = _condition(w, expression.left)
        right = _condition(w, expression.right)
        return _COMPARISONS[kind](left, right)
    return _value(w, expression)


_COMPARISONS: dict[type, Callable[[str, str], str]] = {
    EqExpression: lambda a, b: f"EQ({a}, {b})",
    NeExpression: lambda a, b: f"(not EQ({a}, {b}))",
    LtExpression: lambda a, b: f"LT(None, {a}, {b})",
    GtExpression: lambda a, b: f"LT(None, {b}, {a})",
    LeExpression: lambda a, b: f"LE({a}, {b})",
    GeExpression: lambda a, b: f"LE({b}, {a})",
    ContainsExpression: lambda a, b: f"CT(None, {a}, {b})",
}


def _conditional(w: _Writer, depth: int, node: Any, *, negate_first: bool) -> None:
    branches = [(node.condition, node.consequence)]
    branches += [(alt.expression, alt.block) for alt in node.alternatives]
    for index, (condition, block) in enumerate(branches):
        flag = w.name()
        w.emit(depth, "try:")
        w.emit(depth + 1, f"{flag} = {_condition(w, condition)}")
        w.emit(depth, "except TypeErr:  # an invalid condition is false")
        w.emit(depth + 1, f"{flag} = False")
        negate = "not " if index == 0 and negate_first else ""
        w.emit(depth, f"if {negate}{flag}:")
        _branch(w, depth + 1, block)
        w.emit(depth, "else:")
        depth += 1
    if node.default is not None:
        _branch(w, depth, node.default)
    else:
        w.emit(depth, "pass")


def _branch(w: _Writer, depth: int, block: Any) -> None:
    """A blank block (only whitespace and tags) outputs nothing in Liquid."""
    if ENV.suppress_blank_control_flow_blocks and block.blank:
        _block(w, depth, [n for n in block.nodes if type(n) is not ContentNode])
    else:
        _block(w, depth, block.nodes)
