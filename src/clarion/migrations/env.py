"""Alembic environment: runs migrations against the URL set by clarion.storage.migrate."""

from __future__ import annotations

from typing import Any, Literal

from alembic import context

from clarion.storage.db import make_engine
from clarion.storage.migrate import include_name
from clarion.storage.models import Base, UTCDateTime

config = context.config
target_metadata = Base.metadata


def render_item(type_: str, obj: Any, autogen_context: Any) -> str | Literal[False]:
    """Our type decorators are plain SQL types to the database: render them as such."""
    if type_ == "type" and isinstance(obj, UTCDateTime):
        return "sa.DateTime(timezone=True)"
    return False


def run_migrations_online() -> None:
    url = config.get_main_option("sqlalchemy.url")
    assert url
    engine = make_engine(url)
    with engine.connect() as connection:
        sqlite = connection.dialect.name == "sqlite"
        if sqlite:
            # SQLite changes a constraint by rebuilding the table (copy, drop, rename). With
            # foreign keys on, dropping a table deletes its rows first, ON DELETE actions
            # included: the rows that reference it would go too (message_attempts, when 0018
            # rebuilt messages). So the migrations run with the checks off (set outside the
            # transaction, where SQLite takes it), and the whole database is checked before
            # the commit.
            connection.execution_options(clarion_trusted=True)
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            render_as_batch=sqlite,
            transactional_ddl=True,  # SQLite too: an upgrade is whole or not at all
            render_item=render_item,
            include_name=include_name,
        )
        with context.begin_transaction():
            migration = context.get_context()
            before = migration.get_current_revision()
            context.run_migrations()
            if sqlite and migration.get_current_revision() != before:  # not at every start
                broken = connection.exec_driver_sql("PRAGMA foreign_key_check").all()
                if broken:  # rolled back, the database as it was
                    problem = f"foreign keys do not hold after the migrations: {broken[:5]}"
                    raise RuntimeError(problem)
    engine.dispose()


run_migrations_online()
