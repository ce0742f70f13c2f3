"""A chunk's recipients as resolving read them, handed to the chunk's first delivery step.

A delivery step needs, for each message, its device (platform, token, locale, timezone) and
its user's properties. Read back from the database, that is three lookups by key per message
(the message, its device, its user): the costliest of a broadcast's passes. Resolving has
just read the same rows, so it writes them with the chunk (``pending_chunks.recipients``, one
JSON value) and the chunk's first delivery step reads that value instead.

It stands for the database only while nothing has changed the chunk's messages:
- resolving writes it only with messages it has just written, every one of them (not when
  resuming, where rows written before are skipped by their identity);
- the first delivery step clears it in its first commit, with the marks of what it hands
  over: a later step (a retry, a resumed crash, messages held back) reads the database;
- a value older than FRESH_SECONDS is not used: a device may have a new token by then.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import orjson
from sqlalchemy.orm import Session

from clarion.delivery import repository
from clarion.delivery.repository import ChunkRow

# A chunk delivered later than this after it was resolved (a backlog) reads its recipients
# from the database: a device's token or a user's properties may have changed since.
FRESH_SECONDS = 120.0


def encode(project_id: str, rows: Sequence[dict[str, Any]], part: Sequence[Any]) -> bytes:
    """The queued messages of a chunk (``rows``, message rows in the order of ``part``, the
    recipient rows they were made of, with stream_recipients' snapshot columns) as one
    value. A user's properties are embedded as the database holds them, without being
    parsed."""
    kept = [
        (r["id"], r["project_user_id"], r["user_id"], r["device_id"], p[5], p[3], p[6], p[7],
         p[8], None if p[9] is None else orjson.Fragment(p[9]))
        for r, p in zip(rows, part, strict=True)
        if r["status"] == "queued"
    ]  # fmt: skip
    return orjson.dumps((time.time(), project_id, kept))


def decode(value: bytes, trigger_id: str, chunk_no: int) -> list[ChunkRow] | None:
    """The chunk's messages to deliver, as the database would give them (ChunkRow); None when
    the value is too old to use or cannot be read (the database is read instead)."""
    try:
        at, project_id, kept = orjson.loads(value)
        if time.time() - at > FRESH_SECONDS:
            return None
        new = tuple.__new__  # ChunkRow's own __new__ is a Python function, called per row
        return [
            new(ChunkRow, (mid, project_id, trigger_id, chunk_no, "queued", 0, False, None,
                           puid, uid, did, platform, token, region, language, zone, properties))
            for mid, puid, uid, did, platform, token, region, language, zone, properties in kept
        ]  # fmt: skip
    except (ValueError, TypeError):  # orjson.JSONDecodeError is a ValueError
        return None


def chunk_messages(session: Session, chunks: Sequence[tuple[str, int]]) -> list[ChunkRow]:
    """The undelivered messages of these (trigger, chunk) pairs: from a chunk's snapshot
    where it has one still fresh, else from the database. (The step's first commit clears
    the snapshots, used or not: repository.chunks_taken.)"""
    values = repository.chunk_recipients(session, chunks)
    rows: list[ChunkRow] = []
    unread: list[tuple[str, int]] = []
    for chunk in chunks:
        value = values.get(chunk)
        found = None if value is None else decode(value, *chunk)
        if found is None:
            unread.append(chunk)
        else:
            rows += found
    if unread:
        rows += repository.chunk_messages(session, unread)
    return rows
