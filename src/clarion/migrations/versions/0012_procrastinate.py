"""Procrastinate's schema, on PostgreSQL (for CLARION_TASK_ENGINE=procrastinate).

Applied on every PostgreSQL database, so that switching a deployment's engine needs no
migration; SQLite has no use for it. The schema is the one shipped in the installed
Procrastinate package (its version is locked in requirements.lock); a later Procrastinate
that changes it comes with its own migration here.

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-27 06:30:00
"""

from __future__ import annotations

from alembic import op
from procrastinate.schema import SchemaManager

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    if bind.exec_driver_sql("SELECT to_regclass('procrastinate_jobs')").scalar() is not None:
        return
    _script(SchemaManager.get_schema())


def _script(sql: str) -> None:
    """Many statements, no parameters: straight to psycopg, which sends them as one script
    (and, given no parameters, leaves their % signs alone)."""
    op.get_bind().connection.driver_connection.execute(sql)  # type: ignore[union-attr]


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    _script(
        """
        DO $$
        DECLARE f record;
        BEGIN
            FOR f IN SELECT p.oid::regprocedure AS sig FROM pg_proc p
                     JOIN pg_namespace n ON n.oid = p.pronamespace
                     WHERE n.nspname = current_schema() AND p.proname LIKE 'procrastinate%'
            LOOP
                EXECUTE 'DROP FUNCTION ' || f.sig || ' CASCADE';
            END LOOP;
        END $$;
        DROP TABLE IF EXISTS procrastinate_events, procrastinate_periodic_defers,
            procrastinate_jobs, procrastinate_workers CASCADE;
        DROP TYPE IF EXISTS procrastinate_job_to_defer_v1, procrastinate_job_event_type,
            procrastinate_job_status CASCADE;
        """
    )
