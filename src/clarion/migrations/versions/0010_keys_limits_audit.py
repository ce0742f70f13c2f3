"""Key scopes, expiry and last use; per-project rate and broadcast limits; the audit log;
triggers indexed by project and time (the broadcast guard).

Keys made before this revision keep what they could do: secret keys get every scope,
public keys ``ingest``.

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-27 03:20:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("api_keys") as batch:
        batch.add_column(sa.Column("scopes", sa.JSON(), nullable=False, server_default="[]"))
        batch.add_column(sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True))
    keys = sa.table("api_keys", sa.column("kind", sa.String), sa.column("scopes", sa.JSON))
    op.execute(
        keys.update()
        .where(keys.c.kind == "secret")
        .values(scopes=sa.cast(sa.literal('["trigger", "ingest", "read", "admin"]'), sa.JSON))
    )
    op.execute(
        keys.update()
        .where(keys.c.kind != "secret")
        .values(scopes=sa.cast(sa.literal('["ingest"]'), sa.JSON))
    )
    with op.batch_alter_table("projects") as batch:
        batch.add_column(sa.Column("rate_limit", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("broadcast_multiplier", sa.Float(), nullable=True))
    op.create_table(
        "audit_log",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("project_id", sa.String(length=36), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(length=300), nullable=False),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("target_type", sa.String(length=32), nullable=False),
        sa.Column("target_id", sa.String(length=255), nullable=False),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["project_id"], ["projects.id"], name=op.f("fk_audit_log_project_id_projects"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_log")),
    )  # fmt: skip
    op.create_index("ix_audit_log_project", "audit_log", ["project_id", "id"])
    op.create_index("ix_triggers_project", "triggers", ["project_id", "created_at"])


def downgrade() -> None:
    op.drop_index("ix_triggers_project", table_name="triggers")
    op.drop_index("ix_audit_log_project", table_name="audit_log")
    op.drop_table("audit_log")
    with op.batch_alter_table("projects") as batch:
        batch.drop_column("broadcast_multiplier")
        batch.drop_column("rate_limit")
    with op.batch_alter_table("api_keys") as batch:
        batch.drop_column("last_used_at")
        batch.drop_column("expires_at")
        batch.drop_column("scopes")
