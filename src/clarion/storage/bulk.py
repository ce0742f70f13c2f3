"""Dialect-aware bulk helpers (the same call on SQLite and PostgreSQL)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import cache, lru_cache
from typing import Any

import orjson
from sqlalchemy import Dialect, Table, bindparam, insert, update
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
# one to yield (up to the 5 ms switch interval): an executemany of 2,000 rows beside a busy
# thread took minutes instead of milliseconds (bench/broadcast.py's profile, and a side-by-side
# measurement in the closing note of issue 10). So on SQLite a batch of rows travels as one
# JSON parameter and one statement (json_each) does all of it with the GIL released once.
# PostgreSQL's driver sends an executemany in one pipeline and takes the same statements.


def insert_rows(
    session: Session,
    table: Table,
    rows: Sequence[dict[str, Any]],
    *,
    ignore_conflicts: bool = False,
) -> None:
    """INSERT rows (dicts with the same keys), optionally skipping any that collide with a
    unique constraint, in one statement on SQLite."""
    if not rows:
        return
    conn = session.connection()
    columns = tuple(rows[0])
    if conn.dialect.name != "sqlite":
        stmt = _insert_ignore(table, conn.dialect.name) if ignore_conflicts else insert(table)
        session.execute(stmt, list(rows))
        return
    sql, encode = _json_insert(table, columns, ignore_conflicts, conn.dialect)
    conn.exec_driver_sql(sql, (encode(rows),))


def update_rows(session: Session, table: Table, key: str, rows: Sequence[dict[str, Any]]) -> None:
    """UPDATE each row found by ``key`` (a unique column) with the other values of its dict (every
    dict with the same keys), in one statement on SQLite."""
    if not rows:
        return
    conn = session.connection()
    columns = (key, *(c for c in rows[0] if c != key))
    if conn.dialect.name != "sqlite":
        session.execute(_keyed_update(table, columns), [
            {f"b_{c}": row[c] for c in columns} for row in rows
        ])  # fmt: skip
        return
    sql, encode = _json_update(table, columns, conn.dialect)
    conn.exec_driver_sql(sql, (encode(rows),))


Encoder = Callable[[Sequence[dict[str, Any]]], str]


@lru_cache(maxsize=64)
def _json_insert(
    table: Table, columns: tuple[str, ...], ignore: bool, dialect: Dialect
) -> tuple[str, Encoder]:
    values = ", ".join(f"j.value->>{i}" for i in range(len(columns)))
    # "WHERE true" tells SQLite's parser that ON CONFLICT belongs to the INSERT.
    sql = (
        f"INSERT INTO {table.name} ({', '.join(columns)}) SELECT {values} "
        f"FROM json_each(?) AS j WHERE true{' ON CONFLICT DO NOTHING' if ignore else ''}"
    )
    return sql, _encoder(table, columns, dialect)


@lru_cache(maxsize=64)
def _json_update(table: Table, columns: tuple[str, ...], dialect: Dialect) -> tuple[str, Encoder]:
    key, *rest = columns
    sets = ", ".join(f"{c} = j.value->>{i}" for i, c in enumerate(rest, start=1))
    where = f"{table.name}.{key} = j.value->>0"
    sql = f"UPDATE {table.name} SET {sets} FROM json_each(?) AS j WHERE {where}"
    return sql, _encoder(table, columns, dialect)


@cache
def _keyed_update(table: Table, columns: tuple[str, ...]) -> Any:
    key, *rest = columns
    return (
        update(table)
        .where(table.c[key] == bindparam(f"b_{key}"))
        .values({c: bindparam(f"b_{c}") for c in rest})
    )


def _encoder(table: Table, columns: tuple[str, ...], dialect: Dialect) -> Encoder:
    """Rows to one JSON array of arrays, each value as SQLAlchemy would bind it (datetimes in
    the dialect's text form, booleans as integers)."""
    processors = [
        (i, column, processor)
        for i, column in enumerate(columns)
        if (processor := bind_processor(dialect, table, column)) is not _same
    ]

    def encode(rows: Sequence[dict[str, Any]]) -> str:
        out = []
        for row in rows:
            values = [row[c] for c in columns]
            for i, column, processor in processors:
                values[i] = processor(row[column])
            out.append(values)
        return orjson.dumps(out).decode()

    return encode
