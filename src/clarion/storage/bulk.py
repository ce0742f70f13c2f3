"""Dialect-aware bulk helpers (the same call on SQLite and PostgreSQL)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import cache
from typing import Any

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
