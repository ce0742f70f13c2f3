"""pending_chunks.recipients: a chunk's recipients as resolving found them, for its first step.

Each delivery step read its chunks' messages back joined to their devices and users, three
lookups by key per message: the costliest of a broadcast's passes over the database (200,000
messages: 1.8 s of SQLite's time, 3.4 s of PostgreSQL's and its client's). Resolving has just
read those same rows, so it writes them with the chunk, as one JSON value; the chunk's first
delivery step reads that one value instead (see delivery.snapshots).

On PostgreSQL the value is stored uncompressed (STORAGE EXTERNAL): it is written once, read
once and deleted, and compressing it would cost more than it saves.

Revision ID: 0020
Revises: 0019
Create Date: 2026-11-28 17:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("pending_chunks", sa.Column("recipients", sa.LargeBinary(), nullable=True))
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE pending_chunks ALTER COLUMN recipients SET STORAGE EXTERNAL")


def downgrade() -> None:
    with op.batch_alter_table("pending_chunks") as batch_op:
        batch_op.drop_column("recipients")
