"""Alembic glue: the schema is created and changed only by the migrations in clarion/migrations."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, Index

from clarion.storage.db import make_engine
from clarion.storage.models import VALUE_INDEXES

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"


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
    # Sort in memory rather than in temporary files (SQLite's sorter spills past cache_size).
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql("SET LOCAL maintenance_work_mem = '512MB'")
    else:
        conn.exec_driver_sql("PRAGMA cache_size=-524288")
        # The sorter may use helper threads: an index over millions of rows builds in about
        # two thirds of the time on two cores.
        conn.exec_driver_sql(f"PRAGMA threads={min(8, os.cpu_count() or 1)}")
    for index in indexes:
        index.create(conn, checkfirst=True)
