"""Compile audience rules to SQL, the same on SQLite and PostgreSQL.

The statement reads ``users LEFT JOIN devices`` (one row per user and device, or one row for
a user without devices) and filters it with the whole rule. So a rule that reads a device
attribute keeps only the user's matching devices, and a rule that reads none keeps them all:
the Clix semantics fall out of one expression.

Each custom-property condition is ``users.id IN (an index range over user_properties)``.
Every condition is two-valued (a missing value is false, never NULL), so NOT, AND and OR
mean what they say, exactly as in :mod:`clarion.audience.reference`.

A compiled statement depends only on the rule's shape; values (literals and ``trigger.*``)
are bound per execution, so each campaign version compiles once.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import (
    ColumnElement,
    Select,
    Table,
    and_,
    bindparam,
    case,
    exists,
    false,
    func,
    not_,
    or_,
    select,
    true,
)
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement
from sqlalchemy.types import Boolean, String

from clarion.audience.rules import NEGATIONS, Audience, Condition
from clarion.storage.models import Device, User, UserProperty

U = cast(Table, User.__table__)
D = cast(Table, Device.__table__)
P = cast(Table, UserProperty.__table__)
DAY = 86400.0


class _Contains(FunctionElement[bool]):
    """``b`` occurs in ``a``, case-sensitively on every database (SQLite's LIKE is not)."""

    name = "clarion_contains"
    inherit_cache = True
    type = Boolean()


@compiles(_Contains)
def _contains_sqlite(element: _Contains, compiler: SQLCompiler, **kw: Any) -> str:
    a, b = (compiler.process(c, **kw) for c in element.clauses)
    return f"(instr({a}, {b}) > 0)"


@compiles(_Contains, "postgresql")
def _contains_pg(element: _Contains, compiler: SQLCompiler, **kw: Any) -> str:
    a, b = (compiler.process(c, **kw) for c in element.clauses)
    return f"(strpos({a}, {b}) > 0)"


class _Bytes(FunctionElement[str]):
    """Text compared byte by byte (PostgreSQL's default collation may not be)."""

    name = "clarion_bytes"
    inherit_cache = True
    type = String()


@compiles(_Bytes)
def _bytes_default(element: _Bytes, compiler: SQLCompiler, **kw: Any) -> str:
    return compiler.process(element.clauses, **kw)


@compiles(_Bytes, "postgresql")
def _bytes_pg(element: _Bytes, compiler: SQLCompiler, **kw: Any) -> str:
    return f'({compiler.process(element.clauses, **kw)}) COLLATE "C"'


def effective_operands(condition: Condition, operands: list[Any], now: float) -> list[Any]:
    """Operands as compared: day counts become instants relative to ``now``. Shared with the
    reference evaluator, so both compare the same numbers."""
    if condition.operator == "within_last_days":
        return [now - operands[0] * DAY, now]
    if condition.operator == "more_than_days_ago":
        return [now - operands[0] * DAY]
    return operands


def _compare(column: Any, op: str, i: int, type_: str) -> ColumnElement[bool]:
    """``column op operand(s) of condition i`` for a positive operator."""

    def p(j: int = 0) -> Any:
        return bindparam(f"c{i}_{j}")

    if op == "exists":
        return true()
    if op in ("is_true", "is_false"):
        return cast(ColumnElement[bool], column == (op == "is_true"))
    if op == "in":
        return column.in_(bindparam(f"c{i}", expanding=True))  # type: ignore[no-any-return]
    if op == "contains":
        return _Contains(column, p())
    if op == "starts_with":
        return cast(ColumnElement[bool], func.substr(column, 1, func.length(p())) == p())
    if op == "between":
        return and_(column >= p(0), column <= p(1))
    if op == "within_last_days":
        return and_(column >= p(0), column <= p(1))
    operand = p()
    if type_ == "version":
        column, operand = _Bytes(column), _Bytes(bindparam(f"c{i}_0", type_=String()))
    symbol = {
        "eq": "__eq__", "gt": "__gt__", "gte": "__ge__", "lt": "__lt__", "lte": "__le__",
        "before": "__lt__", "after": "__gt__", "more_than_days_ago": "__lt__",
    }[op]  # fmt: skip
    return cast(ColumnElement[bool], getattr(column, symbol)(operand))


def _property_predicate(table: Any, condition: Condition, op: str, i: int) -> Any:
    """The test on one ``user_properties`` row (``table`` may be an alias)."""
    if op in ("is_true", "is_false"):
        return table.c.value_text == ("true" if op == "is_true" else "false")
    type_ = condition.type or "string"
    column = table.c.value_text if type_ == "string" else table.c.value_num
    return _compare(column, op, i, type_)


def _positive(condition: Condition, op: str, i: int) -> ColumnElement[bool]:
    type_ = condition.type or "string"
    if condition.scope == "property":
        # A primary-key probe per candidate user: (user_id, key) is the key.
        return exists().where(
            P.c.user_id == U.c.id,
            P.c.key == condition.property_key,
            _property_predicate(P, condition, op, i),
        )
    if condition.attribute == "user_id":
        return _compare(U.c.project_user_id, op, i, type_)
    if condition.attribute == "last_session_at":
        return and_(U.c.last_session_at.is_not(None), _compare(U.c.last_session_at, op, i, type_))
    if condition.attribute == "app_version":
        column = D.c.app_version_key
        return and_(column.is_not(None), _compare(column, op, i, type_))
    column = D.c[condition.attribute]
    present = D.c.id.is_not(None) if type_ == "boolean" else and_(D.c.id.is_not(None), column != "")
    return and_(present, _compare(column, op, i, type_))


def _condition(condition: Condition, i: int) -> ColumnElement[bool]:
    positive = NEGATIONS.get(condition.operator)
    if positive is not None:
        return not_(_positive(condition, positive, i))
    return _positive(condition, condition.operator, i)


# A rule is a tree: (match, [(match, [(index, condition)])]).
Tree = tuple[str, list[tuple[str, list[tuple[int, Condition]]]]]
# Conditions that may drive the query, best first. Only equality and lists: without
# statistics a range or a presence test may admit nearly everyone, and then walking the
# property index and probing each user costs more than reading the users in order.
DRIVERS = {"eq": 0, "in": 1}
_DRIVER = P.alias("driver")


def tree(audience: Audience) -> Tree:
    groups: list[tuple[str, list[tuple[int, Condition]]]] = []
    for located in audience.located():
        if located.group == len(groups):
            groups.append((audience.groups[located.group].match, []))
        groups[-1][1].append((located.index, located.condition))
    return audience.match, groups


def _driver(rule: Tree) -> tuple[int, Condition] | None:
    """A positive custom-property condition every recipient must meet, if there is one.
    The query then starts from that condition's index range instead of every user."""
    match, groups = rule
    candidates = []
    for group_match, conditions in groups:
        if match != "all" and len(groups) > 1:
            break
        if group_match != "all" and len(conditions) > 1:
            continue
        for index, condition in conditions:
            if condition.scope == "property" and condition.operator in DRIVERS:
                candidates.append((DRIVERS[condition.operator], index, condition))
    if not candidates:
        return None
    _, index, condition = min(candidates, key=lambda c: (c[0], c[1]))
    return index, condition


def _frame(rule: Tree, targeted: bool) -> tuple[Any, list[ColumnElement[bool]]]:
    """FROM and WHERE for a rule: users LEFT JOIN devices, started from the driving
    condition's index range when there is one."""
    driver = _driver(rule)
    source: Any = U.outerjoin(D, D.c.user_id == U.c.id)  # user ids are unique across projects
    clauses: list[ColumnElement[bool]] = []
    if driver is not None:
        index, condition = driver
        source = _DRIVER.join(U, U.c.id == _DRIVER.c.user_id).outerjoin(D, D.c.user_id == U.c.id)
        clauses += [
            _DRIVER.c.project_id == bindparam("pid"),
            _DRIVER.c.key == condition.property_key,
            _property_predicate(_DRIVER, condition, condition.operator, index),
        ]
    clauses += [U.c.project_id == bindparam("pid"), U.c.project_user_id.is_not(None)]
    match, groups = rule
    join = {"all": and_, "any": or_}
    parts = [
        join[group_match](
            *[
                true() if driver and index == driver[0] else _condition(condition, index)
                for index, condition in conditions
            ]
        )
        for group_match, conditions in groups
    ]
    if parts:
        clauses.append(join[match](*parts))
    if targeted:
        clauses.append(
            or_(
                U.c.project_user_id.in_(bindparam("target_users", expanding=True)),
                D.c.id.in_(bindparam("target_devices", expanding=True)),
            )
        )
    return source, clauses


_compiled: dict[tuple[Any, ...], Select[Any]] = {}


def _cached(kind: str, audience: Audience, targeted: bool) -> Select[Any]:
    """Build each (kind, rule shape, targeted) statement once."""
    key = (kind, audience.shape(), targeted)
    stmt = _compiled.get(key)
    if stmt is None:
        if len(_compiled) > 2048:
            _compiled.clear()
        stmt = _BUILDERS[kind](audience, targeted)
        _compiled[key] = stmt
    return stmt


def _recipients(audience: Audience, targeted: bool) -> Select[Any]:
    source, where = _frame(tree(audience), targeted)
    columns = (U.c.id, U.c.project_user_id, D.c.id, D.c.push_token, D.c.is_push_permission_granted)
    return select(*columns).select_from(source).where(*where)


def _count(audience: Audience, targeted: bool) -> Select[Any]:
    source, where = _frame(tree(audience), targeted)
    return select(func.count()).select_from(source).where(*where)


def _tally(audience: Audience, targeted: bool) -> Select[Any]:
    """Users, devices and why some devices cannot be reached, in one pass."""
    token = and_(D.c.push_token.is_not(None), D.c.push_token != "")
    source, where = _frame(tree(audience), targeted)
    stmt = (
        select(
            func.count().label("rows"),
            func.count(U.c.id.distinct()).label("users"),
            func.count(D.c.id).label("devices"),
            func.sum(case((D.c.id.is_(None), 1), else_=0)).label("no_device"),
            func.sum(case((and_(D.c.id.is_not(None), ~token), 1), else_=0)).label("no_token"),
            func.sum(
                case((and_(token, D.c.is_push_permission_granted == false()), 1), else_=0)
            ).label("permission_off"),
        )
        .select_from(source)
        .where(*where)
    )
    return cast(Select[Any], stmt)


def params(
    project_id: str,
    audience: Audience,
    bound: Sequence[list[Any]],
    now: float,
    targets: Sequence[dict[str, str]] | None = None,
) -> dict[str, Any]:
    """The statement's parameters: the project, each condition's operands (from
    :meth:`Audience.bind`), and the targets."""
    out: dict[str, Any] = {"pid": project_id}
    for located, operands in zip(audience.located(), bound, strict=True):
        condition, i = located.condition, located.index
        values = effective_operands(condition, operands, now)
        if condition.attribute == "last_session_at":
            values = [datetime.fromtimestamp(v, UTC) for v in values]
        if NEGATIONS.get(condition.operator, condition.operator) == "in":
            out[f"c{i}"] = values
        else:
            out.update({f"c{i}_{j}": v for j, v in enumerate(values)})
    if targets is not None:
        out["target_users"] = [t["project_user_id"] for t in targets if "project_user_id" in t]
        out["target_devices"] = [t["device_id"] for t in targets if "device_id" in t]
    return out


def recipients(audience: Audience, targeted: bool) -> Select[Any]:
    """(user id, project user id, device id, push token, permission) for every recipient."""
    return _cached("recipients", audience, targeted)


def count(audience: Audience, targeted: bool) -> Select[Any]:
    """The number of recipients (user and device pairs, or users without a device)."""
    return _cached("count", audience, targeted)


def tally(audience: Audience, targeted: bool) -> Select[Any]:
    """rows, users, devices, no_device, no_token, permission_off."""
    return _cached("tally", audience, targeted)


def admitted(condition: Condition, index: int) -> Select[Any]:
    """Users and devices that one condition admits on its own (parameters as in params())."""
    source, where = _frame(("all", [("all", [(index, condition)])]), False)
    columns = (func.count(U.c.id.distinct()), func.count(D.c.id))
    return cast(Select[Any], select(*columns).select_from(source).where(*where))


_BUILDERS = {"recipients": _recipients, "count": _count, "tally": _tally}
