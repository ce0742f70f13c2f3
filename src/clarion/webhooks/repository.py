"""SQL for webhook endpoints, the delivery outbox and the attempt log."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import Table, bindparam, insert, select, update
from sqlalchemy.orm import Session

from clarion import cache
from clarion.storage.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint, utcnow

E = cast(Table, WebhookEndpoint.__table__)
W = cast(Table, WebhookDelivery.__table__)
A = cast(Table, WebhookAttempt.__table__)

_DUE = (
    select(W.c.id)
    .where(W.c.status == "pending", W.c.next_attempt_at <= bindparam("now"))
    .order_by(W.c.next_attempt_at)
    .limit(bindparam("n"))
)
_LEASE = (
    update(W)
    .where(W.c.id.in_(bindparam("ids", expanding=True)))
    .values(next_attempt_at=bindparam("until"))
)
_CLAIMED = (
    select(
        W.c.id,
        W.c.project_id,
        W.c.event_type,
        W.c.payload,
        W.c.attempts,
        W.c.created_at,
        E.c.url,
        E.c.headers,
        E.c.sealed_secret,
    )
    .join(E, E.c.id == W.c.endpoint_id)
    .where(W.c.id.in_(bindparam("ids", expanding=True)))
)
_SETTLE = (
    update(W)
    .where(W.c.id == bindparam("did"))
    .values(
        status=bindparam("new_status"),
        attempts=bindparam("n"),
        next_attempt_at=bindparam("next_at"),
        delivered_at=bindparam("delivered"),
    )
)


def subscribed(session: Session, project_id: str) -> list[tuple[str, frozenset[str]]]:
    """The project's endpoints and the event types each wants (empty: all). Cached: this is
    asked on every delivery commit."""
    key = f"webhooks:{project_id}"
    cached = cache.projects.get(key)
    if isinstance(cached, list):
        return cached
    rows = session.execute(
        select(E.c.id, E.c.event_types).where(E.c.project_id == project_id)
    ).all()
    found = [(r.id, frozenset(r.event_types or ())) for r in rows]
    cache.projects.put(key, found)
    return found


def forget(project_id: str) -> None:
    cache.projects.pop(f"webhooks:{project_id}")


def any_due(session: Session) -> bool:
    due = select(W.c.id).where(W.c.status == "pending", W.c.next_attempt_at <= utcnow())
    return session.execute(due.limit(1)).first() is not None


def add_deliveries(session: Session, rows: Sequence[dict[str, Any]]) -> None:
    if rows:
        session.execute(insert(W), list(rows))


def claim_due(session: Session, limit: int, lease_seconds: float) -> list[Any]:
    """Lease up to ``limit`` due deliveries (pushing their next attempt past the lease, so
    that a dispatcher that dies mid-send leaves them to be retried) and return them with
    their endpoint."""
    now = utcnow()
    due = _DUE
    if session.get_bind().dialect.name == "postgresql":
        due = due.with_for_update(skip_locked=True)
    ids = list(session.execute(due, {"now": now, "n": limit}).scalars())
    if not ids:
        return []
    session.execute(_LEASE, {"ids": ids, "until": now + timedelta(seconds=lease_seconds)})
    return list(session.execute(_CLAIMED, {"ids": ids}).all())


def settle(
    session: Session,
    attempts: Sequence[dict[str, Any]],
    updates: Sequence[dict[str, Any]],
) -> None:
    """``attempts``: rows for the attempt log; ``updates``: {did, new_status, n, next_at,
    delivered}."""
    if attempts:
        session.execute(insert(A), list(attempts))
    if updates:
        session.execute(_SETTLE, list(updates))


def deliveries(
    session: Session, endpoint_id: str, limit: int, before: datetime | None
) -> list[WebhookDelivery]:
    query = select(WebhookDelivery).where(WebhookDelivery.endpoint_id == endpoint_id)
    if before is not None:
        query = query.where(WebhookDelivery.created_at < before)
    query = query.order_by(WebhookDelivery.created_at.desc(), WebhookDelivery.id).limit(limit)
    return list(session.scalars(query))


def attempts_of(session: Session, delivery_ids: Sequence[str]) -> dict[str, list[WebhookAttempt]]:
    found: dict[str, list[WebhookAttempt]] = {d: [] for d in delivery_ids}
    if delivery_ids:
        query = (
            select(WebhookAttempt)
            .where(WebhookAttempt.delivery_id.in_(list(delivery_ids)))
            .order_by(WebhookAttempt.delivery_id, WebhookAttempt.attempt)
        )
        for attempt in session.scalars(query):
            found[attempt.delivery_id].append(attempt)
    return found
