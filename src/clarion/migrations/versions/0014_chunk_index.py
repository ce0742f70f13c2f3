"""ix_messages_chunk without the status column.

The chunk read (trigger, chunk numbers, pending statuses) reads each message row anyway, so the
status in this index saved nothing there; but every status change (queued, sending, sent) had to
move the message's entry in it as well as in ix_messages_status. Without it, marking and
recording outcomes cost about a quarter less (a 200,000-message measurement in the closing note
of issue 10).

Revision ID: 0014
Revises: 0013
Create Date: 2026-11-27 13:30:00
"""

from __future__ import annotations

from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index("ix_messages_chunk", table_name="messages")
    op.create_index("ix_messages_chunk", "messages", ["trigger_id", "chunk_no"])


def downgrade() -> None:
    op.drop_index("ix_messages_chunk", table_name="messages")
    op.create_index("ix_messages_chunk", "messages", ["trigger_id", "chunk_no", "status"])
