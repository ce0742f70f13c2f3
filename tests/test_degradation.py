"""Graceful degradation: while the database cannot take the write (here: a maintenance job
holds the lock past CLARION_DATABASE_LOCK_TIMEOUT_SECONDS), the trigger call answers 503 with
Retry-After and writes nothing; it never answers 200 without a durable write. Once the lock
is gone the same call succeeds."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from sqlalchemy import func, select
from sqlalchemy.engine import make_url

from clarion.storage.db import Database
from clarion.storage.models import Trigger
from tests.conftest import Server, make_project
from tests.helpers import PROPS, ok, store_pickup, trigger


@contextmanager
def database_locked(url: str) -> Iterator[None]:
    """Another client takes the write lock (SQLite) or locks the triggers table against
    writes (PostgreSQL), and holds it until the block ends."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        conn = sqlite3.connect(parsed.database or "", isolation_level=None)
        conn.execute("BEGIN EXCLUSIVE")
        try:
            yield
        finally:
            conn.execute("ROLLBACK")
            conn.close()
        return
    plain = parsed.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(plain) as pg:
        pg.execute("LOCK TABLE triggers IN EXCLUSIVE MODE")
        try:
            yield
        finally:
            pg.rollback()


def count(db: Database) -> int:
    with db.read() as session:
        return int(session.scalar(select(func.count()).select_from(Trigger)) or 0)


def test_a_locked_database_gets_503_and_nothing_is_half_written(
    server_factory: Any, db: Database
) -> None:
    server: Server = server_factory(database_lock_timeout_seconds=0.3)
    project = make_project(db)
    campaign_id = store_pickup(server.client, project)
    before = count(db)
    with database_locked(db.url):
        r = trigger(server.client, project, campaign_id, {"properties": PROPS})
        assert r.status_code == 503, r.text
        assert r.json()["error"]["code"] == "unavailable"
        assert int(r.headers["retry-after"]) >= 1
        assert "Retry shortly" in r.json()["error"]["message"]
    assert count(db) == before  # the refused call left nothing behind
    trigger_id = ok(trigger(server.client, project, campaign_id, {"properties": PROPS}))
    assert count(db) == before + 1
    assert server.wait_done(project, trigger_id["trigger_id"])["status"] == "completed"


def test_readiness_covers_the_database_the_engine_and_a_shared_rate_limit_store(
    server_factory: Any, db: Database
) -> None:
    server: Server = server_factory()
    r = server.client.get("/api/v1/health/ready")
    assert r.status_code == 200
    checks = {"database": "ok", "engine": "ok", "rate_limits": "ok"}
    assert r.json() == {"status": "ready", "checks": checks}
    if not db.is_sqlite:  # Procrastinate's tables answer too (on SQLite it is refused)
        api_only = server_factory(task_engine="procrastinate", embedded_worker=False)
        assert api_only.client.get("/api/v1/health/ready").json()["checks"]["engine"] == "ok"

    # A shared rate-limit store that cannot be reached: not ready, and API calls get 503
    # (not a 500, not a call let through unlimited).
    dead = server_factory(rate_limit_backend="redis", redis_url="redis://127.0.0.1:9/0")
    r = dead.client.get("/api/v1/health/ready")
    assert r.status_code == 503
    checks = r.json()["checks"]
    assert checks["database"] == "ok" and checks["rate_limits"].startswith("unavailable: ")
    project = make_project(db)
    campaign_id = store_pickup(server.client, project)
    before = count(db)
    r = trigger(dead.client, project, campaign_id, {"properties": PROPS})
    assert r.status_code == 503 and r.json()["error"]["code"] == "unavailable"
    assert "rate-limit store" in r.json()["error"]["message"] and r.headers["retry-after"]
    assert count(db) == before
    assert dead.client.get("/api/v1/health").status_code == 200  # alive, though not ready
