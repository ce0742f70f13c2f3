"""pending_chunks.queued/skipped: a chunk's counts as written; messages pages left 70% free.

Counting a trigger's messages read every row not yet in a settled chunk: while a
million-recipient broadcast was being sent, most of them, hundreds of milliseconds a count,
and a client polling its status kept PostgreSQL (or, on SQLite, the server process) counting
a tenth of the time. A chunk that no delivery step has taken yet has the messages it was
written with, so the commit that writes it records how many were queued and how many
skipped, and counting reads those two numbers instead of its rows. Whatever changes a
chunk's messages clears them first (its first delivery step, a cancel, a change to one of
its users).

On PostgreSQL, recording an outcome is a heap-only update only while the message's page has
room for the row's new version beside the old one (which stays while a resolve's read is
open). A message row grew with the hand-over columns (0017) to about 250 bytes queued and
390 sent: at fillfactor 40 a page took about 13 rows and had room for the new versions of
about 11, and 22% of a broadcast's outcomes (measured: 44,055 of 200,000) went to another
page with a new entry in each of the table's three indexes. At 30 a page takes 9 or 10 rows,
and every outcome of a 1,000,000-device broadcast was heap-only (measured). Measured on
200,000 outcome UPDATEs of 2,000: 3.7 s with every one heap-only (fillfactor 25), 4.6-5.0 s
at fillfactor 40, 7.3 s at 100.

Revision ID: 0021
Revises: 0020
Create Date: 2026-11-28 20:10:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0021"
down_revision = "0020"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("pending_chunks", sa.Column("queued", sa.Integer(), nullable=True))
    op.add_column("pending_chunks", sa.Column("skipped", sa.Integer(), nullable=True))
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE messages SET (fillfactor = 30)")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE messages SET (fillfactor = 40)")
    with op.batch_alter_table("pending_chunks") as batch_op:
        batch_op.drop_column("skipped")
        batch_op.drop_column("queued")
