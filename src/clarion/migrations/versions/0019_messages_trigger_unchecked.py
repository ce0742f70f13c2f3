"""A message's trigger is no longer a foreign key: the pipeline checks it once per commit.

PostgreSQL checks a foreign key row by row: for each message row copied in, a lookup of its
trigger's row, locked. Measured on a copy of the 200,000-user benchmark database, COPY of
200,000 message rows in commits of 2,000, twice each: 3.7 and 4.3 s of PostgreSQL's CPU with
the foreign key, 2.2 and 2.1 s without it (wall 4.5 and 4.9 s against 2.8 and 2.7 s). The
pipeline writes a trigger's messages only in a transaction that has locked and read the
trigger's row first (the lock the check took, once per row), and writes none for a trigger
that is gone. Nothing deletes triggers, so the cascade had nothing to do.

On SQLite the table is rebuilt (a copy of its rows), as every change of a SQLite constraint
is.

Revision ID: 0019
Revises: 0018
Create Date: 2026-11-28 12:20:00
"""

from __future__ import annotations

from alembic import op

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None

NAME = "fk_messages_trigger_id_triggers"


def upgrade() -> None:
    with op.batch_alter_table("messages") as batch_op:  # SQLite: a rebuilt table
        batch_op.drop_constraint(NAME, type_="foreignkey")


def downgrade() -> None:
    with op.batch_alter_table("messages") as batch_op:
        batch_op.create_foreign_key(NAME, "triggers", ["trigger_id"], ["id"], ondelete="CASCADE")
