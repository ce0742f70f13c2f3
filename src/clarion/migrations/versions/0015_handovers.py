"""handovers: a delivery step's hand-over of a chunk, one row instead of a mark per message.

Marking every message ``sending`` before handing it over cost an UPDATE per message (and a
move of its entry in ix_messages_status), about a fifth of SQLite's write-lock time in a
million-device broadcast. A row per (trigger, chunk) being handed over records the same
thing: the messages of the chunk still pending, but those it names in ``others``.

Revision ID: 0015
Revises: 0014
Create Date: 2026-11-27 22:10:00
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
        sa.Column("others", sa.JSON(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["trigger_id"], ["triggers.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("trigger_id", "chunk_no"),
    )


def downgrade() -> None:
    op.drop_table("handovers")
