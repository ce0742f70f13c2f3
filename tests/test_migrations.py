"""The schema comes only from Alembic, and the migrations agree with the models."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Connection, inspect, text
from sqlalchemy.exc import IntegrityError

from clarion.audience.values import version_key
from clarion.storage.db import PAGE_SIZE, Database
from clarion.storage.migrate import include_name, upgrade
from clarion.storage.models import MESSAGE_FILLFACTOR, Base, Device


def test_migrations_match_the_models(db: Database) -> None:
    with db.engine.connect() as conn:
        opts = {"compare_type": True, "include_name": include_name}
        context = MigrationContext.configure(conn, opts=opts)
        diff = compare_metadata(context, Base.metadata)
    assert diff == [], f"models and migrations differ; generate a migration: {diff}"


def test_every_model_table_exists(db: Database) -> None:
    tables = set(inspect(db.engine).get_table_names())
    assert set(Base.metadata.tables) <= tables
    assert "alembic_version" in tables
    if db.engine.dialect.name == "postgresql":  # room in each page for outcomes (HOT updates)
        with db.engine.connect() as conn:
            options = conn.execute(
                text("SELECT reloptions FROM pg_class WHERE relname = 'messages'")
            ).scalar_one()
        assert options == [f"fillfactor={MESSAGE_FILLFACTOR}"]


def test_0016_keeps_what_is_pending_per_chunk(tmp_path: Path) -> None:
    """The upgrade that drops the index on the messages' status records, per chunk, what was
    pending (queued or sending) at the time: those triggers still complete, and only then."""
    url = f"sqlite:///{tmp_path / 'old.db'}"
    upgrade(url, "0015")
    db = Database(url)
    t = "2026-01-01 00:00:00.000000"
    with db.engine.begin() as conn:
        _a_trigger(conn, t)
        for n, (chunk, status) in enumerate([(0, "sent"), (1, "queued"), (1, "sent"),
                                             (2, "sending"), (3, "failed")]):  # fmt: skip
            conn.execute(text("INSERT INTO messages (id, project_id, trigger_id, chunk_no, "
                              "user_id, device_id, channel, status, attempts, "
                              "possible_duplicate, created_at, capped) VALUES (:id, 'p', 't', "
                              ":chunk, :id, :id, 'push', :status, 0, 0, :t, 0)"),
                         {"id": f"m{n}", "chunk": chunk, "status": status, "t": t})  # fmt: skip
    db.dispose()
    upgrade(url)
    db = Database(url)
    with db.read() as session:
        pending = session.execute(text("SELECT trigger_id, chunk_no FROM pending_chunks "
                                       "ORDER BY chunk_no")).all()  # fmt: skip
    assert [tuple(row) for row in pending] == [("t", 1), ("t", 2)]
    db.dispose()


@pytest.mark.parametrize("start", ["0017", "0018"])
def test_rebuilding_the_messages_table_keeps_their_attempts(tmp_path: Path, start: str) -> None:
    """On SQLite, 0018 and 0019 rebuild the messages table (copy, drop, rename). Dropping a
    table with foreign keys on deletes its rows first, with their ON DELETE actions: the
    migrations run with the checks off, so the message_attempts rows survive, and the
    references still hold afterwards."""
    url = f"sqlite:///{tmp_path / 'old.db'}"
    upgrade(url, start)
    db = Database(url)
    t = "2026-01-01 00:00:00.000000"
    with db.engine.begin() as conn:
        _a_trigger(conn, t)
        conn.execute(text("INSERT INTO messages (id, project_id, trigger_id, chunk_no, user_id, "
                          "device_id, channel, status, attempts, possible_duplicate, "
                          "created_at, capped) VALUES ('m', 'p', 't', 0, 'u', 'd', 'push', "
                          "'queued', 1, 0, :t, 0)"), {"t": t})  # fmt: skip
        conn.execute(text("INSERT INTO message_attempts (message_id, attempt, at, provider, "
                          "outcome) VALUES ('m', 1, :t, 'fcm', 'retryable')"),
                     {"t": t})  # fmt: skip
    db.dispose()
    upgrade(url)
    db = Database(url)
    with db.engine.begin() as conn:
        attempts = conn.execute(text("SELECT message_id, outcome FROM message_attempts")).all()
        broken = conn.exec_driver_sql("PRAGMA foreign_key_check").all()
    assert [tuple(row) for row in attempts] == [("m", "retryable")]
    assert broken == []
    db.dispose()


def test_0018_keeps_the_messages_and_their_identity(tmp_path: Path) -> None:
    """The upgrade that leads the messages' unique constraint with the user (rebuilding the
    table on SQLite) keeps every message, and a second message with the same identity is
    still refused; the index on the user is gone, the constraint serves its lookups."""
    url = f"sqlite:///{tmp_path / 'old.db'}"
    upgrade(url, "0017")
    db = Database(url)
    t = "2026-01-01 00:00:00.000000"
    insert = text("INSERT INTO messages (id, project_id, trigger_id, chunk_no, user_id, "
                  "device_id, channel, status, attempts, possible_duplicate, created_at, "
                  "capped, title) VALUES (:id, 'p', 't', 0, :user, 'd', 'push', 'sent', 1, 0, "
                  ":t, 0, :id)")  # fmt: skip
    with db.engine.begin() as conn:
        _a_trigger(conn, t)
        for n in range(3):
            conn.execute(insert, {"id": f"m{n}", "user": f"u{n}", "t": t})
    db.dispose()
    upgrade(url)
    db = Database(url)
    with db.engine.begin() as conn:
        kept = conn.execute(text("SELECT id, user_id, title FROM messages ORDER BY id")).all()
    assert [tuple(row) for row in kept] == [("m0", "u0", "m0"), ("m1", "u1", "m1"),
                                            ("m2", "u2", "m2")]  # fmt: skip
    with pytest.raises(IntegrityError), db.engine.begin() as conn:
        conn.execute(insert, {"id": "m3", "user": "u1", "t": t})  # u1's message again
    indexes = {i["name"] for i in inspect(db.engine).get_indexes("messages")}
    assert "ix_messages_user" not in indexes and "ix_messages_chunk" in indexes
    db.dispose()


def _a_trigger(conn: Connection, t: str) -> None:
    """Project p, its campaign c and trigger t."""
    conn.execute(text("INSERT INTO projects (id, name, created_at) VALUES ('p', 'p', :t)"),
                 {"t": t})  # fmt: skip
    conn.execute(text("INSERT INTO campaigns (id, project_id, name, channel, type, status, "
                      "version, created_at, updated_at) VALUES ('c', 'p', 'c', 'push', "
                      "'api', 'active', 1, :t, :t)"), {"t": t})  # fmt: skip
    conn.execute(text("INSERT INTO triggers (id, project_id, campaign_id, campaign_version, "
                      "audience_mode, targets, properties, status, excluded_targets, "
                      "created_at, in_local_time) VALUES ('t', 'p', 'c', 1, 'segment', "
                      "'[]', '{}', 'sending', '[]', :t, 0)"), {"t": t})  # fmt: skip


def test_0002_upgrades_existing_data(tmp_path: Path) -> None:
    """A database made by 0001, with a device registered then, upgrades in place: rules can
    read the device's platform and app version, and nothing is lost."""
    url = f"sqlite:///{tmp_path / 'old.db'}"
    upgrade(url, "0001")
    db = Database(url)
    with db.engine.begin() as conn:
        conn.execute(text("INSERT INTO projects (id, name, created_at) VALUES ('p', 'p', :t)"),
                     {"t": "2026-01-01 00:00:00.000000"})  # fmt: skip
        conn.execute(
            text(
                "INSERT INTO users (id, project_id, project_user_id, properties, created_at, "
                "updated_at) VALUES ('u', 'p', 'ana', '{}', :t, :t)"
            ),
            {"t": "2026-01-01 00:00:00.000000"},
        )
        conn.execute(
            text(
                "INSERT INTO devices (project_id, id, user_id, attributes, platform, "
                "locale_region, locale_language, timezone, is_push_permission_granted, "
                "push_token, push_token_type, created_at, updated_at) VALUES ('p', 'd', 'u', "
                """'{"platform": "iOS", "app_version": "3.2.0", "sdk_type": "native"}', 'iOS', """
                "'', '', '', 1, 't', '', :t, :t)"
            ),
            {"t": "2026-01-01 00:00:00.000000"},
        )
    db.dispose()
    upgrade(url)
    db = Database(url)
    with db.read() as session:
        device = session.get(Device, ("p", "d"))
        assert device is not None
        assert (device.platform, device.app_version, device.sdk_type) == ("IOS", "3.2.0", "native")
        assert device.app_version_key == version_key("3.2.0")
    db.dispose()


def test_new_sqlite_files_get_8k_pages_and_old_ones_keep_theirs(tmp_path: Path) -> None:
    """A new database is made with PAGE_SIZE pages; a file made with SQLite's default 4 KiB
    pages (every database before the change) keeps them, upgrades and takes writes."""
    new = tmp_path / "new.db"
    upgrade(f"sqlite:///{new}")
    with sqlite3.connect(new) as conn:
        assert conn.execute("PRAGMA page_size").fetchone() == (PAGE_SIZE,)
        assert PAGE_SIZE != 4096

    old = tmp_path / "old.db"
    with sqlite3.connect(old) as conn:  # the way the file was made before: no page_size
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("CREATE TABLE t (x)")
    upgrade(f"sqlite:///{old}")
    db = Database(f"sqlite:///{old}")
    with db.write() as session:
        session.execute(text("INSERT INTO projects (id, name, created_at) VALUES ('p', 'p', :t)"),
                        {"t": "2026-01-01 00:00:00.000000"})  # fmt: skip
    with db.read() as session:
        assert session.execute(text("PRAGMA page_size")).scalar_one() == 4096
        assert session.execute(text("SELECT count(*) FROM projects")).scalar_one() == 1
    db.dispose()
