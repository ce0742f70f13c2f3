"""Dialect-aware bulk helpers (the same call on SQLite and PostgreSQL)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cache, lru_cache
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


# -- one statement per batch -------------------------------------------------------------------
# The pipeline's writers run beside threads that render in Python. SQLite's driver lets go of
# the GIL around every row it steps through, and a thread taking it back waits for the running
# one to yield (up to the 5 ms switch interval). Measured side by side: an INSERT and two
# UPDATEs by executemany over 100,000 rows took 1.5 s alone and had not finished after ten
# minutes beside a thread computing in Python; as one statement per 2,000 rows, 1.4 s and
# 3.1 s. So a batch of rows travels as one JSON parameter (an array of arrays) and one
# statement does all of it: json_each on SQLite, letting go of the GIL once; on PostgreSQL,
# json_array_elements with each value cast to its column's type, one statement where an
# executemany was one per row.


@dataclass(frozen=True, slots=True)
class Batch:
    """One statement and its JSON parameter. Built (encoded) before the transaction that runs
    it: the encoding is Python work, and on SQLite it need not hold the write lock."""

    sql: str = ""
    param: str = ""

    def run(self, session: Session) -> None:
        if self.sql:
            session.connection().exec_driver_sql(self.sql, (self.param,))


def insert_batch(
    dialect: Dialect,
    table: Table,
    rows: Sequence[dict[str, Any]],
    *,
    ignore_conflicts: bool = False,
) -> Batch:
    """INSERT rows (dicts with the same keys) in one statement, optionally skipping any that
    collide with a unique constraint. Unlike insert_ignore, no Python-side column default is
    applied: the rows carry every value their table needs."""
    if not rows:
        return Batch()
    sql, encode = _json_insert(table, tuple(rows[0]), ignore_conflicts, dialect)
    return Batch(sql, encode(rows))


def update_batch(dialect: Dialect, table: Table, key: str, rows: Sequence[dict[str, Any]]) -> Batch:
    """UPDATE each row found by ``key`` (a unique column) with the other values of its dict
    (every dict with the same keys), in one statement."""
    if not rows:
        return Batch()
    columns = (key, *(c for c in rows[0] if c != key))
    sql, encode = _json_update(table, columns, dialect)
    return Batch(sql, encode(rows))


Encoder = Callable[[Sequence[dict[str, Any]]], str]


@lru_cache(maxsize=64)
def _json_insert(
    table: Table, columns: tuple[str, ...], ignore: bool, dialect: Dialect
) -> tuple[str, Encoder]:
    source, values = _json_source(table, columns, dialect)
    names = ", ".join(dialect.identifier_preparer.quote(c) for c in columns)
    # "WHERE true" tells SQLite's parser that ON CONFLICT belongs to the INSERT.
    sql = (
        f"INSERT INTO {table.name} ({names}) SELECT {', '.join(values)} FROM {source} "
        f"WHERE true{' ON CONFLICT DO NOTHING' if ignore else ''}"
    )
    return sql, _encoder(table, columns, dialect)


@lru_cache(maxsize=64)
def _json_update(table: Table, columns: tuple[str, ...], dialect: Dialect) -> tuple[str, Encoder]:
    source, values = _json_source(table, columns, dialect)
    quote = dialect.identifier_preparer.quote
    sets = ", ".join(f"{quote(c)} = {v}" for c, v in zip(columns[1:], values[1:], strict=True))
    where = f"{table.name}.{quote(columns[0])} = {values[0]}"
    return f"UPDATE {table.name} SET {sets} FROM {source} WHERE {where}", _encoder(
        table, columns, dialect
    )


def _json_source(table: Table, columns: tuple[str, ...], dialect: Dialect) -> tuple[str, list[str]]:
    """The FROM item that spreads the JSON parameter into rows, and each column's value."""
    if dialect.name == "sqlite":
        return "json_each(?) AS j", [f"j.value->>{i}" for i in range(len(columns))]
    types = [table.c[c].type.compile(dialect=dialect) for c in columns]
    return "json_array_elements(%s::json) AS j(value)", [
        f"CAST(j.value->>{i} AS {t})" for i, t in enumerate(types)
    ]


def _encoder(table: Table, columns: tuple[str, ...], dialect: Dialect) -> Encoder:
    """Rows to one JSON array of arrays, each value as SQLAlchemy would bind it: on SQLite
    datetimes in its text form and booleans as integers; on PostgreSQL datetimes go as ISO
    8601 (orjson) and every value is cast back to its column's type."""
    processors = [
        (i, column, processor)
        for i, column in enumerate(columns)
        if (processor := bind_processor(dialect, table, column)) is not _same
    ]

    def encode(rows: Sequence[dict[str, Any]]) -> str:
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
        return orjson.dumps(out).decode()

    return encode
