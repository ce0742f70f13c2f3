"""Idempotency keys, per project, following draft-ietf-httpapi-idempotency-key-header:

- the first request with a key claims it (``in_flight``), is processed, and its response is
  stored; a request that fails validation releases the key and stores nothing;
- the same key and the same request (method, path and body) again: the stored response, byte
  for byte, with ``Idempotency-Replayed: true``;
- the same key while the first is still being processed: 409 with ``Retry-After``;
- the same key with a different request: 422;
- a key is kept ``ttl`` (24 h by default); a claim left in flight for a minute by a process
  that died is taken over.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from clarion.errors import ClarionError, InvalidRequest
from clarion.storage.bulk import insert_ignore
from clarion.storage.models import IdempotencyKey, utcnow

HEADER = "idempotency-key"
MAX_KEY = 255
ABANDONED = timedelta(seconds=60)
TABLE: Any = IdempotencyKey.__table__
_last_sweep = 0.0


class InFlight(ClarionError):
    status_code = 409
    code = "idempotency_key_in_flight"


class KeyReused(ClarionError):
    status_code = 422
    code = "idempotency_key_reused"


@dataclass(frozen=True)
class Replay:
    status: int
    body: bytes
    headers: dict[str, str]


@dataclass(frozen=True)
class Claimed:
    project_id: str
    key: str
    claim: str


def checked_key(value: str | None) -> str | None:
    if value is None:
        return None
    if not 0 < len(value) <= MAX_KEY or not value.isprintable():
        raise InvalidRequest(
            f"Idempotency-Key must be 1 to {MAX_KEY} printable characters; send a fresh "
            "unique value (a UUID) per logical request.",
            code="invalid_idempotency_key",
        )
    return value


def fingerprint(method: str, path: str, body: bytes) -> str:
    return hashlib.sha256(method.encode() + b" " + path.encode() + b"\n" + body).hexdigest()


def begin(
    session: Session, project_id: str, key: str, print_: str, ttl: timedelta
) -> Claimed | Replay:
    """Claim the key, or answer from it. Raises InFlight or KeyReused."""
    _sweep(session)
    now = utcnow()
    row = session.get(IdempotencyKey, (project_id, key))
    if row is not None and (
        row.expires_at <= now or (row.status == "in_flight" and now - row.created_at > ABANDONED)
    ):
        session.delete(row)  # expired, or abandoned by a process that died mid-request
        session.flush()
        row = None
    if row is None:
        claim = secrets.token_hex(16)
        insert_ignore(session, TABLE, [{
            "project_id": project_id, "key": key, "fingerprint": print_, "claim": claim,
            "status": "in_flight", "response_status": None, "response_body": None,
            "response_headers": {}, "trigger_id": None, "replays": 0, "created_at": now,
            "expires_at": now + ttl,
        }])  # fmt: skip
        session.expire_all()
        row = session.get(IdempotencyKey, (project_id, key))
        if row is not None and row.claim == claim:
            return Claimed(project_id, key, claim)
        assert row is not None, "the key was inserted or already there"
    if row.fingerprint != print_:
        raise KeyReused(
            "This Idempotency-Key was used with a different request; use a new key for a "
            "new request."
        )
    if row.status != "done":
        raise InFlight(
            "A request with this Idempotency-Key is still being processed; retry after a "
            "second to get its answer.",
            retry_after=1,
        )
    row.replays += 1
    return Replay(row.response_status or 200, (row.response_body or "").encode(),
                  dict(row.response_headers or {}))  # fmt: skip


def complete(
    session: Session, claimed: Claimed, status: int, body: bytes, headers: dict[str, str],
    trigger_id: str | None,
) -> None:  # fmt: skip
    session.execute(
        update(IdempotencyKey)
        .where(
            IdempotencyKey.project_id == claimed.project_id,
            IdempotencyKey.key == claimed.key,
            IdempotencyKey.claim == claimed.claim,
        )
        .values(
            status="done",
            response_status=status,
            response_body=body.decode(),
            response_headers=headers,
            trigger_id=trigger_id,
        )
    )


def release(session: Session, claimed: Claimed) -> None:
    """The request failed (validation, ...): store nothing, so the key can be used again."""
    session.execute(
        delete(IdempotencyKey).where(
            IdempotencyKey.project_id == claimed.project_id, IdempotencyKey.key == claimed.key,
            IdempotencyKey.claim == claimed.claim,
        )
    )  # fmt: skip


def replays_of(session: Session, trigger_ids: list[str]) -> dict[str, int]:
    """How often each trigger's request was replayed (for the console's marker)."""
    if not trigger_ids:
        return {}
    rows = session.execute(
        select(IdempotencyKey.trigger_id, IdempotencyKey.replays).where(
            IdempotencyKey.trigger_id.in_(trigger_ids)
        )
    ).all()
    return {str(t): int(n) for t, n in rows}


def _sweep(session: Session) -> None:
    """Drop expired keys, at most once a minute per process."""
    global _last_sweep
    if time.monotonic() - _last_sweep < 60:
        return
    _last_sweep = time.monotonic()
    session.execute(delete(IdempotencyKey).where(IdempotencyKey.expires_at <= utcnow()))
