"""Dialect-aware bulk helpers (the same call on SQLite and PostgreSQL)."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from functools import cache, lru_cache
from itertools import chain
from operator import itemgetter
from typing import Any

import orjson
from sqlalchemy import (
    BindParameter,
    ColumnElement,
    Dialect,
    Table,
    any_,
    bindparam,
    func,
    literal_column,
    select,
)
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
    """INSERT rows of driver-level values: for bulk paths, where building and processing a
    dict per row costs more than the insert. ``bind_processor`` turns Python values into
    what the driver expects, column by column. On SQLite as multi-row VALUES (see below: the
    importer's reader runs on a thread beside this one), on PostgreSQL by COPY."""
    if not rows:
        return
    conn = session.connection()
    if conn.dialect.name == "sqlite":
        most = _sqlite_variables() // len(columns)
        for n, params in _pieces(rows, most):
            conn.exec_driver_sql(_values_insert(table.name, tuple(columns), n), params)
        return
    replace(_copy_of(conn.dialect, table, tuple(columns)), rows=rows).run(session)


@lru_cache(maxsize=64)
def _values_insert(table: str, columns: tuple[str, ...], rows: int) -> str:
    row = f"({', '.join('?' * len(columns))})"
    return f"INSERT INTO {table} ({', '.join(columns)}) VALUES {', '.join([row] * rows)}"


def in_values(
    column: ColumnElement[Any], values: Sequence[Any], dialect: Dialect
) -> ColumnElement[bool]:
    """``column IN (values)`` with the values as one parameter: a JSON array read by
    ``json_each`` on SQLite, an array on PostgreSQL. ``in_()`` binds one parameter per
    value, and SQLAlchemy renders each of them on every call (for 7,500 device ids, a fifth
    of the importer's writer thread)."""
    if dialect.name == "postgresql":
        return column == any_(bindparam(None, list(values), type_=postgresql.ARRAY(column.type)))
    array: BindParameter[str] = bindparam(None, orjson.dumps(list(values)).decode())
    return column.in_(select(literal_column("value")).select_from(func.json_each(array)))


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
# - PostgreSQL: inserts by COPY (see Copy); updates by one JSON parameter (an array of arrays)
#   through jsonb_array_elements, each value cast to its column's type: one statement where an
#   executemany was one per row.

# Most rows per SQLite statement: its prepared form grows with the rows, and the driver keeps
# every distinct statement it ran prepared (a power of two rows, at most 256: nine sizes).
PIECE_ROWS = 256


@dataclass(frozen=True, slots=True)
class Batch:
    """Statements with their parameters, or rows to COPY (PostgreSQL's inserts). Built
    (encoded) before the transaction that runs them: the encoding is Python work, and on
    SQLite it need not hold the write lock."""

    statements: tuple[tuple[str, tuple[Any, ...]], ...] = ()
    copy: Copy | None = None

    def run(self, session: Session) -> int:
        """Runs the batch; returns the number of rows it wrote (an INSERT that skips rows
        colliding with a unique constraint counts those it did write)."""
        written = 0
        if self.copy is not None:
            written += self.copy.run(session)
        if self.statements:
            conn = session.connection()
            for sql, params in self.statements:
                written += conn.exec_driver_sql(sql, params).rowcount
        return written


_UNIQUE_VIOLATION = "23505"  # PostgreSQL's SQLSTATE


# COPY's binary format, by the base name of a column's compiled type: the name of the type
# whose binary form psycopg writes (text's serves varchar; an integer's size must match).
_BINARY = {
    "VARCHAR": "text", "TEXT": "text", "INTEGER": "int4", "BIGINT": "int8", "SMALLINT": "int2",
    "BOOLEAN": "bool", "TIMESTAMP WITH TIME ZONE": "timestamptz",
    "TIMESTAMP WITHOUT TIME ZONE": "timestamp", "TIMESTAMP": "timestamp",
}  # fmt: skip


@lru_cache(maxsize=64)
def _copy_of(dialect: Dialect, table: Table, columns: tuple[str, ...]) -> Copy:
    """The COPY of these columns, with no rows yet: in binary format where every column has a
    type listed in _BINARY (psycopg then writes each value in C without formatting it as
    text: 0.26 against 1.2 s for 200,000 message rows, measured side by side), else in text
    (JSON, numeric, ... columns)."""
    quote = dialect.identifier_preparer.quote
    sql = f"COPY {table.name} ({', '.join(map(quote, columns))}) FROM STDIN"
    compiled = [table.c[c].type.compile(dialect=dialect).split("(")[0] for c in columns]
    if any(name not in _BINARY for name in compiled):
        return Copy(sql, ())
    return Copy(f"{sql} (FORMAT BINARY)", (), binary=tuple(_BINARY[n] for n in compiled))


@dataclass(frozen=True, slots=True)
class Copy:
    """Rows for PostgreSQL's COPY FROM STDIN, its cheapest way in: no statement to plan, no
    JSON to parse and cast (1.7-2.6 against 2.9-4.0 s for 200,000 message rows, measured
    side by side). COPY cannot skip a row that collides with a unique constraint, so where such rows
    are to be skipped (a replay), it runs under a savepoint and, when one collides, gives
    way to the INSERT ... ON CONFLICT DO NOTHING that ``skipping`` builds."""

    sql: str
    rows: Sequence[Sequence[Any]]
    skipping: Callable[[], Batch] | None = None
    binary: tuple[str, ...] | None = None  # in binary format: the columns' types (psycopg's)

    def run(self, session: Session) -> int:
        """Copies the rows in; returns how many were written."""
        driver = session.connection().connection.driver_connection
        assert driver is not None
        with driver.cursor() as cursor:
            if self.skipping is None:
                self._copy(cursor)
                return len(self.rows)
            cursor.execute("SAVEPOINT bulk_copy")
            try:
                self._copy(cursor)
            except Exception as exc:
                if getattr(exc, "sqlstate", None) != _UNIQUE_VIOLATION:
                    raise
                cursor.execute("ROLLBACK TO SAVEPOINT bulk_copy")
                cursor.execute("RELEASE SAVEPOINT bulk_copy")
                return self.skipping().run(session)
            cursor.execute("RELEASE SAVEPOINT bulk_copy")
            return len(self.rows)

    def _copy(self, cursor: Any) -> None:
        with cursor.copy(self.sql) as copy:
            if self.binary is not None:
                copy.set_types(self.binary)
            for row in self.rows:
                copy.write_row(row)


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
    kind = "insert_ignore" if ignore_conflicts else "insert"
    columns = tuple(rows[0])
    if dialect.name != "postgresql":
        return _Shape.of(kind, table, columns, rows, dialect).batch(rows)
    values = _encoder(table, columns, dialect)(rows)

    def skipping() -> Batch:
        return _Shape.of(kind, table, columns, rows, dialect).batch(rows)

    copy = _copy_of(dialect, table, columns)
    return Batch(copy=replace(copy, rows=values, skipping=skipping if ignore_conflicts else None))


def update_batch(dialect: Dialect, table: Table, key: str, rows: Sequence[dict[str, Any]]) -> Batch:
    """UPDATE each row found by ``key`` (a unique column) with the other values of its dict
    (every dict with the same keys)."""
    if not rows:
        return Batch()
    columns = (key, *(c for c in rows[0] if c != key))
    return _Shape.of("update", table, columns, rows, dialect).batch(rows)


@dataclass(frozen=True, slots=True)
class _Shape:
    """A batch's statement kind and columns, split into those whose value is the same in
    every row (bound once, a parameter of the statement) and the others (a value per row);
    the first column (the key of an UPDATE, the id of an INSERT) is always per row. A
    broadcast's message rows share two thirds of their columns (the trigger, the channel,
    the time, ...): binding them once spares most of the values the driver would otherwise
    bind, under the GIL."""

    kind: str  # insert, insert_ignore or update
    table: Table
    columns: tuple[str, ...]
    shared: frozenset[str]
    dialect: Dialect

    @classmethod
    def of(
        cls,
        kind: str,
        table: Table,
        columns: tuple[str, ...],
        rows: Sequence[dict[str, Any]],
        dialect: Dialect,
    ) -> _Shape:
        return cls(kind, table, columns, _same_in_every_row(columns[1:], rows), dialect)

    @property
    def own(self) -> tuple[str, ...]:
        return tuple(c for c in self.columns if c not in self.shared)

    def batch(self, rows: Sequence[dict[str, Any]]) -> Batch:
        table, dialect, own = self.table, self.dialect, self.own
        constants = tuple(bind_processor(dialect, table, c)(rows[0][c])
                          for c in self.columns if c in self.shared)  # fmt: skip
        values = _encoder(table, own, dialect)(rows)
        if dialect.name == "sqlite":
            most = (_sqlite_variables() - len(constants)) // len(own)
            return Batch(tuple(
                (_sqlite_sql(self, n), constants + params)
                for n, params in _pieces(values, most)
            ))  # fmt: skip
        types = {c: table.c[c].type.compile(dialect=dialect) for c in self.columns}
        index = {c: i for i, c in enumerate(own)}
        exprs = [
            f"CAST(%s AS {types[c]})" if c in self.shared else
            f"CAST(j.value->>{index[c]} AS {types[c]})"
            for c in self.columns
        ]  # fmt: skip
        sql = self.statement(exprs, "jsonb_array_elements(%s::jsonb) AS j(value)")
        return Batch(((sql, (*constants, orjson.dumps(values).decode())),))

    def statement(self, exprs: list[str], source: str) -> str:
        """The SQL, given each column's value expression and the FROM item of the rows. The
        shared values' parameters come before the rows' in the text, as they are bound."""
        table, columns = self.table.name, self.columns
        quote = self.dialect.identifier_preparer.quote
        if self.kind == "update":
            sets = ", ".join(f"{quote(c)} = {v}" for c, v in zip(columns[1:], exprs[1:],
                                                                 strict=True))  # fmt: skip
            return (f"UPDATE {table} SET {sets} FROM {source} "
                    f"WHERE {table}.{quote(columns[0])} = {exprs[0]}")  # fmt: skip
        names = ", ".join(quote(c) for c in columns)
        # "WHERE true": SQLite's parser then reads ON CONFLICT as the INSERT's.
        tail = " WHERE true ON CONFLICT DO NOTHING" if self.kind == "insert_ignore" else ""
        return f"INSERT INTO {table} ({names}) SELECT {', '.join(exprs)} FROM {source}{tail}"


def _same_in_every_row(columns: Sequence[str], rows: Sequence[dict[str, Any]]) -> frozenset[str]:
    """The columns whose value equals the first row's in every row, compared in C (each
    column's values as a list, counted; the last row rules most varying columns out at
    once): 2.4 ms against 6.6 ms for a generator per column over 2,000 message rows."""
    first, last = rows[0], rows[-1]
    shared = []
    for column in columns:
        value = first[column]
        if last[column] != value:
            continue
        values = list(map(itemgetter(column), rows))
        if values.count(value) == len(values):
            shared.append(column)
    return frozenset(shared)


def _pieces(values: Sequence[Sequence[Any]], most: int) -> list[tuple[int, tuple[Any, ...]]]:
    """Rows in pieces of a power of two rows (at most PIECE_ROWS, and ``most``: SQLite's limit
    on bound parameters), largest first, each as (rows, its values in one flat tuple)."""
    size = 1 << (max(1, min(PIECE_ROWS, most)).bit_length() - 1)
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


_SQLITE_SQL: dict[tuple[_Shape, int], str] = {}


def _sqlite_sql(shape: _Shape, rows: int) -> str:
    """The shape's statement over ``rows`` rows of multi-row VALUES (SQLite names their
    columns column1, column2, ...), built once."""
    sql = _SQLITE_SQL.get((shape, rows))
    if sql is None:
        own = shape.own
        row = f"({', '.join('?' * len(own))})"
        index = {c: i for i, c in enumerate(own, start=1)}
        exprs = ["?" if c in shape.shared else f"v.column{index[c]}" for c in shape.columns]
        sql = shape.statement(exprs, f"(VALUES {', '.join([row] * rows)}) AS v")
        if len(_SQLITE_SQL) >= 512:  # bounded, like the driver's own statement cache
            _SQLITE_SQL.clear()
        _SQLITE_SQL[shape, rows] = sql
    return sql


Encoder = Callable[[Sequence[dict[str, Any]]], list[Sequence[Any]]]


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
    # A row's values in one C call (a tuple; itemgetter of one column gives the value alone).
    getter = itemgetter(*columns) if len(columns) > 1 else lambda row: (row[columns[0]],)
    if not processors:  # values bound as they are (a broadcast's ids, texts): no copy
        return lambda rows: list(map(getter, rows))

    def encode(rows: Sequence[dict[str, Any]]) -> list[Sequence[Any]]:
        out: list[Sequence[Any]] = []
        times: dict[datetime, Any] = {}  # a batch's rows often share a time: format it once
        for row in rows:
            values = list(getter(row))
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
