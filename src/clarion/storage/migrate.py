"""Alembic glue: the schema is created and changed only by the migrations in clarion/migrations."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, Index

from clarion.storage.db import make_engine
from clarion.storage.models import VALUE_INDEXES

SORT_RUN_KB = 16 * 1024  # SQLite index builds: the sorter's run size (see restore_indexes)
MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"


def include_name(name: str | None, type_: str, parent_names: Any) -> bool:
    """What Alembic compares with the models: not Procrastinate's tables (migration 0012),
    which are its own."""
    return not (type_ == "table" and (name or "").startswith("procrastinate_"))


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade(url: str, revision: str = "head") -> None:
    """Bring the database at ``url`` to ``revision``, and rebuild any index that a killed
    bulk import left dropped."""
    command.upgrade(alembic_config(url), revision)
    if revision == "head":
        engine = make_engine(url)
        try:
            with engine.begin() as conn:
                restore_indexes(conn, VALUE_INDEXES)
        finally:
            engine.dispose()


def restore_indexes(conn: Connection, indexes: Iterable[Index]) -> None:
    """Create those of ``indexes`` that the database lacks (a sort, much faster than
    maintaining them row by row during a bulk load)."""
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql("SET LOCAL maintenance_work_mem = '512MB'")
    else:
        # SQLite's sorter sorts runs of cache_size and merges them, each run on a helper
        # thread. Small runs on every core beat one large in-memory sort: 3M property rows
        # index in 3.8 s with 16 MiB runs on two threads, 8.6 s in one 1 GiB run.
        conn.exec_driver_sql(f"PRAGMA cache_size=-{SORT_RUN_KB}")
        conn.exec_driver_sql(f"PRAGMA threads={min(8, os.cpu_count() or 1)}")
    for index in indexes:
        index.create(conn, checkfirst=True)
