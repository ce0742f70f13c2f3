"""Delivery controls: a trigger's send_at and in_local_time, a message's not_before and
whether it counts toward frequency caps, a project's delivery settings (caps, quiet hours).

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-27 10:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Nullable or defaulted columns: an ALTER TABLE ADD COLUMN on both databases, no copy of
    # the messages table.
    op.add_column("triggers", sa.Column("send_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column(
        "triggers",
        sa.Column("in_local_time", sa.Boolean(), nullable=False, server_default=sa.false()),
    )
    op.add_column("messages", sa.Column("not_before", sa.DateTime(timezone=True), nullable=True))
    op.add_column(
        "messages",
        sa.Column("capped", sa.Boolean(), nullable=False, server_default=sa.false()),
    )
    op.add_column("projects", sa.Column("delivery_settings", sa.JSON(), nullable=True))
    # Frequency caps and re-eligibility read a user's recent messages through
    # ix_messages_user: no new index, so sending (which sets sent_at) maintains no more.


def downgrade() -> None:
    with op.batch_alter_table("projects") as batch:
        batch.drop_column("delivery_settings")
    with op.batch_alter_table("messages") as batch:
        batch.drop_column("capped")
        batch.drop_column("not_before")
    with op.batch_alter_table("triggers") as batch:
        batch.drop_column("in_local_time")
        batch.drop_column("send_at")
