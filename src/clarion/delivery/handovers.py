"""SQL for hand-overs: which chunks a delivery step is handing to providers right now.

A step writes a row per chunk in the commit before its sends and deletes it in the commit
that records their outcomes. Between the two, the chunk's pending messages (but those the row
names in ``others``) are being handed over: the message log shows them ``sending``, a cancel
leaves them be, and a row still there when the chunk is next delivered means the step that
wrote it died mid-send, so those messages may have gone out (possible duplicates).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import cast

from sqlalchemy import (
    ColumnElement,
    Dialect,
    Table,
    and_,
    bindparam,
    delete,
    exists,
    func,
    insert,
    select,
)
from sqlalchemy.orm import Session

from clarion.storage.models import Handover, Message, utcnow

H = cast(Table, Handover.__table__)
M = cast(Table, Message.__table__)

_OPEN = select(H.c.chunk_no, H.c.others).where(
    H.c.trigger_id == bindparam("tid"), H.c.chunk_no.in_(bindparam("nos", expanding=True))
)
_BEGIN = insert(H)
_END = delete(H).where(H.c.trigger_id == bindparam("tid"), H.c.chunk_no == bindparam("no"))


def left_open(
    session: Session, chunks: Iterable[tuple[str, int]]
) -> dict[tuple[str, int], frozenset[str]]:
    """The hand-overs of these chunks that a step began and never recorded: for each, the
    ids of the chunk's pending messages it did not cover."""
    by_trigger: dict[str, list[int]] = {}
    for trigger_id, chunk_no in chunks:
        by_trigger.setdefault(trigger_id, []).append(chunk_no)
    found: dict[tuple[str, int], frozenset[str]] = {}
    for trigger_id, numbers in by_trigger.items():
        for row in session.execute(_OPEN, {"tid": trigger_id, "nos": numbers}):
            found[trigger_id, row.chunk_no] = frozenset(row.others or ())
    return found


def begin(session: Session, chunks: Sequence[tuple[str, int, list[str]]]) -> None:
    """(trigger, chunk, the chunk's pending messages not handed over): about to send."""
    if chunks:
        now = utcnow()
        session.execute(_BEGIN, [{"trigger_id": t, "chunk_no": c, "others": others,
                                  "started_at": now} for t, c, others in chunks])  # fmt: skip


def end(session: Session, chunks: Iterable[tuple[str, int]]) -> None:
    """The chunks' hand-overs are recorded (or superseded): no longer open."""
    params = [{"tid": t, "no": c} for t, c in chunks]
    if params:
        session.execute(_END, params)


def covered(dialect: Dialect) -> ColumnElement[bool]:
    """True for a message (a row of the messages table) that an open hand-over covers: with
    status ``queued``, such a message is being sent."""
    others = H.c.others
    if dialect.name == "postgresql":
        members = func.json_array_elements_text(others).table_valued("value")
    else:
        members = func.json_each(others).table_valued("value")
    return exists().where(
        and_(
            H.c.trigger_id == M.c.trigger_id,
            H.c.chunk_no == M.c.chunk_no,
            M.c.id.not_in(select(members.c.value)),
        )
    )
