"""Provider credentials per project (encrypted), and why a device's push token was dropped.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26 22:50:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "provider_credentials",
        sa.Column("project_id", sa.String(length=36), nullable=False),
        sa.Column("provider", sa.String(length=20), nullable=False),
        sa.Column("sealed", sa.Text(), nullable=False),
        sa.Column("settings", sa.JSON(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name=op.f("fk_provider_credentials_project_id_projects"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("project_id", "provider", name=op.f("pk_provider_credentials")),
    )
    with op.batch_alter_table("devices") as batch:
        batch.add_column(sa.Column("token_invalid_reason", sa.String(length=255), nullable=True))
        batch.add_column(
            sa.Column("token_invalidated_at", sa.DateTime(timezone=True), nullable=True)
        )


def downgrade() -> None:
    with op.batch_alter_table("devices") as batch:
        batch.drop_column("token_invalidated_at")
        batch.drop_column("token_invalid_reason")
    op.drop_table("provider_credentials")
