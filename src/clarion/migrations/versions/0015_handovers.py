"""handovers: one row per chunk being handed over to a provider, instead of a 'sending' mark
on each of its messages (storage.models.Handover).

Revision ID: 0015
Revises: 0014
Create Date: 2026-11-27 16:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "handovers",
        sa.Column("trigger_id", sa.String(length=36), nullable=False),
        sa.Column("chunk_no", sa.Integer(), nullable=False),
        sa.Column("messages", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("trigger_id", "chunk_no", name=op.f("pk_handovers")),
    )


def downgrade() -> None:
    op.drop_table("handovers")
