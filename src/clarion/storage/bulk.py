"""Dialect-aware bulk helpers (the same call on SQLite and PostgreSQL)."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cache, lru_cache
from itertools import chain
from typing import Any

import orjson
from sqlalchemy import Dialect, Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session


@cache
def _insert_ignore(table: Table, dialect: str) -> Any:
    if dialect == "postgresql":
        return postgresql.insert(table).on_conflict_do_nothing()
    return sqlite.insert(table).on_conflict_do_nothing()


def insert_ignore(session: Session, table: Table, rows: Sequence[dict[str, Any]]) -> None:
    """INSERT rows, silently skipping any that collide with a unique constraint."""
    if rows:
        dialect = session.get_bind().dialect.name
        session.execute(_insert_ignore(table, dialect), list(rows))


def insert_tuples(
    session: Session, table: Table, columns: Sequence[str], rows: Sequence[tuple[Any, ...]]
) -> None:
    """INSERT rows of driver-level values straight through the driver's executemany: for
    bulk paths, where building and processing a dict per row costs more than the insert.
    ``bind_processor`` turns Python values into what the driver expects, column by column."""
    if not rows:
        return
    conn = session.connection()
    mark = "?" if conn.dialect.paramstyle == "qmark" else "%s"
    sql = (
        f"INSERT INTO {table.name} ({', '.join(columns)}) "
        f"VALUES ({', '.join([mark] * len(columns))})"
    )
    conn.exec_driver_sql(sql, list(rows))


def bind_processor(dialect: Dialect, table: Table, column: str) -> Callable[[Any], Any]:
    """What SQLAlchemy does to a value of ``column`` before handing it to the driver
    (JSON serialised, datetimes in the dialect's form, ...)."""
    processor = table.c[column].type.dialect_impl(dialect).bind_processor(dialect)
    return processor if processor is not None else _same


def _same(value: Any) -> Any:
    return value


# -- a few statements per batch ---------------------------------------------------------------
# The pipeline's writers run beside threads that render in Python. SQLite's driver lets go of
# the GIL around every row it steps through, and a thread taking it back waits for the running
# one to yield (up to the 5 ms switch interval). Measured side by side: an INSERT and two
# UPDATEs by executemany over 100,000 rows took 1.5 s alone and had not finished after ten
# minutes beside a thread computing in Python; as one statement per 2,000 rows, 1.4 s and
# 3.1 s. So a batch of rows goes in a few statements, each stepped once:
# - SQLite: multi-row VALUES with bound parameters, in pieces of a power of two rows (a few
#   distinct statements, which the driver keeps prepared). Measured over 200,000 message rows
#   with the pipeline's indexes, in sqlite3 alone: the INSERT took 1.09 s this way, 1.39 s by
#   executemany and 2.15 s through one JSON parameter (json_each, a ->> per column); the
#   outcome UPDATE 1.12, 1.21 and 1.64 s.
# - PostgreSQL: one JSON parameter (an array of arrays) through json_array_elements, each value
#   cast to its column's type: one statement where an executemany was one per row.

# Most rows per SQLite statement: its prepared form grows with the rows, and the driver keeps
# every distinct statement it ran prepared (a power of two at most: ~8 sizes per statement).
PIECE_ROWS = 256


@dataclass(frozen=True, slots=True)
class Batch:
    """Statements with their parameters. Built (encoded) before the transaction that runs
    them: the encoding is Python work, and on SQLite it need not hold the write lock."""

    statements: tuple[tuple[str, tuple[Any, ...]], ...] = ()

    def run(self, session: Session) -> None:
        if self.statements:
            conn = session.connection()
            for sql, params in self.statements:
                conn.exec_driver_sql(sql, params)


def insert_batch(
    dialect: Dialect,
    table: Table,
    rows: Sequence[dict[str, Any]],
    *,
    ignore_conflicts: bool = False,
) -> Batch:
    """INSERT rows (dicts with the same keys), optionally skipping any that collide with a
    unique constraint. Unlike insert_ignore, no Python-side column default is applied: the
    rows carry every value their table needs."""
    if not rows:
        return Batch()
    columns = tuple(rows[0])
    values = _encoder(table, columns, dialect)(rows)
    conflict = " ON CONFLICT DO NOTHING" if ignore_conflicts else ""
    if dialect.name == "sqlite":
        return Batch(tuple(
            (_sqlite_insert(table, columns, n) + conflict, params)
            for n, params in _pieces(values, len(columns))
        ))  # fmt: skip
    source, exprs = _json_source(table, columns, dialect)
    sql = (
        f"INSERT INTO {table.name} ({_names(dialect, columns)}) SELECT {', '.join(exprs)} "
        f"FROM {source}{conflict}"
    )
    return Batch(((sql, (orjson.dumps(values).decode(),)),))


def update_batch(dialect: Dialect, table: Table, key: str, rows: Sequence[dict[str, Any]]) -> Batch:
    """UPDATE each row found by ``key`` (a unique column) with the other values of its dict
    (every dict with the same keys)."""
    if not rows:
        return Batch()
    columns = (key, *(c for c in rows[0] if c != key))
    values = _encoder(table, columns, dialect)(rows)
    if dialect.name == "sqlite":
        return Batch(tuple(
            (_sqlite_update(table, columns, n), params)
            for n, params in _pieces(values, len(columns))
        ))  # fmt: skip
    source, exprs = _json_source(table, columns, dialect)
    sql = f"UPDATE {table.name} SET {_sets(dialect, columns, exprs)} FROM {source} WHERE " + (
        f"{table.name}.{dialect.identifier_preparer.quote(key)} = {exprs[0]}"
    )
    return Batch(((sql, (orjson.dumps(values).decode(),)),))


def _pieces(values: list[list[Any]], width: int) -> list[tuple[int, tuple[Any, ...]]]:
    """Rows in pieces of a power of two rows (within SQLite's limit on bound parameters),
    largest first, each as (rows, its values in one flat tuple)."""
    most = min(PIECE_ROWS, max(1, _sqlite_variables() // width))
    size = 1 << (most.bit_length() - 1)
    out = []
    at = 0
    while at < len(values):
        while size > len(values) - at:
            size >>= 1
        out.append((size, tuple(chain.from_iterable(values[at : at + size]))))
        at += size
    return out


@cache
def _sqlite_variables() -> int:
    """The most parameters one statement may bind (32,766 by default since SQLite 3.32)."""
    conn = sqlite3.connect(":memory:")
    try:
        return conn.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)
    finally:
        conn.close()


@lru_cache(maxsize=256)
def _sqlite_insert(table: Table, columns: tuple[str, ...], rows: int) -> str:
    row = f"({', '.join('?' * len(columns))})"
    names = ", ".join(f'"{c}"' for c in columns)
    return f"INSERT INTO {table.name} ({names}) VALUES {', '.join([row] * rows)}"


@lru_cache(maxsize=256)
def _sqlite_update(table: Table, columns: tuple[str, ...], rows: int) -> str:
    """SQLite names a VALUES list's columns column1, column2, ..."""
    row = f"({', '.join('?' * len(columns))})"
    sets = ", ".join(f'"{c}" = v.column{i + 2}' for i, c in enumerate(columns[1:]))
    return (
        f"UPDATE {table.name} SET {sets} FROM (VALUES {', '.join([row] * rows)}) AS v "
        f'WHERE {table.name}."{columns[0]}" = v.column1'
    )


def _names(dialect: Dialect, columns: tuple[str, ...]) -> str:
    return ", ".join(dialect.identifier_preparer.quote(c) for c in columns)


def _sets(dialect: Dialect, columns: tuple[str, ...], exprs: list[str]) -> str:
    quote = dialect.identifier_preparer.quote
    return ", ".join(f"{quote(c)} = {v}" for c, v in zip(columns[1:], exprs[1:], strict=True))


@lru_cache(maxsize=64)
def _json_source(table: Table, columns: tuple[str, ...], dialect: Dialect) -> tuple[str, list[str]]:
    """PostgreSQL: the FROM item that spreads the JSON parameter into rows, and each column's
    value cast to its type."""
    types = [table.c[c].type.compile(dialect=dialect) for c in columns]
    return "json_array_elements(%s::json) AS j(value)", [
        f"CAST(j.value->>{i} AS {t})" for i, t in enumerate(types)
    ]


Encoder = Callable[[Sequence[dict[str, Any]]], list[list[Any]]]


@lru_cache(maxsize=64)
def _encoder(table: Table, columns: tuple[str, ...], dialect: Dialect) -> Encoder:
    """Rows to lists of values, each as SQLAlchemy would bind it: on SQLite datetimes in its
    text form and booleans as integers; on PostgreSQL (where they go as JSON) datetimes go as
    ISO 8601 (orjson) and every value is cast back to its column's type."""
    processors = [
        (i, column, processor)
        for i, column in enumerate(columns)
        if (processor := bind_processor(dialect, table, column)) is not _same
    ]

    def encode(rows: Sequence[dict[str, Any]]) -> list[list[Any]]:
        out = []
        times: dict[datetime, Any] = {}  # a batch's rows often share a time: format it once
        for row in rows:
            values = [row[c] for c in columns]
            for i, column, processor in processors:
                value = row[column]
                if isinstance(value, datetime):
                    if value not in times:
                        times[value] = processor(value)
                    values[i] = times[value]
                else:
                    values[i] = processor(value)
            out.append(values)
        return out

    return encode
